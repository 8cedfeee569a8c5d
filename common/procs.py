"""Locks: one writer per step and work dir.

``hold(step, cfg)`` takes ``${paths.work_dir}/pipeline/locks/<step id>.lock``
(a shard: ``<step id>.shard-0000i-of-0000N.lock``; a tool run without a work
dir: beside its report) with ``fcntl.flock``, and writes the holder into it
(pid, host, since). A second run of the same step (or shard) finds it held and
stops with one line naming the holder (exit 2). The kernel releases the lock
when the holder exits, however it exits (``kill -9`` too), so a lock file left
behind means nothing: only a held lock stops a run. Shards of one step take
different locks and run side by side.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
from pathlib import Path

from .errors import UserError

_HELD: dict[str, object] = {}       # lock path -> the open file that holds it


def lock_name(step, cfg, shard: tuple[int, int] | None) -> Path:
    """Where the lock of this run of ``step`` (or of one shard of it) lives."""
    from .lifecycle import report_path
    name = step.id if shard is None else f"{step.id}.shard-{shard[0]:05d}-of-{shard[1]:05d}"
    if not (cfg.get("paths") or {}).get("work_dir"):
        return report_path(step.id, cfg, shard).with_suffix(".lock")
    if step.tool:    # a tool writes wherever it is told: one writer per output, not per tool
        from .records import outputs
        name += "." + hashlib.sha256(str(outputs(step, cfg)[0].resolve()).encode()).hexdigest()[:12]
    return cfg.path("paths.work_dir") / "pipeline" / "locks" / f"{name}.lock"


def holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {h['pid']} on {h['host']} since {h['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _try_lock(path: Path):
    """The open file holding the lock at ``path``, or None when another process holds it."""
    import fcntl
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def acquire(path: Path, what: str) -> None:
    """Hold the lock at ``path`` until ``release`` or exit; one line (exit 2) naming the holder if held."""
    if str(path) in _HELD:
        return
    f = _try_lock(path)
    if f is None:
        raise UserError(f"{what} is already running on this work dir ({holder(path)}; lock {path}): "
                        "wait for it to end; two runs would overwrite each other's files")
    since = datetime.datetime.now().isoformat(timespec="seconds")
    f.truncate(0)
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}) + "\n")
    f.flush()
    _HELD[str(path)] = f


def release(path: Path) -> None:
    f = _HELD.pop(str(path), None)
    if f is not None:
        f.close()      # closing the file releases the lock


def running(path: Path) -> str | None:
    """Who holds the lock at ``path`` now (None: nobody); takes nothing."""
    if str(path) in _HELD:
        return f"this process (pid {os.getpid()})"
    f = _try_lock(path)
    if f is None:
        return holder(path)
    f.close()
    return None
