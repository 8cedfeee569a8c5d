"""The one JSONL (and JSON) reader/writer.

Reading streams line by line, ``.gz`` is transparent, and a malformed line is
reported as ``file:line: reason``, counted and skipped until the bad-row budget
is spent (then UserError -> exit 2). Files are read as bytes and decoded per
line (per array element), so one invalid UTF-8 byte is one bad record, never a
traceback. Writing goes to a temporary file in the target folder that is
renamed into place, so a crash never leaves half a file; the temporary's name
says which process wrote it (``.<name>.<host>-<pid>.<random>.tmp``), so the
next run can remove what a killed run left (``remove_stale_temps``) without
touching a live run's.
"""
from __future__ import annotations

import codecs
import contextlib
import glob
import gzip
import json
import os
import re
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import UserError

# Resynchronise after a malformed array element at the next '},{' boundary.
_NEXT_OBJECT = re.compile(r"\}\s*,\s*\{")
# What may still follow a number that ends at the end of the buffer read so far.
_NUMBER_TAIL = re.compile(r"[0-9.eE+\-]*")
# An invalid byte decoded with errors="surrogateescape" (U+DC80..U+DCFF).
_BAD_BYTE = re.compile("[\udc80-\udcff]")
# Deeper nesting is a bad record: no input of this project nests more than a few
# levels, and json's recursive parser (and every recursive walk after it) would
# end a run with RecursionError on a line of a few KB.
MAX_DEPTH = 200
TOO_DEEP = f"JSON nested more than {MAX_DEPTH} levels deep"
# A string (skipped whole) or a bracket: what the nesting depth scan looks at.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _open_binary(path: Path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def _nbytes(text: str) -> int:
    """The size in bytes of text decoded with surrogateescape (one byte per bad byte)."""
    return len(text.encode("utf-8", "surrogateescape"))


class BadRows:
    """Counts bad input rows against a budget and keeps the first messages.

    ``max_bad`` is an absolute count; ``max_bad_fraction`` (of rows seen) is
    checked at the end via ``check_fraction``. ``key`` is the config key that
    sets ``max_bad`` (named in the error when the budget is spent).
    """

    def __init__(self, max_bad: int | None = 1000, max_bad_fraction: float | None = None,
                 keep: int = 20, quiet: bool = False, key: str | None = None):
        self.max_bad = max_bad
        self.max_bad_fraction = max_bad_fraction
        self.count = 0
        self.seen = 0
        self.examples: list[str] = []
        self.keep = keep
        self.quiet = quiet
        self.key = key

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        msg = f"{where}: {reason}"
        if len(self.examples) < self.keep:
            self.examples.append(msg)
            if not self.quiet:
                print(f"warning: skipped {msg}", file=sys.stderr)
        if self.max_bad is not None and self.count > self.max_bad:
            hint = f"; raise {self.key} to go on" if self.key else ""
            raise UserError(f"{msg} (more than {self.max_bad} bad rows{hint})")

    def check_fraction(self, what: str) -> None:
        if self.max_bad_fraction is not None and self.seen and self.count / self.seen > self.max_bad_fraction:
            raise UserError(f"{what}: {self.count} of {self.seen} rows are bad "
                            f"(over the allowed fraction {self.max_bad_fraction})")


def too_deep_at(text: str, start: int = 0, end: int | None = None) -> int:
    """The offset in ``text`` where nesting first goes over MAX_DEPTH, or -1
    (cheap for the usual text: only one with that many brackets is scanned)."""
    end = len(text) if end is None else end
    if text.count("[", start, end) + text.count("{", start, end) <= MAX_DEPTH:
        return -1
    depth = 0
    for m in _STRING_OR_BRACKET.finditer(text, start, end):
        ch = m.group()
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return m.start()
        elif ch in "]}":
            depth -= 1
    return -1


