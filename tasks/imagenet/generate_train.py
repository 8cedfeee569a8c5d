"""ImageNet classification data in every language Babel-ImageNet names classes in.

Run tasks/imagenet/translate_train.py first (instructions and yes/no into every
language). For imagenet.rounds rounds, every language gets one example per
class it names, each on a fresh image of that class (an image is reused only
once its class is exhausted; counted). Two rows per example:

* imagenet_classify: what is shown? -> the class name in that language. The
  instruction is a translated template (share imagenet.translated_ratio, where
  one survived) or an English one naming the language.
* imagenet_decide: is there a <class name>? -> yes/no in that language (the
  words from imagenet.yes_no or their translation); negatives name a random
  other class or the next class of that language's list, never one with the
  same name. Where the translation of yes/no was rejected the answer is
  English (lang "en"), counted per language in the report.

image_id is the path under imagenet.train_dir (<synset>/<file>), the image root
mBLIP's configs give ImageNet (imagenet_image_root: .../imagenet/train).

  python tasks/imagenet/generate_train.py [--config configs/imagenet.yaml] [--set key=value ...]
"""
from __future__ import annotations

import random
import sys

from common import lifecycle
from common.config import parse_args
from common.errors import UserError, entry_point
from common.jsonl import load_json
from common.languages import language_list, table_inputs
from common.report import Report
from common.sampling import rng
from common.steptype import Step
from tasks.imagenet.classes import ImagePool, class_names, read_english, read_synsets
from tasks.imagenet.settings import CONFIG, DEFAULTS, answer_words, check_settings, templates_path, translatable
from tasks.instructions import final_row
from translate import source
from translate.shaping import step_values

# Random negatives: redraws before falling back to a scan for a differently named class.
_REDRAWS = 8


def negative_name(pos: int, classes: list[int], by_class: dict[int, str], mode: str,
                  r: random.Random) -> str | None:
    """A class name of this language other than the shown class's own name
    (Babel-ImageNet and the CLIP names have a few duplicates, e.g. two
    "sunglasses"); None when every class has that name."""
    own = by_class[classes[pos]].casefold()
    n = len(classes)
    if mode == "random":
        for _ in range(_REDRAWS):
            other = r.randrange(n - 1)
            name = by_class[classes[other if other < pos else other + 1]]
            if name.casefold() != own:
                return name
    for step in range(1, n):
        name = by_class[classes[(pos + step) % n]]
        if name.casefold() != own:
            return name
    return None


def examples(names: dict[str, dict[int, str]], pool: ImagePool, c: dict, translated: dict,
             words: dict[str, tuple[str, str]], report: Report):
    """-> (task, row) in a fixed order: round, language (config/table order), class index."""
    t = c["templates"]
    seed = c["seed"]
    r = rng(seed, "imagenet", "examples")
    classify = source.InstructionPicker(seed, "imagenet_classify", t["classify_en"], t["classify"],
                                        translated.get("classify_en"), c["translated_ratio"])
    decide = source.InstructionPicker(seed, "imagenet_decide", t["decide"], t["decide_naming"],
                                      translated.get("decide"), c["translated_ratio"])
    for rnd in range(c["rounds"]):
        for lang, by_class in names.items():
            classes = [i for i in sorted(by_class) if pool.has(i)]
            if rnd == 0:
                report.count("languages_used")
                report.count("classes_without_images_skipped", len(by_class) - len(classes))
            if len(classes) < 2:
                if rnd == 0:
                    report.skip("language with fewer than two classes with images", lang)
                continue
            own_words = words.get(lang)
            answer_lang = lang if own_words else "en"
            yes, no = own_words or tuple(c["yes_no"]["en"])
            for pos, idx in enumerate(classes):
                image = pool.take(idx)
                name = by_class[idx]
                rid = f"{rnd}:{lang}:{idx}"  # an example is one round, language and class
                yield "imagenet_classify", final_row(classify.pick(rid, lang), name, image, "imagenet_classify",
                                                     lang)
                positive = r.random() < c["positive_ratio"]
                shown = name if positive else negative_name(pos, classes, by_class, c["negatives"], r)
                if shown is None:
                    report.count("decide_no_differently_named_class")
                    positive, shown = True, name
                report.count("decide_positive" if positive else "decide_negative")
                if answer_lang != lang:
                    report.count("decide_answered_in_english")
                yield "imagenet_decide", final_row(decide.pick(rid, answer_lang, shown), yes if positive else no,
                                                   image, "imagenet_decide", answer_lang)
    report.extra["instructions"] = {"imagenet_classify": dict(classify.counts), "imagenet_decide": dict(decide.counts)}


def read_translations(cfg, languages: list[str], argv) -> dict:
    """The translated templates and yes/no (none needed for English only)."""
    c = cfg.at("imagenet")
    if all(code == "en" for code in languages):
        return {}
    return source.load_store(templates_path(cfg), translatable(c), cfg.at("translation"), languages,
                             "imagenet.translate", argv)



STEP = Step("imagenet.generate", "tasks.imagenet.generate_train", "imagenet", "classify and decide examples",
            reads=(table_inputs, "${imagenet.class_index}", "${imagenet.classnames_en}", "${imagenet.babel}",
                   "${imagenet.work_dir}/templates_translated.json"),
            writes=("${imagenet.classify_file}", "${imagenet.decide_file}"), after=("imagenet.translate",),
            shaped_by=("imagenet", step_values), tasks=("imagenet_classify", "imagenet_decide"), defaults=DEFAULTS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    c = cfg.at("imagenet")
    check_settings(c)
    languages = language_list(c["languages"], "imagenet.languages")
    for key in ("class_index", "classnames_en", "babel"):
        cfg.require_file(f"imagenet.{key}")
    cfg.require_dir("imagenet.train_dir")
    translated = read_translations(cfg, languages, argv)
    lifecycle.run_step(STEP, cfg, argv, lambda: generate(cfg, languages, translated))


def generate(cfg, languages: list[str], translated: dict) -> Report:
    """Both files: class names per language, answer words, images, examples."""
    c = cfg.at("imagenet")
    report = Report("imagenet generate_train")
    synsets = read_synsets(cfg.path("imagenet.class_index"))
    english = read_english(cfg.path("imagenet.classnames_en"), len(synsets))
    babel = load_json(cfg.path("imagenet.babel"))
    if not isinstance(babel, dict):
        raise UserError(f"{cfg.path('imagenet.babel')}: expected {{\"FR\": [[indices], [names]], ...}}")
    names = class_names(babel, english, languages, c["babel_keys"], report)
    del babel
    words = answer_words(c, translated, list(names), report)
    train_dir = cfg.path("imagenet.train_dir")
    # image_id is relative to train_dir: mBLIP's imagenet_image_root is .../imagenet/train.
    pool = ImagePool(train_dir, "", synsets, c["image_extensions"], c["seed"], report)
    if not pool.images:
        raise UserError(f"no class of {cfg.path('imagenet.class_index')} has images under {train_dir}")
    outs = {"imagenet_classify": cfg.path("imagenet.classify_file"),
            "imagenet_decide": cfg.path("imagenet.decide_file")}
    langs = source.write_by_key(outs, examples(names, pool, c, translated, words, report))
    for task, path in outs.items():
        report.count(f"{task}_out", sum(langs[task].values()))
        print(f"wrote {sum(langs[task].values())} rows -> {path}", file=sys.stderr)
    report.extra["languages"] = sorted(names)
    report.extra["classes_per_language"] = {k: len(v) for k, v in names.items()}
    report.print()
    return report


if __name__ == "__main__":
    main()
