"""Locks and child processes: one writer per step and work dir, workers that die with their parent.

``hold(step, cfg)`` takes ``${paths.work_dir}/pipeline/locks/<step id>.lock``
(a shard: ``<step id>.shard-0000i-of-0000N.lock``; a tool run without a work
dir: beside its report) with ``fcntl.flock``, and writes the holder into it
(pid, host, since). A second run of the same step (or shard) finds it held and
stops with one line naming the holder (exit 2). The kernel releases the lock
when the holder exits, however it exits (``kill -9`` too), so a lock file left
behind by a killed run means nothing: only a held lock stops a run. A run that
ends removes its lock file (and the folders it made for it). Shards of one step take
different locks and run side by side.

``die_with_parent()`` asks Linux (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill
the calling process when its parent dies: the initializer of every worker pool
and the ``preexec_fn`` of every shard the launcher starts call it, so a
``kill -9`` of a step leaves no spaCy or image worker, and of the launcher no
shard, behind. Elsewhere (not Linux) it does nothing.
"""
from __future__ import annotations

import ctypes
import datetime
import hashlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

from .errors import UserError
from .jsonl import read_json_object

PR_SET_PDEATHSIG = 1
_HELD: dict[str, tuple] = {}        # lock path -> (the open file that holds it, folders made for it)


def die_with_parent(parent: int | None = None) -> None:
    """Be killed (SIGKILL) when the parent process dies; exit at once if it
    already has (``parent``: its pid, when the caller knows it)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:   # it died before the prctl
        os._exit(1)


def child_preexec() -> None:
    """``preexec_fn`` of a child process that must not outlive this one."""
    die_with_parent()


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
    h = read_json_object(path)
    try:
        return f"pid {h['pid']} on {h['host']} since {h['since']}"
    except (KeyError, TypeError):
        return "another process"


def _try_lock(path: Path, create: bool = True):
    """The open file holding the lock at ``path``, or None when another process
    holds it (or, without ``create``, when there is no lock file: nobody holds it)."""
    import fcntl
    while True:
        try:
            f = open(path, "a+" if create else "r", encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return None
        try:
            if os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                return f
        except FileNotFoundError:
            pass
        f.close()      # the holder removed it as we opened it: take the new one


def _new_folders(path: Path) -> list[Path]:
    """The folders on the way to ``path`` that do not exist yet, deepest first."""
    out, where = [], path.parent
    while not where.exists():
        out.append(where)
        where = where.parent
    return out


def acquire(path: Path, what: str) -> None:
    """Hold the lock at ``path`` until ``release`` or exit; one line (exit 2) naming the holder if held.
    ``release`` removes the lock file and the folders made for it: a run that
    stops before its work leaves nothing behind."""
    if str(path) in _HELD:
        return
    made = _new_folders(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = _try_lock(path)
    if f is None:
        raise UserError(f"{what} is already running on this work dir ({holder(path)}; lock {path}): "
                        "wait for it to end; two runs would overwrite each other's files")
    since = datetime.datetime.now().isoformat(timespec="seconds")
    f.truncate(0)
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}) + "\n")
    f.flush()
    _HELD[str(path)] = (f, made)


def release(path: Path) -> None:
    held = _HELD.pop(str(path), None)
    if held is None:
        return
    f, made = held
    Path(path).unlink(missing_ok=True)   # still held: a process waiting on this file retries (_try_lock)
    f.close()
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            break      # not empty: other files live there now


def running(path: Path) -> str | None:
    """Who holds the lock at ``path`` now (None: nobody); takes nothing."""
    if str(path) in _HELD:
        return f"this process (pid {os.getpid()})"
    if not path.exists():
        return None
    f = _try_lock(path, create=False)
    if f is None:
        return holder(path) if path.exists() else None
    f.close()
    return None