def loads_line(line: str) -> tuple[Any, str | None]:
    """(value, None) or (None, why the text is no usable JSON): malformed, or too deep."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"malformed JSON ({e.msg} at column {e.colno})"
    except RecursionError:
        return None, TOO_DEEP
    if isinstance(value, (dict, list)) and too_deep_at(line) >= 0:
        return None, TOO_DEEP
    return value, None


def _decode_line(raw: bytes, lineno: int) -> tuple[str | None, str | None]:
    """(text, None) or (None, why the bytes are not UTF-8)."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, f"invalid UTF-8 (byte {raw[e.start:e.start + 1]!r} at column {e.start + 1})"


def read_jsonl(path: str | Path, bad: BadRows | None = None,
               validate: Callable[[Any], str | None] | None = None) -> Iterator[dict]:
    """Stream the JSON objects of a JSONL file; bad lines are reported and skipped.

    ``validate(row)`` may return a reason string to reject a parsed row.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    bad = bad if bad is not None else BadRows()
    with _open_binary(path) as f:
        head = f.read(len(codecs.BOM_UTF8))
        if head != codecs.BOM_UTF8:   # a byte-order mark (files saved by Windows tools) is dropped
            f.seek(0)
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            bad.seen += 1
            try:
                line, reason = raw.decode("utf-8"), None
            except UnicodeDecodeError:
                line, reason = _decode_line(raw, lineno)
            if reason is None:
                row, reason = loads_line(line)
                if reason is None:
                    if not isinstance(row, dict):
                        reason = f"expected a JSON object, got {type(row).__name__}"
                    elif validate is not None:
                        reason = validate(row)
            if reason:
                bad.add(f"{path}:{lineno}", reason)
                continue
            yield row


def read_json_object(path: str | Path) -> dict | None:
    """A JSON object this project wrote (a run record, a report, a cache), or
    None when it is missing, unreadable or not an object: the caller then
    recomputes what it held."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def invalid_utf8_error(path: Path) -> UserError:
    """The one-line error for a whole document with invalid UTF-8: its first bad
    byte, by line and byte offset (read again in binary, on the error path only)."""
    base, lines, carry = 0, 1, b""
    with _open_binary(path) as f:
        while True:
            chunk = f.read(1 << 20)
            data = carry + chunk
            try:
                data.decode("utf-8")
                cut = len(data)
            except UnicodeDecodeError as e:
                if not (chunk and e.reason == "unexpected end of data" and e.end == len(data)):
                    line = lines + data.count(b"\n", 0, e.start)
                    return UserError(f"{path}:{line}: invalid UTF-8 at byte offset {base + e.start} "
                                     "(a whole-document file: fix or re-download it)")
                cut = e.start     # a character cut by the chunk's end: decoded with the next chunk
            lines, base, carry = lines + data.count(b"\n", 0, cut), base + cut, data[cut:]
            if not chunk:
                return UserError(f"{path}: invalid UTF-8")


