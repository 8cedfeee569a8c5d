"""VQAv2 val -> ${vqav2.eval_file}: one row per question (context = question,
label "", image_id = COCO file name, text_label = the ten answers).

  python tasks/vqa/generate_eval.py [--config configs/vqav2.yaml] [--set key=value ...]
"""
from __future__ import annotations

from common import lifecycle
from common.config import parse_args
from common.errors import entry_point
from common.jsonl import write_jsonl
from common.report import Report
from common.steptype import Step
from tasks.vqa.settings import CONFIG, DEFAULTS, joined


def eval_rows(cfg, report: Report):
    for q in joined(cfg, "val", report, need="answers"):
        if len(q["answers"]) != 10:
            report.count("questions_without_ten_answers")
        yield {"context": q["question"], "label": "", "image_id": q["image_id"], "text_label": q["answers"]}



STEP = Step("vqav2.eval", "tasks.vqa.generate_eval", "vqav2", "val evaluation file",
            reads=("${vqav2.val_questions}", "${vqav2.val_annotations}"), writes=("${vqav2.eval_file}",),
            shaped_by=("vqav2.val_image_pattern",), defaults=DEFAULTS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    cfg.require_file("vqav2.val_questions")
    cfg.require_file("vqav2.val_annotations")
    lifecycle.run_step(STEP, cfg, argv, lambda: generate(cfg))


def generate(cfg) -> Report:
    report = Report("vqav2 generate_eval")
    report.count("rows_out", write_jsonl(cfg.path("vqav2.eval_file"), eval_rows(cfg, report)))
    report.print()
    return report


if __name__ == "__main__":
    main()
