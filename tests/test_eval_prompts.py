"""Evaluation prompts: MaXM's context follows mBLIP's published protocol by default (another
wording by config), and a language named in a prompt is named as the training mix names it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.languages import load_languages
from eval_data.maxm.convert import main as maxm
from eval_data.rows import language_name
from eval_data.settings import DEFAULTS, load

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "raw"
LANGS = ["en", "fr", "hi", "iw", "ro", "th", "zh"]


def _run(tmp_path, *sets: str) -> dict[str, list[dict]]:
    argv = ["--set", f"paths.raw_root={FIXTURES}", "--set", f"paths.out_root={tmp_path}/out",
            "--set", f"paths.work_dir={tmp_path}/work"]
    for s in sets:
        argv += ["--set", s]
    maxm(argv)
    return {lang: [json.loads(l) for l in (tmp_path / "out/eval/maxm" / f"maxm_test_{lang}.jsonl")
                   .read_text(encoding="utf-8").splitlines()] for lang in LANGS}


def _questions(lang: str) -> list[str]:
    data = json.loads((FIXTURES / "maxm" / f"maxm_v1_{lang}.json").read_text(encoding="utf-8"))
    return [qa["question"] for ann in data["annotations"] for qa in ann["qa_pairs"]]


def test_maxm_context_is_mblips_prompt_by_default(tmp_path):
    rows = _run(tmp_path)
    table = load_languages()
    assert table["iw"].name == "Hebrew"
    for lang in LANGS:
        name = table[lang].name   # the name the training mix's instructions use
        assert rows[lang], lang
        contexts = [r["context"] for r in rows[lang]]
        expected = [f"Question: {q} Short answer in {name}:" for q in _questions(lang)]
        assert contexts and all(c in expected for c in contexts), (contexts, expected)


def test_maxm_other_wording_by_config(tmp_path):
    rows = _run(tmp_path, "maxm.context_template=About the image: {question} Keep the answer short and in "
                          "{language}.")
    expected = [f"About the image: {q} Keep the answer short and in French." for q in _questions("fr")]
    assert rows["fr"] and all(r["context"] in expected for r in rows["fr"])


def test_language_names_follow_the_training_mix(tmp_path):
    cfg = load("x", ["--set", f"paths.raw_root={FIXTURES}", "--set", f"paths.out_root={tmp_path}",
                     "--set", f"paths.work_dir={tmp_path}"])
    table = load_languages()
    # XM3600's he is the table's iw; codes the table lacks come from language_names.
    assert language_name("he", cfg) == language_name("iw", cfg) == table["iw"].name
    assert language_name("bn", cfg) == table["bn"].name and language_name("quz", cfg) == "Quechua"
    shipped = {k: v for k, v in DEFAULTS["language_names"].items() if k != "__free__"}
    assert shipped == dict(cfg.at("language_names")) and "he" in shipped
    for code, name in shipped.items():   # the shipped extra names agree with the table
        assert language_name(code, cfg) == name, code


@pytest.mark.parametrize("key, value", [("language_names.de", "Deutsch"), ("language_names.he", "Ivrit")])
def test_a_name_that_differs_from_the_mix_stops(key, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _run(tmp_path, f"{key}={value}")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and key in err, err
    assert not (tmp_path / "out").exists()