def load_json(path: str | Path, bad: BadRows | None = None, records: str | None = None) -> Any:
    """Read a whole JSON document; a parse error names file, line and column.

    Invalid UTF-8 is an error naming line and byte offset, unless ``bad`` is
    given: then each record holding an invalid byte is reported there and
    dropped (the records are the elements of the top-level array or object,
    or of its ``records`` member); an invalid byte elsewhere is still an error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    with _open_binary(path) as f:
        data = f.read()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if bad is None:
            line = data.count(b"\n", 0, e.start) + 1
            raise UserError(f"{path}:{line}: invalid UTF-8 (byte {data[e.start:e.start + 1]!r} at byte offset "
                            f"{e.start})") from None
        text = data.decode("utf-8", "surrogateescape")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        doc = _load_without_deep_records(path, text, bad, records)
    if bad is not None and _BAD_BYTE.search(text):
        _drop_bad_records(path, doc, data, text, bad, records)
    return doc


_DEEP_MARK = "\u0000too deep\u0000"


def _load_without_deep_records(path: Path, text: str, bad: BadRows | None, records: str | None) -> Any:
    """A document json cannot parse for its nesting: without ``bad``, one line
    naming where; with it, each record nested over MAX_DEPTH is reported and
    dropped (records as in load_json). Only on this error path is the text scanned."""
    at = too_deep_at(text)
    if bad is None or at < 0:
        line = text.count("\n", 0, max(at, 0)) + 1
        raise UserError(f"{path}:{line}: {TOO_DEEP}")
    level = 1 if records is None else 2      # the stack depth at which a record opens
    spans, stack, skip_to = [], [], -1
    for m in _STRING_OR_BRACKET.finditer(text):
        ch = m.group()
        if ch in "[{":
            stack.append(m.start())
            if len(stack) > MAX_DEPTH and skip_to < 0 and len(stack) > level:
                skip_to = level           # inside a too-deep record: find its end
                spans.append([stack[level], None])
        elif ch in "]}" and stack:
            stack.pop()
            if skip_to >= 0 and len(stack) == skip_to:
                spans[-1][1], skip_to = m.end(), -1
    if not spans or spans[-1][1] is None:
        raise UserError(f"{path}:{text.count(chr(10), 0, at) + 1}: {TOO_DEEP}")
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], json.dumps(_DEEP_MARK)]
        last = end
    doc = json.loads("".join(parts) + text[last:])
    container = doc.get(records) if records is not None and isinstance(doc, dict) else doc
    keys = list(container) if isinstance(container, dict) else range(len(container or ()))
    doomed = [k for k in keys if container[k] == _DEEP_MARK]
    if len(doomed) != len(spans):
        raise UserError(f"{path}:{text.count(chr(10), 0, at) + 1}: {TOO_DEEP} (outside the records)")
    for k, (start, _) in zip(doomed, spans):
        bad.seen += 1
        bad.add(f"{path}:{text.count(chr(10), 0, start) + 1}: record {k if isinstance(k, int) else repr(k)}",
                TOO_DEEP)
    for k in reversed(doomed):
        del container[k]
    return doc


def _bad_bytes_in(node: Any) -> int:
    """How many invalid bytes (surrogate-escaped) the strings and keys of ``node`` hold."""
    if isinstance(node, str):
        return len(_BAD_BYTE.findall(node))
    if isinstance(node, dict):
        return sum(_bad_bytes_in(k) + _bad_bytes_in(v) for k, v in node.items())
    if isinstance(node, list):
        return sum(_bad_bytes_in(v) for v in node)
    return 0


def _drop_bad_records(path: Path, doc: Any, data: bytes, text: str, bad: BadRows, records: str | None) -> None:
    """Remove (in place) the records of ``doc`` that hold invalid bytes, reporting
    each with the line and byte offset of its first one (records and bad bytes
    are both in document order, so the k-th bad byte belongs to the record that
    holds it). A bad byte outside the records is an error."""
    offsets, last_char, last_byte = [], 0, 0
    for m in _BAD_BYTE.finditer(text):
        last_byte += _nbytes(text[last_char:m.start()])
        last_char = m.start()
        offsets.append(last_byte)

    def line(off: int) -> int:
        return data.count(b"\n", 0, off) + 1

    container = doc.get(records) if records is not None and isinstance(doc, dict) else doc
    outside = sum(_bad_bytes_in(k) + _bad_bytes_in(v) for k, v in doc.items() if k != records) \
        if container is not doc and isinstance(doc, dict) else 0
    if outside or not isinstance(container, (dict, list)):
        raise UserError(f"{path}:{line(offsets[0])}: invalid UTF-8 outside the records (first invalid byte at "
                        f"byte offset {offsets[0]}), so no record can be skipped in its place")
    cursor, doomed = 0, []
    for k in list(container) if isinstance(container, dict) else range(len(container)):
        n = _bad_bytes_in(k) + _bad_bytes_in(container[k])
        if n:
            off = offsets[min(cursor, len(offsets) - 1)]
            bad.seen += 1
            bad.add(f"{path}:{line(off)}: record {k if isinstance(k, int) else repr(k)} (byte offset {off})",
                    "invalid UTF-8")
            doomed.append(k)
            cursor += n
    for k in reversed(doomed):
        del container[k]


# -- streaming a top-level JSON array ------------------------------------------------------------
_BLANKS = re.compile(r"[ \t\r\n]*")
_SEPARATORS = re.compile(r"[ \t\r\n,]*")


def _has_bad_byte(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")   # a lone surrogate (an invalid byte) does not encode
    except UnicodeEncodeError:
        return True
    return False


class _Window:
    """The decoded text of a file, a chunk at a time: ``buf[pos:]`` is what is
    not consumed yet. Bytes are decoded incrementally with surrogateescape, so
    an invalid byte becomes one lone surrogate inside the element that holds it
    and the JSON structure around it stays intact."""

    def __init__(self, f, chunk_size: int):
        self.f, self.chunk_size = f, chunk_size
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf, self.pos, self.eof = "", 0, False
        self.dropped = 0          # bytes of the text before buf[0]
        self.started = False      # the byte-order mark check is done
        self.dirty = False        # buf holds an invalid byte

    def fill(self) -> bool:
        """Append the next chunk (dropping what is consumed); False at the end of the file."""
        text = ""
        while not text and not self.eof:
            raw = self.f.read(self.chunk_size)
            self.eof = not raw
            text = self.decoder.decode(raw, final=self.eof)
        if not text:
            return False
        if not self.started:
            self.started = True
            if text.startswith("\ufeff"):  # a byte-order mark (files saved by Windows tools)
                text, self.dropped = text[1:], 3
        self.dropped += _nbytes(self.buf[:self.pos])
        self.buf, self.pos = self.buf[self.pos:] + text, 0
        self.dirty = (self.dirty and _BAD_BYTE.search(self.buf) is not None) or _has_bad_byte(text)
        return True

    def skip_ws(self, blanks: re.Pattern | None = None) -> bool:
        """Move past blanks (or what ``blanks`` matches); False at the end of the file."""
        blanks = blanks or _BLANKS
        while True:
            self.pos = blanks.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return True
            if not self.fill():
                return False

    def offset(self, pos: int | None = None) -> int:
        """The byte offset in the file of ``buf[pos]``."""
        return self.dropped + _nbytes(self.buf[:self.pos if pos is None else pos])


_TOO_LARGE, _TRUNCATED, _TOO_DEEP = "too large", "truncated", TOO_DEEP


_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")


def _incomplete(e: json.JSONDecodeError, buf: str) -> bool:
    """Whether a decode error may only mean "cut by the end of the text read so far"."""
    rest = buf[e.pos:].strip()
    return (e.msg.startswith("Unterminated string") or not rest or any(t.startswith(rest) for t in _LITERALS)
            or _NUMBER_TAIL.fullmatch(rest) is not None    # a number cut inside, as "-1.5e" + "-3"
            or (e.msg.startswith("Invalid \\uXXXX") and e.pos >= len(buf) - 6))


def _decode_element(w: _Window, dec: json.JSONDecoder, max_element: int) -> tuple[Any, str | None, int]:
    """Parse the element at ``w.pos``: (element, None, -1), or (None, reason,
    byte offset of the element): _TOO_LARGE, _TRUNCATED or "malformed JSON
    (...)" with ``w.pos`` still at the element, "invalid UTF-8 (...)" with
    ``w.pos`` after it."""
    while True:
        try:
            obj, end = dec.raw_decode(w.buf, w.pos)
        except RecursionError:
            return None, _TOO_DEEP, w.offset()
        except json.JSONDecodeError as e:
            if not _incomplete(e, w.buf):
                return None, f"malformed JSON ({e.msg})", w.offset()
            if w.eof:
                return None, _TRUNCATED, w.offset()
            if len(w.buf) - w.pos >= max_element:
                return None, _TOO_LARGE, w.offset()
            w.fill()
            continue
        if not w.eof and _NUMBER_TAIL.fullmatch(w.buf, end) and w.fill():
            continue  # a number may go on in the next chunk ("0." + "5")
        if end - w.pos > max_element:
            return None, _TOO_LARGE, w.offset()    # the same verdict whatever the chunk size
        if isinstance(obj, (dict, list)) and too_deep_at(w.buf, w.pos, end) >= 0:
            return None, _TOO_DEEP, w.offset()
        m = _BAD_BYTE.search(w.buf, w.pos, end) if w.dirty else None
        if m:
            start = w.offset()
            w.pos = end
            return None, f"invalid UTF-8 (byte offset {w.offset(m.start())})", start
        w.pos = end
        return obj, None, -1


_IN_STRING = re.compile(r'["\\]')
_STRUCTURE = re.compile(r'["\[\]{}]')


def _skip_element(w: _Window) -> bool:
    """Move ``w.pos`` past the element at ``w.pos`` without building it (one over
    the size limit), following strings and brackets only; False at the end of the file."""
    depth, in_string, i = 0, False, w.pos
    while True:
        m = (_IN_STRING if in_string else _STRUCTURE).search(w.buf, i)
        if m is None or (m.group() == "\\" and m.end() >= len(w.buf)):
            w.pos = len(w.buf) if m is None else m.start()  # keep a trailing backslash with what follows
            if not w.fill():
                return False
            i = w.pos
            continue
        ch, i = m.group(), m.end()
        if in_string:
            if ch == "\\":
                i += 1               # the escaped character
                continue
            in_string = False
            if depth == 0:           # the element was one string
                w.pos = i
                return True
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        else:
            depth -= 1
            if depth <= 0:
                w.pos = i
                return True


def _resync(w: _Window) -> bool:
    """After a malformed element: move to the next '},{' boundary (at its '{');
    False when there is none."""
    m = _NEXT_OBJECT.search(w.buf, w.pos + 1)
    while m is None and w.fill():
        m = _NEXT_OBJECT.search(w.buf, w.pos + 1)
    if m is None:
        return False
    w.pos = m.end() - 1
    return True


def _enter_member(w: _Window, dec: json.JSONDecoder, path: Path, member: str, max_element: int) -> None:
    """Move ``w.pos`` to the '[' of the array at ``member`` of the top-level
    object, decoding and dropping the members before it (a too large one is
    skipped by its brackets); anything else is a UserError naming the file."""
    expected = f"{path}: expected a JSON object with an array at {member!r}"
    if not w.skip_ws() or w.buf[w.pos] != "{":
        raise UserError(f"{expected} at the top level")
    w.pos += 1
    while True:
        if not w.skip_ws(_SEPARATORS) or w.buf[w.pos] == "}":
            raise UserError(f"{expected}; the object ends without it")
        name, reason, start = _decode_element(w, dec, max_element)
        if reason is not None or not isinstance(name, str) or not w.skip_ws() or w.buf[w.pos] != ":":
            raise UserError(f"{expected}: no member name at byte offset {w.offset() if start < 0 else start}")
        w.pos += 1
        if not w.skip_ws():
            raise UserError(f"{expected}; the file ends after {name!r}")
        if name == member:
            if w.buf[w.pos] != "[":
                raise UserError(f"{expected}; {member!r} is not an array")
            return
        _, reason, start = _decode_element(w, dec, max_element)
        if reason in (_TOO_LARGE, _TOO_DEEP) and _skip_element(w):
            continue
        if reason is not None:
            raise UserError(f"{path}: member {name!r} (byte offset {start}): {reason}")


def iter_json_array(path: str | Path, bad: BadRows | None = None, chunk_size: int = 1 << 20,
                    max_element: int = 1 << 22, member: str | None = None) -> Iterator[tuple[int, Any]]:
    """Stream the elements of a top-level JSON array without parsing the whole
    file; with ``member``, those of the array at that member of a top-level
    object (the Karpathy file's ``images``: the members before it are decoded
    and dropped, reading stops at the array's end).

    Yields (index, element). A bad element is reported with its index and byte
    offset, counted and skipped: malformed JSON (the reader resynchronises at the
    next ``},{``), invalid UTF-8 inside it, or more than ``max_element``
    characters (skipped by its brackets, so the reader stays in step). A file
    that ends inside the array is reported like a bad row; what was read is used.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    bad = bad if bad is not None else BadRows()
    dec = json.JSONDecoder()
    label = "array element " if member is None else f"{member}["
    close = "" if member is None else "]"
    array = "top-level array" if member is None else f"{member!r} array"
    with _open_binary(path) as f:
        w = _Window(f, chunk_size)
        if member is not None:
            _enter_member(w, dec, path, member, max_element)
        elif not w.skip_ws() or w.buf[w.pos] != "[":
            raise UserError(f"{path}: expected a JSON array at the top level")
        w.pos += 1
        index = 0
        while True:
            if not w.skip_ws(_SEPARATORS):   # blanks and the commas between elements
                bad.seen += 1
                bad.add(f"{path}: {label}{index}{close}", f"file ends inside the {array} (truncated file?)")
                return
            if w.buf[w.pos] == "]":
                return
            obj, reason, start = _decode_element(w, dec, max_element)
            bad.seen += 1
            if reason is None:
                yield index, obj
                index += 1
                continue
            where = f"{path}: {label}{index}{close} (byte offset {start})"
            index += 1
            cut = "file ends inside this element (truncated file?)"
            bad.add(where, {_TRUNCATED: cut, _TOO_LARGE: f"element too large (over {max_element} characters; "
                                                           "skipped)"}.get(reason, reason))
            if reason == _TRUNCATED:
                return
            if reason in (_TOO_LARGE, _TOO_DEEP) and not _skip_element(w):
                bad.add(where, cut)
                return
            if reason.startswith("malformed") and not _resync(w):
                _report_unsynced(path, w, bad, f"{label}{index}{close}")
                return


def _report_unsynced(path: Path, w: _Window, bad: BadRows, element: str) -> None:
    rest = w.buf[w.pos:]
    if "," in rest.rstrip().rstrip("]"):
        # Not an array of objects: no '},{' to resynchronise at.
        bad.add(f"{path}: {element}",
                "no later element boundary found after the malformed element; the rest of the file "
                f"({len(rest)} characters) was skipped")


# -- writing ------------------------------------------------------------------------------------
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname() or "host")


