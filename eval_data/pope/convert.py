"""POPE: the three COCO splits (adversarial, popular, random) -> eval/pope/pope_<split>.jsonl.

Rows: context = the question (through ``pope.context_template``), image_id =
the COCO file name, text_label = "yes"/"no"; any other label is skipped and
counted.

  python eval_data/pope/convert.py --config configs/eval_data.yaml [--set key=value ...]
"""
from __future__ import annotations

from pathlib import Path

from common.errors import entry_point
from eval_data import settings
from eval_data.keys import coco_key, text_hash
from eval_data.rows import eval_row, nfc
from eval_data.run import (eval_step, Accounts, check_template, fill, jsonl_records, need, path_for, run_main,
                           require_inputs, source_name)

ANSWERS = ("yes", "no")


def rows_from(records, c: dict, acc: Accounts, source: str) -> list[dict]:
    """A question_id names one question: a repeated record (same id, image, text
    and label) is skipped as a duplicate; the same id with other content is kept
    and reported (two questions that share an id)."""
    rows = []
    seen: dict = {}
    for r in records:
        acc.seen(source)
        where = f"question {r.get('question_id')}"
        reason = need(r, "image", "text", "label")
        label = r.get("label", "").strip().lower() if not reason else ""
        if not reason and label not in ANSWERS:
            reason = f"label {r.get('label')!r} is not yes/no"
        qid, content = r.get("question_id"), (r.get("image"), r.get("text"), label)
        if not reason and qid is not None:
            if seen.get(qid) == content:
                reason = "duplicate of an earlier record (same question_id, image, text, label)"
            elif qid in seen:
                acc.note("question_id used by two different questions (both kept)", f"{source}: {where}")
            seen.setdefault(qid, content)
        if reason:
            acc.skip(source, reason, where)
            continue
        acc.used(source)
        rows.append(eval_row(fill(c["context_template"], question=nfc(r["text"])), r["image"], label))
    return rows


def keys(paths: list[Path], params: dict) -> tuple[set, set]:
    """(image keys, question text hashes) of POPE files: the evaluation set ``pope`` (eval_data/sets.py)."""
    images, texts = set(), set()
    for path in paths:
        for r in jsonl_records(path):
            if isinstance(r, dict):
                images.add(coco_key(r.get("image")))
                texts.add(text_hash(r.get("text")))
    return images, texts


def convert(cfg) -> dict:
    c = cfg.at("pope")
    check_template("pope.context_template", c["context_template"], "question")
    inputs = {split: path_for(c, "file", "pope", split=split) for split in c["splits"]}
    require_inputs(list(inputs.values()))

    acc = Accounts("pope")
    for split, (_, path) in inputs.items():
        source = source_name(path, cfg)
        records = jsonl_records(path, acc, source, cfg.at("io.max_bad_rows"))
        acc.wrote(Path(c["out_dir"]) / f"pope_{split}.jsonl", rows_from(records, c, acc, source))
    return acc.close()



STEP = eval_step("pope", "POPE", "eval_data.pope.convert")


@entry_point
def main(argv: list[str] | None = None) -> dict:
    return run_main(STEP, convert, settings.load(__doc__, argv))


if __name__ == "__main__":
    main()
