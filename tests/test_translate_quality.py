"""Every quality check of translate/quality.py, and the engine's too_long, at
the edge of its threshold: one step on each side (and each threshold moved by
its setting), so that a check made one step looser or stricter fails here."""
from __future__ import annotations

import copy

import pytest

from translate import quality
from translate.engine import TRANSLATION_DEFAULTS, Engine

DEFAULTS = {k: v for k, v in TRANSLATION_DEFAULTS["quality"].items() if not k.startswith("langid")}


def check(src, out, tgt="deu_Latn", **kw):
    return quality.check(src, out, tgt, **kw)


def test_the_defaults_are_the_documented_ones():
    assert DEFAULTS == {"min_ratio": 0.25, "max_ratio": 3.0, "min_chars_for_ratio": 12, "min_words_for_copy": 3,
                        "max_repeats": 4}
    # The function's own defaults are the engine's, and the shipped config's.
    import inspect
    params = inspect.signature(quality.check).parameters
    assert {k: params[k].default for k in DEFAULTS} == DEFAULTS
    import yaml
    from tests.conftest import REPO
    shipped = yaml.safe_load((REPO / "configs" / "translation.yaml").read_text())["translation"]["quality"]
    assert {k: shipped[k] for k in DEFAULTS} == DEFAULTS


# -- empty -------------------------------------------------------------------------------------
@pytest.mark.parametrize("out, reason", [("", "empty"), ("   \n\t", "empty"), ("x", None), (" Hund ", None)])
def test_empty(out, reason):
    assert check("dog", out) == reason


# -- copied source: running text of at least min_words_for_copy words, unchanged ----------------
@pytest.mark.parametrize("src, reason", [
    ("a dog runs", "copied_source"),                # 3 words: the threshold
    ("a dog", None),                                # 2 words: a short copy can be right
    ("A Dog Runs", None),                           # every word capitalised: a name or title
    ("A Dog runs", "copied_source"),                # one lowercase word is running text
    ("dog 2015 X", "copied_source"),
])
def test_copy_at_three_words(src, reason):
    assert check(src, src) == reason


def test_copy_is_case_and_outer_space_blind_and_follows_its_setting():
    assert check("  a dog runs ", "A DOG RUNS") == "copied_source"
    assert check("a dog runs", "a dog runs!") is None            # not the same text
    assert check("a b c d", "a b c d", min_words_for_copy=4) == "copied_source"
    assert check("a b c", "a b c", min_words_for_copy=4) is None
    assert check("a b", "a b", min_words_for_copy=2) == "copied_source"


# -- repetition: an n-gram (n <= 4) more than max_repeats times in a row, or a short pattern ----
@pytest.mark.parametrize("out, reason", [
    ("Hund " * 5, "repetition"),                            # 5 times: one more than max_repeats
    ("Hund " * 4 + "Katze", None),                          # 4 times: allowed
    ("der Hund " * 5, "repetition"),                        # a 2-gram
    ("der Hund " * 4 + "bellt", None),
    ("ein kleiner Hund bellt " * 5, "repetition"),           # a 4-gram, the longest
    ("ein kleiner Hund bellt " * 4 + "laut", None),
    ("ein sehr kleiner Hund bellt " * 5, None),              # a 5-gram is not a runaway n-gram
    ("Er sagt: " + "ja " * 5 + "und geht.", "repetition"),  # inside the text
    ("ja " * 5, "repetition"),                               # ... or at its start
])
def test_word_repetition_at_max_repeats(out, reason):
    assert check("A dog.", out) == reason


@pytest.mark.parametrize("out, reason", [
    ("哈" * 12, "repetition"),                # "哈哈" six times: max_repeats + 2 copies of a 2-character pattern
    ("哈" * 11, None),
    ("一只狗" + "哈哈" * 6, "repetition"),
    ("一只狗" + "哈哈" * 5 + "。", None),
    ("abcdefghijkl" * 6, "repetition"),       # a 12-character pattern, the longest
    ("abcdefghijkl" * 5, None),
    ("abcdefghijklm" * 8, None),              # 13 characters: too long to be a pattern
])
def test_character_repetition_at_max_repeats(out, reason):
    assert check("A dog.", out, "zho_Hans") == reason