def temp_owner() -> str:
    """``<host>-<pid>``: who writes a temporary (``stale_temps`` reads it back)."""
    return f"{_HOST}-{os.getpid()}"


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{temp_owner()}."


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w"):
    """Open a temporary file beside ``path``; rename it into place on success only."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        raise UserError(f"cannot write {path}: it is a device or other special file, not a regular file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if str(path).endswith(".gz") and "b" not in mode:
            f = gzip.open(tmp, "wt", encoding="utf-8")
        elif "b" in mode:
            f = open(tmp, mode)
        else:
            f = open(tmp, mode, encoding="utf-8", newline="\n")
        with f:
            yield f
        # mkstemp creates 0600; give the file the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not e.filename:   # a write's error names no file: name the output
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


_TEMP_OWNER = re.compile(r"\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def stale_temps(path: str | Path, inside: bool = False) -> list[Path]:
    """Temporaries of ``path`` (and of files named after it: shards, rejects),
    or with ``inside`` of any file in the folder ``path``, that an atomic write
    left when its process was killed: written on this host by a process that no
    longer runs, or named the old way (no owner). A temporary of a live process,
    or of another host, is left alone."""
    path = Path(path)
    folder, pattern = (path, ".*.tmp") if inside else (path.parent, f".{glob.escape(path.name)}.*.tmp")
    if not folder.is_dir():
        return []
    out = []
    for tmp in folder.glob(pattern):
        m = _TEMP_OWNER.search(tmp.name)
        if m is None or (m["host"] == _HOST and not _alive(int(m["pid"]))):
            out.append(tmp)
    return sorted(out)


def remove_stale_temps(path: str | Path, inside: bool = False) -> list[Path]:
    """Remove what ``stale_temps`` lists; returns the removed paths."""
    removed = []
    for tmp in stale_temps(path, inside):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def dumps(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False)


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows atomically as UTF-8 JSONL; returns the number written."""
    n = 0
    with atomic_open(path) as f:
        for row in rows:
            f.write(dumps(row))
            f.write("\n")
            n += 1
    return n


def write_json(path: str | Path, obj: Any, indent: int | None = None) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
        if indent is not None:
            f.write("\n")
