"""Persistent translation cache (SQLite) of raw model outputs.

The key is everything that changes what the model writes: the backend's model
identity (path, dtype or compute type, beam size), the generation length rule
(max_new_tokens, length_factor, length_extra), both languages and the text.
Only the raw output is stored, never a quality verdict: the engine checks every
output again when it reads it, so changed ``translation.quality.*`` settings
apply to cached segments too. (Databases written before this layout have a
``translations`` table with verdicts; it is left alone and never read.)

The engine commits finished batches at least every ``flush_segments``
segments (one transaction each), so a run killed at any point loses at most
that many; the next run reads what is done and translates only the rest. WAL mode and a long busy timeout let several processes share one
database (shards, GPUs on one machine); rows are INSERT OR IGNORE, so two
workers that translated the same segment cannot conflict.
"""
from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

from common.errors import UserError


def cache_key(model_key: str, src: str, tgt: str, text: str) -> str:
    """model_key: the engine's generation key (model identity and length rule)."""
    return hashlib.sha256("\x1f".join((model_key, src, tgt, text)).encode("utf-8")).hexdigest()


class TranslationCache:
    def __init__(self, path: str | Path | None):
        self.path = str(path) if path else ":memory:"
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: Ray calls an actor from threads other than the one
        # that built it; each Engine still uses its connection from one thread at a time.
        self.db = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self._retry(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
        self._retry(lambda: self.db.execute("PRAGMA synchronous=NORMAL"))
        self._retry(lambda: self.db.execute(
            "CREATE TABLE IF NOT EXISTS segments ("
            " key TEXT PRIMARY KEY, model TEXT, src TEXT, tgt TEXT, source TEXT, output TEXT)"))

    def _retry(self, fn, tries: int = 50):
        for i in range(tries):
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or i == tries - 1:
                    raise self._error(e) from None
                time.sleep(0.05 * (i + 1))
            except sqlite3.DatabaseError as e:
                raise self._error(e) from None

    def _error(self, e: sqlite3.Error) -> UserError:
        """A broken or full cache database is the user's to fix: one line naming it."""
        return UserError(f"translation.cache: {self.path}: {e} (a full disk, or a damaged file: move it "
                         "away, or set translation.cache to another file)")

    def get_many(self, keys: list[str]) -> dict[str, str]:
        """key -> raw output for the keys that are cached."""
        found: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, output FROM segments WHERE key IN ({','.join('?' * len(chunk))})"
            for key, output in self._retry(lambda: self.db.execute(q, chunk).fetchall()):
                found[key] = output
        return found

    def put_many(self, rows: list[tuple[str, str, str, str, str, str]]) -> None:
        """rows: (key, model, src, tgt, source, output); committed as one transaction."""
        def write():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany("INSERT OR IGNORE INTO segments VALUES (?,?,?,?,?,?)", rows)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        self._retry(write)

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM segments").fetchone()[0]

    def close(self) -> None:
        self.db.close()
