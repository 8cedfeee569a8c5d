"""What every translate_*.py does with the engine, written once.

* ``translate_jsonl``: stream a JSONL file, optionally assign each row a
  language by mC4 share, translate chosen fields into the row's language, and
  write the result. A row with any rejected field keeps its English text and
  gets ``lang = "en"`` (nothing is lost); the rejected segments go to
  ``<output>.rejects.jsonl``.
* Sharding: ``run.num_shards``/``run.shard_index`` pick rows i with
  i % num_shards == shard_index; ``combine_shards`` interleaves the shard
  files back into input order, byte-identical to a one-shard run.
* ``translate_templates``: instruction templates into every language once
  (cached like everything else), dropping a translation that lost a placeholder.
"""
from __future__ import annotations

import collections
import glob
import itertools
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator

from common.errors import UserError
from common.jsonl import BadRows, atomic_open, dumps, read_jsonl, write_json, write_jsonl
from common.languages import assign_languages, load_languages
from . import quality
from .engine import Engine

RUN_DEFAULTS: dict = {"num_shards": 1, "shard_index": 0}


def shard_path(path: str | Path, index: int, num_shards: int) -> Path:
    path = Path(path)
    return path.with_name(f"{path.name}.shard-{index:05d}-of-{num_shards:05d}")


def check_shard_args(run: dict) -> tuple[int, int]:
    n, i = int(run["num_shards"]), int(run["shard_index"])
    if n < 1 or not 0 <= i < n:
        raise UserError(f"run.shard_index={i} run.num_shards={n}: need 0 <= shard_index < num_shards")
    return n, i


def _chunks(it: Iterable, size: int) -> Iterator[list]:
    it = iter(it)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def translate_rows(engine: Engine, rows: list[dict], fields: list[str], lang_field: str = "lang",
                   src: str = "en", counts: collections.Counter | None = None) -> list[dict]:
    """Translate ``fields`` of each row into ``row[lang_field]``. A field may hold a
    string or a list of strings. Rows whose translation was rejected fall back to English."""
    counts = counts if counts is not None else collections.Counter()
    texts, tgts, where = [], [], []
    for r, row in enumerate(rows):
        tgt = row.get(lang_field) or src
        for f in fields:
            value = row.get(f)
            items = value if isinstance(value, list) else [value]
            for k, item in enumerate(items):
                if isinstance(item, str):
                    texts.append(item)
                    tgts.append(tgt)
                    where.append((r, f, k if isinstance(value, list) else None))
    results = engine.translate(texts, tgts, src=src)
    out = [dict(row) for row in rows]
    failed = set()
    for (r, f, k), res in zip(where, results):
        if res.text is None:
            failed.add(r)
        elif k is None:
            out[r][f] = res.text
        else:
            out[r][f] = list(out[r][f])
            out[r][f][k] = res.text
    for r in failed:
        out[r] = dict(rows[r])
        out[r][lang_field] = src
    counts["rows"] += len(rows)
    counts["rows_fallback_to_english"] += len(failed)
    counts["rows_translated"] += sum(1 for r, row in enumerate(rows)
                                     if r not in failed and (row.get(lang_field) or src) != src)
    return out


def count_rows(path: Path) -> int:
    return sum(1 for _ in read_jsonl(path, BadRows(max_bad=None, quiet=True)))


