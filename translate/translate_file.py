"""Translate chosen fields of any JSONL file, each row into the language named
in one of its fields (a code of the language table; ``en`` rows pass through).

    python translate/translate_file.py --set file.input=in.jsonl --set file.output=out.jsonl \\
        --set 'file.fields=[caption]' --set file.lang_field=lang
"""
from __future__ import annotations

import sys

from common.config import REPO_ROOT, parse_args
from common.errors import UserError, entry_point
from translate.engine import TRANSLATION_DEFAULTS, Engine
from translate.stage import RUN_DEFAULTS, translate_jsonl

DEFAULTS = {
    "file": {
        "input": "",
        "output": "",
        "fields": ["text"],
        "lang_field": "lang",
        "assign_languages": False,   # true: draw each row's language by mC4 share first
        "seed": 0,
        "languages": [],             # with assign_languages: the codes to draw from (empty: all)
        "chunk_rows": 20000,
        "max_bad_rows": 1000,
    },
    "translation": TRANSLATION_DEFAULTS,
    "run": RUN_DEFAULTS,
}


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, str(REPO_ROOT / "configs" / "translate_file.yaml"), argv)
    if not cfg.at("file.input"):
        raise UserError("file.input: set the JSONL file to translate")
    if not cfg.at("file.output"):
        raise UserError("file.output: set where to write the translated JSONL")
    src = cfg.require_file("file.input")
    fc = cfg["file"]
    engine = Engine(cfg["translation"])
    counts = translate_jsonl(engine, src, fc["output"], fc["fields"], fc["lang_field"],
                             assign_seed=fc["seed"] if fc["assign_languages"] else None,
                             languages=fc["languages"] or None,
                             run=cfg["run"], chunk_rows=fc["chunk_rows"], max_bad_rows=fc["max_bad_rows"])
    engine.print_summary()
    print("[translate_file] " + ", ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)
    engine.close()


if __name__ == "__main__":
    main()
