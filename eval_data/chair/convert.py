"""CHAIR: the MSCOCO Karpathy val/test images with their ground-truth objects -> eval/chair/.

Images come from mscoco/dataset_coco.json (split val / test), ground-truth
object lists from POPE's coco_ground_truth_segmentation.json (JSON lines
``{"image", "objects"}``). Rows: context = ``chair.context`` (captioning rows
carry the language name), image_id = the COCO file name, text_label = the
object list. An image without ground truth cannot be scored, so it is skipped
and reported.

  python eval_data/chair/convert.py --config configs/eval_data.yaml [--set key=value ...]
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from common.errors import entry_point
from common.jsonl import BadRows
from eval_data import settings
from eval_data.rows import eval_row
from tasks.mscoco import karpathy as karpathy_file
from eval_data.run import eval_step, Accounts, jsonl_records, need, path_for, run_main, require_inputs, source_name


def ground_truth(records, acc: Accounts, source: str) -> dict[str, list[str]]:
    """COCO file name -> object list; a repeated image keeps its first list."""
    objects: dict[str, list[str]] = {}
    for r in records:
        acc.seen(source)
        reason = need(r, "image") or need(r, "objects", types=(list,))
        if not reason and not all(isinstance(o, str) for o in r["objects"]):
            reason = "non-string object name"
        if not reason and r["image"] in objects:
            reason = "duplicate image (first list kept)"
        if reason:
            acc.skip(source, reason, f"image {r.get('image')}")
            continue
        acc.used(source)
        objects[r["image"]] = r["objects"]
    return objects


def split_rows(images: Iterable, splits: list[str], objects: dict, context: str, acc: Accounts,
               name: str) -> dict[str, list[dict]]:
    """The rows of every split in ``splits``, in one pass over the image records
    (streamed: the Karpathy file is never held whole)."""
    rows: dict[str, list[dict]] = {split: [] for split in splits}
    for i, img in images:
        if not isinstance(img, dict):
            continue
        split = img["split"]
        source = f"{name} [{split}]"
        acc.seen(source)
        where = f"images[{i}] {img.get('filename')}"
        reason = need(img, "filename")
        if not reason and img["filename"] not in objects:
            reason = "no ground-truth objects"
        if reason:
            acc.skip(source, reason, where)
            continue
        acc.used(source)
        rows[split].append(eval_row(context, img["filename"], objects[img["filename"]]))
    return rows


def convert(cfg) -> dict:
    c = cfg.at("chair")
    karpathy, gt = path_for(c, "karpathy", "chair"), path_for(c, "ground_truth", "chair")
    require_inputs([karpathy, gt])

    acc = Accounts("chair")
    gt_source = source_name(gt[1], cfg)
    objects = ground_truth(jsonl_records(gt[1], acc, gt_source, cfg.at("io.max_bad_rows")), acc, gt_source)
    name = source_name(karpathy[1], cfg)
    bad = BadRows(max_bad=cfg.at("io.max_bad_rows"), key="io.max_bad_rows")
    images = karpathy_file.images(karpathy[1], bad, c["splits"])
    by_split = split_rows(images, c["splits"], objects, c["context"], acc, name)
    if bad.count:
        acc.seen(name, bad.count)
        acc.skip(name, "invalid UTF-8", "; ".join(bad.examples[:3]), n=bad.count)
    used = set()
    for split, rows in by_split.items():
        used.update(r["image_id"] for r in rows)
        acc.wrote(Path(c["out_dir"]) / f"chair_{split}.jsonl", rows)
    acc.report.count("ground-truth images outside the chosen splits", len(set(objects) - used))
    return acc.close()



STEP = eval_step("chair", "CHAIR", "eval_data.chair.convert")


@entry_point
def main(argv: list[str] | None = None) -> dict:
    return run_main(STEP, convert, settings.load(__doc__, argv))


if __name__ == "__main__":
    main()
