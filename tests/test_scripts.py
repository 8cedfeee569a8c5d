"""One language, one script: ku is Kurmanji in Latin, every zh text is Simplified,
and ImageNet class names are in their language's script."""
from __future__ import annotations

import csv
import json

import pytest

from common.languages import LANGUAGES_TSV, load_languages, nllb_code
from common.report import Report
from common.scripts import in_script, is_simplified, to_simplified, traditional_chars
from tasks.imagenet.classes import babel_key, class_names
from tasks.imagenet.settings import DEFAULTS as IMAGENET_DEFAULTS
from tests.conftest import FIXTURES_RAW, REPO


def test_ku_is_kurmanji_in_latin_script_everywhere():
    assert nllb_code("ku") == "kmr_Latn"
    assert not any(lang.nllb.startswith("ckb") for lang in load_languages().values())
    shared = REPO.parent / "shared" / "data" / "languages.tsv"
    if shared.is_file():  # the project's table is a copy of the shared one
        with open(shared, encoding="utf-8") as a, open(LANGUAGES_TSV, encoding="utf-8") as b:
            assert list(csv.reader(a, delimiter="\t")) == list(csv.reader(b, delimiter="\t"))
    overrides = IMAGENET_DEFAULTS["imagenet"]["babel_keys"]
    assert babel_key("ku", overrides) == "KU"  # Babel-ImageNet's Latin Kurmanji names


@pytest.mark.parametrize("text, simplified, traditional", [
    ("鴕鳥", "鸵鸟", "鴕鳥"),
    ("尼羅鱷", "尼罗鳄", "羅鱷"),
    ("一只狗在草地上跑。", "一只狗在草地上跑。", ""),
    ("A dog", "A dog", ""),
])
def test_traditional_characters_are_found_and_converted(text, simplified, traditional):
    assert to_simplified(text) == simplified
    assert traditional_chars(text) == traditional
    assert is_simplified(text) == (not traditional)


def test_script_of_a_text():
    assert in_script("Cinawira Gîlayê", "kmr_Latn")
    assert not in_script("Električna raža", "srp_Cyrl") and in_script("Електрична ража", "srp_Cyrl")
    assert in_script("尼罗鳄", "zho_Hans") and in_script("バンケン科", "jpn_Jpan")
    assert in_script("42", "tha_Thai")  # no letters: nothing to say


def test_imagenet_zh_names_become_simplified_on_the_fixture():
    babel = json.loads((FIXTURES_RAW / "babel-imagenet" / "babel_imagenet-298.json").read_text(encoding="utf-8"))
    english = [f"class {i}" for i in range(10)]
    report = Report("test")
    names = class_names(babel, english, ["en", "zh"], {}, report)
    assert babel["ZH"][1][3] == "鼬鯊"
    assert names["zh"][3] == "鼬鲨"
    assert all(is_simplified(n) for n in names["zh"].values())
    assert report.counts["zh_names_made_simplified"] == sum(not is_simplified(n) for n in babel["ZH"][1])


def test_real_babel_names_one_script_and_simplified_chinese(real_root):
    babel = json.loads((real_root / "babel-imagenet" / "babel_imagenet-298.json").read_text(encoding="utf-8"))
    english = json.loads((real_root / "imagenet" / "clip_imagenet_classnames_en.json").read_text(encoding="utf-8"))
    report = Report("test")
    overrides = IMAGENET_DEFAULTS["imagenet"]["babel_keys"]
    names = class_names(babel, english, list(load_languages()), overrides, report)
    assert "鴕鳥" in babel["ZH"][1] and "尼羅鱷" in babel["ZH"][1]
    assert not any(traditional_chars(n) for n in names["zh"].values())
    assert report.counts["zh_names_made_simplified"] == 276
    for code, by_class in names.items():
        assert all(in_script(n, nllb_code(code)) for n in by_class.values()), code
    assert all(in_script(n, "kmr_Latn") for n in names["ku"].values()) and len(names["ku"]) > 90
    skipped = report.skipped["class name not in the language's script"]
    assert 90 <= skipped <= 120  # Serbian in Latin (62), Mongolian in its old script (8), a few more


def test_simplified_check_has_no_false_alarm_on_real_simplified_text(real_root):
    """xGQA and NLVR2 Chinese are written in Simplified: t2s changes none of them."""
    ds = real_root / "iglue" / "datasets"
    texts = [v["question"] for v in json.loads((ds / "xGQA/annotations/few_shot/zh/dev.json")
                                               .read_text(encoding="utf-8")).values()]
    with open(ds / "nlvr2/annotations/dev-zh_gmt.jsonl", encoding="utf-8") as f:
        texts += [json.loads(line)["sentence"] for line in f]
    assert len(texts) > 8000
    assert [t for t in texts if not is_simplified(t)] == []
