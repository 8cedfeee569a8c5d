"""Translate the ImageNet instructions and the answer words yes/no into every
language, so imagenet_classify and imagenet_decide ask (and are answered) in
the example's language. Class names are not translated: they come from
Babel-ImageNet. Run before tasks/imagenet/generate_train.py.

Writes ${imagenet.work_dir}/templates_translated.json (redone only when the
templates, yes/no words, languages or translation settings change; the engine
caches every string). A translation that lost its {} placeholder is dropped
and counted; generate_train.py then falls back to an English instruction
naming the language, or, for a rejected yes/no, to an English answer.

  python tasks/imagenet/translate_train.py [--config configs/imagenet.yaml] [--set key=value ...]
"""
from __future__ import annotations

import sys

from common.config import parse_args
from common.errors import entry_point
from common.jsonl import load_json
from common.languages import language_list, table_inputs
from common.steptype import Step
from tasks.imagenet.settings import CONFIG, DEFAULTS, check_settings, templates_path, translatable
from translate import source
from translate.shaping import step_values
from translate.engine import Engine


def run(cfg, engine: Engine | None = None, argv=None) -> dict[str, dict[str, list[str]]]:
    c = cfg.at("imagenet")
    check_settings(c)
    languages = language_list(c["languages"], "imagenet.languages")
    source.translate_step("imagenet.translate", cfg, languages=languages, template_sets=translatable(c),
                          store=templates_path(cfg), engine=engine, argv=argv)
    out = load_json(templates_path(cfg))["translated"]
    words = sum(1 for lang in languages if lang != "en" and out.get("yes", {}).get(lang)
                and out.get("no", {}).get(lang))
    print(f"[imagenet translate_train] {len(languages)} languages; yes and no both translated for {words}",
          file=sys.stderr)
    return out



STEP = Step("imagenet.translate", "tasks.imagenet.translate_train", "imagenet", "translate instructions and yes/no",
            reads=(table_inputs,), writes=("${imagenet.work_dir}/templates_translated.json",),
            shaped_by=("imagenet.templates", "imagenet.yes_no", "imagenet.languages", step_values),
            defaults=DEFAULTS)


@entry_point
def main(argv=None) -> None:
    run(parse_args(__doc__, DEFAULTS, CONFIG, argv), argv=argv)


if __name__ == "__main__":
    main()
