"""The config schema of every evaluation-data converter (configs/eval_data.yaml).

All converters share one YAML file with one section per benchmark, so they
share one schema: the loader rejects unknown keys, and a converter only reads
its own section. Input paths may contain ``{lang}`` / ``{split}``, filled per
language or split by the converter.
"""
from __future__ import annotations

from common.config import REPO_ROOT, Config, free_mapping, parse_args

DEFAULT_CONFIG = str(REPO_ROOT / "configs" / "eval_data.yaml")

_IGLUE = "${paths.raw_root}/iglue/datasets"

# The 36 languages of Crossmodal-3600, with the release's own codes.
XM3600_LANGS = ["ar", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr", "he",
                "hi", "hr", "hu", "id", "it", "ja", "ko", "mi", "nl", "no", "pl", "pt", "quz",
                "ro", "ru", "sv", "sw", "te", "th", "tr", "uk", "vi", "zh"]

DEFAULTS: dict = {
    "io": {"max_bad_rows": 1000},
    # Reports (counts in/out/skipped) go here as <benchmark>.json.
    "report_dir": "${paths.work_dir}/reports/eval_data",
    # Names for codes missing from common/languages.tsv (XM3600 has he, hr, quz).
    "language_names": free_mapping(he="Hebrew", hr="Croatian", quz="Quechua"),
    "xgqa": {
        "out_dir": "${paths.out_root}/eval/xgqa",
        "langs": ["bn", "de", "en", "id", "ko", "pt", "ru", "zh"],
        "gqa_train": f"{_IGLUE}/gqa/annotations/train.json",
        "val_file": f"{_IGLUE}/xGQA/annotations/few_shot/{{lang}}/dev.json",
        "test_file": f"{_IGLUE}/xGQA/annotations/few_shot/{{lang}}/test.json",
        "image_ext": ".jpg",
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
        "image_ext": ".jpg",
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
        "true_answer": "yes",
        "false_answer": "no",
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
            "A short image caption:",
            "A short image description:",
            "A photo of",
            "An image that shows",
            "Write a short description for the image.",
            "Briefly describe the content of the image.",
            "Please provide a short depiction of the picture.",
            "Use a few words to illustrate what is happening in the picture.",
        ],
        "seed": 0,
    },
    "xm3600": {
        "out_dir": "${paths.out_root}/eval/xm3600",
        "langs": XM3600_LANGS,
        "captions": "${paths.raw_root}/xm3600/captions.jsonl",
        "image_ext": ".jpg",
    },
    "maxm": {
        "out_dir": "${paths.out_root}/eval/maxm",
        "langs": ["en", "fr", "hi", "iw", "ro", "th", "zh"],
        "file": "${paths.raw_root}/maxm/maxm_v1_{lang}.json",
        "image_root": "${paths.raw_root}/xm3600/images",
        "image_ext": ".jpg",
        "drop_missing_images": False,
        "context_template": "Question: {question} Short answer in {language}:",
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
    return parse_args(description, DEFAULTS, default_config=DEFAULT_CONFIG, argv=argv)
