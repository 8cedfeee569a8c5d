"""CapFilt generate_train (both runs) and translate_train, through their command lines."""
from __future__ import annotations

import collections
import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from PIL import Image

from common.languages import assign_languages, load_languages
from common.report import Report
from tests.conftest import PYTHON, REPO, root_sets, translation_sets
from pretrain import generate_train as gen
from pretrain.capfilt_config import DEFAULTS

N = 60


def run(script: str, sets: list[str], check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([PYTHON, f"pretrain/{script}", *sets], cwd=REPO, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{script} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r


@pytest.fixture()
def downloaded(tmp_path) -> list[str]:
    """A download step's output (with images on disk), and the --set args pointing at it."""
    work, images = tmp_path / "work", tmp_path / "work" / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range(N):
        rid = f"{i:016x}"
        Image.new("RGB", (8, 8), (i, 0, 0)).save(images / f"{rid}.jpg")
        rows.append({"id": rid, "url": f"http://h/{i}.jpg", "caption": f"a photo of   thing number {i}\n",
                     "image_id": f"{rid}.jpg"})
    rows.append({"id": "gone", "url": "http://h/gone.jpg", "caption": "its image was deleted", "image_id": "gone.jpg"})
    rows.append({"id": "empty", "url": "http://h/e.jpg", "caption": " ", "image_id": f"{0:016x}.jpg"})
    (work / "capfilt").mkdir()
    (work / "capfilt" / "capfilt_downloaded.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    return root_sets(tmp_path)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_two_runs_dry_run(tmp_path, downloaded):
    sets = downloaded + translation_sets("dry-run", tmp_path / "cache.sqlite")
    r = run("generate_train.py", sets)
    assert "translate_train.py" in r.stderr
    english = read(tmp_path / "work" / "capfilt" / "capfilt_en.jsonl")
    assert len(english) == N
    assert all({"id", "image_id", "caption", "context"} <= set(row) for row in english)
    assert english[3]["caption"] == "a photo of thing number 3"
    configured = yaml.safe_load((REPO / "configs" / "capfilt.yaml").read_text())["generate"]["caption_templates"]
    assert {row["context"] for row in english} <= set(configured)
    assert len({row["context"] for row in english}) > 1
    rep = json.loads((tmp_path / "work" / "reports" / "capfilt.english.json").read_text())
    assert rep["skipped"] == {"image file missing": 1, "empty caption": 1}
    assert rep["counts"]["rows_malformed"] == 1

    run("translate_train.py", sets)
    translated = read(tmp_path / "work" / "capfilt" / "capfilt_translated.jsonl")
    expected = assign_languages(N, 0, stage="capfilt.translate")
    assert [row["lang"] for row in translated] == expected
    store = json.loads((tmp_path / "work" / "capfilt" / "capfilt_templates.json").read_text())
    templates = store["translated"]["caption"]
    assert set(templates) == set(load_languages()) and store["key"]["languages"] == list(load_languages())

    r = run("generate_train.py", sets)          # auto: translations are newer -> final
    final = read(tmp_path / "out" / "train" / "capfilt.jsonl")
    assert len(final) == N
    assert all(set(row) == {"context", "label", "image_id", "task", "lang"} for row in final)
    assert all(row["task"] == "capfilt" for row in final)
    assert collections.Counter(row["lang"] for row in final) == collections.Counter(expected)
    table = load_languages()
    for row, en in zip(final, english):
        assert row["image_id"] == en["image_id"]
        if row["lang"] == "en":
            assert row["label"] == en["caption"]
        else:
            nllb = table[row["lang"]].nllb
            assert nllb in row["label"]          # dry-run tags the translation with its target
            assert row["context"] in templates[row["lang"]] or table[row["lang"]].name in row["context"]
    first = (tmp_path / "out" / "train" / "capfilt.jsonl").read_bytes()
    run("generate_train.py", sets + ["--set", "generate.step=final"])
    assert (tmp_path / "out" / "train" / "capfilt.jsonl").read_bytes() == first


def test_sharded_translation_equals_one_run(tmp_path, downloaded):
    sets = downloaded + translation_sets("dry-run", tmp_path / "cache.sqlite")
    run("generate_train.py", sets)
    out = tmp_path / "work" / "capfilt" / "capfilt_translated.jsonl"
    run("translate_train.py", sets)
    whole = out.read_bytes()
    out.unlink()
    r = run("translate_train.py", sets + ["--set", "run.num_shards=2", "--set", "run.shard_index=1"])
    assert "next: python -m common launch capfilt.translate --set launch.mode=combine" in r.stderr
    assert not out.exists()             # only the launcher merges
    run("translate_train.py", sets + ["--set", "run.num_shards=2", "--set", "run.shard_index=0"])
    from common import executors
    executors.main(["capfilt.translate", "--set", "launch.mode=combine", "--set", "launch.num_shards=2", "--", *sets])
    assert out.read_bytes() == whole


def test_tiny_model_rows_templates_and_english_fallback(tmp_path, downloaded, tiny_nllb, tiny_expect):
    """With the tiny model (ctranslate2), every row ends up with its own caption
    translated into its own language, or, when the translation is rejected (the
    captions with the trigger "¤" come back with a runaway repetition), with its
    English caption marked en; the template store holds each template's
    translation."""
    from tests.tools.tiny_nllb import TRIGGER
    dl = tmp_path / "work" / "capfilt" / "capfilt_downloaded.jsonl"
    text = dl.read_text()
    for n in "12":                                  # numbers 1, 2, 10..29
        text = text.replace(f"thing number {n}", f"thing {TRIGGER} number {n}")
    dl.write_text(text)
    langs = ["en", "de", "fr", "zh"]
    sets = downloaded + translation_sets("ctranslate2", tmp_path / "cache.sqlite", tiny_nllb) + [
        "--set", f"translate.languages=[{', '.join(langs)}]"]
    run("generate_train.py", sets)
    run("translate_train.py", sets)
    run("generate_train.py", sets)
    english = read(tmp_path / "work" / "capfilt" / "capfilt_en.jsonl")
    drawn = assign_languages(N, 0, langs, stage="capfilt.translate")
    rejected = [TRIGGER in en["caption"] and lang != "en" for en, lang in zip(english, drawn)]
    want = [(en["caption"], "en") if lang == "en" or bad else (tiny_expect(en["caption"], lang), lang)
            for en, lang, bad in zip(english, drawn, rejected)]
    final = read(tmp_path / "out" / "train" / "capfilt.jsonl")
    assert [(row["label"], row["lang"]) for row in final] == want
    assert [row["image_id"] for row in final] == [en["image_id"] for en in english]
    assert sum(rejected) == 4 and sum(lang != "en" for _, lang in want) >= 10
    rep = json.loads((tmp_path / "work" / "reports" / "capfilt.translate.json").read_text())
    assert rep["counts"]["rows_fallback_to_english"] == sum(rejected)
    assert rep["counts"]["rows_translated"] == sum(lang != "en" for _, lang in want)
    store = json.loads((tmp_path / "work" / "capfilt" / "capfilt_templates.json").read_text())["translated"]["caption"]
    configured = yaml.safe_load((REPO / "configs" / "capfilt.yaml").read_text())["generate"]
    for lang in ("de", "fr", "zh"):
        assert store[lang] == [tiny_expect(t, lang) for t in configured["caption_templates"]]
    table = load_languages()
    for row in final:
        if row["lang"] != "en":
            named = {t.format(table[row["lang"]].name) for t in configured["language_templates"]}
            assert row["context"] in set(store[row["lang"]]) | named
        else:
            assert row["context"] in configured["caption_templates"]


def test_template_mix_follows_the_ratio():
    gc = copy.deepcopy(DEFAULTS["generate"])
    gc["caption_templates"] = ["Caption:", "Describe it."]
    gc["language_templates"] = ["Caption in {}:"]
    rows = [{"id": str(i), "image_id": f"{i}.jpg", "caption": f"texte {i}", "lang": "fr"} for i in range(400)]
    templates = {"fr": ["Légende :"]}
    for ratio, lo, hi in [(0.0, 0, 0), (1.0, 400, 400), (0.5, 160, 240)]:
        report = Report("t")
        out = list(gen.final_examples(rows, templates, dict(gc, translated_template_ratio=ratio), report))
        n_translated = sum(row["context"] == "Légende :" for row in out)
        assert lo <= n_translated <= hi
        assert all(row["context"] in ("Légende :", "Caption in French:") for row in out)
    # A language with no surviving translated template falls back to the English one, counted.
    report = Report("t")
    out = list(gen.final_examples(rows[:10], {}, dict(gc, translated_template_ratio=1.0), report))
    assert all(row["context"] == "Caption in French:" for row in out)
    assert report.counts["context_no_translated_template_for_lang"] == 10


def test_final_step_without_translations_exits_2(tmp_path, downloaded):
    r = run("generate_train.py", downloaded + ["--set", "generate.step=final"], check=False)
    assert r.returncode == 2 and "(capfilt.english) is missing" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run("generate_train.py", downloaded + ["--set", "generate.language_templates=[no placeholder]"],
            check=False)
    assert r.returncode == 2 and "language_templates" in r.stderr