def test_repetition_follows_its_setting_and_the_source():
    assert check("A dog.", "Hund " * 3, max_repeats=2) == "repetition"
    assert check("A dog.", "Hund " * 2 + "bellt", max_repeats=2) is None
    assert check("A dog.", "Hund " * 5 + "bellt", max_repeats=5) is None
    assert check("A dog.", "Hund " * 6, max_repeats=5) == "repetition"
    assert check("A dog.", "哈" * 8, "zho_Hans", max_repeats=2) == "repetition"
    assert check("A dog.", "哈" * 7, "zho_Hans", max_repeats=2) is None
    # Present in the source as well: not the model's runaway.
    assert check("no " * 5, "nein " * 5) is None
    assert check("no no", "nein " * 5) == "repetition"


# -- length ratio: checked from min_chars_for_ratio source characters; 0.25..3.0 -------------------
SRC40 = "A small dog sits on the green grass now."       # 40 characters


def text_of(n: int, cjk: bool = False) -> str:
    """n characters without any repeated pattern (so no repetition check fires)."""
    if cjk:
        return "".join(chr(0x4E00 + 7 * i) for i in range(n))
    t = " ".join(str(i) for i in range(300))[:n]
    return t[:-1] + "." if t.endswith(" ") else t


@pytest.mark.parametrize("n_out, reason", [(10, None), (9, "length_ratio"), (120, None), (121, "length_ratio")])
def test_length_ratio_edges(n_out, reason):
    """0.25 and 3.0 of 40 characters: 10 and 120 pass, 9 and 121 do not."""
    assert len(SRC40) == 40 and len(text_of(n_out)) == n_out
    assert check(SRC40, text_of(n_out)) == reason


def test_length_ratio_needs_min_chars_for_ratio_source_characters():
    src11, src12 = "A dog runs.", "A dog runs!!"
    assert len(src11) == 11 and len(src12) == 12
    assert check(src11, "Hu") is None                    # 2/11 < 0.25, but too short to judge
    assert check(src12, "Hu") == "length_ratio"          # 2/12 < 0.25
    assert check(src12, "Hun") is None                   # 3/12 = 0.25
    assert check(src12, "Hu", min_chars_for_ratio=13) is None
    assert check(" " + src11 + " ", "Hu") is None         # outer spaces do not count


def test_length_ratio_follows_its_settings():
    assert check(SRC40, text_of(20), min_ratio=0.5) is None
    assert check(SRC40, text_of(19), min_ratio=0.5) == "length_ratio"
    assert check(SRC40, text_of(40), max_ratio=1.0) is None
    assert check(SRC40, text_of(41), max_ratio=1.0) == "length_ratio"


# Dense scripts (CJK, kana, Hangul) get 0.4 x min_ratio: 0.1 of the 40 source characters = 4.
DENSE = ["zho_Hans", "zho_Hant", "yue_Hant", "jpn_Jpan", "kor_Hang", "kor_Kore", "jpn_Hira", "jpn_Kana"]
NOT_DENSE = ["deu_Latn", "tha_Thai", "khm_Khmr", "arb_Arab", "rus_Cyrl", "hin_Deva", "heb_Hebr", "amh_Ethi"]


@pytest.mark.parametrize("tgt", DENSE)
def test_dense_scripts_are_relaxed_to_a_tenth(tgt):
    assert check(SRC40, "四个字符", tgt) is None           # 4/40 = 0.1: allowed
    assert check(SRC40, "三个字", tgt) == "length_ratio"    # 3/40 < 0.1
    assert check(SRC40, text_of(120, cjk=True), tgt) is None     # the upper bound is not relaxed
    assert check(SRC40, text_of(121, cjk=True), tgt) == "length_ratio"


@pytest.mark.parametrize("tgt", NOT_DENSE)
def test_other_scripts_are_not_relaxed(tgt):
    assert check(SRC40, text_of(9), tgt) == "length_ratio"    # 9/40 < 0.25, whatever the script
    assert check(SRC40, text_of(10), tgt) is None


