"""Translate the VQAv2 questions (each task row draws its own language by mC4
share), the instruction templates, and the frequent answers with a round trip.

  python tasks/vqa/translate_train.py [--config configs/vqav2.yaml] [--set key=value ...]
  sharded: --set run.num_shards=N --set run.shard_index=i (generate_train.py combines)
"""
from __future__ import annotations

from common.config import parse_args
from common.errors import UserError, entry_point
from common.jsonl import load_json, write_json
from tasks.instructions import check_templates
from tasks.translate_source import translate_source
from tasks.vqa.answers import round_trip
from tasks.vqa.settings import CONFIG, DEFAULTS, TEMPLATE_NEEDS, work_paths


def run(cfg, engine=None) -> dict:
    t = cfg.at("vqav2.templates")
    check_templates("vqav2.templates", t, TEMPLATE_NEEDS)
    p = work_paths(cfg)
    if not p["frequent"].is_file():
        raise UserError(f"frequent answers not found: {p['frequent']} (run tasks/vqa/generate_train.py first)")

    def answers(engine, languages):
        frequent = load_json(p["frequent"])["answers"]
        kept, counts = round_trip(engine, list(frequent), languages)
        write_json(p["answers"], {"counts": counts, "kept": kept}, indent=1)
        return {f"answers_{k}": v for k, v in counts.items()}

    return translate_source(cfg, "vqav2", p["en"], p["translated"], p["templates"], ["question"],
                            {"vqa_english": t["vqa_english"], "vqg_english": t["vqg_english"]},
                            engine=engine, after=answers)


@entry_point
def main(argv=None) -> None:
    run(parse_args(__doc__, DEFAULTS, CONFIG, argv))


if __name__ == "__main__":
    main()
