"""eval_data/decontam.py to the letter, on the fixtures' evaluation sets: what a
row's image and texts do to the counts, the report and its printed lines, the
per-set summaries, the cache of each set, the configs the sets are read with,
and which CapFilt images are evaluation images. (The end-to-end reproductions
are in test_decontam.py; ``make mutation`` runs both against the module.)"""
from __future__ import annotations

import io
import json
import shutil

import pytest

from common import cli, pipeline
from eval_data import decontam
from eval_data.keys import coco_key, text_hash
from eval_data.sets import BY_NAME
from common.jsonl import write_jsonl
from tests.conftest import REPO, root_sets

POPE_QUESTION = "Is there a snowboard in the image?"        # a text of the POPE fixture


def cfg_for(tmp, *extra, step="llava.final", config=None):
    args = ([] if config is None else ["--config", str(config)]) + [*root_sets(tmp), *extra]
    return cli.load_config(pipeline.get(step), args)


def row(image, context="Describe the image.", label="A photo.", lang="de"):
    return {"context": context, "label": label, "image_id": image, "task": "t", "lang": lang}


@pytest.fixture()
def dec(tmp_path):
    return decontam.Decontaminator(cfg_for(tmp_path), "coco")


def sets_of(dec, key):
    return {s.spec.name for s in dec.sets if s.exclude is not None and key in s.images}


def test_keep_counts_by_set_and_language(dec):
    image = "COCO_val2014_000000391895.jpg"
    hit = sets_of(dec, coco_key(image))
    assert {"mscoco", "vqav2"} <= hit and dec.excluded >= hit
    assert dec.keep("t", [coco_key(image), None], row(image, lang="sw")) is False
    assert dec.keep("t", [coco_key(image)], row(image, lang="sw")) is False
    assert dec.keep("t", [None, "coco:1"], row("COCO_train2014_000000000001.jpg")) is True
    c = dec.tasks["t"].as_dict()
    assert c == {"rows_checked": 3, "rows_dropped": 2, "dropped_by_eval_set": {n: 2 for n in sorted(hit)},
                 "kept_with_eval_image_by_eval_set": {}, "dropped_by_language": {"sw": 2},
                 "rows_with_identical_text": 0, "identical_text_by_eval_set": {}, "identical_text_examples": []}
    assert dec.hits([None, coco_key(image), "coco:1"]) == hit and dec.hits([]) == set()


def test_identical_texts_are_counted_with_five_examples(dec):
    pope = next(s for s in dec.sets if s.spec.name == "pope")
    assert text_hash(POPE_QUESTION) in pope.texts
    for k in range(7):
        field = {"context": POPE_QUESTION} if k % 2 else {"label": POPE_QUESTION.upper() + " " * k}
        assert dec.keep("t", ["coco:1"], {**row("x.jpg"), **field}) is True
    assert dec.keep("u", ["coco:1"], row("x.jpg", context=POPE_QUESTION, label=POPE_QUESTION)) is True
    t, u = dec.tasks["t"], dec.tasks["u"]
    assert t.identical == 7 and t.identical_by_set["pope"] == 7 and len(t.examples) == 5
    assert t.examples[0] == {"task": "t", "field": "label", "text": POPE_QUESTION.upper(),
                             "eval_sets": list(dec.texts[text_hash(POPE_QUESTION)])}
    assert t.examples[1]["field"] == "context" and t.examples[1]["text"] == POPE_QUESTION
    assert u.identical == 1 and u.examples[0]["field"] == "context"            # one row, counted once
    long = "x" * 300
    dec.texts[text_hash(long)] = ("maxm",)
    dec.keep("v", ["coco:1"], row("x.jpg", label=long))
    assert dec.tasks["v"].examples[0]["text"] == "x" * 200


