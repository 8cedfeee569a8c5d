"""The config schema of every evaluation-data converter (configs/eval_data.yaml).

All converters share one YAML file with one section per benchmark, so they
share one schema: the loader rejects unknown keys, and a converter only reads
its own section. Input paths may contain ``{lang}`` / ``{split}``, filled per
language or split by the converter.
"""
from __future__ import annotations

from common.config import REPO_ROOT, Config, free_mapping, parse_args
from common.errors import UserError
from eval_data.captions import DEFAULT_SEGMENTATION, SEGMENTATIONS
from eval_data.rows import check_language_names

DEFAULT_CONFIG = str(REPO_ROOT / "configs" / "eval_data.yaml")

_IGLUE = "${paths.raw_root}/iglue/datasets"

# The 36 languages of Crossmodal-3600, with the release's own codes.
XM3600_LANGS = ["ar", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr", "he",
                "hi", "hr", "hu", "id", "it", "ja", "ko", "mi", "nl", "no", "pl", "pt", "quz",
                "ro", "ru", "sv", "sw", "te", "th", "tr", "uk", "vi", "zh"]

# mBLIP's MaXM prompt (the published protocol; mBLIP's MaXM config reads the context as it is).
MAXM_CONTEXT = "Question: {question} Short answer in {language}:"

DEFAULTS: dict = {
    "io": {"max_bad_rows": 1000},
    # How zh/ja/th caption references are split into tokens: mblip | words (eval_data/captions.py).
    "captions": {"segmentation": DEFAULT_SEGMENTATION},
    # Names for codes missing from common/languages.tsv (XM3600 has hr, quz; he is the table's iw).
    # A code the table has must be named as the table names it (the training mix's name).
    "language_names": free_mapping(he="Hebrew", hr="Croatian", quz="Quechua"),
    "xgqa": {
        "out_dir": "${paths.out_root}/eval/xgqa",
        "langs": ["bn", "de", "en", "id", "ko", "pt", "ru", "zh"],
        "gqa_train": f"{_IGLUE}/gqa/annotations/train.json",
        "val_file": f"{_IGLUE}/xGQA/annotations/few_shot/{{lang}}/dev.json",
        "test_file": f"{_IGLUE}/xGQA/annotations/few_shot/{{lang}}/test.json",
        "image_ext": "",
        "context_template": "{question}",
    },
    "xvnli": {
        "out_dir": "${paths.out_root}/eval/xvnli",
        "langs": ["ar", "en", "es", "fr", "ru"],
        "train_file": f"{_IGLUE}/XVNLI/annotations/en/train.jsonl",
        "val_en_file": f"{_IGLUE}/XVNLI/annotations/en/dev.jsonl",
        "val_file": f"{_IGLUE}/XVNLI/annotations/en/dev-{{lang}}_gmt.jsonl",
        "test_file": f"{_IGLUE}/XVNLI/annotations/{{lang}}/test.jsonl",
        "label_map": free_mapping(entailment="yes", contradiction="no", neutral="maybe"),
        "image_ext": "",
        "context_template": "{hypothesis}",
    },
    "marvl": {
        "out_dir": "${paths.out_root}/eval/marvl",
        "langs": ["id", "sw", "ta", "tr", "zh"],
        "test_file": f"{_IGLUE}/marvl/zero_shot/annotations/marvl-{{lang}}.jsonl",
        "image_root": f"{_IGLUE}/marvl/images",
        "drop_missing_images": False,
        "nlvr2_langs": ["id", "sw", "ta", "tr", "zh"],
        "nlvr2_train": f"{_IGLUE}/nlvr2/annotations/train.jsonl",
        "nlvr2_dev": f"{_IGLUE}/nlvr2/annotations/dev.jsonl",
        "nlvr2_test": f"{_IGLUE}/nlvr2/annotations/test.jsonl",
        "nlvr2_dev_translated": f"{_IGLUE}/nlvr2/annotations/dev-{{lang}}_gmt.jsonl",
        "true_answer": "True",
        "false_answer": "False",
        "context_template": "{statement}",
    },
    "xflickrco": {
        "out_dir": "${paths.out_root}/eval/xflickrco",
        "langs": ["de", "en", "es", "id", "ja", "ru", "tr", "zh"],
        "test_file": f"{_IGLUE}/xFlickrCO/annotations/{{lang}}/test.jsonl",
        "flickr_train": f"{_IGLUE}/flickr30k/annotations/train_ann.jsonl",
        "flickr_val": f"{_IGLUE}/flickr30k/annotations/valid_ann.jsonl",
        "flickr_test": f"{_IGLUE}/flickr30k/annotations/test_ann.jsonl",
        "train_templates": [
            "What is in this picture? Say it in a few words.",
            "Tell me what this picture is about, in a few words.",
            "Give a one-sentence caption for this photo.",
            "Describe the image in a few words.",
            "What does the image show? Answer in one short sentence.",
            "Put what this photo shows into a single short sentence.",
            "Write a short caption for this image.",
            "Describe the picture in one sentence.",
        ],
        "seed": 0,
    },
    "xm3600": {
        "out_dir": "${paths.out_root}/eval/xm3600",
        "langs": XM3600_LANGS,
        "captions": "${paths.raw_root}/xm3600/captions.jsonl",
        "image_ext": "",
    },
    "maxm": {
        "out_dir": "${paths.out_root}/eval/maxm",
        "langs": ["en", "fr", "hi", "iw", "ro", "th", "zh"],
        "file": "${paths.raw_root}/maxm/maxm_v1_{lang}.json",
        "image_root": "${paths.raw_root}/xm3600/images",
        "image_ext": ".jpg",
        "drop_missing_images": False,
        "context_template": MAXM_CONTEXT,
    },
    "pope": {
        "out_dir": "${paths.out_root}/eval/pope",
        "splits": ["adversarial", "popular", "random"],
        "file": "${paths.raw_root}/pope/output/coco/coco_pope_{split}.json",
        "context_template": "{question}",
    },
    "chair": {
        "out_dir": "${paths.out_root}/eval/chair",
        "splits": ["val", "test"],
        "karpathy": "${paths.raw_root}/mscoco/dataset_coco.json",
        "ground_truth": "${paths.raw_root}/pope/segmentation/coco_ground_truth_segmentation.json",
        "context": "English",
    },
}


def load(description: str, argv: list[str] | None = None) -> Config:
    cfg = parse_args(description, DEFAULTS, default_config=DEFAULT_CONFIG, argv=argv)
    check_language_names(cfg.at("language_names"))
    for bench, section in cfg.items():
        if isinstance(section, dict) and "out_dir" in section and not str(section["out_dir"] or "").strip():
            raise UserError(f"{bench}.out_dir is not set: give it a folder (an empty one would write into the "
                            "current folder)")
    if cfg.at("captions.segmentation") not in SEGMENTATIONS:
        raise UserError(f"captions.segmentation: {cfg.at('captions.segmentation')!r} is not one of "
                        f"{', '.join(SEGMENTATIONS)}")
    return cfg
