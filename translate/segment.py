"""Sentence splitting, so a paragraph is never truncated by the model's window.

``split`` returns the pieces to translate and the separators between them, so
``join`` rebuilds the text exactly (spacing, line breaks, CR/LF). Pieces never
start or end with whitespace. ``join`` given the target language puts the
target script's own separator between sentences: none between Chinese or
Japanese sentences (their full stop 。 is the separator), the source's spacing
for every other script (Thai, Khmer, Lao and Burmese separate sentences with a
space too).

When in doubt the splitter does not split: two sentences translated together
cost nothing but length (bounded by max_words), a wrong split costs fluency.
So a Latin full stop splits only before something that starts a sentence: a
capital letter, a quote or a bracket, or a number ("12 of them are pigeons")
unless the word before is an abbreviation or has inner dots ("approx. 5",
"p.m. 3", "No. 4" stay together). Known abbreviations and initials ("J. R. R.
Tolkien") never split, nor does a quotation ("Fresh coffee! Come in!"),
"Wait... what" and "U.S.A. is" stay together. A quotation holds its sentences
together only when it closes in the same paragraph: an inch mark ('a 55" wide
screen') or an unmatched quote does not stop splitting. After an initialism a
capitalised word continues the name ("U.S. Navy", "U.K. Parliament") unless it
is a common sentence starter ("... the U.S. The weather is warm"). A
numbered-list marker ("1.", "2)") starts a sentence and is never one: "1.
Open the box. 2. Take out the cake." gives two pieces, as does "the
following: 1. Pack water. 2. Bring hats." plus its lead. An emoji after the
punctuation stays with the sentence it ends. Full-width CJK punctuation splits
even with no space after it (CJK text has none). Line breaks always split.

tests/tools/compare_segmenters.py measures these rules against pySBD and
sentencex on hand-labelled LLaVA-style answers (README, "Sentence splitting").
"""
from __future__ import annotations

import re

# Four kinds of boundary; the separator (group 1-4) is what lies between two
# pieces. The closing quotes/brackets (and emoji) after the punctuation stay
# with the sentence they close. Group 4: the space after a colon before an
# inline numbered list ("the following: 1. Pack water").
_EMOJI = "\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200D"
_BOUNDARY = re.compile(
    r"[.!?\u2026]+[\"'\u201d\u2019\u00bb\u203a)\]]*(?:[ \t]*[" + _EMOJI + r"]+)*(\s+)"
    r"|[\u3002\uff01\uff1f]+[\"'\u201d\u2019\u300d\u300f)\]\uff09]*(\s*)"
    r"|(\s*\n\s*)"
    r"|:([ \t]+)(?=\(?\d{1,2}[.)][ \t]+[A-Z])")
_ABBREV = re.compile(r"^(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Mt|Ave|Co|Corp|Inc|Ltd|vs|e\.g|i\.e|No|Nos|approx|"
                     r"Fig|Figs|cf|ca|p|pp|vol|ch|sec|ed|Jan|Feb|Mar|Apr|Aug|Sep|Sept|Oct|Nov|Dec)\.$",
                     re.IGNORECASE)
_INITIAL = re.compile(r"^[A-Z]\.$")
_INITIALISM = re.compile(r"^(?:[A-Z]\.){2,}$")  # U.S., U.K., D.C.
_FIRST_WORD = re.compile(r"\w*")
# Words that start a sentence after an initialism ("... in the U.S. The weather"); any
# other capitalised word continues a name ("U.S. Navy", "U.K. Parliament").
_STARTERS = frozenset(
    "The A An This That These Those There Here It Its He She They We I You His Her Their Our My Your "
    "In On At But And So Then Now Today Yes No What When Where Why How Who Which If As After Before "
    "Many Some All Each Every Most Both One Two Three Also However Still Later Meanwhile".split())
_QUOTE = re.compile("[\"\u201c\u201d]")
_LIST_MARKER = re.compile(r"^\(?\d{1,2}[.)]$")
_OPENERS = "\"'\u201c\u2018\u00ab([\u00bf\u00a1*-\u2022\u2013\u2014"
_SPACES = re.compile(r"(\s+)")
_LAST_WORD = re.compile(r"(\S+)$")
_CJK_END = re.compile("[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff65]$")


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
        if sep_start == pos:
            continue  # nothing before it (a line break right after the last boundary)
        if m.lastindex == 1 and "\n" not in m.group(1) and not _sentence_ends(text, pos, sep_start, m.end()):
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