def test_checks_come_in_order():
    """empty before copy before repetition before length."""
    assert check("a dog runs " * 5, "") == "empty"
    assert check("a dog runs", "a dog runs") == "copied_source"
    assert check(SRC40, "Hund " * 30) == "repetition"      # also over the length bound


# -- placeholders -----------------------------------------------------------------------------------
def test_placeholders():
    from common.templates import placeholders
    assert placeholders("Q: {} in {lang}? {a_1} {B2}") == ["{}", "{lang}", "{a_1}", "{B2}"]
    assert placeholders("{not one} {x-y} {{}} }{") == ["{}"]
    assert placeholders("none") == []


# -- the engine's too_long: a segment longer than max_new_tokens -------------------------------------
class CountingBackend:
    name, model_key, calls = "fake", "fake", 0

    def count_tokens(self, texts, src=None):
        return [len(t.split()) + 2 for t in texts]

    def translate_batch(self, texts, src, tgts, max_new_tokens):
        self.calls += 1
        return [f"<{t}>" for t in texts]


def test_too_long_is_one_token_over_max_new_tokens():
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    cfg.update(cache="", progress=False, max_new_tokens=20)
    eng = Engine(cfg, backend=CountingBackend())
    at, over = " ".join(["w"] * 18), " ".join(["w"] * 19)    # 20 and 21 tokens
    res = eng.translate([at, over], ["de", "de"])
    assert res[0] == (f"<{at}>", None) and res[1] == (None, "too_long")
    assert eng.summary()["too_long"] == 1


def test_a_lowercase_first_letter_makes_running_text():
    assert check("eBay Is Here", "eBay Is Here") == "copied_source"       # "eBay" starts lowercase
    assert check("EBay Is Here", "EBay Is Here") is None


# -- the language check's plumbing (its verdicts: test_translate_langid.py) -----------------------------
def test_check_passes_the_langid_settings_through(monkeypatch):
    calls = []

    def fake(out, tgt, **kw):
        calls.append((out, tgt, kw))
        return "en"
    monkeypatch.setattr(quality, "off_target", fake)
    assert check("A dog runs.", "Ein Hund läuft.") is None and calls == []              # off by default
    assert check("A dog runs.", "Ein Hund läuft.", langid=True) == "off_target"
    assert calls[-1] == ("Ein Hund läuft.", "deu_Latn", {"threshold": 0.8, "english_threshold": 0.5, "min_letters": 12})
    check("A dog runs.", "Ein Hund läuft.", langid=True, langid_threshold=0.9, langid_english_threshold=0.6,
          langid_min_letters=20)
    assert calls[-1][2] == {"threshold": 0.9, "english_threshold": 0.6, "min_letters": 20}
    n = len(calls)
    assert check("Toyota Corolla 2015", "Toyota Corolla 2015", langid=True) is None and len(calls) == n  # a copy


@pytest.mark.parametrize("text, tgt, own", [
    ("Привет, мир", "rus_Cyrl", False),          # Cyrillic: several languages write it, no shortcut
    ("สุนัขวิ่ง", "tha_Thai", True),
    ("สุนัข dog", "tha_Thai", True),              # 5 Thai letters, 3 others
    ("สุนัข doggy", "tha_Thai", True),            # 5 and 5: half is enough
    ("สุนัข doggie", "tha_Thai", False),          # 5 and 6
    ("dog", "tha_Thai", False),
    ("123 !", "tha_Thai", False),                 # no letters at all
    ("一只狗在跑", "zho_Hans", True),
    ("犬が走る", "jpn_Jpan", True),                # kana: Japanese
    ("一只狗在跑", "jpn_Jpan", False),             # no kana: the detector decides
    ("犬が走る", "zho_Hans", False),               # kana in "Chinese": the detector decides
    ("개가 달린다", "kor_Hang", True),
    ("Σκύλος", "ell_Grek", True),
])
def test_own_script_shortcut(text, tgt, own):
    assert quality._in_own_script(text, tgt) is own
