"""No evaluation image in training (eval_data/decontam.py, eval_data/sets.py).

The reproductions of the issue on the fixtures: a LLaVA record on a Karpathy
test image and an A-OKVQA record on a Karpathy test image reached the
training files; MSCOCO restval holds a POPE image and a VQAv2 val image; a
CapFilt image is an NLVR2 dev image (by URL). Each is now dropped, counted
per task and evaluation set, unless that set's exclusion is switched off.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common import cli, pipeline, records, steptype
from eval_data import decontam
from eval_data.keys import coco_key, flickr_key, normal_text, text_hash, web_keys
from tests.conftest import FIXTURES_RAW, REPO, root_sets, translation_sets
from tasks.aokvqa import generate_train as aokvqa
from tasks.llava import generate_train as llava
from tasks.llava import translate_train as llava_translate


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def report(tmp: Path, step: str) -> dict:
    return json.loads((tmp / "work" / "reports" / f"{step}.json").read_text())["decontamination"]


def run_llava(tmp: Path, *extra: str) -> list[dict]:
    sets = [*root_sets(tmp), *translation_sets("dry-run", ""), "--set", "llava.languages=[en]", *extra]
    llava.main(sets)
    llava_translate.main(sets)
    llava.main(sets)
    out = tmp / "out" / "train"
    return rows(out / "llava_detail.jsonl") + rows(out / "llava_conversation.jsonl")


# -- keys and texts ----------------------------------------------------------------------------------
def test_image_keys():
    # every way a COCO image is named gives one key
    assert coco_key("COCO_val2014_000000203564.jpg") == coco_key("000000203564.jpg") == coco_key(203564) \
        == coco_key("val2014/COCO_val2014_000000203564.jpg") == "coco:203564"
    assert coco_key("COCO_train2014_000000000009.jpg") == "coco:9"
    assert coco_key("not-a-coco-name.jpg") is None and coco_key(True) is None
    assert flickr_key("1007129816.jpg") == flickr_key("1007129816") == "flickr:1007129816"
    # a Flickr photo crawled from any static server, at any size, is the Flickr30k photo
    for url in ("http://farm3.staticflickr.com/2723/1007129816_b0f291553e.jpg",
                "https://live.staticflickr.com/65535/1007129816_3ca1b2d4e5_z.jpg",
                "http://static.flickr.com/3081/1007129816_8c6b3efa34_m.jpg",
                "https://www.flickr.com/photos/someone/1007129816/"):
        assert "flickr:1007129816" in web_keys(url), url
    # URLs: scheme, www., host case and fragment do not matter; the path does
    assert web_keys("HTTP://WWW.Example.com/a/B.jpg#x")[0] == web_keys("https://example.com/a/B.jpg")[0]
    assert web_keys("https://example.com/a/b.jpg")[0] != web_keys("https://example.com/a/B.jpg")[0]
    assert web_keys("http://example.com/1007129816_b0f291553e.jpg") == ["url:example.com/1007129816_b0f291553e.jpg"]


def test_text_normalisation():
    assert normal_text("  What is the MAN riding?! ") == normal_text("what is the man riding") \
        == "what is the man riding"
    assert text_hash("A dog, running.") == text_hash("a dog running") and text_hash("...") is None
    assert normal_text("Ｆｕｌｌ－width") == "full width"   # NFKC, punctuation to space


# -- the sets on the fixtures ------------------------------------------------------------------------
def fixture_cfg(tmp: Path, *extra: str):
    return cli.load_config(pipeline.get("llava.final"), [*root_sets(tmp), *extra])


def test_eval_sets_read_from_the_raw_files(tmp_path):
    dec = decontam.Decontaminator(fixture_cfg(tmp_path), "coco")
    sets = {s.spec.name: s for s in dec.sets}
    assert sets["mscoco"].images == {"coco:391895", "coco:522418", "coco:184613", "coco:203564", "coco:179765"}
    assert sets["chair"].images == sets["mscoco"].images       # Karpathy val/test again
    assert sets["pope"].images == {"coco:310196", "coco:210789"}
    assert sets["vqav2"].images == {"coco:391895", "coco:522418", "coco:184613", "coco:203564", "coco:73"}
    assert sets["xflickrco"].images == {"coco:391895", "flickr:1009434119", "flickr:101362133"}
    assert "flickr:1007129816" in sets["flickr30k"].images
    assert "flickr:2537683592" in sets["xvnli"].images
    assert "url:127.0.0.1:18080/img/photo_02.jpg" in sets["nlvr2"].images
    # text-only sets: no image keys, a note saying why
    for name in ("xgqa", "marvl", "xm3600", "maxm"):
        assert sets[name].exclude is None and not sets[name].images and sets[name].spec.note and sets[name].texts
    assert text_hash("What is the man riding?") in sets["vqav2"].texts
    assert dec.hits([coco_key("COCO_val2014_000000203564.jpg")]) == {"mscoco", "chair", "vqav2"}


def test_llava_and_aokvqa_on_evaluation_images_are_dropped(tmp_path):
    """The issue's reproduction: the LLaVA record on Karpathy test image 203564 and the
    A-OKVQA record on Karpathy test image 179765 no longer reach the training files."""
    got = run_llava(tmp_path)
    images = {r["image_id"] for r in got}
    assert "COCO_val2014_000000203564.jpg" not in images          # Karpathy test (LLaVA detail)
    assert "COCO_val2014_000000310196.jpg" not in images          # POPE (LLaVA conversation)
    assert "COCO_val2014_000000000073.jpg" not in images          # VQAv2 val (restval)
    assert "COCO_train2014_000000000009.jpg" in images
    dec = report(tmp_path, "llava.final")
    assert dec["tasks"]["llava_detail"]["dropped_by_eval_set"] == {"chair": 1, "mscoco": 1, "vqav2": 1}
    assert dec["tasks"]["llava_conversation"]["dropped_by_eval_set"] == {"pope": 1, "vqav2": 1}
    assert dec["tasks"]["llava_conversation"]["rows_dropped"] == 2 and dec["exclusion_off"] == []
    # the VQAv2 val question asked word for word in a kept LLaVA turn: counted, kept, shown
    conv = dec["tasks"]["llava_conversation"]
    assert conv["rows_with_identical_text"] == 1 and conv["identical_text_by_eval_set"] == {"vqav2": 1}
    assert conv["identical_text_examples"][0]["text"] == "What is the man riding?"
    assert any(r["context"] == "What is the man riding?" for r in got)

    aokvqa.main(root_sets(tmp_path))
    cot = rows(tmp_path / "out" / "train" / "aokvqa_cot.jsonl")
    assert "COCO_val2014_000000179765.jpg" not in {r["image_id"] for r in cot}
    dec = report(tmp_path, "aokvqa.generate")
    for task in ("aokvqa_cot", "aokvqa_explain"):
        assert dec["tasks"][task]["rows_dropped"] == 1
        assert dec["tasks"][task]["dropped_by_eval_set"] == {"chair": 1, "mscoco": 1}


def test_switching_an_exclusion_off_keeps_its_images_and_says_so(tmp_path):
    """Before this work every row got through: with every exclusion off, the LLaVA
    and A-OKVQA rows on Karpathy test images are in the training files again."""
    off = [x for name in decontam.DEFAULTS["exclude"] for x in ("--set", f"decontam.exclude.{name}=false")]
    got = run_llava(tmp_path, *off)
    assert {"COCO_val2014_000000203564.jpg", "COCO_val2014_000000310196.jpg"} <= {r["image_id"] for r in got}
    dec = report(tmp_path, "llava.final")
    # the sets whose images can be COCO images (the web-only ones do not apply to LLaVA)
    assert dec["exclusion_off"] == ["chair", "mscoco", "pope", "vqav2", "xflickrco"]
    assert dec["eval_sets"]["nlvr2"]["exclude"] is None and dec["eval_sets"]["nlvr2"]["applies"] is False
    assert dec["tasks"]["llava_detail"]["rows_dropped"] == 0
    assert dec["tasks"]["llava_detail"]["kept_with_eval_image_by_eval_set"] == {"chair": 1, "mscoco": 1, "vqav2": 1}
    aokvqa.main([*root_sets(tmp_path), *off])
    assert "COCO_val2014_000000179765.jpg" in {r["image_id"] for r in
                                               rows(tmp_path / "out" / "train" / "aokvqa_cot.jsonl")}

    # One set off: only its images come back.
    got = run_llava(tmp_path / "one", "--set", "decontam.exclude.pope=false")
    images = {r["image_id"] for r in got}
    assert "COCO_val2014_000000310196.jpg" in images and "COCO_val2014_000000203564.jpg" not in images
    dec = report(tmp_path / "one", "llava.final")
    assert dec["exclusion_off"] == ["pope"]
    assert dec["tasks"]["llava_conversation"]["kept_with_eval_image_by_eval_set"] == {"pope": 1}


def test_a_missing_evaluation_file_stops_the_step_unless_its_exclusion_is_off(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW, raw, ignore=shutil.ignore_patterns("web", "imagenet", "xm3600"))
    (raw / "pope" / "output" / "coco" / "coco_pope_random.json").unlink()
    base = [sys.executable, "tasks/aokvqa/generate_train.py", *root_sets(tmp_path, raw)]
    r = subprocess.run(base, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "coco_pope_random.json" in r.stderr and "decontam.exclude.pope=false" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([*base, "--set", "decontam.exclude.pope=false"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    dec = report(tmp_path, "aokvqa.generate")
    assert dec["eval_sets"]["pope"]["missing_files"][0].endswith("coco_pope_random.json")
    assert dec["exclusion_off"] == ["pope"]


def test_sets_are_cached_by_the_raw_files_fingerprints(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW, raw, ignore=shutil.ignore_patterns("web", "imagenet", "xm3600"))
    cfg = fixture_cfg(tmp_path, "--set", f"paths.raw_root={raw}")
    from eval_data import sets
    from eval_data.pope import convert as pope_convert
    calls = []
    real = pope_convert.keys

    def counting(paths, params):
        calls.append(len(paths))
        return real(paths, params)
    patched = [s if s.name != "pope" else sets.EvalSet(**{**s.__dict__, "read": counting})
               for s in sets.SETS]
    monkeypatch.setattr(decontam, "SETS", tuple(patched))
    first = decontam.load_sets(cfg, "coco")
    assert calls == [3] and (tmp_path / "work" / "decontam" / "pope.json").is_file()
    second = decontam.load_sets(cfg, "coco")
    assert calls == [3]                                  # read from the cache
    assert [s.images for s in first] == [s.images for s in second]
    pope = raw / "pope" / "output" / "coco" / "coco_pope_random.json"
    pope.write_text(pope.read_text() + json.dumps({"question_id": 99, "image": "COCO_val2014_000000000042.jpg",
                                                   "text": "Is there a dog in the image?", "label": "yes"}) + "\n")
    third = {s.spec.name: s for s in decontam.load_sets(cfg, "coco")}
    assert calls == [3, 3] and "coco:42" in third["pope"].images   # the changed file is read again


def test_status_notices_a_changed_evaluation_file(tmp_path):
    """The raw evaluation files are reads of every step that writes a final training
    file: changing one makes those steps stale (not the ones that do not read it)."""
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW, raw, ignore=shutil.ignore_patterns("web", "imagenet", "xm3600"))
    sets = root_sets(tmp_path, raw)
    aokvqa.main(sets)
    step = pipeline.get("aokvqa.generate")
    cfg = cli.load_config(step, sets)
    assert records.state(step, cfg).status == "done"
    assert any(str(p).endswith("coco_pope_adversarial.json") for p in records.inputs(step, cfg))
    pope = raw / "pope" / "output" / "coco" / "coco_pope_adversarial.json"
    pope.write_text(pope.read_text() + "\n")
    st = records.state(step, cfg)
    assert st.status == "stale" and "coco_pope_adversarial.json" in st.reason
    # the switches shape the output: a changed one is a changed config
    cfg_off = cli.load_config(step, [*sets, "--set", "decontam.exclude.vqav2=false"])
    aokvqa.main(sets)
    assert records.state(step, cfg).status == "done"
    assert "decontam.exclude.vqav2" in records.state(step, cfg_off).reason


@pytest.mark.parametrize("step_id, collection", [
    ("capfilt.final", "web"), ("match.final", "web"), ("mscoco.final", "coco"), ("vqav2.final", "coco"),
    ("aokvqa.generate", "coco"), ("llava.final", "coco")])
def test_every_final_training_step_reads_the_evaluation_files(step_id, collection):
    step = pipeline.get(step_id)
    assert getattr(decontam, f"{collection}_inputs") in step.reads and "decontam" in step.shaped_by
    assert "decontam" in steptype.schema(step)
    cfg = cli.load_config(step, root_sets("/tmp/unused"))
    names = {Path(p).name for p in records.inputs(step, cfg)}
    if collection == "coco":
        assert {"dataset_coco.json", "coco_pope_popular.json", "v2_OpenEnded_mscoco_val2014_questions.json"} <= names
    else:
        assert {"test_ann.jsonl", "dev.jsonl"} <= names and "dataset_coco.json" not in names


def test_web_steps_need_only_the_web_sets(tmp_path):
    """CapFilt and matching images are web images: the COCO sets' files may be
    missing; the web sets' files may not, and the one error names every switch."""
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW / "iglue", raw / "iglue")
    cfg = cli.load_config(pipeline.get("capfilt.final"), root_sets(tmp_path, raw))
    dec = decontam.Decontaminator(cfg, "web")
    assert dec.hits(web_keys("http://127.0.0.1:18080/img/photo_02.jpg")) == {"nlvr2"}
    assert dec.hits([coco_key(310196)]) == set()                # POPE does not apply to web images
    shutil.rmtree(raw / "iglue" / "datasets" / "nlvr2")
    shutil.rmtree(raw / "iglue" / "datasets" / "flickr30k")
    with pytest.raises(decontam.UserError) as e:
        decontam.Decontaminator(cli.load_config(pipeline.get("capfilt.final"), root_sets(tmp_path, raw)), "web")
    msg = str(e.value)
    assert "flickr30k, nlvr2" in msg and "valid_ann.jsonl" in msg and "\n" not in msg
    assert "--set decontam.exclude.flickr30k=false --set decontam.exclude.nlvr2=false" in msg
