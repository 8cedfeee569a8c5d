"""Step 2.4 of BLIP Web CapFilt: translate the English intermediate.

Every row of ``translate.input`` (generate_train.py's first output) gets a
language drawn by mC4 share (counts exact by largest remainder, positions
seeded, over the whole file so shards agree); its caption is translated by the
one engine (a rejected translation keeps English with lang "en"). The caption
templates (``generate.caption_templates``) are translated into every language
too, into the store ``translate.templates_output`` (kept while the templates,
translation settings and languages are unchanged), for the second run of
generate_train.py.

Sharding: ``--set run.num_shards=N --set run.shard_index=i`` translates rows
i, i+N, ... into a shard file; shard 0 also translates the templates. The
launcher runs the shards and merges them (``python -m common launch
capfilt.translate``; a shard run by hand prints the merge command).

    python pretrain/translate_train.py [--set translation.backend=ctranslate2]
"""
from __future__ import annotations

from common.config import REPO_ROOT, parse_args
from common.errors import entry_point
from common.languages import language_list, table_inputs
from common.shards import ShardRule, check_shard_args
from common.steptype import Step
from pretrain.capfilt_config import CONFIG_FILE, DEFAULTS
from pretrain.generate_train import template_sets
from translate import source
from translate.shaping import step_values

# Rows dealt round-robin into shard files of translate.output, interleaved back by the
# launcher (python -m common launch capfilt.translate); shard 0 writes the templates.
SHARDS = ShardRule(device="translation", sharded=("${translate.output}",),
                   first_shard=("${translate.templates_output}",))



STEP = Step("capfilt.translate", "pretrain.translate_train", "capfilt", "translate captions and templates",
            reads=(table_inputs, "${translate.input}",), writes=("${translate.output}", "${translate.templates_output}"),
            after=("capfilt.english",), shaped_by=("translate", "generate.caption_templates", step_values),
            defaults=DEFAULTS, rule=SHARDS)


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, str(REPO_ROOT / "configs" / CONFIG_FILE), argv)
    tc = cfg["translate"]
    languages = language_list(tc["languages"], "translate.languages")
    check_shard_args(cfg["run"])
    source.translate_step("capfilt.translate", cfg, languages=languages, template_sets=template_sets(cfg),
                          store=cfg.path("translate.templates_output"), rows_in=cfg.path("translate.input"),
                          rows_out=cfg.path("translate.output"), fields=["caption"], seed=tc["seed"],
                          max_bad_rows=tc["max_bad_rows"], chunk_rows=tc["chunk_rows"], argv=argv)


if __name__ == "__main__":
    main()
