"""MaXM: one test file per language (en fr hi iw ro th zh) -> eval/maxm/.

Each qa pair becomes a row: context = ``maxm.context_template`` (a
short-answer prompt naming the language), image_id = <image_id><image_ext>
(XM3600 images), text_label = the processed answers. A question whose image
is not in ``maxm.image_root`` is reported (and dropped only with
``maxm.drop_missing_images: true``).

  python eval_data/maxm/convert.py --config configs/eval_data.yaml [--set key=value ...]
"""
from __future__ import annotations

from pathlib import Path

from common.errors import entry_point
from eval_data import settings
from eval_data.images import ImageFinder
from eval_data.keys import text_hash
from eval_data.rows import eval_row, language_name, nfc
from eval_data.run import (eval_step, Accounts, check_template, fill, json_document, need, path_for, run_main,
                           require_inputs, source_name)

MISSING = "maxm questions whose image is not on disk"


def questions(data: dict, source: str, acc: Accounts):
    """(where, image_id, qa pair) for every qa pair; broken image records skipped per pair."""
    annotations = data.get("annotations")
    if not isinstance(annotations, list):
        acc.seen(source)
        acc.skip(source, "no 'annotations' list", source)
        return
    for i, ann in enumerate(annotations):
        pairs = ann.get("qa_pairs") if isinstance(ann, dict) else None
        where = f"annotation {i} image {ann.get('image_id') if isinstance(ann, dict) else '?'}"
        reason = need(ann, "image_id") or (None if isinstance(pairs, list) else "missing 'qa_pairs' list")
        if reason:
            acc.seen(source)
            acc.skip(source, f"image record: {reason}", where)
            continue
        for qa in pairs:
            acc.seen(source)
            yield f"{where} question {qa.get('question_id') if isinstance(qa, dict) else '?'}", ann["image_id"], qa


def rows_for(data: dict, lang: str, c: dict, name: str, finder: ImageFinder,
             acc: Accounts, source: str) -> list[dict]:
    rows = []
    for where, image, qa in questions(data, source, acc):
        reason = need(qa, "question") or need(qa, "processed_answers", types=(list,))
        answers = [nfc(a) for a in qa.get("processed_answers") or [] if isinstance(a, str) and nfc(a)] \
            if not reason else []
        if not reason and not answers:
            reason = "no non-empty processed answer"
        if reason:
            acc.skip(source, reason, where)
            continue
        image_id = image + c["image_ext"]
        if not finder.exists(image_id):
            acc.note(MISSING, f"{where}: {image_id}")
            if c["drop_missing_images"]:
                acc.skip(source, "image not on disk", where)
                continue
        acc.used(source)
        context = fill(c["context_template"], question=nfc(qa["question"]), language=name)
        rows.append(eval_row(context, image_id, answers))
    return rows


def keys(paths: list[Path], params: dict) -> tuple[set, set]:
    """(no image keys, question text hashes) of MaXM files: the text-only set ``maxm``."""
    texts = set()
    for path in paths:
        data = json_document(path, dict, "a JSON object with 'annotations'")
        for ann in data.get("annotations") or []:
            for qa in (ann.get("qa_pairs") or []) if isinstance(ann, dict) else []:
                if isinstance(qa, dict):
                    texts.add(text_hash(qa.get("question")))
    return set(), texts


def convert(cfg) -> dict:
    c = cfg.at("maxm")
    check_template("maxm.context_template", c["context_template"], "question", "language")
    inputs = {lang: path_for(c, "file", "maxm", lang=lang) for lang in c["langs"]}
    require_inputs(list(inputs.values()))
    names = {lang: language_name(lang, cfg) for lang in c["langs"]}

    acc = Accounts("maxm")
    finder = ImageFinder(c["image_root"])
    if not finder.root_exists:
        acc.note("maxm image folder not found (every question reported missing)", str(finder.root))
    for lang, (_, path) in inputs.items():
        source = source_name(path, cfg)
        data = json_document(path, dict, "a JSON object with 'annotations'", acc, source, "annotations",
                             cfg.at("io.max_bad_rows"))
        rows = rows_for(data, lang, c, names[lang], finder, acc, source)
        acc.wrote(Path(c["out_dir"]) / f"maxm_test_{lang}.jsonl", rows)
    return acc.close()



STEP = eval_step("maxm", "MaXM", "eval_data.maxm.convert")


@entry_point
def main(argv: list[str] | None = None) -> dict:
    return run_main(STEP, convert, settings.load(__doc__, argv))


if __name__ == "__main__":
    main()
