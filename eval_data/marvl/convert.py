"""MaRVL zero-shot test per language, NLVR2 train/dev/test and translated dev -> eval/marvl/.

Rows: context = the statement, text_label = True/False as the releases
give the label (``true_answer`` / ``false_answer``; mBLIP maps them with
``target2str``), image_id = the left image (the pair is in left_image /
right_image), concept, language.

MaRVL images live at <image_root>/<language>/images/<concept>/<file>; the
concept folder names are non-ASCII and may be NFC or NFD on disk, so each path
is resolved to the spelling that exists. Pairs with an image not on disk are
reported (and dropped only with ``marvl.drop_missing_images: true``).
NLVR2 image paths follow the official layout: train/<directory>/<name>-img0.png,
dev/<name>-img0.png, test1/<name>-img0.png.

  python eval_data/marvl/convert.py --config configs/eval_data.yaml [--set key=value ...]
"""
from __future__ import annotations

import unicodedata
from pathlib import Path

from common.errors import entry_point
from eval_data import settings
from eval_data.images import ImageFinder
from eval_data.keys import text_hash, web_keys
from eval_data.rows import eval_row, nfc
from eval_data.run import (eval_step, Accounts, check_template, fill, jsonl_records, need, path_for, run_main,
                           require_inputs, source_name)

MISSING = "marvl images not on disk"


def answer(value, c: dict) -> str | None:
    """MaRVL labels are JSON booleans, NLVR2 labels the strings "True"/"False"."""
    if value is True or value == "True":
        return c["true_answer"]
    if value is False or value == "False":
        return c["false_answer"]
    return None


def marvl_rows(records, c: dict, finder: ImageFinder, acc: Accounts, source: str) -> list[dict]:
    rows = []
    for r in records:
        acc.seen(source)
        where = f"id {r.get('id')}"
        reason = need(r, "concept", "language", "caption", "left_img", "right_img")
        text = answer(r.get("label"), c) if not reason else None
        if not reason and text is None:
            reason = f"label {r.get('label')!r} is not true/false"
        if reason:
            acc.skip(source, reason, where)
            continue
        images, missing = [], False
        for side in ("left_img", "right_img"):
            rel = "/".join((r["language"], "images", r["concept"], r[side]))
            found = finder.resolve(r["language"], "images", r["concept"], r[side])
            if found is None:
                missing = True
                acc.note(MISSING, f"{where}: {rel}")
            # A missing file keeps the annotation's spelling in NFC, so the row still works once
            # the images are unpacked on a file system that stores NFC.
            images.append(found or unicodedata.normalize("NFC", rel))
        if missing and c["drop_missing_images"]:
            acc.skip(source, "image not on disk", where)
            continue
        left, right = images
        acc.used(source)
        rows.append(eval_row(fill(c["context_template"], statement=nfc(r["caption"])), left, text,
                             left_image=left, right_image=right, concept=unicodedata.normalize("NFC", r["concept"]),
                             language=r["language"]))
    return rows


def nlvr2_image(identifier: str, directory, side: int) -> str | None:
    """dev-850-0-0 -> dev/dev-850-0-img0.png; train rows add their numbered directory."""
    parts = identifier.split("-")
    if len(parts) != 4:
        return None
    split, name = parts[0], "-".join(parts[:3]) + f"-img{side}.png"
    if split == "train":
        return None if directory in (None, "") else f"train/{directory}/{name}"
    return f"{split}/{name}"


def nlvr2_rows(records, c: dict, acc: Accounts, source: str, lang: str, train: bool) -> list[dict]:
    rows = []
    for r in records:
        acc.seen(source)
        where = f"{r.get('identifier')}"
        reason = need(r, "identifier", "sentence")
        text = answer(r.get("label"), c) if not reason else None
        if not reason and text is None:
            reason = f"label {r.get('label')!r} is not True/False"
        left = right = None
        if not reason:
            left, right = (nlvr2_image(r["identifier"], r.get("directory"), s) for s in (0, 1))
            if left is None:
                reason = "cannot derive image names from identifier/directory"
        if reason:
            acc.skip(source, reason, where)
            continue
        acc.used(source)
        rows.append(eval_row(fill(c["context_template"], statement=nfc(r["sentence"])), left, text,
                             label=text if train else "", left_image=left, right_image=right,
                             concept=str(r.get("synset", "")), language=lang))
    return rows


def nlvr2_keys(paths: list[Path], params: dict) -> tuple[set, set]:
    """(image URL keys, statement text hashes) of NLVR2 files: the evaluation set ``nlvr2``."""
    images, texts = set(), set()
    for path in paths:
        for r in jsonl_records(path):
            if not isinstance(r, dict):
                continue
            for side in ("left_url", "right_url"):
                images.update(web_keys(r.get(side)))
            texts.add(text_hash(r.get("sentence")))
    return images, texts


def marvl_keys(paths: list[Path], params: dict) -> tuple[set, set]:
    """(no image keys, statement text hashes) of MaRVL files: the text-only set ``marvl``."""
    return set(), {text_hash(r.get("caption")) for path in paths for r in jsonl_records(path) if isinstance(r, dict)}


def convert(cfg) -> dict:
    c = cfg.at("marvl")
    check_template("marvl.context_template", c["context_template"], "statement")
    max_bad = cfg.at("io.max_bad_rows")
    marvl = {lang: path_for(c, "test_file", "marvl", lang=lang) for lang in c["langs"]}
    nlvr2 = [("nlvr2_train_en.jsonl", path_for(c, "nlvr2_train", "marvl"), "en", True),
             ("nlvr2_dev_en.jsonl", path_for(c, "nlvr2_dev", "marvl"), "en", False),
             ("nlvr2_test_en.jsonl", path_for(c, "nlvr2_test", "marvl"), "en", False)]
    nlvr2 += [(f"nlvr2_dev_{lang}.jsonl", path_for(c, "nlvr2_dev_translated", "marvl", lang=lang), lang, False)
              for lang in c["nlvr2_langs"]]
    require_inputs(list(marvl.values()) + [p for _, p, _, _ in nlvr2])

    acc = Accounts("marvl")
    out = Path(c["out_dir"])
    finder = ImageFinder(c["image_root"])
    if not finder.root_exists:
        acc.note("marvl image folder not found (every pair reported missing)", str(finder.root))
    for lang, (_, path) in marvl.items():
        source = source_name(path, cfg)
        records = jsonl_records(path, acc, source, max_bad)
        acc.wrote(out / f"marvl_test_{lang}.jsonl", marvl_rows(records, c, finder, acc, source))
    for name, (_, path), lang, train in nlvr2:
        source = source_name(path, cfg)
        records = jsonl_records(path, acc, source, max_bad)
        acc.wrote(out / name, nlvr2_rows(records, c, acc, source, lang, train))
    return acc.close()



STEP = eval_step("marvl", "MaRVL (+ NLVR2)", "eval_data.marvl.convert")


@entry_point
def main(argv: list[str] | None = None) -> dict:
    return run_main(STEP, convert, settings.load(__doc__, argv))


if __name__ == "__main__":
    main()
