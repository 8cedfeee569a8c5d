"""Translate chosen fields of any JSONL file, each row into the language named
in one of its fields (a code of the language table; ``en`` rows pass through).

    python translate/translate_file.py --set file.input=in.jsonl --set file.output=out.jsonl \\
        --set 'file.fields=[caption]' --set file.lang_field=lang

On several workers (local processes, SLURM or Ray), merged back in input order:
    python -m common launch translate.file --set 'launch.devices=[cuda:0,cuda:1]' -- \\
        --set paths.work_dir=work --set file.input=in.jsonl --set file.output=out.jsonl ...
A shard (``run.num_shards``/``run.shard_index``) records its completion under
``${paths.work_dir}/pipeline/`` and prints the merge command.
"""
from __future__ import annotations

import sys
from pathlib import Path

from common import lifecycle
from common.config import REPO_ROOT, parse_args
from common.errors import UserError, entry_point
from common.jsonl import BadRows, read_jsonl
from common.languages import load_languages, table_inputs
from common.shards import RUN_DEFAULTS, ShardRule, check_shard_args
from common.steptype import Step
from translate.engine import TRANSLATION_DEFAULTS, Engine, check_settings
from translate.shaping import step_values
from translate.stage import translate_jsonl

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

# Rows dealt round-robin into shard files of file.output, interleaved back by the
# launcher (python -m common launch translate.file).
SHARDS = ShardRule(device="translation", sharded=("${file.output}",))


def scan_input(src: Path, fc: dict) -> None:
    """Refuse, before the model loads, fields and a language field that no row
    has (the run would translate nothing, or drop every row). Reads until every
    field and a usable language code were seen: usually the first row."""
    fields, lang_field = set(fc["fields"]), fc["lang_field"]
    if not fields:
        raise UserError("file.fields: name at least one field to translate")
    table = load_languages()
    seen: set = set()
    lang_ok = bool(fc["assign_languages"])
    rows = 0
    for row in read_jsonl(src, BadRows(max_bad=None, quiet=True)):
        rows += 1
        seen |= fields & {k for k, v in row.items() if isinstance(v, (str, list))}
        lang_ok = lang_ok or (isinstance(row.get(lang_field), str) and row[lang_field] in table)
        if seen == fields and lang_ok:
            return
    if not rows:
        raise UserError(f"file.input: {src} has no usable JSON rows")
    missing = sorted(fields - seen)
    if missing:
        raise UserError(f"file.fields: no row of {src} has the field(s) {missing} (text or a list of texts)")
    raise UserError(f"file.lang_field: no row of {src} has {lang_field!r} set to a code of the language table "
                    "(or set file.assign_languages=true to draw languages)")



STEP = Step("translate.file", "translate.translate_file", "translate_file", "translate fields of any JSONL file",
            reads=(table_inputs, "${file.input}",), writes=("${file.output}",), shaped_by=("file", step_values),
            defaults=DEFAULTS, rule=SHARDS, tool=True)


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, str(REPO_ROOT / "configs" / "translate_file.yaml"), argv)
    if not cfg.at("file.input"):
        raise UserError("file.input: set the JSONL file to translate")
    if not cfg.at("file.output"):
        raise UserError("file.output: set where to write the translated JSONL")
    src = cfg.require_file("file.input")
    if cfg.path("file.output").resolve() == src.resolve():
        raise UserError(f"file.output: {cfg.path('file.output')} is the input file; write somewhere else")
    num_shards, _ = check_shard_args(cfg["run"])
    if num_shards > 1:
        cfg.path("paths.work_dir")   # where the shard's completion record goes: set, or one clear line
    check_settings(cfg["translation"])
    # A tool: only a shard of a sharded run leaves a run record (for the launcher's merge).
    lifecycle.run_step(STEP, cfg, argv, lambda: translate(cfg, src, record=num_shards > 1))


def translate(cfg, src: Path, record: bool) -> lifecycle.Done:
    """Translate the file; the rejection check comes after the report is saved."""
    fc = cfg["file"]
    scan_input(src, fc)
    engine = Engine(cfg["translation"])
    try:
        counts = translate_jsonl(engine, src, fc["output"], fc["fields"], fc["lang_field"],
                                 assign_seed=fc["seed"] if fc["assign_languages"] else None,
                                 languages=fc["languages"] or None, run=cfg["run"], chunk_rows=fc["chunk_rows"],
                                 max_bad_rows=fc["max_bad_rows"], max_bad_rows_key="file.max_bad_rows",
                                 assign_stage="translate.file")
        engine.print_summary()
        print("[translate_file] " + ", ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)
    except BaseException:
        engine.close()
        raise

    def then() -> None:
        try:
            engine.check_rejections("translate.file")
        finally:
            engine.close()
    return lifecycle.Done({"stage": "translate.file", "counts": counts, "translation": engine.summary()}, then,
                          record=record)


if __name__ == "__main__":
    main()
