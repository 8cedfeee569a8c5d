"""Sentence splitting, so a paragraph is never truncated by the model's window.

``split`` returns the pieces to translate and the separators between them, so
``join`` rebuilds the text with the original spacing and line breaks.
"""
from __future__ import annotations

import re

# A sentence ends at . ! ? (or their full-width forms, or an ellipsis) followed
# by whitespace, or at a line break. Abbreviations like "Mr." rarely matter for
# captions and QA; a wrong split costs fluency, never content.
_BOUNDARY = re.compile(r"(?<=[.!?\u3002\uff01\uff1f\u2026])[\"')\]]?\s+|\n+")
_ABBREV = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|etc|e\.g|i\.e|No)\.$")


def split(text: str, max_words: int = 120) -> tuple[list[str], list[str]]:
    """-> (pieces, seps): text == seps[0] + pieces[0] + seps[1] + ... + pieces[-1] + seps[-1]."""
    pieces: list[str] = []
    seps: list[str] = []
    lead = len(text) - len(text.lstrip())
    seps.append(text[:lead])
    pos = lead
    body_end = len(text.rstrip())
    for m in _BOUNDARY.finditer(text, lead, body_end):
        sentence = text[pos:m.start()]
        if m.group(0).startswith(("\"", "'", ")", "]")):
            sentence = text[pos:m.start() + 1]
        if not sentence.strip() or _ABBREV.search(sentence):
            continue
        end_of_sentence = pos + len(sentence)
        _add(pieces, seps, sentence, max_words)
        seps.append(text[end_of_sentence:m.end()])
        pos = m.end()
    if pos < body_end:
        _add(pieces, seps, text[pos:body_end], max_words)
        seps.append(text[body_end:])
    elif pieces:
        seps[-1] += text[body_end:]
    else:
        seps[0] = text  # empty or whitespace only: nothing to translate
    return pieces, seps


def _add(pieces: list[str], seps: list[str], sentence: str, max_words: int) -> None:
    """Append a sentence; one longer than max_words is cut at word boundaries."""
    words = sentence.split(" ")
    if len(words) <= max_words:
        pieces.append(sentence)
        return
    for i in range(0, len(words), max_words):
        if i:
            seps.append(" ")
        pieces.append(" ".join(words[i:i + max_words]))


def join(pieces: list[str], seps: list[str]) -> str:
    out = [seps[0]]
    for piece, sep in zip(pieces, seps[1:]):
        out.append(piece)
        out.append(sep)
    return "".join(out)
