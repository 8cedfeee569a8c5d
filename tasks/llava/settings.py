"""LLaVA settings and the conversation reader shared by the LLaVA scripts."""
from __future__ import annotations

import re
from pathlib import Path

from common.config import REPO_ROOT
from eval_data.decontam import DEFAULTS as DECONTAM_DEFAULTS
from common.languages import SPLIT_DEFAULT
from common.report import Report
from common.shards import RUN_DEFAULTS
from translate import segment
from translate.engine import TRANSLATION_DEFAULTS

CONFIG = str(REPO_ROOT / "configs" / "llava.yaml")
DEFAULTS = {
    "llava": {
        "detail_file": "${paths.raw_root}/llava/detail_23k.json",
        "conversation_file": "${paths.raw_root}/llava/conversation_58k.json",
        "image_dir": "${paths.coco_images}",
        "image_patterns": ["COCO_train2014_%012d.jpg", "COCO_val2014_%012d.jpg"],
        "max_answer_sentences": 3,
        "seed": 0,
        "languages": [],
        "language_split": dict(SPLIT_DEFAULT),   # how rows split over the languages (common/languages.py)
        "translated_ratio": 1.0,
        "work_dir": "${paths.work_dir}/llava",
        "detail_out": "${paths.out_root}/train/llava_detail.jsonl",
        "conversation_out": "${paths.out_root}/train/llava_conversation.jsonl",
        "max_bad_rows": 1000,
        "templates": {"naming": [""]},
    },
    "translation": TRANSLATION_DEFAULTS,
    "run": RUN_DEFAULTS,
    "decontam": DECONTAM_DEFAULTS,
}
TEMPLATE_NEEDS = {"naming": {"", "lang"}}
TASKS = ("llava_detail", "llava_conversation")
_IMAGE_TAG = re.compile(r"[ \t]*\n?[ \t]*<image>[ \t]*\n?[ \t]*")


def work_paths(cfg) -> dict[str, Path]:
    w = cfg.path("llava.work_dir")
    return {"en": w / "turns_en.jsonl", "translated": w / "turns_translated.jsonl",
            "templates": w / "templates_translated.json"}


def strip_image_tag(text: str) -> str:
    """Remove every <image> marker (prefix "<image>\\n", suffix "\\n<image>" or inline)."""
    return _IMAGE_TAG.sub(" ", text).strip() if "<image>" in text else text.strip()


def sentence_count(text: str) -> int:
    return len(segment.split(text, 10**6)[0])


def turns(rec, where: str, report: Report) -> list[tuple[str, str]]:
    """The (question, answer) pairs of one record, in order; broken turns are counted."""
    conv = rec.get("conversations") if isinstance(rec, dict) else None
    if not isinstance(conv, list) or not conv:
        report.skip("record without conversations", where)
        return []
    pairs = []
    i = 0
    while i < len(conv):
        q = conv[i]
        a = conv[i + 1] if i + 1 < len(conv) else None
        if not (isinstance(q, dict) and q.get("from") == "human"):
            report.skip("turn out of order (expected a human turn)", f"{where} conversations[{i}]")
            i += 1
            continue
        if not (isinstance(a, dict) and a.get("from") == "gpt"):
            report.skip("human turn without an answer", f"{where} conversations[{i}]")
            i += 1
            continue
        qt = strip_image_tag(q.get("value")) if isinstance(q.get("value"), str) else ""
        at = strip_image_tag(a.get("value")) if isinstance(a.get("value"), str) else ""
        if not qt or not at:
            report.skip("empty question or answer", f"{where} conversations[{i}]")
        else:
            pairs.append((qt, at))
        i += 2
    return pairs
