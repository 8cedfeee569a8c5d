"""The translate step shared by the translated sources (MSCOCO, VQAv2, LLaVA).

Translates the English intermediate into a language per row (assigned by mC4
share over the whole file, seeded) and every template set into every
configured language, all through the one Engine.
"""
from __future__ import annotations

import sys
from pathlib import Path

from common.errors import UserError
from translate.engine import Engine
from translate.stage import check_shard_args, translate_jsonl
from tasks.workflow import language_list, translate_template_sets


def translate_source(cfg, section: str, en_path: Path, tr_path: Path, tpl_path: Path,
                     fields: list[str], templates: dict[str, list[str]], engine: Engine | None = None,
                     after=None) -> dict:
    """Returns the counts; ``after(engine, languages)`` runs extra work (shard 0 only)."""
    c = cfg.at(section)
    if not en_path.is_file():
        raise UserError(f"English intermediate not found: {en_path} (run generate_train.py first)")
    _, shard_index = check_shard_args(cfg.at("run"))
    languages = language_list(c["languages"])
    engine = engine or Engine(cfg.at("translation"))
    try:
        counts = translate_jsonl(engine, en_path, tr_path, fields=fields, lang_field="lang",
                                 assign_seed=c["seed"], languages=languages, run=cfg.at("run"),
                                 max_bad_rows=c["max_bad_rows"])
        if shard_index == 0:
            # Templates (and any extra work) once, not once per shard.
            translate_template_sets(engine, tpl_path, templates, cfg.at("translation"), languages)
            if after is not None:
                counts.update(after(engine, languages))
        engine.print_summary()
    finally:
        engine.close()
    print(f"[{section} translate_train] " + ", ".join(f"{k}={v}" for k, v in counts.items()
                                                    if not isinstance(v, dict)), file=sys.stderr)
    return counts
