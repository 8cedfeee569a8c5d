"""xGQA: GQA English train, few-shot dev/test per language -> eval/xgqa/.

Writes xgqa_train.jsonl (label = the answer with the highest score in GQA's
``label`` dict), xgqa_val_<lang>.jsonl (few-shot dev.json) and
xgqa_test_<lang>.jsonl (few-shot test.json); text_label is the answer.

  python eval_data/xgqa/convert.py --config configs/eval_data.yaml [--set key=value ...]
"""
from __future__ import annotations

from pathlib import Path

from common.errors import entry_point
from common.jsonl import BadRows, iter_json_array
from eval_data import settings
from eval_data.keys import text_hash
from eval_data.rows import eval_row, nfc
from eval_data.run import (eval_step, Accounts, check_template, fill, json_document, need, path_for, run_main,
                           require_inputs, source_name)


def best_answer(label: dict) -> str | None:
    """The highest-scoring answer; ties go to the first listed (file order is stable)."""
    best, best_score = None, None
    for answer, score in label.items():
        if isinstance(score, (int, float)) and (best_score is None or score > best_score):
            best, best_score = answer, score
    return best


def array_records(path: Path, acc: Accounts, source: str, cfg):
    """(index, element) of a top-level JSON array; malformed elements counted as skipped."""
    bad = BadRows(max_bad=cfg.at("io.max_bad_rows"), key="io.max_bad_rows")
    yield from iter_json_array(path, bad)
    if bad.count:
        acc.seen(source, bad.count)
        acc.skip(source, "malformed JSON element", "; ".join(bad.examples[:3]), n=bad.count)


def train_rows(records, c: dict, acc: Accounts, source: str):
    """Rows are yielded, not listed: the output is written while the input streams."""
    for i, r in records:
        acc.seen(source)
        where = f"record {i}"
        reason = need(r, "img_id", "sent") or (None if isinstance(r.get("label"), dict)
                                               else "missing or non-dict field 'label'")
        if reason:
            acc.skip(source, reason, where)
            continue
        answer = best_answer(r["label"])
        if answer is None or not answer.strip():
            acc.skip(source, "no scored answer in 'label'", f"{where} question {r.get('question_id')}")
            continue
        acc.used(source)
        answer = nfc(answer)
        yield eval_row(fill(c["context_template"], question=nfc(r["sent"])),
                       r["img_id"] + c["image_ext"], answer, label=answer)


def fewshot_rows(records: dict, c: dict, acc: Accounts, source: str) -> list[dict]:
    rows = []
    for qid, r in records.items():
        acc.seen(source)
        reason = need(r, "imageId", "question", "answer")
        if reason:
            acc.skip(source, reason, f"question {qid}")
            continue
        acc.used(source)
        rows.append(eval_row(fill(c["context_template"], question=nfc(r["question"])),
                             r["imageId"] + c["image_ext"], nfc(r["answer"])))
    return rows


def keys(paths: list[Path], params: dict) -> tuple[set, set]:
    """(no image keys, question text hashes) of xGQA val/test files: the text-only set ``xgqa``."""
    texts = set()
    for path in paths:
        records = json_document(path, dict, "a JSON object keyed by question id")
        texts.update(text_hash(q.get("question") or q.get("sent")) for q in records.values() if isinstance(q, dict))
    return set(), texts


def convert(cfg) -> dict:
    c = cfg.at("xgqa")
    check_template("xgqa.context_template", c["context_template"], "question")
    train = path_for(c, "gqa_train", "xgqa")
    per_lang = {lang: (path_for(c, "val_file", "xgqa", lang=lang), path_for(c, "test_file", "xgqa", lang=lang))
                for lang in c["langs"]}
    require_inputs([train] + [p for pair in per_lang.values() for p in pair])

    acc = Accounts("xgqa")
    out = Path(c["out_dir"])
    source = source_name(train[1], cfg)
    # GQA train is ~1M questions in one JSON array: stream it.
    acc.wrote(out / "xgqa_train.jsonl", train_rows(array_records(train[1], acc, source, cfg), c, acc, source))
    for lang, ((_, val), (_, test)) in per_lang.items():
        for split, path in (("val", val), ("test", test)):
            source = source_name(path, cfg)
            records = json_document(path, dict, "a JSON object keyed by question id", acc, source,
                                    max_bad=cfg.at("io.max_bad_rows"))
            acc.wrote(out / f"xgqa_{split}_{lang}.jsonl", fewshot_rows(records, c, acc, source))
    return acc.close()



STEP = eval_step("xgqa", "xGQA (+ GQA train)", "eval_data.xgqa.convert")


@entry_point
def main(argv: list[str] | None = None) -> dict:
    return run_main(STEP, convert, settings.load(__doc__, argv))


if __name__ == "__main__":
    main()