def _sentence_ends(text: str, pos: int, sep_start: int, nxt_at: int) -> bool:
    """Does the Latin punctuation before text[sep_start] (followed by spaces,
    then text[nxt_at]) end the sentence that began at pos?"""
    nxt = text[nxt_at:nxt_at + 1]
    if not nxt or nxt.islower() or not (nxt.isalnum() or nxt in _OPENERS):
        return False  # lowercase goes on; a symbol (an emoji) stays with the sentence before
    piece = text[pos:sep_start]
    if _LIST_MARKER.match(piece):
        return False  # "1." before its item
    if _inside_quotation(text, pos, sep_start):
        return False  # inside a quotation: "Fresh coffee! Come in!" is one
    word = _LAST_WORD.search(piece).group(1).lstrip("\"'(\u201c\u2018[")
    if _ABBREV.match(word) or _INITIAL.match(word):
        return False
    if _INITIALISM.match(word) and nxt.isupper():
        # "U.S. Navy" is one name; "the U.S. The weather ..." starts a sentence.
        nxt_word = _FIRST_WORD.match(text, nxt_at).group(0)
        return nxt_word in _STARTERS
    if nxt.isdigit():
        # A number starts a sentence, unless the word before has inner dots ("p.m. 3").
        return "." not in word.rstrip(".!?\u2026\"')]\u201d\u2019")
    return True


def _quotes(text: str, start: int, end: int) -> list[tuple[int, str]]:
    """The quotation marks in text[start:end], as (index, mark); a straight double
    quote right after a digit and before a space, letter or the end is an inch
    mark ('a 55" wide screen', '3" x 5"'), no quotation mark."""
    out = []
    for m in _QUOTE.finditer(text, start, end):
        i = m.start()
        if m.group(0) == '"' and i > 0 and text[i - 1].isdigit():
            after = text[i + 1:i + 2]
            if not after or after.isspace() or after.isalnum():
                continue
        out.append((i, m.group(0)))
    return out


def _inside_quotation(text: str, pos: int, sep_start: int) -> bool:
    """Is text[sep_start] inside a quotation opened in text[pos:sep_start] and
    closed later in the same paragraph? A quotation mark nobody closes (a typo,
    a mark we do not know as an inch sign) does not hold the rest of the
    paragraph together: splitting goes on after it."""
    marks = _quotes(text, pos, sep_start)
    straight_open = sum(1 for _, q in marks if q == '"') % 2 == 1
    curly_open = sum(1 for _, q in marks if q == "\u201c") > sum(1 for _, q in marks if q == "\u201d")
    if not (straight_open or curly_open):
        return False
    para_end = text.find("\n", sep_start)
    if para_end < 0:
        para_end = len(text)
    later = _quotes(text, sep_start, para_end)
    if straight_open:
        nxt = next((i for i, q in later if q == '"'), None)
        # the next straight quote closes ours if it follows a non-space ('Stop."')
        if nxt is not None and not text[nxt - 1].isspace():
            return True
    if curly_open:
        nxt = next((q for _, q in later if q in "\u201c\u201d"), None)
        if nxt == "\u201d":
            return True
    return False


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


def join(pieces: list[str], seps: list[str], tgt_nllb: str | None = None) -> str:
    """The text again, pieces in place; for a Chinese or Japanese target a space
    between two sentences (not a line break) is dropped after a CJK character
    or full-width punctuation mark, as those scripts write it."""
    cjk = tgt_nllb is not None and tgt_nllb.endswith(("_Hans", "_Hant", "_Jpan"))
    out = [seps[0]]
    last = len(pieces) - 1
    for i, (piece, sep) in enumerate(zip(pieces, seps[1:])):
        out.append(piece)
        if cjk and i < last and sep and not sep.strip(" \t\u3000") and _CJK_END.search(piece):
            sep = ""
        out.append(sep)
    return "".join(out)