def test_filter_report_key_and_printed_lines(tmp_path):
    on = decontam.Decontaminator(cfg_for(tmp_path), "coco")
    off = decontam.Decontaminator(cfg_for(tmp_path, "--set", "decontam.exclude.pope=false"), "coco")
    assert on.key() == decontam.Decontaminator(cfg_for(tmp_path), "coco").key() != off.key()
    pope_image = "COCO_val2014_000000310196.jpg"
    assert sets_of(off, coco_key(pope_image)) == {"pope"}
    pairs = [("a", row(pope_image)), ("a", row("COCO_train2014_000000000009.jpg")), ("b", row(pope_image))]
    kept = list(off.filter(pairs, decontam.coco_keys))
    assert kept == pairs and [t for t, _ in on.filter(pairs, decontam.coco_keys)] == ["a"]
    rep = off.report()
    assert rep["exclusion_off"] == ["pope"] and rep["key"] == off.key()
    assert rep["tasks"]["a"]["kept_with_eval_image_by_eval_set"] == {"pope": 1}
    assert rep["eval_sets"] == {s.spec.name: s.summary() for s in off.sets}
    assert decontam.summary_lines(rep) == [
        "[decontam] a: 0 of 2 rows dropped (evaluation images of: none); 0 kept rows with a text identical to an "
        "evaluation text",
        "[decontam] a: kept with an evaluation image (exclusion off): pope 1",
        "[decontam] b: 0 of 1 rows dropped (evaluation images of: none); 0 kept rows with a text identical to an "
        "evaluation text",
        "[decontam] b: kept with an evaluation image (exclusion off): pope 1",
        "[decontam] exclusion OFF for: pope (their images stay in training; decontam.exclude.<set>)"]
    assert decontam.summary_lines(on.report()) == [
        "[decontam] a: 1 of 2 rows dropped (evaluation images of: pope 1); 0 kept rows with a text identical to an "
        "evaluation text",
        "[decontam] b: 1 of 1 rows dropped (evaluation images of: pope 1); 0 kept rows with a text identical to an "
        "evaluation text"]
    out = io.StringIO()
    off.print(out)
    assert out.getvalue() == "".join(line + "\n" for line in decontam.summary_lines(rep))
    assert decontam.summary_lines({}) == []


def test_summary_lines_of_several_sets():
    rep = {"tasks": {"t": {"rows_checked": 9, "rows_dropped": 3, "dropped_by_eval_set": {"mscoco": 3, "vqav2": 2},
                           "kept_with_eval_image_by_eval_set": {"pope": 1, "chair": 2},
                           "rows_with_identical_text": 4}},
           "exclusion_off": ["chair", "pope"]}
    assert decontam.summary_lines(rep) == [
        "[decontam] t: 3 of 9 rows dropped (evaluation images of: mscoco 3, vqav2 2); 4 kept rows with a text "
        "identical to an evaluation text",
        "[decontam] t: kept with an evaluation image (exclusion off): pope 1, chair 2",
        "[decontam] exclusion OFF for: chair, pope (their images stay in training; decontam.exclude.<set>)"]


def test_loaded_summaries():
    coco, xgqa = BY_NAME["mscoco"], BY_NAME["xgqa"]
    L = decontam.Loaded
    assert L(coco, True, frozenset({"a", "b"}), frozenset({1}), ["f"]).summary() == \
        {"title": coco.title, "exclude": True, "images": 2, "texts": 1, "files": ["f"]}
    assert L(coco, None, frozenset({"a"}), frozenset(), ["f"]).summary() == \
        {"title": coco.title, "exclude": None, "images": 1, "texts": 0, "files": ["f"], "applies": False}
    assert L(coco, False, frozenset(), frozenset(), [], ["gone.json"]).summary() == \
        {"title": coco.title, "exclude": False, "images": None, "texts": 0, "files": [], "missing_files": ["gone.json"]}
    assert L(xgqa, None, frozenset(), frozenset({1, 2}), ["q"]).summary() == \
        {"title": xgqa.title, "exclude": None, "images": None, "texts": 2, "files": ["q"], "note": xgqa.note}
    assert decontam.TaskCounts().as_dict()["rows_checked"] == 0


