"""Translate the MSCOCO English captions (languages by mC4 share) and the
instruction templates into every language.

  python tasks/mscoco/translate_train.py [--config configs/mscoco.yaml] [--set key=value ...]
  sharded: --set run.num_shards=N --set run.shard_index=i (shard 0 also translates the templates)
"""
from __future__ import annotations

from common.config import parse_args
from common.errors import entry_point
from common.languages import language_list, table_inputs
from common.shards import ShardRule
from common.steptype import Step
from tasks.instructions import check_templates
from tasks.mscoco.generate_train import template_sets
from tasks.mscoco.settings import CONFIG, DEFAULTS, TEMPLATE_NEEDS, intermediate_paths
from translate import source
from translate.shaping import step_values

# Rows dealt round-robin into shard files, interleaved back by the launcher
# (python -m common launch mscoco.translate); shard 0 writes the whole files.
SHARDS = ShardRule(device="translation", sharded=("${mscoco.work_dir}/captions_translated.jsonl",),
                   first_shard=("${mscoco.work_dir}/templates_translated.json",))



STEP = Step("mscoco.translate", "tasks.mscoco.translate_train", "mscoco", "MSCOCO: translate rows and templates",
            reads=(table_inputs, "${mscoco.work_dir}/captions_en.jsonl",),
            writes=("${mscoco.work_dir}/captions_translated.jsonl", "${mscoco.work_dir}/templates_translated.json"),
            after=("mscoco.english",), shaped_by=("mscoco.languages", "mscoco.language_split", "mscoco.seed", "mscoco.templates",
                                                  step_values),
            defaults=DEFAULTS, rule=SHARDS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    c = cfg.at("mscoco")
    check_templates("mscoco.templates", c["templates"], TEMPLATE_NEEDS)
    en_path, tr_path, tpl_path = intermediate_paths(cfg)
    source.translate_step("mscoco.translate", cfg, languages=language_list(c["languages"], "mscoco.languages"),
                          template_sets=template_sets(cfg), store=tpl_path, rows_in=en_path, rows_out=tr_path,
                          fields=["caption"], seed=c["seed"], max_bad_rows=c["max_bad_rows"], argv=argv)


if __name__ == "__main__":
    main()
