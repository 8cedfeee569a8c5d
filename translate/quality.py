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
          min_words_for_copy: int = 3, max_repeats: int = 4) -> str | None:
    """Return the reason a translation is rejected, or None if it passes."""
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


def placeholders(text: str) -> list[str]:
    """The ``{}``/``{name}`` placeholders of a template, in order."""
    return re.findall(r"\{[A-Za-z0-9_]*\}", text)
