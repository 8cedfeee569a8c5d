"""MSCOCO captioning training data (Karpathy train + restval), in two runs.

First run: writes the English captions to ${mscoco.work_dir}/captions_en.jsonl
and prints the translate command. After tasks/mscoco/translate_train.py, the
second run writes ${mscoco.train_file}: one row per caption, the caption in
the row's language, the instruction either translated or an English one
naming that language (mscoco.translated_ratio).

  python tasks/mscoco/generate_train.py [--config configs/mscoco.yaml] [--set key=value ...]
"""
from __future__ import annotations

import sys

from common.config import parse_args
from common.errors import UserError, entry_point
from common.jsonl import BadRows, read_jsonl, write_jsonl
from common.report import Report
from common.sampling import rng
from tasks.instructions import InstructionPicker, check_templates, final_row
from tasks.mscoco.settings import CONFIG, DEFAULTS, TEMPLATE_NEEDS, intermediate_paths, read_images
from tasks.workflow import load_template_sets, print_next, translated_ready

TASK = "mscoco"


def english_rows(cfg, report: Report):
    """The English intermediate: one row per caption of the training splits."""
    splits = cfg.at("mscoco.train_splits")
    for split, name, caps in read_images(cfg, splits, report):
        for sid, text in caps:
            report.count("captions_out")
            yield {"id": sid, "image_id": name, "caption": text}


def final_rows(rows, picker: InstructionPicker, report: Report):
    for row in rows:
        lang = row.get("lang") or "en"
        report.count(f"rows_{'en' if lang == 'en' else 'translated'}")
        yield final_row(picker.pick(lang), row["caption"], row["image_id"], TASK, lang)


def validate_intermediate(row: dict) -> str | None:
    for key in ("caption", "image_id", "lang"):
        if not isinstance(row.get(key), str) or not row[key]:
            return f"missing or empty {key!r}"
    return None


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    c = cfg.at("mscoco")
    check_templates("mscoco.templates", c["templates"], TEMPLATE_NEEDS)
    if set(c["train_splits"]) & set(c["eval_splits"]):
        raise UserError("mscoco.train_splits and mscoco.eval_splits overlap")
    en_path, tr_path, tpl_path = intermediate_paths(cfg)
    cfg.require_file("mscoco.karpathy")
    if not translated_ready(tr_path, cfg.at("run"), en_path):
        report = Report("mscoco generate_train (English intermediate)")
        n = write_jsonl(en_path, english_rows(cfg, report))
        report.extra["intermediate"] = str(en_path)
        report.print()
        report.save(en_path.with_suffix(".report.json"))
        if n == 0:
            raise UserError(f"no captions found for splits {c['train_splits']} in {cfg.path('mscoco.karpathy')}")
        print_next("tasks/mscoco/translate_train.py", f"{n} captions -> {en_path}")
        return
    report = Report("mscoco generate_train (final)")
    templates = load_template_sets(tpl_path)
    picker = InstructionPicker(rng(c["seed"], TASK, "instructions"), c["templates"]["english"],
                               c["templates"]["naming"], templates.get("english"), c["translated_ratio"])
    bad = BadRows(max_bad=c["max_bad_rows"])
    rows = read_jsonl(tr_path, bad, validate_intermediate)
    n = write_jsonl(cfg.path("mscoco.train_file"), final_rows(rows, picker, report))
    report.count("rows_out", n)
    report.count("bad_intermediate_rows", bad.count)
    report.extra["instructions"] = picker.counts
    report.extra["train_file"] = str(cfg.path("mscoco.train_file"))
    report.print()
    report.save(cfg.path("mscoco.work_dir") / "train.report.json")
    print(f"wrote {n} rows -> {cfg.path('mscoco.train_file')}", file=sys.stderr)


if __name__ == "__main__":
    main()
