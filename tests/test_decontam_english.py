"""Rows on evaluation images leave before translation (CapFilt, matching): the
English run drops and counts them, the translate step never sees them, the
final file has none, the final step's report keeps the counts, and a row
smuggled into the translated intermediate stops the final run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from common import cli, pipeline
from common.errors import UserError
from match import generate_match_train as match_gen
from match import hard_match
from match import translate_match_train as match_tr
from pretrain import generate_train as capfilt_gen
from pretrain import translate_train as capfilt_tr
from tests.conftest import root_sets, translation_sets
from tests.test_match_hard_match import make_data, sets as match_sets, tiny_clip  # noqa: F401 (a fixture)

NLVR2_URL = "http://127.0.0.1:18080/img/photo_02.jpg"     # an NLVR2 dev image of the fixtures


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def dropped(report_path: Path, task: str) -> dict:
    t = json.loads(report_path.read_text())["decontamination"]["tasks"][task]
    return {"checked": t["rows_checked"], "dropped": t["rows_dropped"], "by_set": t["dropped_by_eval_set"]}


def capfilt_sets(tmp_path: Path) -> list[str]:
    work, images = tmp_path / "work", tmp_path / "work" / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range(6):
        rid = f"{i:016x}"
        Image.new("RGB", (8, 8), (i, 0, 0)).save(images / f"{rid}.jpg")
        rows.append({"id": rid, "url": NLVR2_URL if i == 2 else f"http://h/{i}.jpg",
                     "caption": f"a photo of thing number {i}", "image_id": f"{rid}.jpg"})
    (work / "capfilt").mkdir()
    (work / "capfilt" / "capfilt_downloaded.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [*root_sets(tmp_path), *translation_sets("dry-run", ""), "--set", "generate.step=english"]


def test_capfilt_drops_evaluation_images_before_translation(tmp_path):
    sets = capfilt_sets(tmp_path)
    capfilt_gen.main(sets)
    work = tmp_path / "work"
    english = read(work / "capfilt" / "capfilt_en.jsonl")
    assert len(english) == 5 and NLVR2_URL not in {r["url"] for r in english}
    assert dropped(work / "reports" / "capfilt.english.json", "capfilt") == \
        {"checked": 6, "dropped": 1, "by_set": {"nlvr2": 1}}
    capfilt_tr.main(sets[:-2])
    translated = work / "capfilt" / "capfilt_translated.jsonl"
    assert NLVR2_URL not in {r.get("url") for r in read(translated)}
    capfilt_gen.main([*sets[:-2], "--set", "generate.step=final"])
    final = read(tmp_path / "out" / "train" / "capfilt.jsonl")
    assert len(final) == 5 and f"{2:016x}.jpg" not in {r["image_id"] for r in final}
    assert dropped(work / "reports" / "capfilt.final.json", "capfilt") == \
        {"checked": 6, "dropped": 1, "by_set": {"nlvr2": 1}}

    # The final assertion: a row on an evaluation image smuggled into the translated file.
    rows = read(translated)
    rows.append({**rows[0], "id": "smuggled", "url": NLVR2_URL})
    translated.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = cli.load_config(pipeline.get("capfilt.final"), sets[:-2])
    with pytest.raises(UserError) as e:
        capfilt_gen.final_run(cfg, sets[:-2])
    assert "nlvr2" in str(e.value) and "capfilt.english" in str(e.value) and "generate.step=english" in str(e.value)


def test_matching_drops_evaluation_images_before_translation(tmp_path, tiny_clip):  # noqa: F811
    data = make_data(tmp_path)
    rows = [{**r, "url": NLVR2_URL if r["image_id"] == "sub/000.jpg" else f"http://h/{r['id']}.jpg"}
            for r in data["rows"]]
    data["src"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    on_eval = sum(r["image_id"] == "sub/000.jpg" for r in rows)
    sets = match_sets(tmp_path, tiny_clip) + translation_sets("dry-run", "")
    hard_match.main(sets)
    work = tmp_path / "work"
    mined = read(work / "match" / "capfilt_match_en.jsonl")
    assert on_eval and "sub/000.jpg" not in {r["image_id"] for r in mined}
    assert dropped(work / "reports" / "match.mine.json", "capfilt_match") == \
        {"checked": len(rows), "dropped": on_eval, "by_set": {"nlvr2": on_eval}}
    match_tr.main(sets)
    translated = work / "match" / "capfilt_match_translated.jsonl"
    assert "sub/000.jpg" not in {r["image_id"] for r in read(translated)}
    match_gen.main(sets)
    final = read(tmp_path / "out" / "train" / "capfilt_match.jsonl")
    assert final and "sub/000.jpg" not in {r["image_id"] for r in final}
    assert dropped(work / "reports" / "match.final.json", "capfilt_match") == \
        {"checked": len(rows), "dropped": on_eval, "by_set": {"nlvr2": on_eval}}

    rows = read(translated)
    rows.append({**rows[0], "id": "smuggled", "image_id": "sub/000.jpg"})
    translated.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = cli.load_config(pipeline.get("match.final"), sets)
    templates = match_gen.parse_templates(cfg.at("generate.templates"))
    with pytest.raises(UserError) as e:
        match_gen.generate(cfg, translated, templates, sets)
    assert "nlvr2" in str(e.value) and "match.mine" in str(e.value)
