"""Translate the MSCOCO English captions (languages by mC4 share) and the
instruction templates into every language.

  python tasks/mscoco/translate_train.py [--config configs/mscoco.yaml] [--set key=value ...]
  sharded: --set run.num_shards=N --set run.shard_index=i (generate_train.py combines)
"""
from __future__ import annotations

from common.config import parse_args
from common.errors import entry_point
from tasks.instructions import check_templates
from tasks.mscoco.settings import CONFIG, DEFAULTS, TEMPLATE_NEEDS, intermediate_paths
from tasks.translate_source import translate_source


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    check_templates("mscoco.templates", cfg.at("mscoco.templates"), TEMPLATE_NEEDS)
    en_path, tr_path, tpl_path = intermediate_paths(cfg)
    translate_source(cfg, "mscoco", en_path, tr_path, tpl_path, ["caption"],
                     {"english": cfg.at("mscoco.templates.english")})


if __name__ == "__main__":
    main()
