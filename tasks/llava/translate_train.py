"""Translate the LLaVA questions and answers (languages by mC4 share; the engine
splits long answers into sentences).

  python tasks/llava/translate_train.py [--config configs/llava.yaml] [--set key=value ...]
  sharded: --set run.num_shards=N --set run.shard_index=i
"""
from __future__ import annotations

from common.config import parse_args
from common.errors import entry_point
from common.languages import language_list, table_inputs
from common.shards import ShardRule
from common.steptype import Step
from tasks.llava.settings import CONFIG, DEFAULTS, work_paths
from translate import source
from translate.shaping import step_values

# Rows dealt round-robin into shard files, interleaved back by the launcher
# (python -m common launch llava.translate); shard 0 writes the whole files.
SHARDS = ShardRule(device="translation", sharded=("${llava.work_dir}/turns_translated.jsonl",),
                   first_shard=("${llava.work_dir}/templates_translated.json",))



STEP = Step("llava.translate", "tasks.llava.translate_train", "llava", "LLaVA: translate rows and templates",
            reads=(table_inputs, "${llava.work_dir}/turns_en.jsonl",),
            writes=("${llava.work_dir}/turns_translated.jsonl", "${llava.work_dir}/templates_translated.json"),
            after=("llava.english",), shaped_by=("llava.languages", "llava.language_split", "llava.seed", "llava.templates",
                                                  step_values),
            defaults=DEFAULTS, rule=SHARDS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    c, p = cfg.at("llava"), work_paths(cfg)
    # No template set to translate (the instruction is the translated question):
    # the store is written empty, with its key, like every source's.
    source.translate_step("llava.translate", cfg, languages=language_list(c["languages"], "llava.languages"),
                          template_sets={}, store=p["templates"], rows_in=p["en"], rows_out=p["translated"],
                          fields=["question", "answer"], seed=c["seed"], max_bad_rows=c["max_bad_rows"], argv=argv)


if __name__ == "__main__":
    main()
