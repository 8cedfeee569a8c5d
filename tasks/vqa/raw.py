"""The VQAv2 release files, parsed in one place: the readers of their records
that the train and eval steps (``tasks/vqa/settings.py``) and the evaluation
keys of the ``vqav2`` set (every val question's image and text) use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from common.errors import UserError
from common.jsonl import BadRows, iter_json_array
from common.lean_json import load_json_lean, vqa_annotation_hook
from eval_data.keys import coco_key, text_hash


def questions(path: Path, bad: BadRows) -> Iterator[tuple[int, Any]]:
    """(index, record) of a question file's ``questions`` array, streamed one
    record at a time; a record that is not JSON or holds invalid UTF-8 goes to ``bad``."""
    yield from iter_json_array(path, bad, member="questions")


def annotations(path: Path, keep_answers: bool) -> list:
    """The ``annotations`` list of an annotation file, loaded whole (they are
    joined to the questions) with only the fields the join needs (common/lean_json.py)."""
    data = load_json_lean(path, vqa_annotation_hook(keep_answers))
    items = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UserError(f"{path}: expected a JSON object with a 'annotations' list")
    return items


def keys(paths: list[Path], params: dict) -> tuple[set, set]:
    """(image keys, question text hashes) of question files: the evaluation set ``vqav2``."""
    images, texts = set(), set()
    for path in paths:
        for _, q in questions(path, BadRows(max_bad=None, quiet=True)):
            if isinstance(q, dict):
                images.add(coco_key(q.get("image_id")))
                texts.add(text_hash(q.get("question")))
    return images, texts
