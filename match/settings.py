"""The config schema shared by the three match scripts (they read one file,
configs/match.yaml, so each accepts every section of it)."""
from __future__ import annotations

from pathlib import Path

from common.config import REPO_ROOT, Config, parse_args
from eval_data.decontam import DEFAULTS as DECONTAM_DEFAULTS
from common.errors import UserError
from common.languages import SPLIT_DEFAULT, check_split, language_list
from common.shards import RUN_DEFAULTS
from translate.engine import TRANSLATION_DEFAULTS

CONFIG_FILE = str(REPO_ROOT / "configs" / "match.yaml")

DEFAULTS: dict = {
    "match": {
        "input": "${paths.work_dir}/capfilt/capfilt_en.jsonl",
        "start": 0,                   # the slice of input rows: skip this many good rows ...
        "max_rows": 0,                # ... then take at most this many (0: all)
        "output": "${paths.work_dir}/match/capfilt_match_en.jsonl",
        "skipped_images": "${paths.work_dir}/match/capfilt_match_en.skipped_images.jsonl",
        "seed": 0,
        "max_bad_rows": 1000,
    },
    "embed": {
        "model": "${paths.clip_model}",
        "cache_dir": "${paths.work_dir}/match/embeddings",
        "device": "auto",             # auto | cpu | cuda | cuda:N
        "dtype": "auto",              # auto: float16 on GPU, float32 on CPU
        "text_batch": 512,
        "image_batch": 256,
        "image_workers": 8,           # threads decoding and preprocessing images
        "max_text_tokens": 77,
        "only": False,                # embed this run's shard into the cache and stop (sharded embedding)
        "progress": True,
    },
    "search": {
        "top_k": 400,                 # nearest captions kept per image (>= the largest rank + a margin)
        "query_batch": 4096,
        "device": "auto",             # auto (faiss GPU index when faiss-gpu sees a GPU) | cpu | gpu
    },
    "negatives": {
        "ranks": [3, 10, 30, 100, 300],
        "random_fraction": 0.2,       # share of negatives that are a random caption instead
    },
    "translate": {
        "input": "${match.output}",
        "output": "${paths.work_dir}/match/capfilt_match_translated.jsonl",
        "seed": 0,
        "languages": [],              # empty: every language of the table, by mC4 share
        "language_split": dict(SPLIT_DEFAULT),   # how rows split over the languages (common/languages.py)
        "templates_output": "${paths.work_dir}/match/capfilt_match_templates_translated.json",
        "max_bad_rows": 1000,
    },
    "generate": {
        "input": "${translate.output}",
        "output": "${paths.out_root}/train/capfilt_match.jsonl",
        "translated_templates": "${translate.templates_output}",
        "templates_out": "${paths.work_dir}/match/capfilt_match_templates.json",
        "seed": 0,
        "max_bad_rows": 1000,
        "templates": [],              # [{question: "... {caption} ...", answer_yes: str, answer_no: str}]
    },
    "translation": TRANSLATION_DEFAULTS,
    "run": RUN_DEFAULTS,
    "decontam": DECONTAM_DEFAULTS,
}


def load_config(doc: str, argv: list[str] | None) -> Config:
    cfg = parse_args(doc, DEFAULTS, CONFIG_FILE, argv)
    check(cfg)
    return cfg


def check(cfg: Config) -> None:
    """Value checks the type schema cannot express; all before any work."""
    ranks = cfg.at("negatives.ranks")
    if not ranks or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in ranks):
        raise UserError(f"negatives.ranks must be a non-empty list of integers >= 1, got {ranks!r}")
    frac = cfg.at("negatives.random_fraction")
    if not 0.0 <= frac <= 1.0:
        raise UserError(f"negatives.random_fraction must be within [0, 1], got {frac}")
    if cfg.at("search.top_k") < max(ranks):
        raise UserError(f"search.top_k={cfg.at('search.top_k')} must be at least the largest of negatives.ranks "
                        f"({max(ranks)}), plus a margin for the image's own and duplicate captions")
    check_split(cfg.at("translate.language_split"), "translate.language_split",
                language_list(cfg.at("translate.languages"), "translate.languages"))
    if cfg.at("search.device") not in ("auto", "cpu", "gpu"):
        raise UserError(f"search.device must be auto, cpu or gpu, got {cfg.at('search.device')!r}")
    model = str(cfg.at("embed.model"))
    if model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
        raise UserError(f"embed.model: model folder not found: {model}")
    for key in ("match.start", "match.max_rows", "embed.text_batch", "embed.image_batch"):
        if cfg.at(key) < 0 or (key.startswith("embed") and cfg.at(key) == 0):
            raise UserError(f"{key} must be positive, got {cfg.at(key)}")
