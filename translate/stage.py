"""What every translate_*.py does with the engine, written once.

* ``translate_jsonl``: stream a JSONL file, optionally assign each row a
  language by mC4 share, translate chosen fields into the row's language, and
  write the result. A row with any rejected field keeps its English text and
  gets ``lang = "en"`` (nothing is lost); the rejected segments go to
  ``<output>.rejects.jsonl``.
* Sharding (``run.num_shards``/``run.shard_index``): the usable rows are
  dealt round-robin (common/shards.py), so the launcher's merge
  (``common.shards.interleave``) restores input order, byte-identical to a
  one-shard run.
* ``translate_templates``: instruction templates into every language once
  (cached like everything else), dropping a translation that lost a placeholder.
"""
from __future__ import annotations

import collections
from pathlib import Path

from common.jsonl import BadRows, atomic_open, dumps, read_jsonl, write_jsonl
from common.languages import assign_languages, load_languages
from common.shards import RUN_DEFAULTS, check_shard_args, chunks, round_robin, shard_path
from common.templates import placeholders
from .engine import Engine


def translate_rows(engine: Engine, rows: list[dict], fields: list[str], lang_field: str = "lang",
                   src: str = "en", counts: collections.Counter | None = None,
                   fallbacks: collections.Counter | None = None) -> list[dict]:
    """Translate ``fields`` of each row into ``row[lang_field]``. A field may hold a
    string or a list of strings. Rows whose translation was rejected fall back to
    English; ``fallbacks`` counts them by (language asked for, first reason)."""
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
    failed: dict[int, str] = {}
    for (r, f, k), res in zip(where, results):
        if res.text is None:
            failed.setdefault(r, res.reason or "rejected")
        elif k is None:
            out[r][f] = res.text
        else:
            out[r][f] = list(out[r][f])
            out[r][f][k] = res.text
    for r, reason in failed.items():
        out[r] = dict(rows[r])
        out[r][lang_field] = src
        if fallbacks is not None:
            fallbacks[(rows[r].get(lang_field) or src, reason)] += 1
    counts["rows"] += len(rows)
    counts["rows_fallback_to_english"] += len(failed)
    # A row counts as translated when it had a text to translate (not only a language).
    with_text = {r for (r, _f, _k), text, tgt in zip(where, texts, tgts) if text.strip() and tgt != src}
    counts["rows_translated"] += len(with_text - failed.keys())
    return out


def count_rows(path: Path) -> int:
    return sum(1 for _ in read_jsonl(path, BadRows(max_bad=None, quiet=True)))


def translate_jsonl(engine: Engine, in_path: str | Path, out_path: str | Path, fields: list[str],
                    lang_field: str = "lang", assign_seed: int | None = None,
                    languages: list[str] | None = None, run: dict | None = None,
                    chunk_rows: int = 20000, max_bad_rows: int = 1000,
                    max_bad_rows_key: str = "max_bad_rows", assign_stage: str = "",
                    keep: dict[str, str] | None = None, language_split: dict | None = None) -> dict:
    """Stream ``in_path`` -> ``out_path`` (or this run's shard of it). Returns
    counts, and under ``fallback_to_english`` the rows that fell back to English
    as {language asked for: {reason: rows}} (reasons: translate/quality.py).

    With ``assign_seed`` set, every row first gets ``row[lang_field]`` drawn by mC4
    share over the whole file (so shards agree), else the field must be present.
    ``assign_stage`` (the drawing step's name) makes the draw the step's own
    (common.languages.assign_languages); ``language_split`` is the policy of
    the draw (common.languages.check_split; default mC4 shares). The counts
    then hold ``drawn``: {language: rows drawn} over the whole file, before any
    fallback to English (what the mix report compares with the target).
    ``keep``: {field: copy}: the English of a translated field kept beside it
    (``{"caption": "caption_en"}``).
    """
    in_path, out_path = Path(in_path), Path(out_path)
    num_shards, shard_index = check_shard_args(run or RUN_DEFAULTS)
    table = load_languages()
    counts: collections.Counter = collections.Counter()
    fallbacks: collections.Counter = collections.Counter()
    assigned = None
    if assign_seed is not None:
        assigned = assign_languages(count_rows(in_path), assign_seed, languages, stage=assign_stage,
                                    split=language_split)
    bad = BadRows(max_bad=max_bad_rows, key=max_bad_rows_key)

    def usable_rows():
        # Every shard skips and reports the same unusable rows; the usable ones are dealt round-robin.
        for i, row in enumerate(read_jsonl(in_path, bad)):
            for field, copy in (keep or {}).items():
                row[copy] = row.get(field)
            if assigned is not None:
                row[lang_field] = assigned[i]
            code = row.get(lang_field)
            if not isinstance(code, str) or code not in table:
                bad.add(f"{in_path}: row {i + 1}", f"{lang_field}={code!r} is not in the language table")
                continue
            yield row

    target = out_path if num_shards == 1 else shard_path(out_path, shard_index, num_shards)
    first_reject = len(engine.rejects)  # an engine reused for several files lists each file's own
    with atomic_open(target) as f:
        for chunk in chunks(round_robin(usable_rows(), num_shards, shard_index), chunk_rows):
            for row in translate_rows(engine, chunk, fields, lang_field, counts=counts, fallbacks=fallbacks):
                f.write(dumps(row) + "\n")
    write_jsonl(Path(str(target) + ".rejects.jsonl"), engine.rejects[first_reject:])
    counts["bad_rows"] = bad.count
    by_lang: dict[str, dict[str, int]] = {}
    for (lang, reason), n in sorted(fallbacks.items()):
        by_lang.setdefault(lang, {})[reason] = n
    drawn = {} if assigned is None else dict(sorted(collections.Counter(assigned).items()))
    return {**counts, "fallback_to_english": by_lang, **({"drawn": drawn} if assigned is not None else {})}


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
        if collections.Counter(placeholders(res.text)) != collections.Counter(placeholders(text)):
            counts["lost_placeholder"] += 1
            continue
        out.setdefault(tgt, []).append(res.text)
        counts["kept"] += 1
    return out, dict(counts)
