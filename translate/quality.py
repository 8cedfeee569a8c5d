"""Checks on every translated segment. A flagged segment is never used: the
stage keeps the English original for that example and marks it ``en``."""
from __future__ import annotations

import re

# Scripts where a sentence is much shorter in characters than its English source.
_DENSE_SCRIPTS = ("Hans", "Hant", "Jpan", "Kore", "Hira", "Kana")
_LETTER = re.compile(r"[^\W\d_]")


def check(source: str, output: str, tgt_nllb: str, *, min_ratio: float = 0.25,
          max_ratio: float = 3.0, min_chars_for_ratio: int = 12,
          min_words_for_copy: int = 3, max_repeats: int = 4) -> str | None:
    """Return the reason a translation is rejected, or None if it passes."""
    out = output.strip()
    if not out:
        return "empty"
    src = source.strip()
    words = src.split()
    if (len(words) >= min_words_for_copy and _LETTER.search(src)
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


def _runaway(text: str, max_repeats: int) -> bool:
    """A word n-gram (n <= 4) repeated more than max_repeats times in a row, or a
    short character pattern repeated over and over (scripts without spaces)."""
    toks = text.split()
    for n in range(1, 5):
        run = 1
        for i in range(n, len(toks) - n + 1, n):
            if toks[i:i + n] == toks[i - n:i]:
                run += 1
                if run > max_repeats:
                    return True
            else:
                run = 1
        # also try offsets so a pattern not aligned to 0 is seen
        for off in range(1, n):
            run = 1
            for i in range(off + n, len(toks) - n + 1, n):
                if toks[i:i + n] == toks[i - n:i]:
                    run += 1
                    if run > max_repeats:
                        return True
                else:
                    run = 1
    # A short pattern repeated max_repeats + 2 times in a row (scripts without spaces).
    return re.search(r"(.{2,12}?)\1{%d,}" % (max_repeats + 1), text, re.S) is not None


def placeholders(text: str) -> list[str]:
    """The ``{}``/``{name}`` placeholders of a template, in order."""
    return re.findall(r"\{[A-Za-z0-9_]*\}", text)
