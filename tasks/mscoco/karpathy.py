"""The Karpathy split file (``mscoco/dataset_coco.json``), parsed in one place:
the reader of its image records that MSCOCO's train and eval steps
(``tasks/mscoco/settings.py``), CHAIR's converter and the evaluation keys of the
``mscoco`` and ``chair`` sets all use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from common.jsonl import BadRows, iter_json_array
from eval_data.keys import coco_key, text_hash


def images(path: Path, bad: BadRows, splits) -> Iterator[tuple[int, Any]]:
    """(index, record) of the ``images`` array, streamed one record at a time
    (memory stays flat whatever the file's size; a record that is not JSON or
    holds invalid UTF-8 goes to ``bad``): the records of ``splits`` and the
    records that are not objects (their split is unknown: the caller counts them)."""
    for i, img in iter_json_array(path, bad, member="images"):
        if not isinstance(img, dict) or img.get("split") in splits:
            yield i, img


def keys(paths: list[Path], params: dict) -> tuple[set, set]:
    """(image keys, caption text hashes if ``params["texts"]``) of the images of ``params["splits"]``."""
    image_keys, texts = set(), set()
    for path in paths:
        for _, img in images(path, BadRows(max_bad=None, quiet=True), set(params["splits"])):
            if not isinstance(img, dict):
                continue
            key = coco_key(img.get("cocoid")) or coco_key(img.get("filename"))
            if key:
                image_keys.add(key)
            if params.get("texts"):
                texts.update(text_hash(s.get("raw")) for s in img.get("sentences") or [] if isinstance(s, dict))
    return image_keys, texts
