"""VQAv2 training data, in two runs: vqav2_vqa (question -> short answer) and
vqav2_vqg (answer -> question), two rows per training question.

First run: joins questions to annotations by question_id and writes the English
intermediate (one row per question and task, so the two tasks draw their
languages independently) plus the frequent answers, then prints the translate
command. Second run (after tasks/vqa/translate_train.py): writes
${vqav2.vqa_file} and ${vqav2.vqg_file}. Where the answer has a kept
(round-tripped) translation into the row's language, a seeded half of the
examples use it (vqa: the label, in that language; vqg: the answer shown);
otherwise the answer stays English and the vqa instruction asks for English.

  python tasks/vqa/generate_train.py [--config configs/vqav2.yaml] [--set key=value ...]
"""
from __future__ import annotations

import collections
import sys

from common.config import parse_args
from common.errors import UserError, entry_point
from common.jsonl import BadRows, atomic_open, dumps, load_json, read_jsonl, write_json, write_jsonl
from common.report import Report
from common.sampling import rng
from tasks.instructions import InstructionPicker, check_templates, final_row
from tasks.vqa.settings import CONFIG, DEFAULTS, TASKS, TEMPLATE_NEEDS, frequent_answers, joined, work_paths
from tasks.workflow import load_template_sets, print_next, translated_ready


def english_rows(cfg, report: Report, answer_counts: collections.Counter):
    for q in joined(cfg, "train", report):
        answer_counts[q["answer"]] += 1
        for task in TASKS:
            report.count(f"{task}_rows")
            yield {"id": f"{q['question_id']}-{task}", "task": task, "image_id": q["image_id"],
                   "question": q["question"], "answer": q["answer"]}


def final_rows(rows, cfg, templates: dict, kept: dict, report: Report):
    """-> (task, final row) for every intermediate row, in input order."""
    c = cfg.at("vqav2")
    t = c["templates"]
    seed = c["seed"]
    pickers = {task: InstructionPicker(rng(seed, task, "instructions"), t[f"{key}_english"], t[f"{key}_naming"],
                                       templates.get(f"{key}_english"), c["translated_ratio"])
               for task, key in (("vqav2_vqa", "vqa"), ("vqav2_vqg", "vqg"))}
    coins = {task: rng(seed, task, "answer-language") for task in TASKS}
    for row in rows:
        task, lang, answer = row["task"], row["lang"], row["answer"]
        translated = kept.get(lang, {}).get(answer) if lang != "en" else None
        use = translated is not None and coins[task].random() < c["answer_translated_ratio"]
        if translated is not None:
            report.count(f"{task}_answer_{'translated' if use else 'kept_english'}")
        if task == "vqav2_vqa":
            if use:
                yield task, final_row(pickers[task].pick(lang, row["question"]), translated, row["image_id"],
                                      task, lang)
            else:
                # The question may be translated, the answer is English: say so.
                ctx = pickers[task].pick("en", row["question"], name_language=lang != "en")
                yield task, final_row(ctx, answer, row["image_id"], task, "en")
        else:
            shown = translated if use else answer
            yield task, final_row(pickers[task].pick(lang, shown), row["question"], row["image_id"], task, lang)


def validate_intermediate(row: dict) -> str | None:
    if row.get("task") not in TASKS:
        return f"unknown task {row.get('task')!r}"
    for key in ("question", "answer", "image_id", "lang"):
        if not isinstance(row.get(key), str) or not row[key]:
            return f"missing or empty {key!r}"
    return None


def write_final(cfg, p, report: Report) -> None:
    c = cfg.at("vqav2")
    templates = load_template_sets(p["templates"])
    if not p["answers"].is_file():
        raise UserError(f"translated answers not found: {p['answers']} (run tasks/vqa/translate_train.py)")
    kept = load_json(p["answers"]).get("kept", {})
    bad = BadRows(max_bad=c["max_bad_rows"])
    rows = read_jsonl(p["translated"], bad, validate_intermediate)
    outs = {"vqav2_vqa": cfg.path("vqav2.vqa_file"), "vqav2_vqg": cfg.path("vqav2.vqg_file")}
    langs = {task: collections.Counter() for task in TASKS}
    # Both files are written in one pass, each atomically.
    with atomic_open(outs["vqav2_vqa"]) as fa, atomic_open(outs["vqav2_vqg"]) as fg:
        files = {"vqav2_vqa": fa, "vqav2_vqg": fg}
        for task, row in final_rows(rows, cfg, templates, kept, report):
            files[task].write(dumps(row) + "\n")
            langs[task][row["lang"]] += 1
    for task in TASKS:
        n = sum(langs[task].values())
        report.count(f"{task}_out", n)
        report.extra[f"{task}_languages"] = dict(langs[task].most_common())
        print(f"wrote {n} rows -> {outs[task]}", file=sys.stderr)
    report.count("bad_intermediate_rows", bad.count)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    c = cfg.at("vqav2")
    check_templates("vqav2.templates", c["templates"], TEMPLATE_NEEDS)
    cfg.require_file("vqav2.train_questions")
    cfg.require_file("vqav2.train_annotations")
    p = work_paths(cfg)
    if not translated_ready(p["translated"], cfg.at("run"), p["en"]):
        report = Report("vqav2 generate_train (English intermediate)")
        counts: collections.Counter = collections.Counter()
        n = write_jsonl(p["en"], english_rows(cfg, report, counts))
        frequent = frequent_answers(counts, c["answer_min_count"])
        write_json(p["frequent"], {"min_count": c["answer_min_count"], "answers": frequent}, indent=1)
        report.count("distinct_answers", len(counts))
        report.count("frequent_answers", len(frequent))
        report.print()
        report.save(p["en"].with_suffix(".report.json"))
        if n == 0:
            raise UserError("no usable VQAv2 training questions")
        print_next("tasks/vqa/translate_train.py", f"{n} rows -> {p['en']}; {len(frequent)} frequent answers")
        return
    report = Report("vqav2 generate_train (final)")
    write_final(cfg, p, report)
    report.print()
    report.save(cfg.path("vqav2.work_dir") / "train.report.json")


if __name__ == "__main__":
    main()
