"""The one JSONL (and JSON) reader/writer.

Reading streams line by line, ``.gz`` is transparent, and a malformed line is
reported as ``file:line: reason``, counted and skipped until the bad-row budget
is spent (then UserError -> exit 2). Writing goes to a temporary file in the
target folder that is renamed into place, so a crash never leaves half a file.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import UserError

# Resynchronise after a malformed array element at the next '},{' boundary.
_NEXT_OBJECT = re.compile(r"\}\s*,\s*\{")
# What may still follow a number that ends at the end of the buffer read so far.
_NUMBER_TAIL = re.compile(r"[0-9.eE+\-]*")


def _open_text(path: Path, mode: str = "rt"):
    # Reading: utf-8-sig drops a byte-order mark (files saved by Windows tools),
    # which would otherwise make the first row or the whole array malformed.
    encoding = "utf-8-sig" if "r" in mode else "utf-8"
    if str(path).endswith(".gz"):
        return gzip.open(path, mode, encoding=encoding)
    return open(path, mode, encoding=encoding)


class BadRows:
    """Counts bad input rows against a budget and keeps the first messages.

    ``max_bad`` is an absolute count; ``max_bad_fraction`` (of rows seen) is
    checked at the end via ``check_fraction``.
    """

    def __init__(self, max_bad: int | None = 1000, max_bad_fraction: float | None = None,
                 keep: int = 20, quiet: bool = False):
        self.max_bad = max_bad
        self.max_bad_fraction = max_bad_fraction
        self.count = 0
        self.seen = 0
        self.examples: list[str] = []
        self.keep = keep
        self.quiet = quiet

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        msg = f"{where}: {reason}"
        if len(self.examples) < self.keep:
            self.examples.append(msg)
            if not self.quiet:
                print(f"warning: skipped {msg}", file=sys.stderr)
        if self.max_bad is not None and self.count > self.max_bad:
            raise UserError(f"{msg} (more than {self.max_bad} bad rows; raise io.max_bad_rows to go on)")

    def check_fraction(self, what: str) -> None:
        if self.max_bad_fraction is not None and self.seen and self.count / self.seen > self.max_bad_fraction:
            raise UserError(f"{what}: {self.count} of {self.seen} rows are bad "
                            f"(over the allowed fraction {self.max_bad_fraction})")


def read_jsonl(path: str | Path, bad: BadRows | None = None,
               validate: Callable[[Any], str | None] | None = None) -> Iterator[dict]:
    """Stream the JSON objects of a JSONL file; bad lines are reported and skipped.

    ``validate(row)`` may return a reason string to reject a parsed row.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    bad = bad if bad is not None else BadRows()
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            bad.seen += 1
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                bad.add(f"{path}:{lineno}", f"malformed JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(row, dict):
                bad.add(f"{path}:{lineno}", f"expected a JSON object, got {type(row).__name__}")
                continue
            if validate is not None:
                reason = validate(row)
                if reason:
                    bad.add(f"{path}:{lineno}", reason)
                    continue
            yield row


def load_json(path: str | Path) -> Any:
    """Read a whole JSON document; a parse error names file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    with _open_text(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None


def iter_json_array(path: str | Path, bad: BadRows | None = None,
                    chunk_size: int = 1 << 20, max_element: int = 1 << 22) -> Iterator[tuple[int, Any]]:
    """Stream the elements of a top-level JSON array without parsing the whole file.

    Yields (index, element). A malformed element is reported by its index and
    skipped by resynchronising at the next top-level ``{``/``,`` boundary.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    bad = bad if bad is not None else BadRows()
    dec = json.JSONDecoder()
    with _open_text(path) as f:
        buf = ""
        pos = 0
        eof = False

        def fill() -> bool:
            nonlocal buf, pos, eof
            if eof:
                return False
            chunk = f.read(chunk_size)
            if not chunk:
                eof = True
                return False
            buf = buf[pos:] + chunk
            pos = 0
            return True

        def skip_ws() -> None:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf) or not fill():
                    return

        fill()
        skip_ws()
        if pos >= len(buf) or buf[pos] != "[":
            raise UserError(f"{path}: expected a JSON array at the top level")
        pos += 1
        index = 0
        while True:
            skip_ws()
            if pos >= len(buf):
                # A truncated file (an interrupted download): what was read is used,
                # the loss is reported like a bad row rather than failing the run.
                bad.seen += 1
                bad.add(f"{path}: array element {index}",
                        "file ends inside the top-level array (truncated file?)")
                return
            if buf[pos] == "]":
                return
            if buf[pos] == ",":
                pos += 1
                continue
            while True:
                try:
                    obj, end = dec.raw_decode(buf, pos)
                    if not eof and _NUMBER_TAIL.fullmatch(buf, end) and fill():
                        continue  # a number may go on in the next chunk ("0." + "5")
                    break
                except json.JSONDecodeError as e:
                    # The element may straddle the chunk boundary: read more and retry.
                    if not eof and len(buf) - pos < max_element:
                        fill()
                        continue
                    bad.seen += 1
                    if eof and e.pos >= len(buf):
                        reason = "file ends inside this element (truncated file?)"
                    else:
                        reason = f"malformed JSON ({e.msg})"
                    bad.add(f"{path}: array element {index}", reason)
                    index += 1
                    m = _NEXT_OBJECT.search(buf, pos + 1)
                    while m is None and fill():
                        m = _NEXT_OBJECT.search(buf, 1)
                    if m is None:
                        rest = buf[pos:]
                        if "," in rest.rstrip().rstrip("]"):
                            # Not an array of objects: no '},{' to resynchronise at.
                            bad.add(f"{path}: array element {index}",
                                    "no later element boundary found after the malformed "
                                    f"element; the rest of the file ({len(rest)} characters) was skipped")
                        return
                    pos = m.end() - 1
            bad.seen += 1
            pos = end
            yield index, obj
            index += 1


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w"):
    """Open a temporary file beside ``path``; rename it into place on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
