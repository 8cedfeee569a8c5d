"""Translate the LLaVA questions and answers (languages by mC4 share; the engine
splits long answers into sentences).

  python tasks/llava/translate_train.py [--config configs/llava.yaml] [--set key=value ...]
  sharded: --set run.num_shards=N --set run.shard_index=i (generate_train.py combines)
"""
from __future__ import annotations

from common.config import parse_args
from common.errors import entry_point
from tasks.llava.settings import CONFIG, DEFAULTS, work_paths
from tasks.translate_source import translate_source


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    p = work_paths(cfg)
    # No template set to translate: the instruction is the (translated) question.
    translate_source(cfg, "llava", p["en"], p["translated"], p["templates"], ["question", "answer"], {})


if __name__ == "__main__":
    main()
