"""Crossmodal-3600: one test file and one COCO reference per language -> eval/xm3600/.

captions.jsonl has one line per image with a block per language; every
(image, language) pair becomes a row of xm3600_test_<lang>.jsonl (context =
the language's English name, text_label = the code) and its captions the
references in xm3600_coco_test_<lang>.json. An image without a block for a
language is skipped for that language and counted.

  python eval_data/xm3600/convert.py --config configs/eval_data.yaml [--set key=value ...]
"""
from __future__ import annotations

from pathlib import Path

from common.errors import entry_point
from eval_data import settings
from eval_data.captions import captioning_split
from eval_data.keys import text_hash
from eval_data.rows import language_name
from eval_data.run import (eval_step, Accounts, jsonl_records, need, path_for, require_inputs, run_main,
                           source_name)


def per_language(lines: list[dict], lang: str, image_ext: str, acc: Accounts, source: str):
    """(where, image_id, captions) for one language; lines without its block are skipped."""
    for i, line in lines:
        acc.seen(source)
        where = f"record {i} image {line.get('image/key')}"
        block = line.get(lang)
        reason = need(line, "image/key") or ("no captions for this language" if not isinstance(block, dict)
                                             else need(block, "caption", types=(list,)))
        if reason:
            acc.skip(source, reason, where)
            continue
        yield where, line["image/key"] + image_ext, block["caption"]


def keys(paths: list[Path], params: dict) -> tuple[set, set]:
    """(no image keys, caption text hashes of every language) of the XM3600 file: the text-only set ``xm3600``."""
    texts = set()
    for path in paths:
        for line in jsonl_records(path):
            for block in line.values() if isinstance(line, dict) else ():
                if isinstance(block, dict) and isinstance(block.get("caption"), list):
                    texts.update(text_hash(c) for c in block["caption"])
    return set(), texts


def convert(cfg) -> dict:
    c = cfg.at("xm3600")
    captions = path_for(c, "captions", "xm3600")
    require_inputs([captions])
    names = {lang: language_name(lang, cfg) for lang in c["langs"]}  # fail on an unnamed code first

    acc = Accounts("xm3600")
    src = source_name(captions[1], cfg)
    # The file is small (3600 lines); reading it once beats 36 passes.
    lines = list(enumerate(jsonl_records(captions[1], acc, src, cfg.at("io.max_bad_rows")), 1))
    out = Path(c["out_dir"])
    for lang in c["langs"]:
        source = f"{src} [{lang}]"
        rows, ref = captioning_split(per_language(lines, lang, c["image_ext"], acc, source),
                                     lang, names[lang], acc, source, cfg.at("captions.segmentation"))
        acc.wrote(out / f"xm3600_test_{lang}.jsonl", rows)
        acc.wrote_json(out / f"xm3600_coco_test_{lang}.json", ref, "references in")
    return acc.close()



STEP = eval_step("xm3600", "XM3600", "eval_data.xm3600.convert", ("captions",))


@entry_point
def main(argv: list[str] | None = None) -> dict:
    return run_main(STEP, convert, settings.load(__doc__, argv))


if __name__ == "__main__":
    main()
