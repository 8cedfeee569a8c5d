"""XVNLI: English train/dev, translated dev and per-language test -> eval/xvnli/.

The label is ``gold_label``, or where that is not a known label (SNLI-VE style
rows, '-' for no majority) the first of ``annotator_labels``; it is mapped
with ``xvnli.label_map`` (entailment/contradiction/neutral -> yes/no/maybe).
Rows with no usable label are skipped and counted.

  python eval_data/xvnli/convert.py --config configs/eval_data.yaml [--set key=value ...]
"""
from __future__ import annotations

from pathlib import Path

from common.errors import entry_point
from eval_data import settings
from eval_data.keys import flickr_key, text_hash
from eval_data.rows import eval_row, nfc
from eval_data.run import (eval_step, Accounts, check_template, fill, jsonl_records, need, path_for, run_main,
                           require_inputs, source_name)


def map_label(row: dict, label_map: dict) -> tuple[str | None, str]:
    """(mapped label, raw label seen); mapped is None when the row has no usable label."""
    gold = row.get("gold_label")
    if isinstance(gold, str) and gold in label_map:
        return str(label_map[gold]), gold
    annotators = row.get("annotator_labels")
    if isinstance(annotators, list) and annotators:
        first = annotators[0]
        if isinstance(first, str) and first in label_map:
            return str(label_map[first]), first
        return None, str(first)
    return None, str(gold)


def rows_from(records, c: dict, acc: Accounts, source: str, train: bool) -> list[dict]:
    rows = []
    for r in records:
        acc.seen(source)
        where = f"pair {r.get('pairID')}"
        reason = need(r, "sentence1", "sentence2", "pairID", "Flikr30kID")
        if reason:
            acc.skip(source, reason, where)
            continue
        label, raw = map_label(r, c["label_map"])
        if label is None:
            acc.skip(source, f"label {raw!r} is not one of {sorted(c['label_map'])}", where)
            continue
        acc.used(source)
        context = fill(c["context_template"], hypothesis=nfc(r["sentence2"]), premise=nfc(r["sentence1"]))
        rows.append(eval_row(context, r["Flikr30kID"] + c["image_ext"], label,
                             label=label if train else "", pair_id=r["pairID"]))
    return rows


def keys(paths: list[Path], params: dict) -> tuple[set, set]:
    """(Flickr30k image keys, hypothesis text hashes) of XVNLI files: the evaluation set ``xvnli``."""
    images, texts = set(), set()
    for path in paths:
        for r in jsonl_records(path):
            if isinstance(r, dict):
                images.add(flickr_key(r.get("Flikr30kID", "")))
                texts.add(text_hash(r.get("sentence2")))
    return images, texts


def convert(cfg) -> dict:
    c = cfg.at("xvnli")
    check_template("xvnli.context_template", c["context_template"], "hypothesis", "premise")
    max_bad = cfg.at("io.max_bad_rows")
    # (output name, input, is training data)
    jobs = [("xvnli_train.jsonl", path_for(c, "train_file", "xvnli"), True)]
    for lang in c["langs"]:
        val = path_for(c, "val_en_file", "xvnli") if lang == "en" else path_for(c, "val_file", "xvnli", lang=lang)
        jobs.append((f"xvnli_val_{lang}.jsonl", val, False))
        jobs.append((f"xvnli_test_{lang}.jsonl", path_for(c, "test_file", "xvnli", lang=lang), False))
    require_inputs([p for _, p, _ in jobs])

    acc = Accounts("xvnli")
    for name, (_, path), train in jobs:
        source = source_name(path, cfg)
        records = jsonl_records(path, acc, source, max_bad)
        acc.wrote(Path(c["out_dir"]) / name, rows_from(records, c, acc, source, train))
    return acc.close()



STEP = eval_step("xvnli", "XVNLI", "eval_data.xvnli.convert")


@entry_point
def main(argv: list[str] | None = None) -> dict:
    return run_main(STEP, convert, settings.load(__doc__, argv))


if __name__ == "__main__":
    main()
