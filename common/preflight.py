"""Checks a step makes before any work: can it write every file it will write?

One line each (UserError -> exit 2), naming the config key and the path:
an output path that is a folder, a folder on the way that is a file (e.g.
``paths.out_root`` pointing at a file), a folder that is read-only, a
translation cache that is not a SQLite database. ``common.lifecycle.begin``
runs them for a step's declared outputs and report.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .errors import UserError

SQLITE_HEADER = b"SQLite format 3\x00"


def why_unwritable(path: Path, folder: bool = False) -> str | None:
    """Why ``path`` (a file, or with ``folder`` a folder to write files into)
    cannot be written, or None."""
    if path.exists():
        if path.is_dir() and not folder:
            return f"{path} is a folder, not a file"
        if not path.is_dir() and not path.is_file():
            return f"{path} is a device or other special file, not a regular {'folder' if folder else 'file'}"
        if not path.is_dir() and folder:
            return f"{path} is a file, not a folder"
    where = path if folder else path.parent
    while not where.exists():          # the first folder on the way that exists gets the new ones
        if where.parent == where:
            return f"{where} does not exist"
        where = where.parent
    if not where.is_dir():
        return f"{where} is a file, not a folder"
    if not os.access(where, os.W_OK | os.X_OK):
        return f"the folder {where} is read-only"
    return None


def check_writable(targets: Iterable[tuple[str, Path, bool]]) -> None:
    """``targets``: (config key, path, is a folder); the first that cannot be written stops the run."""
    for key, path, folder in targets:
        why = why_unwritable(Path(path), folder)
        if why:
            raise UserError(f"{key}: cannot write {path}: {why}")


def check_sqlite(key: str, path: Path) -> None:
    """A SQLite file (e.g. the translation cache): new, empty or a database, in a writable folder."""
    why = why_unwritable(path)
    if why:
        raise UserError(f"{key}: cannot use {path}: {why}")
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
        if head != SQLITE_HEADER:
            raise UserError(f"{key}: {path} is not a SQLite database (move it away, or set {key} to "
                            "another file or to \"\" for none)")
        expected = sqlite_size(path)
        if expected > path.stat().st_size:
            raise UserError(f"{key}: {path} is a truncated SQLite database ({path.stat().st_size} of its "
                            f"{expected} bytes; a copy cut short? move it away, or set {key} to another file)")


def sqlite_size(path: Path) -> int:
    """The size a SQLite file's header says it has (page size x page count), 0 when
    the header does not say (written by a SQLite before 3.7.0: the count may be stale)."""
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) < 100:
        return 100
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    counter, valid_for = header[24:28], header[92:96]
    return page_size * pages if pages and counter == valid_for else 0
