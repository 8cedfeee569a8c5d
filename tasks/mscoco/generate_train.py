"""MSCOCO captioning training data (Karpathy train + restval), in two runs.

First run: writes the English captions to ${mscoco.work_dir}/captions_en.jsonl
(none on an evaluation image: eval_data/decontam.py, counted in its report)
and prints the translate command. After tasks/mscoco/translate_train.py, the
second run writes ${mscoco.train_file}: one row per caption, the caption in
the row's language, the instruction either translated or an English one
naming that language (mscoco.translated_ratio). Which run it is comes from the
pipeline's run records (common/pipeline.py choose_run).

  python tasks/mscoco/generate_train.py [--config configs/mscoco.yaml] [--set key=value ...]
"""
from __future__ import annotations

from eval_data import decontam
from common.config import parse_args
from common.errors import UserError, entry_point
from common.jsonl import BadRows, read_jsonl, write_jsonl
from common.languages import language_list, table_inputs
from common.report import Report
from common.steptype import Step
from tasks.instructions import check_templates, final_row
from tasks.mscoco.settings import CONFIG, DEFAULTS, TEMPLATE_NEEDS, intermediate_paths, read_images
from translate import source
from translate.shaping import step_values

TASK = "mscoco"


def english_rows(cfg, report: Report, dec: decontam.Decontaminator | None = None):
    """The English intermediate: one row per caption of the training splits;
    with ``dec``, none on an evaluation image (restval is val2014): dropped and
    counted here, so the translate step never sees them."""
    splits = cfg.at("mscoco.train_splits")
    for split, name, caps in read_images(cfg, splits, report):
        for sid, text in caps:
            row = {"id": sid, "image_id": name, "caption": text}
            if dec is not None and dec.drop(TASK, decontam.coco_keys(row), "en"):
                continue
            report.count("captions_out")
            yield row


def final_rows(rows, picker: source.InstructionPicker, report: Report):
    for row in rows:
        lang = row.get("lang") or "en"
        report.count(f"rows_{'en' if lang == 'en' else 'translated'}")
        yield final_row(picker.pick(row["id"], lang), row["caption"], row["image_id"], TASK, lang)


def validate_intermediate(row: dict) -> str | None:
    if not isinstance(row.get("id"), (int, str)) or isinstance(row.get("id"), bool) or row["id"] == "":
        return "missing or empty 'id'"  # the instruction is chosen by it
    for key in ("caption", "image_id", "lang"):
        if not isinstance(row.get(key), str) or not row[key]:
            return f"missing or empty {key!r}"
    return None


def template_sets(cfg) -> dict[str, list[str]]:
    """The templates the translate step translates (the store's key)."""
    return {"english": list(cfg.at("mscoco.templates.english"))}


def english_run(cfg) -> source.Written:
    en_path, _, _ = intermediate_paths(cfg)
    report = Report("mscoco generate_train (English intermediate)")
    dec = decontam.Decontaminator(cfg, "coco")  # no evaluation image in training, nor in translation
    n = write_jsonl(en_path, english_rows(cfg, report, dec))
    dec.record(report)
    report.extra["intermediate"] = str(en_path)
    return source.Written(report, {str(en_path): n},
                          f"no captions found for splits {cfg.at('mscoco.train_splits')} in "
                          f"{cfg.path('mscoco.karpathy')}")


def final_run(cfg, argv) -> source.Written:
    c = cfg.at("mscoco")
    _, tr_path, tpl_path = intermediate_paths(cfg)
    languages = language_list(c["languages"], "mscoco.languages")
    store = source.load_store(tpl_path, template_sets(cfg), cfg.at("translation"), languages, "mscoco.translate", argv)
    report = Report("mscoco generate_train (final)")
    picker = source.InstructionPicker(c["seed"], TASK, c["templates"]["english"], c["templates"]["naming"],
                                      store.get("english"), c["translated_ratio"])
    bad = BadRows(max_bad=c["max_bad_rows"], key="mscoco.max_bad_rows")
    rows = read_jsonl(tr_path, bad, validate_intermediate)
    rerun = source.rerun_hint("mscoco.english", argv)
    dec = decontam.english_counts(cfg, "coco", "mscoco.english", rerun)  # the English run dropped them
    kept = dec.checked(((TASK, r) for r in final_rows(rows, picker, report)), decontam.coco_keys, rerun)
    n = write_jsonl(cfg.path("mscoco.train_file"), (row for _, row in kept))
    report.count("rows_out", n)
    dec.record(report)
    report.count("bad_intermediate_rows", bad.count)
    report.extra["instructions"] = dict(picker.counts)
    report.extra["train_file"] = str(cfg.path("mscoco.train_file"))
    return source.Written(report, {str(cfg.path("mscoco.train_file")): n})



ENGLISH_STEP = Step("mscoco.english", "tasks.mscoco.generate_train", "mscoco", "MSCOCO: English intermediate",
                    reads=("${mscoco.karpathy}", decontam.coco_inputs),
                    writes=("${mscoco.work_dir}/captions_en.jsonl",),
                    shaped_by=(*(f"mscoco.{k}" for k in ("karpathy", "image_dir", "image_patterns", "check_images",
                                                         "train_splits")), "decontam"), defaults=DEFAULTS)
FINAL_STEP = Step("mscoco.final", "tasks.mscoco.generate_train", "mscoco", "MSCOCO: final training file",
                  reads=(table_inputs, "${mscoco.work_dir}/captions_translated.jsonl", "${mscoco.work_dir}/templates_translated.json",
                         decontam.coco_inputs),
                  writes=("${mscoco.train_file}",), after=("mscoco.translate",),
                  shaped_by=("mscoco", "decontam", step_values),
                  tasks=("mscoco",), defaults=DEFAULTS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    c = cfg.at("mscoco")
    check_templates("mscoco.templates", c["templates"], TEMPLATE_NEEDS)
    if set(c["train_splits"]) & set(c["eval_splits"]):
        raise UserError("mscoco.train_splits and mscoco.eval_splits overlap")
    cfg.require_file("mscoco.karpathy")
    source.generate("mscoco", cfg, lambda: english_run(cfg), lambda: final_run(cfg, argv), argv=argv)


if __name__ == "__main__":
    main()
