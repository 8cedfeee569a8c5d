"""LLaVA-Instruct training data, in two runs.

First run: detail_23k gives one example per description (first question and
answer), conversation_58k one example per question-answer turn whose answer
has at most llava.max_answer_sentences sentences; the <image> marker is removed
wherever it appears. Writes the English intermediate (none on an evaluation
image: eval_data/decontam.py, counted in its report) and prints the translate
command. Second run (after tasks/llava/translate_train.py, which translates
question and answer, long answers sentence by sentence): writes
${llava.detail_out} and ${llava.conversation_out}. Which run it is comes
from the pipeline's run records (common/pipeline.py choose_run).

  python tasks/llava/generate_train.py [--config configs/llava.yaml] [--set key=value ...]
"""
from __future__ import annotations

from eval_data import decontam
from common.config import parse_args
from common.errors import entry_point
from common.jsonl import BadRows, iter_json_array, read_jsonl, write_jsonl
from common.report import Report
from common.steptype import Step
from common.languages import table_inputs
from eval_data.keys import coco_id
from tasks.coco_images import CocoResolver
from tasks.instructions import check_templates, final_row
from tasks.llava.settings import CONFIG, DEFAULTS, TASKS, TEMPLATE_NEEDS, sentence_count, turns, work_paths
from translate import source
from translate.shaping import step_values


def english_rows(cfg, report: Report, dec: decontam.Decontaminator | None = None):
    """One row per kept turn; with ``dec``, none on an evaluation image (COCO
    2017 train holds most of val2014): dropped and counted here, so the
    translate step never sees them."""
    c = cfg.at("llava")
    resolve = CocoResolver(cfg.path("llava.image_dir"), c["image_patterns"])
    bad = BadRows(max_bad=c["max_bad_rows"], key="llava.max_bad_rows")
    seen: dict = {}
    for task, key in (("llava_detail", "detail_file"), ("llava_conversation", "conversation_file")):
        path = cfg.path(f"llava.{key}")
        for i, rec in iter_json_array(path, bad):
            report.count(f"{task}_records_in")
            rid = rec.get("id") if isinstance(rec, dict) else None
            where = f"{path}: [{i}] id={rid}"
            if rid is not None and report.duplicate(seen, (task, str(rid)), rec, f"{task}: {where}"):
                continue
            cid = coco_id(rec.get("image", rid)) if isinstance(rec, dict) else None
            name = resolve(cid) if cid is not None else None
            if name is None:
                report.skip(f"{task}: image not in the COCO image folder", where)
                continue
            pairs = turns(rec, where, report)
            if task == "llava_detail":
                pairs = pairs[:1]
            for k, (q, a) in enumerate(pairs):
                if task == "llava_conversation" and sentence_count(a) > c["max_answer_sentences"]:
                    report.skip(f"answer longer than {c['max_answer_sentences']} sentences", f"{where} turn {k}")
                    continue
                row = {"id": f"{rid}-{task}-{k}", "task": task, "image_id": name,
                       "question": q, "question_en": q, "answer": a}
                if dec is not None and dec.drop(task, decontam.coco_keys(row), "en"):
                    continue
                report.count(f"{task}_rows")
                yield row
    report.count("malformed_records", bad.count)


def final_rows(rows, picker: source.InstructionPicker, ratio: float, report: Report):
    for row in rows:
        lang, rid = row["lang"], row["id"]
        # The translated question is the instruction for a share of the
        # examples; the rest keep the English question and name the language.
        if lang != "en" and picker.coin(rid) >= ratio:
            context = picker.pick(rid, lang, row["question_en"], name_language=True)
        else:
            context = row["question"]
        report.count(f"{row['task']}_{'en' if lang == 'en' else 'translated'}")
        yield row["task"], final_row(context, row["answer"], row["image_id"], row["task"], lang)


def validate_intermediate(row: dict) -> str | None:
    if row.get("task") not in TASKS:
        return f"unknown task {row.get('task')!r}"
    for key in ("id", "question", "question_en", "answer", "image_id", "lang"):
        if not isinstance(row.get(key), str) or not row[key]:
            return f"missing or empty {key!r}"
    return None


def english_run(cfg) -> source.Written:
    p = work_paths(cfg)
    report = Report("llava generate_train (English intermediate)")
    dec = decontam.Decontaminator(cfg, "coco")  # no evaluation image in training, nor in translation
    n = write_jsonl(p["en"], english_rows(cfg, report, dec))
    dec.record(report)
    return source.Written(report, {str(p["en"]): n}, "no usable LLaVA examples")


def final_run(cfg, argv) -> source.Written:
    c, p = cfg.at("llava"), work_paths(cfg)
    report = Report("llava generate_train (final)")
    # No translated template set: the instruction is the translated question itself.
    picker = source.InstructionPicker(c["seed"], "llava", c["templates"]["naming"], c["templates"]["naming"],
                                      None, 0.0)
    bad = BadRows(max_bad=c["max_bad_rows"], key="llava.max_bad_rows")
    rows = read_jsonl(p["translated"], bad, validate_intermediate)
    outs = {"llava_detail": cfg.path("llava.detail_out"), "llava_conversation": cfg.path("llava.conversation_out")}
    rerun = source.rerun_hint("llava.english", argv)
    dec = decontam.english_counts(cfg, "coco", "llava.english", rerun)  # the English run dropped them
    langs = source.write_by_key(outs, dec.checked(final_rows(rows, picker, c["translated_ratio"], report),
                                                  decontam.coco_keys, rerun))
    dec.record(report)
    report.count("bad_intermediate_rows", bad.count)
    for task in TASKS:
        report.count(f"{task}_out", sum(langs[task].values()))
    return source.Written(report, {str(outs[t]): sum(langs[t].values()) for t in TASKS})



ENGLISH_STEP = Step("llava.english", "tasks.llava.generate_train", "llava", "LLaVA: English intermediate",
                    reads=("${llava.detail_file}", "${llava.conversation_file}", decontam.coco_inputs),
                    writes=("${llava.work_dir}/turns_en.jsonl",),
                    shaped_by=tuple(f"llava.{k}" for k in ("detail_file", "conversation_file", "image_dir",
                                                           "image_patterns", "max_answer_sentences"))
                    + ("decontam",), defaults=DEFAULTS)
FINAL_STEP = Step("llava.final", "tasks.llava.generate_train", "llava", "LLaVA: final training file",
                  reads=(table_inputs, "${llava.work_dir}/turns_translated.jsonl", "${llava.work_dir}/templates_translated.json",
                         decontam.coco_inputs),
                  writes=("${llava.detail_out}", "${llava.conversation_out}"), after=("llava.translate",),
                  shaped_by=("llava", "decontam", step_values), tasks=("llava_detail", "llava_conversation"), defaults=DEFAULTS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    check_templates("llava.templates", cfg.at("llava.templates"), TEMPLATE_NEEDS)
    cfg.require_file("llava.detail_file")
    cfg.require_file("llava.conversation_file")
    source.generate("llava", cfg, lambda: english_run(cfg), lambda: final_run(cfg, argv), argv=argv)


if __name__ == "__main__":
    main()
