"""MSCOCO evaluation files from the Karpathy val and test splits (never restval).

Writes ${mscoco.eval_dir}/mscoco_<split>.jsonl (one row per image: context =
"English", label "", image_id = COCO file name, text_label = "en") and
mscoco_coco_<split>.json (COCO caption format, captions NFC).

  python tasks/mscoco/generate_eval.py [--config configs/mscoco.yaml] [--set key=value ...]
"""
from __future__ import annotations

import sys

from common import lifecycle
from common.config import parse_args
from common.errors import UserError, entry_point
from common.jsonl import write_json, write_jsonl
from common.languages import get_language
from common.report import Report
from common.steptype import Step
from tasks.coco_captions import coco_caption_file
from tasks.mscoco.settings import CONFIG, DEFAULTS, read_images


def eval_rows(images: list[tuple[str, list[str]]], lang: str = "en") -> list[dict]:
    name = get_language(lang).name
    return [{"context": name, "label": "", "image_id": image_id, "text_label": lang} for image_id, _ in images]



STEP = Step("mscoco.eval", "tasks.mscoco.generate_eval", "mscoco", "Karpathy val/test evaluation files",
            reads=("${mscoco.karpathy}",), writes=("${mscoco.eval_dir}",),
            shaped_by=("mscoco.eval_splits", "mscoco.image_patterns"), defaults=DEFAULTS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    splits = cfg.at("mscoco.eval_splits")
    leak = set(splits) & {"restval", "train"}
    if leak:
        raise UserError(f"mscoco.eval_splits: {sorted(leak)} are training splits and never evaluation data")
    cfg.require_file("mscoco.karpathy")
    lifecycle.run_step(STEP, cfg, argv, lambda: generate(cfg, splits))


def generate(cfg, splits: list[str]) -> Report:
    """One file and one COCO reference file per Karpathy split."""
    out_dir = cfg.path("mscoco.eval_dir")
    report = Report("mscoco generate_eval")
    by_split: dict[str, list] = {s: [] for s in splits}
    seen: set[str] = set()
    for split, name, caps in read_images(cfg, splits, report):
        if name in seen:
            report.skip("image listed twice (first kept)", name)
            continue
        seen.add(name)
        by_split[split].append((name, [text for _, text in caps]))
    for split, items in by_split.items():
        n = write_jsonl(out_dir / f"mscoco_{split}.jsonl", eval_rows(items))
        write_json(out_dir / f"mscoco_coco_{split}.json", coco_caption_file(items))
        report.count(f"{split}_images_out", n)
        report.count(f"{split}_captions_out", sum(len(c) for _, c in items))
        if n == 0:
            print(f"warning: no {split} images in {cfg.path('mscoco.karpathy')}", file=sys.stderr)
    report.print()
    return report


if __name__ == "__main__":
    main()
