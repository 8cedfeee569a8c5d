"""xFlickrCO test per language, Flickr30k train/val/test -> eval/xflickrco/.

Captioning splits (flickr30k_{val,test}_en, xflickrco_test_<lang>) get one
row per image and a COCO caption reference ``<name>_coco_<split>_<lang>.json``.
flickr30k_train.jsonl is fine-tuning data: one row per caption, the context
an English prompt drawn (seeded) from ``xflickrco.train_templates``.
image_id is the release's ``img_path`` (Flickr30k file names; the COCO half of
xFlickrCO gives COCO_val2014_... names).

  python eval_data/xflickrco/convert.py --config configs/eval_data.yaml [--set key=value ...]
"""
from __future__ import annotations

from pathlib import Path

from common.errors import UserError, entry_point
from common.sampling import rng
from eval_data import settings
from eval_data.captions import captioning_split
from eval_data.keys import coco_key, flickr_key, text_hash
from eval_data.rows import eval_row, language_name, nfc
from eval_data.run import (eval_step, Accounts, jsonl_records, need, path_for, require_inputs, run_main,
                           source_name)


def caption_items(records, acc: Accounts, source: str):
    """(where, image_id, captions) of usable records; the rest skipped with a reason."""
    for r in records:
        acc.seen(source)
        where = f"id {r.get('id')}"
        reason = need(r, "img_path") or need(r, "sentences", types=(list,))
        if reason:
            acc.skip(source, reason, where)
            continue
        yield where, r["img_path"], r["sentences"]


def train_rows(records, templates: list[str], seed: int, acc: Accounts, source: str) -> list[dict]:
    draw = rng(seed, "flickr30k_train")
    rows = []
    for where, image_id, sentences in caption_items(records, acc, source):
        captions = [nfc(s) for s in sentences if isinstance(s, str) and nfc(s)]
        if not captions:
            acc.skip(source, "no non-empty caption", where)
            continue
        acc.used(source)
        for cap in captions:
            rows.append(eval_row(draw.choice(templates), image_id, "en", label=cap))
    return rows


def keys(paths: list[Path], params: dict) -> tuple[set, set]:
    """(image keys, caption text hashes) of xFlickrCO / Flickr30k files: COCO names
    are COCO images, the rest Flickr photos (the sets ``xflickrco`` and ``flickr30k``)."""
    images, texts = set(), set()
    for path in paths:
        for r in jsonl_records(path):
            if not isinstance(r, dict):
                continue
            name = str(r.get("img_path") or r.get("id") or "")
            images.add(coco_key(name) if name.startswith("COCO_") else flickr_key(name))
            sents = r.get("sentences")
            texts.update(text_hash(s) for s in (sents if isinstance(sents, list) else []))
    return images, texts


def convert(cfg) -> dict:
    c = cfg.at("xflickrco")
    max_bad = cfg.at("io.max_bad_rows")
    if not c["train_templates"]:
        raise UserError("xflickrco.train_templates: needs at least one prompt")
    train = path_for(c, "flickr_train", "xflickrco")
    # (row file stem, reference stem, split, lang, input)
    splits = [("flickr30k_val_en", "flickr30k", "val", "en", path_for(c, "flickr_val", "xflickrco")),
              ("flickr30k_test_en", "flickr30k", "test", "en", path_for(c, "flickr_test", "xflickrco"))]
    splits += [(f"xflickrco_test_{lang}", "xflickrco", "test", lang,
                path_for(c, "test_file", "xflickrco", lang=lang)) for lang in c["langs"]]
    require_inputs([train] + [s[-1] for s in splits])
    names = {lang: language_name(lang, cfg) for lang in {s[3] for s in splits}}  # an unnamed code fails first

    acc = Accounts("xflickrco")
    out = Path(c["out_dir"])
    source = source_name(train[1], cfg)
    records = jsonl_records(train[1], acc, source, max_bad)
    acc.wrote(out / "flickr30k_train.jsonl", train_rows(records, c["train_templates"], c["seed"], acc, source))
    for stem, ref_stem, split, lang, (_, path) in splits:
        source = source_name(path, cfg)
        items = caption_items(jsonl_records(path, acc, source, max_bad), acc, source)
        rows, ref = captioning_split(items, lang, names[lang], acc, source, cfg.at("captions.segmentation"))
        acc.wrote(out / f"{stem}.jsonl", rows)
        acc.wrote_json(out / f"{ref_stem}_coco_{split}_{lang}.json", ref, "references in")
    return acc.close()



STEP = eval_step("xflickrco", "xFlickrCO (+ Flickr30k)", "eval_data.xflickrco.convert", ("captions",))


@entry_point
def main(argv: list[str] | None = None) -> dict:
    return run_main(STEP, convert, settings.load(__doc__, argv))


if __name__ == "__main__":
    main()
