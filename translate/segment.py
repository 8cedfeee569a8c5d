"""Sentence splitting, so a paragraph is never truncated by the model's window.

``split`` returns the pieces to translate and the separators between them, so
``join`` rebuilds the text exactly (spacing, line breaks, CR/LF). Pieces never
start or end with whitespace.

When in doubt the splitter does not split: two sentences translated together
cost nothing but length (bounded by max_words), a wrong split costs fluency.
So a Latin full stop splits only before a capital letter, a quote or a bracket
("Wait... what", "5 p.m. now", "U.S.A. is", "Fig. 3" stay together), known
abbreviations never split, and full-width CJK punctuation splits even with no
space after it (CJK text has none). Line breaks always split.
"""
from __future__ import annotations

import re

# Three kinds of boundary; the separator (group 1, 2 or 3) is what lies between
# two pieces. The closing quotes/brackets after the punctuation stay with the
# sentence they close.
_BOUNDARY = re.compile(
    r"[.!?\u2026]+[\"'\u201d\u2019\u00bb\u203a)\]]*(\s+)"
    r"|[\u3002\uff01\uff1f]+[\"'\u201d\u2019\u300d\u300f)\]\uff09]*(\s*)"
    r"|(\s*\n\s*)")
_ABBREV = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|vs|etc|e\.g|i\.e|No|approx|Fig|cf|ca)\.$")
_SPACES = re.compile(r"(\s+)")


def split(text: str, max_words: int = 120) -> tuple[list[str], list[str]]:
    """-> (pieces, seps): text == seps[0] + pieces[0] + seps[1] + ... + pieces[-1] + seps[-1]."""
    pieces: list[str] = []
    seps: list[str] = []
    body_start = len(text) - len(text.lstrip())
    body_end = len(text.rstrip())
    if body_start >= body_end:
        return [], [text]  # empty or whitespace only: nothing to translate
    seps.append(text[:body_start])
    pos = body_start
    for m in _BOUNDARY.finditer(text, body_start, body_end):
        sep_start = m.start(m.lastindex)
        if m.lastindex == 1 and "\n" not in m.group(1):
            # Latin . ! ? ...: only before something that starts a sentence.
            nxt = text[m.end():m.end() + 1]
            if not nxt or nxt.islower() or nxt.isdigit() or _ABBREV.search(text, pos, sep_start):
                continue
        _add(pieces, seps, text[pos:sep_start], max_words)
        seps.append(text[sep_start:m.end()])
        pos = m.end()
    if pos < body_end:
        _add(pieces, seps, text[pos:body_end], max_words)
        seps.append(text[body_end:])
    else:
        seps[-1] += text[body_end:]
    return pieces, seps


def _add(pieces: list[str], seps: list[str], sentence: str, max_words: int) -> None:
    """Append a sentence; one longer than max_words is cut at whitespace, each cut
    keeping the exact whitespace it replaced as its separator."""
    parts = _SPACES.split(sentence)  # word, space, word, ..., word
    if len(parts) <= 2 * max_words - 1:
        pieces.append(sentence)
        return
    step = 2 * max_words
    for i in range(0, len(parts), step):
        if i:
            seps.append(parts[i - 1])
        pieces.append("".join(parts[i:i + step - 1]))


def join(pieces: list[str], seps: list[str]) -> str:
    out = [seps[0]]
    for piece, sep in zip(pieces, seps[1:]):
        out.append(piece)
        out.append(sep)
    return "".join(out)
