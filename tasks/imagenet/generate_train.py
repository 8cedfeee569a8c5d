"""ImageNet classification data in every language Babel-ImageNet names classes in.

For imagenet.rounds rounds, every language gets one example per class it
names, each on a fresh image of that class (an image is reused only once its
class is exhausted; counted). Two rows per example: imagenet_classify (what is
shown? -> the class name in that language) and imagenet_decide (is there a
<class name>? -> yes/no; negatives name a random other class or the next class
of that language's list). image_id is the path under paths.imagenet_root.

  python tasks/imagenet/generate_train.py [--config configs/imagenet.yaml] [--set key=value ...]
"""
from __future__ import annotations

import collections
import os
import sys

from common.config import REPO_ROOT, free_mapping, parse_args
from common.errors import UserError, entry_point
from common.jsonl import atomic_open, dumps, load_json
from common.languages import get_language, load_languages
from common.report import Report
from common.sampling import rng
from tasks.imagenet.classes import ImagePool, class_names, read_english, read_synsets
from tasks.instructions import check_templates, fill, final_row

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
        "yes_no": free_mapping(en=["yes", "no"]),
        "work_dir": "${paths.work_dir}/imagenet",
        "classify_file": "${paths.out_root}/train/imagenet_classify.jsonl",
        "decide_file": "${paths.out_root}/train/imagenet_decide.jsonl",
        "templates": {"classify_en": [""], "classify": [""], "decide": [""]},
    },
}
TEMPLATE_NEEDS = {"classify_en": set(), "classify": {"lang"}, "decide": {""}}


def examples(names: dict[str, dict[int, str]], pool: ImagePool, c: dict, report: Report):
    """-> (task, row) in a fixed order: round, language (table order), class index."""
    t = c["templates"]
    r = rng(c["seed"], "imagenet", "examples")
    yes_no = c["yes_no"]
    for rnd in range(c["rounds"]):
        for lang, by_class in names.items():
            classes = [i for i in sorted(by_class) if pool.has(i)]
            if rnd == 0:
                report.count("languages_used")
                report.count("classes_without_images_skipped", len(by_class) - len(classes))
            if len(classes) < 2:
                report.skip("language with fewer than two classes with images", lang) if rnd == 0 else None
                continue
            answer_words = yes_no.get(lang)
            answer_lang = lang if answer_words else "en"
            yes, no = answer_words or yes_no["en"]
            for pos, idx in enumerate(classes):
                image = pool.take(idx)
                name = by_class[idx]
                if lang == "en":
                    ctx = r.choice(t["classify_en"])
                else:
                    ctx = fill(r.choice(t["classify"]), lang=get_language(lang).name)
                yield "imagenet_classify", final_row(ctx, name, image, "imagenet_classify", lang)
                positive = r.random() < c["positive_ratio"]
                if positive:
                    shown = name
                elif c["negatives"] == "next":
                    shown = by_class[classes[(pos + 1) % len(classes)]]
                else:
                    other = r.randrange(len(classes) - 1)
                    shown = by_class[classes[other if other < pos else other + 1]]
                report.count("decide_positive" if positive else "decide_negative")
                yield "imagenet_decide", final_row(fill(r.choice(t["decide"]), shown), yes if positive else no,
                                                   image, "imagenet_decide", answer_lang)


def check_config(cfg) -> dict:
    c = cfg.at("imagenet")
    check_templates("imagenet.templates", c["templates"], TEMPLATE_NEEDS)
    if c["negatives"] not in ("random", "next"):
        raise UserError(f"imagenet.negatives: {c['negatives']!r} is not one of random, next")
    if c["rounds"] < 1:
        raise UserError("imagenet.rounds must be at least 1")
    table = load_languages()
    for code, words in c["yes_no"].items():
        if code not in table or not (isinstance(words, list) and len(words) == 2
                                     and all(isinstance(w, str) and w for w in words)):
            raise UserError(f"imagenet.yes_no.{code}: need a language code with [yes word, no word]")
    if "en" not in c["yes_no"]:
        raise UserError("imagenet.yes_no: needs an en entry (the fallback answer words)")
    for key in ("class_index", "classnames_en", "babel"):
        cfg.require_file(f"imagenet.{key}")
    cfg.require_dir("imagenet.train_dir")
    return c


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    c = check_config(cfg)
    report = Report("imagenet generate_train")
    synsets = read_synsets(cfg.path("imagenet.class_index"))
    english = read_english(cfg.path("imagenet.classnames_en"), len(synsets))
    babel = load_json(cfg.path("imagenet.babel"))
    if not isinstance(babel, dict):
        raise UserError(f"{cfg.path('imagenet.babel')}: expected {{\"FR\": [[indices], [names]], ...}}")
    languages = [str(x) for x in c["languages"]] or list(load_languages())
    names = class_names(babel, english, languages, c["babel_keys"], report)
    train_dir = cfg.path("imagenet.train_dir")
    prefix = os.path.relpath(train_dir, cfg.path("paths.imagenet_root")).replace(os.sep, "/")
    prefix = "" if prefix == "." else prefix + "/"
    pool = ImagePool(train_dir, prefix, synsets, c["image_extensions"], c["seed"], report)
    if not pool.images:
        raise UserError(f"no class of {cfg.path('imagenet.class_index')} has images under {train_dir}")
    outs = {"imagenet_classify": cfg.path("imagenet.classify_file"),
            "imagenet_decide": cfg.path("imagenet.decide_file")}
    langs = {t: collections.Counter() for t in outs}
    with atomic_open(outs["imagenet_classify"]) as fc, atomic_open(outs["imagenet_decide"]) as fd:
        files = {"imagenet_classify": fc, "imagenet_decide": fd}
        for task, row in examples(names, pool, c, report):
            files[task].write(dumps(row) + "\n")
            langs[task][row["lang"]] += 1
    for task, path in outs.items():
        report.count(f"{task}_out", sum(langs[task].values()))
        print(f"wrote {sum(langs[task].values())} rows -> {path}", file=sys.stderr)
    report.extra["languages"] = sorted(names)
    report.extra["classes_per_language"] = {k: len(v) for k, v in names.items()}
    report.print()
    report.save(cfg.path("imagenet.work_dir") / "train.report.json")


if __name__ == "__main__":
    main()
