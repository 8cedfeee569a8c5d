"""VQAv2 training data, in two runs: vqav2_vqa (question -> short answer) and
vqav2_vqg (answer -> question), two rows per training question.

First run: joins questions to annotations by question_id and writes the English
intermediate (one row per question and task, so the two tasks draw their
languages independently; none on an evaluation image: eval_data/decontam.py,
counted in its report) plus the frequent answers, then prints the translate
command. Second run (after tasks/vqa/translate_train.py): writes
${vqav2.vqa_file} and ${vqav2.vqg_file}. Where the answer has a kept
(round-tripped) translation into the row's language, a seeded half of the
examples use it (vqa: the label, in that language; vqg: the answer shown);
otherwise the answer stays English and the vqa instruction asks for English.
Which run it is comes from the pipeline's run records (common/pipeline.py
choose_run).

  python tasks/vqa/generate_train.py [--config configs/vqav2.yaml] [--set key=value ...]
"""
from __future__ import annotations

import collections

from eval_data import decontam
from common.config import parse_args
from common.errors import UserError, entry_point
from common.jsonl import BadRows, load_json, read_jsonl, write_json, write_jsonl
from common.languages import language_list, table_inputs
from common.report import Report
from common.steptype import Step
from tasks.instructions import check_templates, final_row
from tasks.vqa.settings import CONFIG, DEFAULTS, TASKS, TEMPLATE_NEEDS, frequent_answers, joined, work_paths
from translate import source
from translate.shaping import step_values


def english_rows(cfg, report: Report, answer_counts: collections.Counter,
                 dec: decontam.Decontaminator | None = None):
    """Two rows per training question (one per task); with ``dec``, none on an
    evaluation image: dropped and counted (per task) here, so neither the
    translate step nor the frequent answers see them."""
    for q in joined(cfg, "train", report):
        if dec is not None:
            dropped = [dec.drop(task, decontam.coco_keys(q), "en") for task in TASKS]  # each task's row counted
            if any(dropped):
                continue
        answer_counts[q["answer"]] += 1
        for task in TASKS:
            report.count(f"{task}_rows")
            yield {"id": f"{q['question_id']}-{task}", "task": task, "image_id": q["image_id"],
                   "question": q["question"], "answer": q["answer"]}


def template_sets(cfg) -> dict[str, list[str]]:
    """The templates the translate step translates (the store's key)."""
    t = cfg.at("vqav2.templates")
    return {"vqa_english": list(t["vqa_english"]), "vqg_english": list(t["vqg_english"])}


def final_rows(rows, cfg, templates: dict, kept: dict, report: Report):
    """-> (task, final row) for every intermediate row, in input order."""
    c = cfg.at("vqav2")
    t = c["templates"]
    seed = c["seed"]
    pickers = {task: source.InstructionPicker(seed, task, t[f"{key}_english"], t[f"{key}_naming"],
                                              templates.get(f"{key}_english"), c["translated_ratio"])
               for task, key in (("vqav2_vqa", "vqa"), ("vqav2_vqg", "vqg"))}
    for row in rows:
        task, lang, answer, rid = row["task"], row["lang"], row["answer"], row["id"]
        translated = kept.get(lang, {}).get(answer) if lang != "en" else None
        # Like the instruction, the answer's language is drawn per row id.
        use = translated is not None and \
            source.row_unit(seed, f"{task}-answer-language", rid) < c["answer_translated_ratio"]
        if translated is not None:
            report.count(f"{task}_answer_{'translated' if use else 'kept_english'}")
        if task == "vqav2_vqa":
            if use:
                yield task, final_row(pickers[task].pick(rid, lang, row["question"]), translated, row["image_id"],
                                      task, lang)
            else:
                # The question may be translated, the answer is English: say so.
                ctx = pickers[task].pick(rid, "en", row["question"], name_language=lang != "en")
                # lang: the answer's (English); the prompt carries the question in its drawn language
                yield task, {**final_row(ctx, answer, row["image_id"], task, "en"), source.PROMPT_LANG: lang}
        else:
            shown = translated if use else answer
            yield task, final_row(pickers[task].pick(rid, lang, shown), row["question"], row["image_id"], task,
                                  lang)


def validate_intermediate(row: dict) -> str | None:
    if row.get("task") not in TASKS:
        return f"unknown task {row.get('task')!r}"
    for key in ("id", "question", "answer", "image_id", "lang"):
        if not isinstance(row.get(key), str) or not row[key]:
            return f"missing or empty {key!r}"
    return None


