"""Which rows the merge keeps (pretrain/merge_train.py): rows equal in all five
keys are one example (the first kept, in input order), rows that differ in any
one key are all kept; merge.seed decides the sample and the order, and only it."""
from __future__ import annotations

import json

import pytest
import yaml

from pretrain import merge_train
from tests.conftest import root_sets

BASE = {"context": "Describe it.", "label": "A house.", "image_id": "1.jpg", "task": "mscoco", "lang": "en"}


def run(tmp, files: dict[str, list[dict]], seed=0, weights=None, caps=None, capsys=None):
    train = tmp / "out" / "train"
    train.mkdir(parents=True, exist_ok=True)
    inputs = []
    for name, rows in files.items():
        (train / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        inputs.append({"path": str(train / name), "source": name.split(".")[0]})
    cfg = {"merge": {"inputs": inputs, "seed": seed, "weights": weights or {}, "caps": caps or {},
                     "output": str(train / "task_mix.jsonl"), "report": str(train / "task_mix_report.json")}}
    (tmp / "merge.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    merge_train.main(["--config", str(tmp / "merge.yaml"), *root_sets(tmp)])
    mix = [json.loads(x) for x in (train / "task_mix.jsonl").read_text(encoding="utf-8").splitlines()]
    report = json.loads((tmp / "work" / "reports" / "merge.json").read_text(encoding="utf-8"))
    return mix, report


@pytest.mark.parametrize("key,other", [("context", "Describe it!"), ("label", "A home."), ("image_id", "2.jpg"),
                                       ("lang", "de")])
def test_rows_differing_in_one_key_are_all_kept(tmp_path, key, other):
    rows = [BASE, {**BASE, key: other}]
    mix, report = run(tmp_path, {"mscoco.jsonl": rows})
    assert sorted(map(json.dumps, mix)) == sorted(map(json.dumps, rows))
    assert report["duplicates_dropped"] == {}


def test_the_same_example_under_two_tasks_is_kept_in_each(tmp_path):
    rows = [BASE, {**BASE, "task": "vqav2_vqa"}]
    mix, report = run(tmp_path, {"mscoco.jsonl": rows[:1], "vqav2_vqa.jsonl": rows[1:]})
    assert len(mix) == 2 and report["duplicates_dropped"] == {}


def test_rows_equal_in_all_five_keys_are_one_example_the_first_kept(tmp_path, capsys):
    a = [BASE, {**BASE, "label": "Other."}, BASE, dict(reversed(list(BASE.items())))]   # key order does not matter
    b = [BASE, {**BASE, "image_id": "9.jpg"}]
    mix, report = run(tmp_path, {"mscoco.jsonl": a, "more.jsonl": b})
    assert sorted(map(json.dumps, mix)) == sorted(map(json.dumps, [BASE, {**BASE, "label": "Other."},
                                                                   {**BASE, "image_id": "9.jpg"}]))
    assert report["duplicates_dropped"] == {"mscoco": 3}
    err = capsys.readouterr().err
    train = tmp_path / "out" / "train"
    # The message names the dropped copies (not the kept first one), at most three.
    assert f"e.g. {train / 'mscoco.jsonl'}:3; {train / 'mscoco.jsonl'}:4; {train / 'more.jsonl'}:1" in err
    assert "dropped 3 duplicated rows" in err and f"{train / 'mscoco.jsonl'}:1;" not in err


def test_the_kept_copy_is_the_first_in_input_order(tmp_path):
    """The first copy is the one counted for its file's source (its report row)."""
    mix, report = run(tmp_path, {"mscoco.jsonl": [BASE], "second.jsonl": [BASE, {**BASE, "lang": "fr"}]})
    assert len(mix) == 2
    assert report["inputs"] == {str(tmp_path / "out/train/mscoco.jsonl"): {"mscoco": 1},
                                str(tmp_path / "out/train/second.jsonl"): {"mscoco": 2}}


def many(n=200):
    return [{**BASE, "context": f"Describe {i}.", "lang": ["en", "de", "fr"][i % 3]} for i in range(n)]


def test_merge_seed_decides_the_sample_and_the_order(tmp_path):
    rows = many()
    mixes = {}
    for seed in (0, 1):
        mix, _ = run(tmp_path / f"s{seed}", {"mscoco.jsonl": rows}, seed=seed, weights={"mscoco": 0.5})
        mixes[seed] = [r["context"] for r in mix]
    again, _ = run(tmp_path / "again", {"mscoco.jsonl": rows}, seed=1, weights={"mscoco": 0.5})
    assert [r["context"] for r in again] == mixes[1]                    # the same seed: the same mix
    assert len(mixes[0]) == len(mixes[1]) == 100
    assert set(mixes[0]) != set(mixes[1])                                 # another sample
    full0, _ = run(tmp_path / "f0", {"mscoco.jsonl": rows}, seed=0)
    full1, _ = run(tmp_path / "f1", {"mscoco.jsonl": rows}, seed=1)
    assert sorted(map(json.dumps, full0)) == sorted(map(json.dumps, full1))   # everything kept ...
    assert full0 != full1                                                     # ... in another order
    assert [r["context"] for r in full0] != [r["context"] for r in rows]      # shuffled


def test_the_seed_is_the_only_source_of_randomness(tmp_path, monkeypatch):
    """Python's hash seed and numpy's global state do not change the mix."""
    import numpy as np
    rows = many(60)
    first, _ = run(tmp_path / "a", {"mscoco.jsonl": rows}, seed=5, caps={"mscoco": 30})
    np.random.seed(123)
    import random
    random.seed(9)
    second, _ = run(tmp_path / "b", {"mscoco.jsonl": rows}, seed=5, caps={"mscoco": 30})
    assert first == second and len(first) == 30


def test_caps_and_fractions_draw_from_the_rows_without_repeats(tmp_path):
    rows = many(90)
    mix, _ = run(tmp_path, {"mscoco.jsonl": rows}, seed=2, weights={"mscoco": 2.5}, caps={"mscoco": 200})
    counts = {}
    for r in mix:
        counts[r["context"]] = counts.get(r["context"], 0) + 1
    assert len(mix) == 200 and set(counts.values()) <= {1, 2, 3} and max(counts.values()) <= 3


def test_the_duplicate_message_counts_what_was_dropped_and_shows_three(tmp_path, capsys):
    """Five copies of one row, two of another in a second task: 5 dropped, three examples named."""
    a = [BASE] * 4 + [{**BASE, "context": "Other row."}] + [BASE] * 2
    b = [{**BASE, "task": "vqav2_vqa"}] * 2
    mix, report = run(tmp_path, {"mscoco.jsonl": a, "vqav2_vqa.jsonl": b})
    assert len(mix) == 3 and report["duplicates_dropped"] == {"mscoco": 5, "vqav2_vqa": 1}
    err = capsys.readouterr().err
    f = tmp_path / "out" / "train" / "mscoco.jsonl"
    assert (f"dropped 6 duplicated rows (equal in context, label, image_id, task, lang; the first is kept): "
            f"{{'mscoco': 5, 'vqav2_vqa': 1}}, e.g. {f}:2; {f}:3; {f}:4\n") in err


def test_a_cap_at_the_row_count_changes_nothing_and_weight_zero_drops_a_task(tmp_path):
    rows = many(40)
    free, _ = run(tmp_path / "a", {"mscoco.jsonl": rows, "vqav2_vqa.jsonl": [{**BASE, "task": "vqav2_vqa"}]}, seed=4)
    capped, _ = run(tmp_path / "b", {"mscoco.jsonl": rows, "vqav2_vqa.jsonl": [{**BASE, "task": "vqav2_vqa"}]},
                    seed=4, caps={"mscoco": 40})
    assert capped == free
    none, report = run(tmp_path / "c", {"mscoco.jsonl": rows, "vqav2_vqa.jsonl": [{**BASE, "task": "vqav2_vqa"}]},
                       seed=4, weights={"mscoco": 0})
    assert none == [{**BASE, "task": "vqav2_vqa"}]


def test_a_row_of_another_task_in_a_tasks_file_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run(tmp_path, {"vqav2_vqa.jsonl": [{**BASE, "task": "vqav2_vqa"}, BASE]})
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2
    assert err == (f"error: {tmp_path / 'out/train/vqav2_vqa.jsonl'}:2: task 'mscoco' does not belong in this file "
                   "(it holds vqav2_vqa): a file of another step?")


def test_zh_rows_in_traditional_characters_are_counted_in_a_warning(tmp_path, capsys):
    rows = [{**BASE, "lang": "zh", "context": "描述這張圖片。"}, {**BASE, "lang": "zh", "label": "這是一隻貓。"},
            {**BASE, "lang": "zh", "context": "描述这张图片。"}, {**BASE, "lang": "ja", "context": "這の写真"}]
    mix, _ = run(tmp_path, {"mscoco.jsonl": rows})
    f = tmp_path / "out" / "train" / "mscoco.jsonl"
    err = capsys.readouterr().err
    assert f"[merge] warning: {f}: 2 zh rows hold Traditional characters\n" in err
    assert f"[merge] {f}: 4 rows\n" in err
    assert sorted(map(json.dumps, mix)) == sorted(map(json.dumps, rows))     # read back by byte offset
    run(tmp_path / "b", {"mscoco.jsonl": rows[2:]})
    assert "Traditional" not in capsys.readouterr().err


def test_blank_lines_are_skipped_and_lines_are_counted_by_bytes(tmp_path, capsys):
    train = tmp_path / "out" / "train"
    train.mkdir(parents=True)
    rows = [BASE, {**BASE, "context": "x"}, BASE, BASE]
    text = "\n" + "".join(json.dumps(r) + "\n" + ("\n" if i == 1 else "") for i, r in enumerate(rows))
    (train / "mscoco.jsonl").write_text(text, encoding="utf-8")
    cfg = {"merge": {"inputs": [{"path": str(train / "mscoco.jsonl"), "source": "mscoco"}],
                     "output": str(train / "task_mix.jsonl"), "report": str(train / "task_mix_report.json")}}
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    merge_train.main(["--config", str(tmp_path / "merge.yaml"), *root_sets(tmp_path)])
    mix = [json.loads(x) for x in (train / "task_mix.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(map(json.dumps, mix)) == sorted(map(json.dumps, rows[:2]))
    assert f"e.g. {train / 'mscoco.jsonl'}:5; {train / 'mscoco.jsonl'}:6\n" in capsys.readouterr().err
