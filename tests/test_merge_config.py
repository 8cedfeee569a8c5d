"""merge_train's checks of its config and rows: the exact line a user reads
for each mistake (which key, which entry, what was expected)."""
from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import UserError
from common.languages import load_languages
from pretrain import merge_train

GOOD = {"path": "a.jsonl", "source": "mscoco"}


@pytest.mark.parametrize("items,message", [
    ([], "merge.inputs: need a non-empty list of {path, source[, images, optional]}"),
    ({"path": "a"}, "merge.inputs: need a non-empty list of {path, source[, images, optional]}"),
    (["a.jsonl"], "merge.inputs[0]: expected {path, source[, images, optional]}, got 'a.jsonl'"),
    ([GOOD, {**GOOD, "path": "b", "weight": 2, "lang": "de"}], "merge.inputs[1]: unknown key(s) ['lang', 'weight']"),
    ([{"path": "a.jsonl"}], "merge.inputs[0]: path and source must be non-empty strings"),
    ([{"path": "", "source": "x"}], "merge.inputs[0]: path and source must be non-empty strings"),
    ([{"path": "a", "source": ""}], "merge.inputs[0]: path and source must be non-empty strings"),
    ([{"path": 3, "source": "x"}], "merge.inputs[0]: path and source must be non-empty strings"),
    ([{**GOOD, "optional": "yes"}], "merge.inputs[0].optional must be true/false"),
    ([{**GOOD, "images": ""}], "merge.inputs[0].images must be a non-empty string"),
    ([{**GOOD, "images": 5}], "merge.inputs[0].images must be a non-empty string"),
    ([GOOD, {"path": "a.jsonl", "source": "vqav2"}], "merge.inputs[1]: a.jsonl is listed twice"),
])
def test_each_bad_input_entry_is_named(items, message):
    with pytest.raises(UserError) as e:
        merge_train.parse_inputs(items)
    assert str(e.value) == message


def test_inputs_get_their_defaults():
    got = merge_train.parse_inputs([GOOD, {"path": "b.jsonl", "source": "vqav2", "images": "coco", "optional": True}])
    assert got == [{"path": Path("a.jsonl"), "source": "mscoco", "images": "mscoco", "optional": False},
                   {"path": Path("b.jsonl"), "source": "vqav2", "images": "coco", "optional": True}]


@pytest.mark.parametrize("name,mapping,kind,message", [
    ("weights", {"coco": 1.0}, float, "merge.weights.coco: not a task of merge.tasks"),
    ("weights", {"mscoco": -0.5}, float, "merge.weights.mscoco: need a non-negative number"),
    ("weights", {"mscoco": True}, float, "merge.weights.mscoco: need a non-negative number"),
    ("weights", {"mscoco": "2"}, float, "merge.weights.mscoco: need a non-negative number"),
    ("caps", {"mscoco": 2.5}, int, "merge.caps.mscoco: need a non-negative integer"),
    ("caps", {"mscoco": -1}, int, "merge.caps.mscoco: need a non-negative integer"),
])
def test_each_bad_weight_or_cap_is_named(name, mapping, kind, message):
    with pytest.raises(UserError) as e:
        merge_train.check_numbers(name, mapping, ["mscoco", "vqav2_vqa"], kind)
    assert str(e.value) == message


def test_good_weights_and_caps_pass_unchanged():
    mapping = {"mscoco": 0, "vqav2_vqa": 2.5}
    assert merge_train.check_numbers("weights", mapping, ["mscoco", "vqav2_vqa"], float) is mapping
    assert merge_train.check_numbers("caps", {"mscoco": 0, "vqav2_vqa": 7}, ["mscoco", "vqav2_vqa"], int) == \
        {"mscoco": 0, "vqav2_vqa": 7}


ROW = {"context": "Describe it.", "label": "A dog.", "image_id": "1.jpg", "task": "mscoco", "lang": "de"}


@pytest.mark.parametrize("row,reason", [
    (["a"], "expected a JSON object, got list"),
    ({k: v for k, v in ROW.items() if k != "lang"}, "keys must be exactly context, label, image_id, task, lang "
                                                    "(missing ['lang'])"),
    ({**ROW, "id": 1, "extra": 2}, "keys must be exactly context, label, image_id, task, lang "
                                   "(unexpected ['extra', 'id'])"),
    ({**{k: v for k, v in ROW.items() if k != "task"}, "id": 1},
     "keys must be exactly context, label, image_id, task, lang (missing ['task']) (unexpected ['id'])"),
    ({**ROW, "image_id": 7}, "image_id must be a string, got int"),
    ({**ROW, "context": " \n"}, "context is empty"),
    ({**ROW, "task": "coco"}, "unknown task 'coco'"),
    ({**ROW, "lang": "xx"}, "unknown language code 'xx'"),
    (ROW, None),
])
def test_each_bad_row_says_why(row, reason):
    assert merge_train.check_row(row, {"mscoco"}, load_languages()) == reason