def english_run(cfg) -> source.Written:
    c, p = cfg.at("vqav2"), work_paths(cfg)
    report = Report("vqav2 generate_train (English intermediate)")
    counts: collections.Counter = collections.Counter()
    dec = decontam.Decontaminator(cfg, "coco")  # no evaluation image in training, nor in translation
    n = write_jsonl(p["en"], english_rows(cfg, report, counts, dec))
    dec.record(report)
    frequent = frequent_answers(counts, c["answer_min_count"])
    write_json(p["frequent"], {"min_count": c["answer_min_count"], "answers": frequent}, indent=1)
    report.count("distinct_answers", len(counts))
    report.count("frequent_answers", len(frequent))
    return source.Written(report, {str(p["en"]): n},
                          "no usable VQAv2 training questions")


def final_run(cfg, argv) -> source.Written:
    c, p = cfg.at("vqav2"), work_paths(cfg)
    languages = language_list(c["languages"], "vqav2.languages")
    templates = source.load_store(p["templates"], template_sets(cfg), cfg.at("translation"), languages,
                                  "vqav2.translate", argv)
    if not p["answers"].is_file():
        raise UserError(f"translated answers not found: {p['answers']}; run {source.rerun_hint('vqav2.translate', argv)}")
    kept = load_json(p["answers"]).get("kept", {})
    report = Report("vqav2 generate_train (final)")
    bad = BadRows(max_bad=c["max_bad_rows"], key="vqav2.max_bad_rows")
    rows = read_jsonl(p["translated"], bad, validate_intermediate)
    outs = {"vqav2_vqa": cfg.path("vqav2.vqa_file"), "vqav2_vqg": cfg.path("vqav2.vqg_file")}
    rerun = source.rerun_hint("vqav2.english", argv)
    dec = decontam.english_counts(cfg, "coco", "vqav2.english", rerun)  # the English run dropped them
    prompts: dict = {}
    langs = source.write_by_key(outs, dec.checked(final_rows(rows, cfg, templates, kept, report),
                                                  decontam.coco_keys, rerun), prompts)
    dec.record(report)
    for task in TASKS:
        report.count(f"{task}_out", sum(langs[task].values()))
        report.extra[f"{task}_languages"] = dict(langs[task].most_common())
        # the prompts' languages (the mix report's prompt column, pretrain/mix_card.py)
        report.extra[f"{task}_prompt_languages"] = dict(prompts[task].most_common())
    report.count("bad_intermediate_rows", bad.count)
    return source.Written(report, {str(outs[t]): sum(langs[t].values()) for t in TASKS})



ENGLISH_STEP = Step("vqav2.english", "tasks.vqa.generate_train", "vqav2", "VQAv2: English intermediate",
                    reads=("${vqav2.train_questions}", "${vqav2.train_annotations}", decontam.coco_inputs),
                    writes=("${vqav2.work_dir}/questions_en.jsonl", "${vqav2.work_dir}/answers_frequent.json"),
                    shaped_by=tuple(f"vqav2.{k}" for k in ("train_questions", "train_annotations",
                                                           "train_image_pattern", "image_dir", "check_images",
                                                           "answer_min_count")) + ("decontam",),
                    defaults=DEFAULTS)
FINAL_STEP = Step("vqav2.final", "tasks.vqa.generate_train", "vqav2", "VQAv2: final training file",
                  reads=(table_inputs, "${vqav2.work_dir}/questions_translated.jsonl", "${vqav2.work_dir}/templates_translated.json",
                         "${vqav2.work_dir}/answers_translated.json", decontam.coco_inputs),
                  writes=("${vqav2.vqa_file}", "${vqav2.vqg_file}"), after=("vqav2.translate",),
                  shaped_by=("vqav2", "decontam", step_values), tasks=("vqav2_vqa", "vqav2_vqg"), defaults=DEFAULTS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    check_templates("vqav2.templates", cfg.at("vqav2.templates"), TEMPLATE_NEEDS)
    cfg.require_file("vqav2.train_questions")
    cfg.require_file("vqav2.train_annotations")
    source.generate("vqav2", cfg, lambda: english_run(cfg), lambda: final_run(cfg, argv), argv=argv)


if __name__ == "__main__":
    main()