def translate_jsonl(engine: Engine, in_path: str | Path, out_path: str | Path, fields: list[str],
                    lang_field: str = "lang", assign_seed: int | None = None,
                    languages: list[str] | None = None, run: dict | None = None,
                    chunk_rows: int = 20000, max_bad_rows: int = 1000) -> dict:
    """Stream ``in_path`` -> ``out_path`` (or this run's shard of it). Returns counts.

    With ``assign_seed`` set, every row first gets ``row[lang_field]`` drawn by mC4
    share over the whole file (so shards agree), else the field must be present.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    num_shards, shard_index = check_shard_args(run or RUN_DEFAULTS)
    table = load_languages()
    counts: collections.Counter = collections.Counter()
    assigned = None
    if assign_seed is not None:
        assigned = assign_languages(count_rows(in_path), assign_seed, languages)
    bad = BadRows(max_bad=max_bad_rows)

    def rows_of_this_shard():
        # Shards take turns over the usable rows (every shard skips and reports the
        # same unusable ones), so combine_shards' round-robin restores input order.
        usable = 0
        for i, row in enumerate(read_jsonl(in_path, bad)):
            if assigned is not None:
                row[lang_field] = assigned[i]
            code = row.get(lang_field)
            if code not in table:
                bad.add(f"{in_path}: row {i + 1}", f"{lang_field}={code!r} is not in the language table")
                continue
            if usable % num_shards == shard_index:
                yield row
            usable += 1

    target = out_path if num_shards == 1 else shard_path(out_path, shard_index, num_shards)
    first_reject = len(engine.rejects)  # an engine reused for several files lists each file's own
    with atomic_open(target) as f:
        for chunk in _chunks(rows_of_this_shard(), chunk_rows):
            for row in translate_rows(engine, chunk, fields, lang_field, counts=counts):
                f.write(dumps(row) + "\n")
    write_jsonl(Path(str(target) + ".rejects.jsonl"), engine.rejects[first_reject:])
    counts["bad_rows"] = bad.count
    return dict(counts)


_SHARD_NAME = re.compile(r"\.shard-(\d{5})-of-(\d{5})$")


def check_shard_files(out_path: str | Path, num_shards: int, source: str | Path | None = None,
                      since: float | None = None) -> list[str]:
    """Before a merge: a shard file older than ``source`` (the input the shards
    read) or than ``since`` (a launch time) belongs to an earlier run and raises
    UserError naming it; shard files of another num_shards are never merged and
    come back as warnings."""
    out_path = Path(out_path)
    src = Path(source) if source is not None else None
    src_mtime = src.stat().st_mtime if src is not None and src.is_file() else None
    stale = []
    for i in range(num_shards):
        p = shard_path(out_path, i, num_shards)
        if not p.is_file():
            continue  # combine_shards names a missing shard
        m = p.stat().st_mtime
        if src_mtime is not None and m < src_mtime:
            stale.append(f"{p} (older than the input {src})")
        elif since is not None and m < since - 2:  # 2 s: coarse file-system clocks
            stale.append(f"{p} (not written by this run: shard {i} exited 0 but left an older file)")
    if stale:
        raise UserError(f"shard file(s) from an earlier run: {'; '.join(stale)}; rerun those shards, then merge")
    others = sorted(q for q in out_path.parent.glob(glob.escape(out_path.name) + ".shard-*-of-*")
                    if (m := _SHARD_NAME.search(q.name)) and int(m.group(2)) != num_shards)
    if not others:
        return []
    shown = ", ".join(str(q) for q in others[:6]) + (f", ... ({len(others)} files)" if len(others) > 6 else "")
    return [f"not merged (another run.num_shards than {num_shards}; delete when no longer needed): {shown}"]


def combine_shards(out_path: str | Path, num_shards: int, source: str | Path | None = None) -> int:
    """Interleave shard files back into input order; a missing shard is named,
    and so is one from an earlier run (see check_shard_files)."""
    out_path = Path(out_path)
    parts = [shard_path(out_path, i, num_shards) for i in range(num_shards)]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise UserError(f"missing shard file(s): {', '.join(missing)}")
    for warning in check_shard_files(out_path, num_shards, source):
        print(f"warning: {warning}", file=sys.stderr)
    files = [open(p, encoding="utf-8") for p in parts]
    n = 0
    try:
        with atomic_open(out_path) as out:
            while True:
                wrote = False
                for f in files:
                    line = f.readline()
                    if line:
                        out.write(line)
                        n += 1
                        wrote = True
                if not wrote:
                    break
    finally:
        for f in files:
            f.close()
    rejects = []
    for p in parts:
        rp = Path(str(p) + ".rejects.jsonl")
        if rp.is_file():
            rejects += list(read_jsonl(rp))
    write_jsonl(Path(str(out_path) + ".rejects.jsonl"), rejects)
    return n


def translate_templates(engine: Engine, templates: list[str], languages: list[str] | None = None,
                        src: str = "en") -> tuple[dict[str, list[str]], dict]:
    """Translate every template into every language. A translation whose
    placeholders ({} or {name}) differ from the source's is dropped and counted.

    Returns ({lang: [templates]}, counts). The source language keeps the originals.
    """
    langs = [c for c in (languages or list(load_languages())) if c != src]
    texts = [t for _ in langs for t in templates]
    tgts = [c for c in langs for _ in templates]
    results = engine.translate(texts, tgts, src=src)
    out: dict[str, list[str]] = {src: list(templates)}
    counts = collections.Counter()
    for (text, tgt), res in zip(zip(texts, tgts), results):
        if res.text is None:
            counts["rejected"] += 1
            continue
        if collections.Counter(quality.placeholders(res.text)) != collections.Counter(quality.placeholders(text)):
            counts["lost_placeholder"] += 1
            continue
        out.setdefault(tgt, []).append(res.text)
        counts["kept"] += 1
    return out, dict(counts)


def save_templates(path: str | Path, templates: dict[str, list[str]]) -> None:
    write_json(path, templates, indent=1)
