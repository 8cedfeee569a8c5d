"""The one config schema of the four CapFilt steps, and what they share.

All four scripts read configs/capfilt.yaml (one file for the source, one section
per step), so an intermediate's path is written once and the next step finds it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from eval_data.decontam import DEFAULTS as DECONTAM_DEFAULTS
from common.errors import UserError
from common.languages import SPLIT_DEFAULT
from common.sampling import stable_hash
from common.shards import RUN_DEFAULTS
from translate.engine import TRANSLATION_DEFAULTS

CONFIG_FILE = "capfilt.yaml"

DEFAULTS: dict = {
    "filter": {
        "input": "${paths.raw_root}/blip/ccs_synthetic_filtered_large.json",
        "output": "${paths.work_dir}/capfilt/capfilt_filtered.jsonl",
        "index_dir": "${paths.work_dir}/capfilt/phrase_index",
        "spacy_model": "${paths.spacy_model}",
        "stopwords": "nltk",
        "n_process": 2,
        "batch_size": 256,
        "min_captions": 10,
        "max_captions": 30,
        "seed": 0,
        "max_bad_rows": 10000,
    },
    "download": {
        "input": "${filter.output}",
        "output": "${paths.work_dir}/capfilt/capfilt_downloaded.jsonl",
        "status": "${paths.work_dir}/capfilt/download_status.jsonl",
        "image_root": "${paths.image_root}",
        "fanout": 0,
        "threads": 32,
        "processes": 0,
        "image_threads": 2,
        "image_processes": 0,
        "connect_timeout": 5.0,
        "read_timeout": 10.0,
        "max_seconds": 30.0,
        "allow_private": False,
        "allow_hosts": [],
        "robots_txt": True,
        "per_host_connections": 8,
        "per_host_rate": 0.0,
        "retries": 2,
        "backoff": 0.5,
        "max_backoff": 10.0,
        "retry_timeouts": False,
        "max_redirects": 10,
        "max_bytes": 10000000,
        "max_pixels": 89478485,
        "honour_opt_out": True,
        "opt_out_tokens": ["noai", "noimageai"],
        "retry_failed": False,
        "user_agent": "mblip-data/0.1 (image-caption research; honours X-Robots-Tag noai)",
        "robots_agent": "mblip-data",
        "resize_mode": "pad",
        "image_size": 256,
        "upscale": True,
        "resample": "box",
        "jpeg_quality": 95,
        "background": [255, 255, 255],
        "max_bad_rows": 10000,
        "min_success_rate": 0.05,
        "progress": True,
    },
    "generate": {
        "step": "auto",
        "input": "${download.output}",
        "english": "${paths.work_dir}/capfilt/capfilt_en.jsonl",
        "translated": "${translate.output}",
        "templates": "${translate.templates_output}",
        "output": "${paths.out_root}/train/capfilt.jsonl",
        "image_root": "${paths.image_root}",
        "check_images": True,
        "seed": 0,
        "translated_template_ratio": 0.5,
        "caption_templates": ["Describe the image in a few words."],
        "language_templates": ["Describe the image in a few words. Answer in {}."],
        "max_bad_rows": 10000,
    },
    "translate": {
        "input": "${generate.english}",
        "output": "${paths.work_dir}/capfilt/capfilt_translated.jsonl",
        "templates_output": "${paths.work_dir}/capfilt/capfilt_templates.json",
        "seed": 0,
        "languages": [],
        "language_split": dict(SPLIT_DEFAULT),   # how rows split over the languages (common/languages.py)
        "chunk_rows": 20000,
        "max_bad_rows": 10000,
    },
    "translation": TRANSLATION_DEFAULTS,
    "run": RUN_DEFAULTS,
    "decontam": DECONTAM_DEFAULTS,
}

_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Captions come from the web: collapse whitespace runs and newlines."""
    return _SPACES.sub(" ", text).strip()


def row_id(url: str, caption: str) -> str:
    """A stable id from the row's content (not its position), so a re-crawled or
    re-ordered input keeps the ids, and so the image file names, it had."""
    return f"{stable_hash('capfilt', url, caption):016x}"


def check_web_row(row: dict) -> str | None:
    """Why a {url, caption} row cannot be used, or None."""
    url, caption = row.get("url"), row.get("caption")
    if url is None:
        return "missing url"
    if not isinstance(url, str) or not url.strip():
        return "empty url"
    if not url.strip().lower().startswith(("http://", "https://")):
        return f"not an http(s) url: {url[:80]!r}"
    if caption is None:
        return "missing caption"
    if not isinstance(caption, str):
        return f"caption is {type(caption).__name__}, not a string"
    if not clean_text(caption):
        return "empty caption"
    return None


def skip_key(reason: str) -> str:
    """Group free-text reasons in the report (the full text goes to the examples)."""
    return reason.split(":")[0]


def check_json_array_file(path: Path) -> None:
    """Before hours of work on a multi-GB array: does it end where it should?
    A download that was cut off ends mid-element, without the closing ``]``
    (the streaming reader would only notice at the very end)."""
    with open(path, "rb") as f:
        head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        f.seek(max(0, os.path.getsize(path) - 64))
        tail = f.read().rstrip(b" \t\r\n")
    if not head.startswith(b"["):
        raise UserError(f"{path}: expected a JSON array of {{url, caption}} (the file does not start with '[')")
    if not tail.endswith(b"]"):
        raise UserError(f"{path}: the JSON array is not closed (no ']' at the end): a cut-off download? "
                        f"It ends with {tail[-40:].decode('utf-8', 'replace')!r}")
