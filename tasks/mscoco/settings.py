"""MSCOCO settings and the Karpathy-split images shared by the train and eval scripts."""
from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Iterator

from common.config import REPO_ROOT, free_mapping
from common.jsonl import BadRows
from common.languages import SPLIT_DEFAULT
from common.report import Report
from common.shards import RUN_DEFAULTS
from eval_data.decontam import DEFAULTS as DECONTAM_DEFAULTS
from tasks.coco_images import list_images, pattern_name
from tasks.mscoco import karpathy
from translate.engine import TRANSLATION_DEFAULTS

CONFIG = str(REPO_ROOT / "configs" / "mscoco.yaml")
DEFAULTS = {
    "mscoco": {
        "karpathy": "${paths.raw_root}/mscoco/dataset_coco.json",
        "image_dir": "${paths.coco_images}",
        "image_patterns": free_mapping(train2014="COCO_train2014_%012d.jpg", val2014="COCO_val2014_%012d.jpg"),
        "check_images": True,
        "train_splits": ["train", "restval"],
        "eval_splits": ["val", "test"],
        "seed": 0,
        "languages": [],
        "language_split": dict(SPLIT_DEFAULT),   # how rows split over the languages (common/languages.py)
        "translated_ratio": 0.5,
        "work_dir": "${paths.work_dir}/mscoco",
        "train_file": "${paths.out_root}/train/mscoco.jsonl",
        "eval_dir": "${paths.out_root}/eval/mscoco",
        "max_bad_rows": 1000,
        "templates": {"english": [""], "naming": [""]},
    },
    "translation": TRANSLATION_DEFAULTS,
    "run": RUN_DEFAULTS,
    "decontam": DECONTAM_DEFAULTS,
}
TEMPLATE_NEEDS = {"english": set(), "naming": {"lang"}}


def nfc(text: str) -> str:
    """NFC with collapsed whitespace: the normalisation every caption gets."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def intermediate_paths(cfg) -> tuple[Path, Path, Path]:
    work = cfg.path("mscoco.work_dir")
    return work / "captions_en.jsonl", work / "captions_translated.jsonl", work / "templates_translated.json"


def read_images(cfg, splits: list[str], report: Report) -> Iterator[tuple[str, str, list[tuple[int, str]]]]:
    """(split, image file name, [(sentid, caption)]) of every usable image of the given splits.

    Records that are not usable (no cocoid, unknown filepath, no sentences, a
    missing image file) are skipped and counted, as are empty captions.
    """
    c = cfg.at("mscoco")
    path = cfg.require_file("mscoco.karpathy")
    existing = list_images(cfg.path("mscoco.image_dir")) if c["check_images"] else None
    patterns = c["image_patterns"]
    # A record that is not JSON or holds invalid UTF-8 is skipped and counted.
    bad = BadRows(max_bad=c["max_bad_rows"], key="mscoco.max_bad_rows")
    seen: dict = {}
    for i, img in karpathy.images(path, bad, splits):
        where = f"{path}: images[{i}]"
        if not isinstance(img, dict):
            report.skip("image record is not an object", where)
            continue
        split = img["split"]
        report.count(f"images_{split}")
        cid = img.get("cocoid")
        where = f"{where} cocoid={cid}"
        if isinstance(cid, bool) or not isinstance(cid, int):
            report.skip("image record without an integer cocoid", where)
            continue
        if report.duplicate(seen, cid, img, where):
            continue
        if img.get("filepath") in patterns:
            name = pattern_name(patterns[img["filepath"]], cid)
        elif isinstance(img.get("filename"), str) and img["filename"]:
            name = img["filename"]
        else:
            report.skip("image record with unknown filepath and no filename", where)
            continue
        sents = img.get("sentences")
        if not isinstance(sents, list) or not sents:
            report.skip("image record without sentences", where)
            continue
        if existing is not None and name not in existing:
            report.skip("image file missing from image_dir", f"{where} {name}")
            continue
        caps = []
        for k, s in enumerate(sents):
            raw = s.get("raw") if isinstance(s, dict) else None
            text = nfc(raw) if isinstance(raw, str) else ""
            if not text:
                report.skip("empty or missing caption", f"{where} sentences[{k}]")
                continue
            sid = s.get("sentid")
            caps.append((sid if isinstance(sid, int) and not isinstance(sid, bool) else f"{cid}-{k}", text))
        if not caps:
            report.skip("image without any non-empty caption", where)
            continue
        yield split, name, caps
    if bad.count:
        report.count("image_records_unreadable", bad.count)
