"""ImageNet settings, the config checks, and the translated instructions / answer words.

The translate step (tasks/imagenet/translate_train.py) translates the English
classify and decide templates and the answer words yes/no into every language
(the store of translate/source.py); generate_train.py reads them back, refusing
a stale store. Per language the answer words come from
``imagenet.yes_no`` (hand-written, wins), else from their translation; where
the translation of "yes" or "no" was rejected, imagenet_decide is answered in
English (lang "en") and that is counted.
"""
from __future__ import annotations

from pathlib import Path

from common.config import REPO_ROOT, free_mapping
from common.errors import UserError
from common.languages import check_language_codes
from common.report import Report
from tasks.instructions import check_templates
from translate.engine import TRANSLATION_DEFAULTS

CONFIG = str(REPO_ROOT / "configs" / "imagenet.yaml")
DEFAULTS = {
    "imagenet": {
        "class_index": "${paths.imagenet_root}/imagenet_class_index.json",
        "classnames_en": "${paths.imagenet_root}/clip_imagenet_classnames_en.json",
        "babel": "${paths.raw_root}/babel-imagenet/babel_imagenet-298.json",
        "train_dir": "${paths.imagenet_root}/train",
        "image_extensions": [".JPEG", ".jpeg", ".jpg", ".png"],
        "babel_keys": free_mapping(iw="HE", fil="TL"),
        "languages": [],
        "rounds": 8,
        "seed": 0,
        "negatives": "random",
        "positive_ratio": 0.5,
        "translated_ratio": 1.0,
        "yes_no": free_mapping(en=["yes", "no"]),
        "work_dir": "${paths.work_dir}/imagenet",
        "classify_file": "${paths.out_root}/train/imagenet_classify.jsonl",
        "decide_file": "${paths.out_root}/train/imagenet_decide.jsonl",
        "templates": {"classify_en": [""], "classify": [""], "decide": [""], "decide_naming": [""]},
    },
    "translation": TRANSLATION_DEFAULTS,
}
TEMPLATE_NEEDS = {"classify_en": set(), "classify": {"lang"}, "decide": {""}, "decide_naming": {"", "lang"}}
# A translated yes/no longer than this is a sentence, not an answer word.
MAX_ANSWER_WORDS = 3
MAX_ANSWER_CHARS = 24


def templates_path(cfg) -> Path:
    return cfg.path("imagenet.work_dir") / "templates_translated.json"


def check_settings(c: dict) -> None:
    """Everything in the imagenet section that needs no input file."""
    check_templates("imagenet.templates", c["templates"], TEMPLATE_NEEDS)
    if c["negatives"] not in ("random", "next"):
        raise UserError(f"imagenet.negatives: {c['negatives']!r} is not one of random, next")
    if c["rounds"] < 1:
        raise UserError("imagenet.rounds must be at least 1")
    for key in ("positive_ratio", "translated_ratio"):
        if not 0.0 <= c[key] <= 1.0:
            raise UserError(f"imagenet.{key} must be between 0 and 1")
    check_language_codes(list(c["yes_no"]), "imagenet.yes_no")
    for code, words in c["yes_no"].items():
        if not (isinstance(words, list) and len(words) == 2 and all(isinstance(w, str) and w.strip() for w in words)):
            raise UserError(f"imagenet.yes_no.{code}: need [yes word, no word]")
    if "en" not in c["yes_no"]:
        raise UserError("imagenet.yes_no: needs an en entry (the words that are translated, and the fallback)")


def translatable(c: dict) -> dict[str, list[str]]:
    """The English texts the translate step puts through the engine, by set name.
    "yes" and "no" are one-item sets so a rejected word never shifts the other."""
    t = c["templates"]
    yes, no = c["yes_no"]["en"]
    return {"classify_en": list(t["classify_en"]), "decide": list(t["decide"]), "yes": [yes], "no": [no]}


def clean_word(text) -> str:
    """A translated answer word without surrounding space, quotes and final punctuation."""
    if not isinstance(text, str):
        return ""
    word = " ".join(text.split()).strip("\"'«»„“”‘’「」")
    word = word.rstrip(".!?。！？।՝").strip()
    if len(word.split()) > MAX_ANSWER_WORDS or len(word) > MAX_ANSWER_CHARS:
        return ""
    return word


def answer_words(c: dict, translated: dict, languages: list[str], report: Report) -> dict[str, tuple[str, str]]:
    """{lang: (yes, no)} for every language that can be answered in its own words."""
    out: dict[str, tuple[str, str]] = {}
    source: dict[str, list[str]] = {"config": [], "translated": [], "english_fallback": []}
    for lang in languages:
        if lang in c["yes_no"]:
            yes, no = (" ".join(w.split()) for w in c["yes_no"][lang])
            out[lang] = (yes, no)
            source["config"].append(lang)
            continue
        yes = clean_word((translated.get("yes", {}).get(lang) or [None])[0])
        no = clean_word((translated.get("no", {}).get(lang) or [None])[0])
        if yes and no and yes.casefold() != no.casefold():
            out[lang] = (yes, no)
            source["translated"].append(lang)
        else:
            source["english_fallback"].append(lang)
            report.skip("yes/no translation rejected: imagenet_decide answered in English", lang)
    report.extra["yes_no_source"] = {k: sorted(v) for k, v in source.items()}
    return out
