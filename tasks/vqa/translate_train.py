"""Translate the VQAv2 questions (each task row draws its own language by mC4
share), the instruction templates, and the frequent answers with a round trip.

  python tasks/vqa/translate_train.py [--config configs/vqav2.yaml] [--set key=value ...]
  sharded: --set run.num_shards=N --set run.shard_index=i (shard 0 also translates templates and answers)
"""
from __future__ import annotations

from common.config import parse_args
from common.errors import UserError, entry_point
from common.jsonl import load_json, write_json
from common.languages import language_list, table_inputs
from common.shards import ShardRule
from common.steptype import Step
from tasks.instructions import check_templates
from tasks.vqa.answers import round_trip
from tasks.vqa.generate_train import template_sets
from tasks.vqa.settings import CONFIG, DEFAULTS, TEMPLATE_NEEDS, work_paths
from translate import source
from translate.shaping import step_values

# Rows dealt round-robin into shard files, interleaved back by the launcher
# (python -m common launch vqav2.translate); shard 0 writes the whole files.
SHARDS = ShardRule(device="translation", sharded=("${vqav2.work_dir}/questions_translated.jsonl",),
                   first_shard=("${vqav2.work_dir}/templates_translated.json",
                                "${vqav2.work_dir}/answers_translated.json"))


def run(cfg, engine=None, argv=None) -> dict:
    c = cfg.at("vqav2")
    check_templates("vqav2.templates", c["templates"], TEMPLATE_NEEDS)
    languages = language_list(c["languages"], "vqav2.languages")
    p = work_paths(cfg)
    if not p["frequent"].is_file():
        raise UserError(f"frequent answers not found: {p['frequent']}; run {source.rerun_hint('vqav2.english', argv)}")

    def answers(engine, languages):
        frequent = load_json(p["frequent"])["answers"]
        kept, counts = round_trip(engine, list(frequent), languages)
        write_json(p["answers"], {"counts": counts, "kept": kept}, indent=1)
        return {f"answers_{k}": v for k, v in counts.items()}

    return source.translate_step("vqav2.translate", cfg, languages=languages, template_sets=template_sets(cfg),
                                 store=p["templates"], rows_in=p["en"], rows_out=p["translated"], fields=["question"],
                                 seed=c["seed"], max_bad_rows=c["max_bad_rows"], engine=engine, after=answers,
                                 argv=argv)



STEP = Step("vqav2.translate", "tasks.vqa.translate_train", "vqav2", "VQAv2: translate rows and templates",
            reads=(table_inputs, "${vqav2.work_dir}/questions_en.jsonl", "${vqav2.work_dir}/answers_frequent.json"),
            writes=("${vqav2.work_dir}/questions_translated.jsonl", "${vqav2.work_dir}/templates_translated.json",
                    "${vqav2.work_dir}/answers_translated.json"),
            after=("vqav2.english",), shaped_by=("vqav2.languages", "vqav2.language_split", "vqav2.seed", "vqav2.templates",
                                                  step_values),
            defaults=DEFAULTS, rule=SHARDS)


@entry_point
def main(argv=None) -> None:
    run(parse_args(__doc__, DEFAULTS, CONFIG, argv), argv=argv)


if __name__ == "__main__":
    main()
