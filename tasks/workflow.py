"""The two-run workflow of a translated source, written once.

1. ``generate_train.py`` (no translations yet) writes the English intermediate
   under ``${paths.work_dir}/<source>/`` and prints the command to run next.
2. ``translate_train.py`` assigns languages by mC4 share, translates the
   intermediate with the one Engine (sharded with ``run.*``), and translates the
   instruction templates into every language (``templates_translated.json``,
   redone only when the templates or the translation model change).
3. ``generate_train.py`` again: the translations exist (or all shards of them,
   which it combines), so it writes ``${paths.out_root}/train/<task>.jsonl``.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from common.errors import UserError
from common.jsonl import load_json, write_json
from common.languages import load_languages
from translate.engine import Engine
from translate.stage import check_shard_args, combine_shards, shard_path, translate_templates


def translated_ready(path: Path, run: dict, english: Path | None = None) -> bool:
    """True when the translated intermediate exists; combines complete shards first.

    A translation older than the English intermediate belongs to other input:
    stop rather than pair new rows with old translations.
    """
    if path.is_file():
        if english is not None and english.is_file() and english.stat().st_mtime > path.stat().st_mtime:
            raise UserError(f"{path} is older than {english}: rerun translate_train.py "
                            f"(or delete {path} to start over)")
        return True
    n, _ = check_shard_args(run)
    if n > 1:
        parts = [shard_path(path, i, n) for i in range(n)]
        done = [p for p in parts if p.is_file()]
        if len(done) == n:
            combine_shards(path, n, english)
            print(f"combined {n} shards into {path}", file=sys.stderr)
            return True
        if done:
            missing = ", ".join(str(p) for p in parts if not p.is_file())
            raise UserError(f"{len(done)} of {n} translation shards exist; missing: {missing}")
    return False


def print_next(script: str, what: str) -> None:
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"wrote the English intermediate ({what}).\n"
          f"next: python {script}{' ' + args if args else ''}\n"
          f"then run this script again to write the final training file.")


def language_list(codes: list) -> list[str]:
    """The configured languages (empty: the whole table), each checked against the table."""
    table = load_languages()
    out = [str(c) for c in codes] if codes else list(table)
    for c in out:
        if c not in table:
            raise UserError(f"languages: unknown language code {c!r}")
    return out


def templates_fingerprint(templates: dict[str, list[str]], tcfg: dict, languages: list[str]) -> dict:
    model = tcfg["ct2_model"] if tcfg["backend"] == "ctranslate2" else tcfg["model"]
    return {"templates": templates, "backend": tcfg["backend"], "model": str(model), "languages": languages}


def translate_template_sets(engine: Engine, path: Path, templates: dict[str, list[str]], tcfg: dict,
                            languages: list[str]) -> dict[str, dict[str, list[str]]]:
    """{set name: {lang: [templates]}} for every template set, cached in ``path``."""
    key = templates_fingerprint(templates, tcfg, languages)
    if path.is_file():
        cached = load_json(path)
        if isinstance(cached, dict) and cached.get("key") == key:
            print(f"templates: up to date in {path}", file=sys.stderr)
            return cached["translated"]
    out, counts = {}, {}
    for name, items in templates.items():
        out[name], counts[name] = translate_templates(engine, items, languages)
    write_json(path, {"key": key, "counts": counts, "translated": out}, indent=1)
    print(f"templates: translated into {len(languages)} languages -> {path} ({counts})", file=sys.stderr)
    return out


def load_template_sets(path: Path) -> dict[str, dict[str, list[str]]]:
    if not path.is_file():
        raise UserError(f"translated templates not found: {path} (run translate_train.py)")
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("translated"), dict):
        raise UserError(f"{path}: not a translated-templates file")
    return data["translated"]
