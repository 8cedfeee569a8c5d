"""The translation cache under concurrent writers: several processes writing
overlapping keys into one SQLite database neither corrupt it nor lose rows."""
from __future__ import annotations

import multiprocessing as mp
import sqlite3

from translate.cache import TranslationCache, cache_key

WORKERS, KEYS, BATCH = 4, 600, 25


def rows_for(worker: int) -> list[tuple]:
    # Worker w writes keys [w*KEYS/2, w*KEYS/2 + KEYS): each key is shared with a neighbour.
    out = []
    for k in range(worker * KEYS // 2, worker * KEYS // 2 + KEYS):
        text = f"segment {k}"
        out.append((cache_key("m", "en", "de", text), "m", "en", "de", text, f"Segment {k}"))
    return out


def writer(path: str, worker: int, start, errors) -> None:
    try:
        cache = TranslationCache(path)
        start.wait()
        rows = rows_for(worker)
        for i in range(0, len(rows), BATCH):            # many small transactions interleave
            cache.put_many(rows[i:i + BATCH])
            got = cache.get_many([r[0] for r in rows[:i + BATCH]])
            assert len(got) == i + len(rows[i:i + BATCH]), "a committed row is not readable"
        cache.close()
    except BaseException as e:  # reported to the parent: an assert in a child would not fail the test
        errors.put(f"worker {worker}: {e!r}")


def test_parallel_writers_neither_corrupt_nor_lose_rows(tmp_path):
    path = str(tmp_path / "cache.sqlite")
    TranslationCache(path).close()
    ctx = mp.get_context("fork")
    start, errors = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(path, w, start, errors)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    assert errors.empty(), errors.get()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    expected = {r[0]: r[5] for w in range(WORKERS) for r in rows_for(w)}
    stored = dict(db.execute("SELECT key, output FROM segments").fetchall())
    assert len(expected) == (WORKERS + 1) * KEYS // 2 and stored == expected
    db.close()
