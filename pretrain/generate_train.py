"""Steps 2.3 and 2.5 of BLIP Web CapFilt: the training examples. Run it twice.

First run (``generate.step=english``, or ``auto`` unless the steps below are
done): one English example per downloaded caption, written to
``generate.english`` as {id, image_id, caption, context, url}: ``context`` is
an English captioning instruction from ``generate.caption_templates``. Then run
``pretrain/translate_train.py``.

Second run (``final``, or ``auto`` once the English step is done with unchanged
inputs and the translate step ran on that English file, as the pipeline's run
records say): the final ``train/capfilt.jsonl``. A non-English example's
instruction is, for a ``translated_template_ratio`` share, a caption template
translated into its language, otherwise an English template naming the
language; English examples get an English template (each chosen by the row's
id). Rows have exactly context, label, image_id, task, lang.

    python pretrain/generate_train.py [--set generate.step=final]
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from eval_data import decontam
from common.config import REPO_ROOT, parse_args
from common.errors import UserError, entry_point
from eval_data.keys import web_keys
from common.jsonl import BadRows, read_jsonl, write_jsonl
from common.languages import language_list, load_languages, table_inputs
from common.report import Report
from common.steptype import Step
from pretrain.capfilt_config import CONFIG_FILE, DEFAULTS, clean_text
from translate import source
from translate.shaping import step_values

TASK = "capfilt"
# The picker's stage name: its draws are keyed "capfilt-final-<purpose>".
PICKER_STAGE = "capfilt-final"


def english_examples(rows: Iterable[dict], gc: dict, report: Report, image_root: Path | None = None,
                     dec: decontam.Decontaminator | None = None) -> Iterator[dict]:
    """Downloaded {id, url, caption, image_id} rows -> English intermediate rows;
    with ``dec``, none whose image (by its URL) is an evaluation image: dropped
    and counted here, so the translate step never sees them."""
    for row in rows:
        rid, image_id = row.get("id"), row.get("image_id")
        caption = clean_text(row["caption"]) if isinstance(row.get("caption"), str) else ""
        if not isinstance(rid, str) or not rid:
            report.skip("missing id", str(row.get("url", ""))[:100])
            continue
        if not isinstance(image_id, str) or not image_id:
            report.skip("missing image_id", f"id {rid}")
            continue
        if not caption:
            report.skip("empty caption", f"id {rid}")
            continue
        if image_root is not None and not (image_root / image_id).is_file():
            report.skip("image file missing", f"id {rid}: {image_root / image_id}")
            continue
        if dec is not None and dec.drop(TASK, web_keys(row.get("url")), "en"):
            continue
        yield {"id": rid, "image_id": image_id, "caption": caption,
               "context": source.row_choice(gc["caption_templates"], gc["seed"], "capfilt-en-context", rid),
               "url": row.get("url", "")}


def final_examples(rows: Iterable[dict], templates: dict[str, list[str]], gc: dict,
                   report: Report, dec: decontam.Decontaminator | None = None, rerun: str = "") -> Iterator[dict]:
    """Translated rows (with ``lang``) -> final training rows; with ``dec``, the
    assertion that none is on an evaluation image (by its URL): the English run
    dropped them, so one here stops the run, naming ``rerun``."""
    table = load_languages()
    picker = source.InstructionPicker(gc["seed"], PICKER_STAGE, gc["caption_templates"], gc["language_templates"],
                                      templates, gc["translated_template_ratio"])
    for row in rows:
        rid, lang, image_id = str(row.get("id", "")), row.get("lang"), row.get("image_id")
        label = clean_text(row["caption"]) if isinstance(row.get("caption"), str) else ""
        if lang not in table:
            report.skip("unknown lang", f"id {rid}: lang={lang!r}")
            continue
        if not label:
            report.skip("empty caption", f"id {rid}")
            continue
        if not isinstance(image_id, str) or not image_id:
            report.skip("missing image_id", f"id {rid}")
            continue
        # The language templates' {} is the language's English name.
        context = picker.pick(rid, lang, text=table[lang].name)
        out = {"context": context, "label": label, "image_id": image_id, "task": TASK, "lang": lang}
        if dec is not None:
            dec.check_final(TASK, web_keys(row.get("url")), out, rerun)
        report.count(f"lang:{lang}")
        yield out
    for k, v in picker.counts.items():
        report.count(f"context_{k}", v)


def check_templates(gc: dict) -> None:
    if not gc["caption_templates"] or not gc["language_templates"]:
        raise UserError("generate.caption_templates and generate.language_templates must not be empty")
    for t in gc["caption_templates"]:
        if "{" in t or "}" in t:
            raise UserError(f"generate.caption_templates: {t!r} must not contain braces (it is used as is)")
    for t in gc["language_templates"]:
        if t.count("{}") != 1:
            raise UserError(f"generate.language_templates: {t!r} needs exactly one {{}} for the language name")
    if not 0.0 <= gc["translated_template_ratio"] <= 1.0:
        raise UserError("generate.translated_template_ratio must be within 0..1")


def template_sets(cfg) -> dict[str, list[str]]:
    """What the translate step translates and the final run reads back (the store's key)."""
    return {"caption": list(cfg.at("generate.caption_templates"))}


def english_run(cfg) -> source.Written:
    gc = cfg["generate"]
    src = cfg.require_file("generate.input")
    report, bad = Report("capfilt.generate.english"), BadRows(max_bad=gc["max_bad_rows"], key="generate.max_bad_rows")
    image_root = cfg.path("generate.image_root") if gc["check_images"] else None
    dec = decontam.Decontaminator(cfg, "web")  # no evaluation image in training, nor in translation
    n = write_jsonl(gc["english"], english_examples(read_jsonl(src, bad), gc, report, image_root, dec))
    report.count("rows_in", bad.seen)
    report.count("rows_malformed", bad.count)
    report.count("rows_out", n)
    dec.record(report)
    return source.Written(report, {gc["english"]: n}, "no usable downloaded row to write")


def final_run(cfg, argv) -> source.Written:
    gc = cfg["generate"]
    src = cfg.require_file("generate.translated")
    languages = language_list(cfg.at("translate.languages"), "translate.languages")
    store = source.load_store(cfg.path("generate.templates"), template_sets(cfg), cfg["translation"], languages,
                              "capfilt.translate", argv)
    report, bad = Report("capfilt.generate.final"), BadRows(max_bad=gc["max_bad_rows"], key="generate.max_bad_rows")
    rerun = source.rerun_hint("capfilt.english", argv) + " --set generate.step=english"
    dec = decontam.english_counts(cfg, "web", "capfilt.english", rerun)  # the English run dropped them
    n = write_jsonl(gc["output"], final_examples(read_jsonl(src, bad), store["caption"], gc, report, dec, rerun))
    report.count("rows_in", bad.seen)
    report.count("rows_malformed", bad.count)
    report.count("rows_out", n)
    dec.record(report)
    return source.Written(report, {gc["output"]: n})



ENGLISH_STEP = Step("capfilt.english", "pretrain.generate_train", "capfilt", "English intermediate",
                    reads=("${generate.input}", decontam.web_inputs), writes=("${generate.english}",),
                    after=("capfilt.download",),
                    shaped_by=("generate.caption_templates", "generate.seed", "generate.check_images", "decontam"),
                    defaults=DEFAULTS)
FINAL_STEP = Step("capfilt.final", "pretrain.generate_train", "capfilt", "final training file",
                  reads=(table_inputs, "${generate.translated}", "${generate.templates}", decontam.web_inputs),
                  writes=("${generate.output}",), after=("capfilt.translate",),
                  shaped_by=("generate", "decontam", step_values),
                  tasks=("capfilt",), defaults=DEFAULTS)


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, str(REPO_ROOT / "configs" / CONFIG_FILE), argv)
    check_templates(cfg["generate"])
    source.generate("capfilt", cfg, lambda: english_run(cfg), lambda: final_run(cfg, argv),
                    cfg.at("generate.step"), argv)


if __name__ == "__main__":
    main()
