"""A-OKVQA reasoning data (English only): for every rationale one aokvqa_cot
example (question in, rationale then answer out) and one aokvqa_explain example
(question and answer in, rationale out). The answer is choices[correct_choice_idx].
Images are named by the first configured COCO 2014 pattern whose file exists in
aokvqa.image_dir; a question whose image is missing is skipped and counted.

  python tasks/aokvqa/generate_train.py [--config configs/aokvqa.yaml] [--set key=value ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

from common import lifecycle
from eval_data import decontam
from common.config import REPO_ROOT, parse_args
from eval_data.decontam import DEFAULTS as DECONTAM_DEFAULTS
from common.errors import UserError, entry_point
from common.jsonl import BadRows, atomic_open, dumps, iter_json_array
from common.report import Report
from common.sampling import rng
from common.steptype import Step
from eval_data.keys import coco_id
from tasks.coco_images import CocoResolver
from tasks.instructions import check_templates, final_row
from common.templates import fill

CONFIG = str(REPO_ROOT / "configs" / "aokvqa.yaml")
DEFAULTS = {
    "aokvqa": {
        "files": ["${paths.raw_root}/aokvqa/aokvqa_v1p0_train.json"],
        "image_dir": "${paths.coco_images}",
        "image_patterns": ["COCO_train2014_%012d.jpg", "COCO_val2014_%012d.jpg"],
        "seed": 0,
        "work_dir": "${paths.work_dir}/aokvqa",
        "cot_file": "${paths.out_root}/train/aokvqa_cot.jsonl",
        "explain_file": "${paths.out_root}/train/aokvqa_explain.jsonl",
        "max_bad_rows": 1000,
        "templates": {"cot": [""], "cot_label": [""], "explain": [""]},
    },
    "decontam": DECONTAM_DEFAULTS,
}
TEMPLATE_NEEDS = {"cot": {"question"}, "cot_label": {"rationale", "answer"}, "explain": {"question", "answer"}}


def clean(text) -> str:
    return " ".join(text.split()) if isinstance(text, str) else ""


def parse_record(rec) -> tuple[dict | None, str | None]:
    """-> ({question, answer, rationales, image}, None) or (None, reason)."""
    if not isinstance(rec, dict):
        return None, "record is not an object"
    question = clean(rec.get("question"))
    if not question:
        return None, "empty or missing question"
    choices, idx = rec.get("choices"), rec.get("correct_choice_idx")
    if not isinstance(choices, list) or isinstance(idx, bool) or not isinstance(idx, int) \
            or not 0 <= idx < len(choices):
        return None, "missing choices or correct_choice_idx out of range"
    answer = clean(choices[idx])
    if not answer:
        return None, "empty correct choice"
    raw = rec.get("rationales")
    if not isinstance(raw, list):
        return None, "rationales is not a list"
    rationales = [clean(r) for r in raw if clean(r)]
    if not rationales:
        return None, "no non-empty rationale"
    image = coco_id(rec.get("image_id"))
    if image is None:
        return None, "missing or bad image_id"
    return {"question": question, "answer": answer, "rationales": rationales, "image": image,
            "empty_rationales": len(raw) - len(rationales)}, None


def examples(records, resolve, templates: dict, seed: int, report: Report):
    """-> (task, final row) for every rationale of every usable record."""
    r = rng(seed, "aokvqa", "instructions")
    for where, rec in records:
        item, reason = parse_record(rec)
        if item is None:
            report.skip(reason, where)
            continue
        name = resolve(item["image"])
        if name is None:
            report.skip("image not in the COCO image folder", f"{where} image_id={item['image']}")
            continue
        report.count("questions_used")
        if item["empty_rationales"]:
            report.skip("empty rationale (the question's other rationales kept)", where, n=item["empty_rationales"])
        q, a = item["question"], item["answer"]
        for rationale in item["rationales"]:
            cot = fill(r.choice(templates["cot"]), question=q)
            closed = rationale if rationale.endswith((".", "!", "?")) else rationale + "."
            label = fill(r.choice(templates["cot_label"]), rationale=closed, answer=a)
            yield "aokvqa_cot", final_row(cot, label, name, "aokvqa_cot", "en")
            explain = fill(r.choice(templates["explain"]), question=q, answer=a)
            yield "aokvqa_explain", final_row(explain, rationale, name, "aokvqa_explain", "en")


def read_records(paths, bad: BadRows, report: Report):
    seen: dict = {}
    for path in paths:
        for i, rec in iter_json_array(path, bad):
            report.count("records_in")
            qid = rec.get("question_id") if isinstance(rec, dict) else None
            where = f"{path}: [{i}] question_id={qid}"
            if isinstance(qid, (str, int)) and report.duplicate(seen, qid, rec, where):
                continue
            yield where, rec



STEP = Step("aokvqa.generate", "tasks.aokvqa.generate_train", "aokvqa", "rationale and explanation examples",
            reads=("aokvqa.files", decontam.coco_inputs), writes=("${aokvqa.cot_file}", "${aokvqa.explain_file}"),
            shaped_by=("aokvqa", "decontam"), tasks=("aokvqa_cot", "aokvqa_explain"), defaults=DEFAULTS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    c = cfg.at("aokvqa")
    check_templates("aokvqa.templates", c["templates"], TEMPLATE_NEEDS)
    paths = [Path(p) for p in c["files"]]
    for p in paths:
        if not p.is_file():
            raise UserError(f"aokvqa.files: input file not found: {p}")
    lifecycle.run_step(STEP, cfg, argv, lambda: generate(cfg, paths))


def generate(cfg, paths: list[Path]) -> lifecycle.Done:
    """Both files in one pass over the records (no evaluation image)."""
    c = cfg.at("aokvqa")
    resolve = CocoResolver(cfg.path("aokvqa.image_dir"), c["image_patterns"])
    report = Report("aokvqa generate_train")
    bad = BadRows(max_bad=c["max_bad_rows"], key="aokvqa.max_bad_rows")
    outs = {"aokvqa_cot": cfg.path("aokvqa.cot_file"), "aokvqa_explain": cfg.path("aokvqa.explain_file")}
    dec = decontam.Decontaminator(cfg, "coco")  # no evaluation image in training
    pairs = examples(read_records(paths, bad, report), resolve, c["templates"], c["seed"], report)
    with atomic_open(outs["aokvqa_cot"]) as fc, atomic_open(outs["aokvqa_explain"]) as fe:
        files = {"aokvqa_cot": fc, "aokvqa_explain": fe}
        for task, row in dec.filter(pairs, decontam.coco_keys):
            files[task].write(dumps(row) + "\n")
            report.count(f"{task}_out")
    report.count("malformed_records", bad.count)
    dec.record(report)
    report.print()

    def then() -> None:
        for task, path in outs.items():
            print(f"wrote {report.counts[f'{task}_out']} rows -> {path}", file=sys.stderr)
    return lifecycle.Done(report, then)


if __name__ == "__main__":
    main()
