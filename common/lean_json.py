"""Loading the whole-document JSON releases with only the fields the job needs.

The VQAv2 annotations (~330 MB, ten answer objects per question) and the
Karpathy dataset_coco.json (a token list per caption) are single JSON objects,
not arrays, so they cannot be streamed element by element. json.load's
``object_hook`` shrinks every record the moment it is parsed, so the full
parsed document never exists at once: peak memory is the file text plus the
compact result. Measured on synthetic files of the real sizes: VQAv2 train
annotations (382 MB, 443,757 questions) 2.07 GB -> 0.75 GB peak RSS; Karpathy
(142 MB, 123,287 images) 0.94 GB -> 0.44 GB. Only records of the expected
shape are shrunk; anything else is left as it is for the callers' checks to
report.

Where the records can be used one at a time, ``iter_member`` streams them
instead: the elements of the array at one member of the top-level object
(the Karpathy file's ``images``), one decoded at a time from a 1 MB window
of the file, so memory does not grow with the file at all.
"""
from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from common.errors import UserError
from common.jsonl import BadRows, bad_bytes_in, invalid_utf8_error


def load_json_lean(path: str | Path, hook: Callable[[dict], Any]) -> Any:
    """json.load with an object_hook; a parse error names file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        try:
            return json.load(f, object_hook=hook)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        except UnicodeDecodeError:
            raise invalid_utf8_error(path) from None


def karpathy_hook(d: dict) -> dict:
    """A Karpathy sentence keeps raw and sentid (tokens dropped); an image record
    drops its sentids list. The hook runs bottom-up, sentences first."""
    if "raw" in d and "tokens" in d:
        return {k: d[k] for k in ("raw", "sentid") if k in d}
    if "sentids" in d and "sentences" in d:
        del d["sentids"]
    return d


def vqa_annotation_hook(keep_answers: bool) -> Callable[[dict], Any]:
    """An answer object becomes its answer string (interned: a few thousand
    distinct strings repeat millions of times); an annotation keeps question_id,
    multiple_choice_answer and, where ``keep_answers``, the answer strings."""
    def hook(d: dict) -> Any:
        if "answer_id" in d or "answer_confidence" in d:
            answer = d.get("answer")
            return sys.intern(answer) if isinstance(answer, str) else d
        if "question_id" in d and ("answers" in d or "multiple_choice_answer" in d):
            out = {"question_id": d["question_id"]}
            mc = d.get("multiple_choice_answer")
            if mc is not None:
                out["multiple_choice_answer"] = sys.intern(mc) if isinstance(mc, str) else mc
            if keep_answers and "answers" in d:
                out["answers"] = d["answers"]
            return out
        return d
    return hook


_NUMBER_TAIL = re.compile(r"[0-9.eE+\-]*")


class _Window:
    """A sliding text window over a file, for decoding one JSON value at a time."""

    def __init__(self, f, path: Path, chunk: int):
        self.f, self.path, self.chunk = f, path, chunk
        self.buf, self.pos, self.eof, self.base = "", 0, False, 0
        self.dec = json.JSONDecoder()

    def fill(self) -> bool:
        if self.eof:
            return False
        data = self.f.read(self.chunk)
        if not data:
            self.eof = True
            return False
        self.base += self.pos
        self.buf, self.pos = self.buf[self.pos:] + data, 0
        return True

    def peek(self) -> str:
        """The next non-blank character ("" at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf) or not self.fill():
                return self.buf[self.pos:self.pos + 1]

    def expect(self, chars: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            raise self.error(f"expected {' or '.join(repr(x) for x in chars)}")
        self.pos += 1
        return c

    def value(self) -> Any:
        """Decode the next value, reading more of the file until it is complete."""
        self.peek()
        while True:
            try:
                obj, end = self.dec.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if self.fill():
                    continue
                raise self.error("invalid or truncated JSON value") from None
            # A number at the end of the window may go on in the next chunk.
            if isinstance(obj, (int, float)) and not self.eof and _NUMBER_TAIL.fullmatch(self.buf, end) \
                    and self.fill():
                continue
            self.pos = end
            return obj

    def error(self, msg: str) -> UserError:
        return UserError(f"{self.path}: {msg} at character {self.base + self.pos}")


def iter_member(path: str | Path, key: str, what: str, chunk: int = 1 << 20,
                bad: BadRows | None = None) -> Iterator[Any]:
    """The elements of the array at member ``key`` of the file's top-level object,
    one at a time (other members are decoded and dropped: they must be small).
    A file that is no such object, or breaks off, is a UserError naming the file
    and the character where it went wrong; one without an array at ``key``, a
    UserError saying it expected ``what``. Invalid UTF-8 is a UserError, unless
    ``bad`` is given: then an element holding an invalid byte is reported there
    (file, ``key[i]``, character offset) and skipped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    opener = gzip.open if str(path).endswith(".gz") else open
    errors = "strict" if bad is None else "surrogateescape"
    with opener(path, "rt", encoding="utf-8-sig", errors=errors) as f:
        try:
            w = _Window(f, path, chunk)
            if w.expect("{") and w.peek() == "}":
                raise UserError(f"{path}: expected {what}")
            found = False
            while True:
                name = w.value()
                w.expect(":")
                if name == key and w.peek() == "[" and not found:
                    found = True
                    for i, (element, at) in enumerate(_elements(w)):
                        if bad is not None and bad_bytes_in(element):
                            bad.add(f"{path}: {key}[{i}] (character {at})", "invalid UTF-8")
                            continue
                        yield element
                else:
                    w.value()
                if w.expect(",}") == "}":
                    break
            if not found:
                raise UserError(f"{path}: expected {what}")
        except UnicodeDecodeError:
            raise invalid_utf8_error(path) from None


def _elements(w: _Window) -> Iterator[tuple[Any, int]]:
    """(element, character offset where it starts) of the array at the window."""
    w.expect("[")
    if w.peek() == "]":
        w.expect("]")
        return
    while True:
        w.peek()
        at = w.base + w.pos
        yield w.value(), at
        if w.expect(",]") == "]":
            return
