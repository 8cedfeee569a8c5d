"""POPE yes/no and MaRVL left/right/True/False on the bundled fixtures: the checks
test_eval_real.py makes on the real release files, here without ../shared, so a
clone (or CI) without the real files still sees a flipped label or side."""
from __future__ import annotations

import json

from tests.conftest import FIXTURES_RAW, root_sets
from tests.test_eval_checks import lines

IG = "iglue/datasets"


def test_pope_rows_keep_each_question_its_image_and_its_yes_no(tmp_path):
    from eval_data.pope.convert import main as pope
    report = pope(root_sets(tmp_path))
    out = tmp_path / "out" / "eval" / "pope"
    seen_labels = set()
    for split in ("adversarial", "popular", "random"):
        raw = lines(FIXTURES_RAW / f"pope/output/coco/coco_pope_{split}.json")
        # The converter's own rule (yes/no, any case and outer space; others skipped):
        # here written out from the raw file, then compared row by row, in order.
        want, seen = [], {}
        for r in raw:
            label = str(r.get("label", "")).strip().lower()
            content = (r.get("image"), r.get("text"), label)
            if label not in ("yes", "no") or seen.get(r.get("question_id")) == content:
                continue
            seen.setdefault(r.get("question_id"), content)
            want.append((" ".join(r["text"].split()), r["image"], label))
        rows = lines(out / f"pope_{split}.jsonl")
        assert [(r["context"], r["image_id"], r["text_label"]) for r in rows] == want
        assert len(rows) >= 2
        seen_labels |= {r["text_label"] for r in rows}
    assert seen_labels == {"yes", "no"}        # both answers occur, so a swap shows
    assert report is not None


def test_marvl_rows_keep_each_statement_its_sides_and_its_truth(tmp_path):
    from eval_data.marvl.convert import main as marvl
    marvl(root_sets(tmp_path))
    out = tmp_path / "out" / "eval" / "marvl"
    labels, sides_differ = set(), 0
    for lang in ("id", "sw", "ta", "tr", "zh"):
        raw = [r for r in lines(FIXTURES_RAW / f"{IG}/marvl/zero_shot/annotations/marvl-{lang}.jsonl")
               if r["label"] in (True, False)]          # the fixture's 'maybe' is skipped
        rows = lines(out / f"marvl_test_{lang}.jsonl")
        assert len(rows) == len(raw) > 0
        assert [r["text_label"] for r in rows] == ["True" if r["label"] else "False" for r in raw]
        assert [r["left_image"].rsplit("/", 1)[1] for r in rows] == [r["left_img"] for r in raw]
        assert [r["right_image"].rsplit("/", 1)[1] for r in rows] == [r["right_img"] for r in raw]
        assert [r["image_id"] for r in rows] == [r["left_image"] for r in rows]
        assert [r["left_image"].split("/")[0] for r in rows] == [lang] * len(rows)
        assert [r["context"] for r in rows] == [" ".join(r["caption"].split()) for r in raw]
        assert {r["language"] for r in rows} == {lang}
        labels |= {r["text_label"] for r in rows}
        sides_differ += sum(r["left_img"] != r["right_img"] for r in raw)
    assert labels == {"True", "False"} and sides_differ > 0


def test_nlvr2_rows_keep_their_sides_and_truth(tmp_path):
    from eval_data.marvl.convert import main as marvl
    marvl(root_sets(tmp_path))
    out = tmp_path / "out" / "eval" / "marvl"
    for name, rel in [("nlvr2_dev_en", "dev.jsonl"), ("nlvr2_test_en", "test.jsonl")]:
        raw = [r for r in lines(FIXTURES_RAW / f"{IG}/nlvr2/annotations/{rel}") if r["label"] in ("True", "False")]
        rows = lines(out / f"{name}.jsonl")
        assert [r["text_label"] for r in rows] == [r["label"] for r in raw]
        for r, src in zip(rows, raw):
            stem = src["identifier"].rsplit("-", 1)[0]
            assert r["left_image"].endswith(f"{stem}-img0.png") and r["right_image"].endswith(f"{stem}-img1.png")
