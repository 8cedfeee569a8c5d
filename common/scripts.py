"""One language, one script: the script of a text, and Chinese in Simplified characters.

``in_script`` tells whether a text is written (mostly) in the script its NLLB
code names (``kmr_Latn``: Latin, ``srp_Cyrl``: Cyrillic, ``zho_Hans``: Han);
Babel-ImageNet names in another script (63 of the 468 Serbian names are in
Latin, for instance) are skipped. The ``zh`` of the mix is zho_Hans: OpenCC's phrase-aware Traditional-to-Simplified conversion (``t2s``) turns
Traditional text (Babel-ImageNet's ``ZH`` names have both forms, e.g. 鴕鳥,
尼羅鱷; NLLB may answer in either) into Simplified. A text holds
Traditional-only characters when t2s changes it; on real Simplified text
(xGQA and NLVR2 Chinese, 8404 sentences) it changes none.
"""
from __future__ import annotations

import functools
import unicodedata

# NLLB script code -> the first word of the Unicode character names of its letters.
_SCRIPT_NAMES = {
    "Latn": ("LATIN",), "Cyrl": ("CYRILLIC",), "Arab": ("ARABIC",), "Hebr": ("HEBREW",),
    "Deva": ("DEVANAGARI",), "Beng": ("BENGALI",), "Ethi": ("ETHIOPIC",), "Grek": ("GREEK",),
    "Armn": ("ARMENIAN",), "Geor": ("GEORGIAN",), "Gujr": ("GUJARATI",), "Guru": ("GURMUKHI",),
    "Knda": ("KANNADA",), "Khmr": ("KHMER",), "Laoo": ("LAO",), "Mlym": ("MALAYALAM",),
    "Mymr": ("MYANMAR",), "Sinh": ("SINHALA",), "Taml": ("TAMIL",), "Telu": ("TELUGU",),
    "Thai": ("THAI",), "Hang": ("HANGUL", "CJK"), "Hans": ("CJK",), "Hant": ("CJK",),
    "Jpan": ("CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"),
}


@functools.lru_cache(maxsize=65536)
def _script_word(ch: str) -> str:
    return unicodedata.name(ch, "?").split(" ", 1)[0]


def in_script(text: str, nllb: str, share: float = 0.5) -> bool:
    """True when at least ``share`` of the letters of text are in the script of
    the NLLB code (a text without letters, or a script not listed, passes)."""
    names = _SCRIPT_NAMES.get(nllb.rpartition("_")[2])
    letters = [ch for ch in text if ch.isalpha()]
    if names is None or not letters:
        return True
    return sum(1 for ch in letters if _script_word(ch) in names) >= share * len(letters)


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """text in Simplified characters (unchanged when it has no Traditional ones)."""
    if not text or text.isascii():
        return text
    return _t2s().convert(text)


def traditional_chars(text: str) -> str:
    """The characters of text that t2s changes ("" for Simplified text), in order, once each."""
    simplified = to_simplified(text)
    if simplified == text:
        return ""
    if len(simplified) != len(text):  # a phrase conversion changed the length: compare per character
        return "".join(dict.fromkeys(ch for ch in text if to_simplified(ch) != ch))
    return "".join(dict.fromkeys(a for a, b in zip(text, simplified) if a != b))


def is_simplified(text: str) -> bool:
    return to_simplified(text) == text