def test_each_set_is_cached_until_its_files_or_params_change(tmp_path):
    spec = BY_NAME["pope"]
    files = sorted((REPO / "tests" / "fixtures" / "raw" / "pope" / "output" / "coco").glob("*.json"))
    cache = tmp_path / "cache"
    images, texts = decontam._cached(spec, files, {}, cache)
    stored = json.loads((cache / "pope.json").read_text())
    assert stored["version"] == decontam.CACHE_VERSION and stored["set"] == "pope" and stored["params"] == {}
    assert stored["images"] == sorted(images) and stored["texts"] == sorted(texts) and set(stored["files"]) == \
        {str(p) for p in files}
    calls = []

    def read(fs, params):
        calls.append(params)
        return {"coco:1", None}, {7, None}
    fake = decontam.EvalSet(spec.name, spec.title, spec.config, spec.files, read)
    assert decontam._cached(fake, files, {}, cache) == (images, texts) and calls == []          # cached
    assert decontam._cached(fake, files, {"p": 1}, cache) == ({"coco:1"}, {7}) and calls == [{"p": 1}]
    assert decontam._cached(fake, files, {"p": 1}, cache) == ({"coco:1"}, {7}) and len(calls) == 1
    assert decontam._cached(fake, files[:1], {"p": 1}, cache) == ({"coco:1"}, {7}) and len(calls) == 2  # other files
    stored = json.loads((cache / "pope.json").read_text())
    (cache / "pope.json").write_text(json.dumps({**stored, "version": decontam.CACHE_VERSION + 1}))
    decontam._cached(fake, files[:1], {"p": 1}, cache)
    assert len(calls) == 3
    (cache / "pope.json").write_text("{not json")
    decontam._cached(fake, files[:1], {"p": 1}, cache)
    assert len(calls) == 4
    copy = tmp_path / "copy.json"
    shutil.copy(files[0], copy)
    decontam._cached(fake, [copy], {"p": 1}, cache)
    copy.write_text(copy.read_text().replace("snowboard", "skateboard"))
    decontam._cached(fake, [copy], {"p": 1}, cache)                          # content changed
    assert len(calls) == 6
    assert decontam._cached(fake, [copy], {"p": 1}, None) == ({"coco:1"}, {7}) and len(calls) == 7   # no cache


def test_eval_configs_follow_the_steps_config_folder_and_paths(tmp_path):
    decontam._BUILT.clear()
    own = tmp_path / "my configs"
    own.mkdir()
    for name in ("llava", "paths", "translation", "decontam"):
        if (REPO / "configs" / f"{name}.yaml").is_file():
            shutil.copy(REPO / "configs" / f"{name}.yaml", own / f"{name}.yaml")
    (own / "mscoco.yaml").write_text((REPO / "configs" / "mscoco.yaml").read_text())
    cfg = cfg_for(tmp_path, config=own / "llava.yaml")
    got = decontam.eval_configs(cfg)
    assert set(got) == {"mscoco", "vqav2", "eval_data"}
    assert got["mscoco"].source == str(own / "mscoco.yaml")                       # next to the step's config
    assert got["vqav2"].source == str(REPO / "configs" / "vqav2.yaml")            # else configs/
    assert got["eval_data"].at("paths.raw_root") == cfg.at("paths.raw_root")
    assert got["mscoco"].at("paths.work_dir") == cfg.at("paths.work_dir")
    assert decontam.eval_configs(cfg) is got                                      # built once per folder and paths
    plain = decontam.eval_configs(cfg_for(tmp_path))
    assert plain["mscoco"].source == str(REPO / "configs" / "mscoco.yaml")
    other = decontam.eval_configs(cfg_for(tmp_path / "elsewhere"))
    assert other["mscoco"].at("paths.work_dir") == str(tmp_path / "elsewhere" / "work")


def test_web_images_are_the_capfilt_images_with_an_evaluation_url(tmp_path):
    dec = decontam.Decontaminator(cfg_for(tmp_path, step="capfilt.final"), "web")
    nlvr2 = next(s for s in dec.sets if s.spec.name == "nlvr2")
    assert "url:example.invalid/l.jpg" in nlvr2.images
    path = tmp_path / "capfilt_downloaded.jsonl"
    write_jsonl(path, [{"id": "1", "image_id": "a.jpg", "url": "https://example.invalid/l.jpg"},
                       {"id": "2", "image_id": "b.jpg", "url": "https://example.invalid/other.jpg"},
                       {"id": "3", "image_id": 7, "url": "https://example.invalid/r.jpg"},
                       {"id": "4", "image_id": "d.jpg"}])
    with open(path, "a") as f:
        f.write("[1, 2]\n{broken\n")
    got = decontam.web_images(path, dec)
    assert list(got) == ["a.jpg"] and "url:example.invalid/l.jpg" in got["a.jpg"]
    assert decontam.web_inputs(cfg_for(tmp_path, step="capfilt.final")) == decontam.inputs(
        cfg_for(tmp_path, step="capfilt.final"), "web")
    assert decontam.coco_inputs(cfg_for(tmp_path)) == decontam.inputs(cfg_for(tmp_path), "coco")
    assert decontam.coco_keys({"image_id": "COCO_val2014_000000391895.jpg"}) == ["coco:391895"]


def test_a_set_with_a_missing_file(tmp_path):
    from common.errors import UserError
    from tests.test_bad_row_budgets import raw_copy
    raw = raw_copy(tmp_path, "pope")
    gone = raw / "pope" / "output" / "coco" / "coco_pope_random.json"
    gone.unlink()
    with pytest.raises(UserError) as e:
        decontam.load_sets(cfg_for(tmp_path, "--set", f"paths.raw_root={raw}"), "coco")
    assert str(e.value) == ("decontam: the raw files of 1 evaluation set(s) (pope) are missing, e.g. "
                            f"{BY_NAME['pope'].title}: {gone}; their images must not be trained on: get the files, "
                            "or train without excluding them: --set decontam.exclude.pope=false")
    sets = {s.spec.name: s for s in decontam.load_sets(
        cfg_for(tmp_path, "--set", f"paths.raw_root={raw}", "--set", "decontam.exclude.pope=false"), "coco")}
    pope = sets["pope"]
    assert pope.exclude is False and pope.missing == [str(gone)]
    assert pope.files == [str(raw / "pope" / "output" / "coco" / f"coco_pope_{s}.json") for s in ("adversarial", "popular")]
    assert pope.summary()["missing_files"] == [str(gone)] and pope.images


def test_no_cache_without_a_cache_dir(tmp_path):
    decontam.load_sets(cfg_for(tmp_path, "--set", "decontam.cache_dir="), "coco")
    assert not (tmp_path / "work" / "decontam").exists()
    decontam.load_sets(cfg_for(tmp_path), "coco")
    assert (tmp_path / "work" / "decontam" / "pope.json").is_file()


def test_a_dropped_row_without_language_and_quiet_web_reading(dec, tmp_path, capsys):
    image = "COCO_val2014_000000391895.jpg"
    r = row(image)
    del r["lang"]
    assert dec.keep("t", [coco_key(image)], r) is False and dec.tasks["t"].dropped_by_lang == {"": 1}
    path = tmp_path / "dl.jsonl"
    path.write_text('{broken\n{"image_id": "a.jpg", "url": "https://example.invalid/l.jpg"}\n')
    web = decontam.Decontaminator(cfg_for(tmp_path, step="capfilt.final"), "web")
    capsys.readouterr()
    assert list(decontam.web_images(path, web)) == ["a.jpg"]
    assert capsys.readouterr().err == ""                                  # the step reports that file's bad rows


def test_a_yml_config_folder_counts_too(tmp_path):
    decontam._BUILT.clear()
    own = tmp_path / "yml"
    own.mkdir()
    shutil.copy(REPO / "configs" / "llava.yaml", own / "llava.yml")
    shutil.copy(REPO / "configs" / "mscoco.yaml", own / "mscoco.yaml")
    got = decontam.eval_configs(cfg_for(tmp_path, config=own / "llava.yml"))
    assert got["mscoco"].source == str(own / "mscoco.yaml")
