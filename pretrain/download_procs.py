"""Where the download's fetches run: threads of this process, or worker processes.

``download.processes`` (0: one per CPU core this process may use) worker
processes, each with its own pool of ``download.threads / processes`` threads,
fetch, decode, resize, encode and write the images; the parent reads the
input, decides what needs a fetch, hands each URL to a process and writes
every outcome to the journal (the only writer, so offsets stay valid). So the
download is not bound by one interpreter's lock: every core fetches.

Per-host limits across processes: **a host lives in one process**. A URL goes
to process ``stable_hash(origin) % processes`` (origin = scheme, host and
port, the unit of pretrain/polite.py), so that process's ``Hosts`` alone
fetches the host's robots.txt (once), counts its connections and rate and
pauses it on 429/503: the limits hold exactly as in one process. The price:
a list dominated by one host fetches that host in one process (its limits
bound it anyway).

Workers die with the parent: on Linux they ask for SIGKILL when it ends
(``prctl(PR_SET_PDEATHSIG)``), and exit at once if it ended before they asked.
They ignore Ctrl-C (it reaches the whole process group): the parent tells
them to drop what is queued; fetches in flight finish into the journal.

``processes: 1`` runs the threads in this process, with image work in
``download.image_processes`` separate processes (the layout before).
"""
from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import sys
import threading
from typing import Callable, Iterator

from common.sampling import stable_hash
from pretrain.polite import origin

PR_SET_PDEATHSIG = 1
CLOSED = "closed"


def cores() -> int:
    """CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def process_count(dc: dict) -> int:
    """Fetch processes: ``download.processes`` (0: one per core), at most one per thread."""
    return max(1, min(dc["processes"] or cores(), dc["threads"]))


def host_process(url: str, n: int) -> int:
    """The process a URL's host lives in."""
    return stable_hash("download-host", origin(url)) % n if n > 1 else 0


class Threads:
    """Fetches in threads of this process (``make_worker()`` is called once)."""

    def __init__(self, threads: int, make_worker: Callable):
        self.worker = make_worker()
        self.pool = cf.ThreadPoolExecutor(threads, thread_name_prefix="download")
        self.done: queue.SimpleQueue = queue.SimpleQueue()

    def submit(self, key: int, url: str, rid: str, rel: str) -> None:
        self.pool.submit(_task, self.worker, key, url, rid, rel, self.done.put)

    def take(self, block: bool) -> Iterator[tuple]:
        """(key, outcome dict or exception) of finished fetches; with ``block``, at least one."""
        if block:
            yield self.done.get()
        while not self.done.empty():
            yield self.done.get()

    def stop(self, cancel: bool) -> Iterator[tuple]:
        """Wait for the fetches in flight (queued ones dropped with ``cancel``); their outcomes."""
        self.pool.shutdown(wait=True, cancel_futures=cancel)
        self.worker.close(cancel)
        while not self.done.empty():
            yield self.done.get()


def _task(worker, key: int, url: str, rid: str, rel: str, put: Callable) -> None:
    try:
        worker(url, rid, rel, lambda got: put((key, got)))
    except BaseException as e:     # re-raised by the parent
        put((key, e))


class Processes:
    """Fetches in ``n`` worker processes, hosts sharded to them (``host_process``)."""

    def __init__(self, n: int, threads: int, make_worker: Callable):
        fork = "fork" in multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if fork else "spawn")
        self.conns, self.procs, self.open = [], [], set()
        for i in range(n):
            ours, theirs = ctx.Pipe(duplex=True)
            p = ctx.Process(target=_serve, args=(theirs, make_worker, max(1, threads // n), os.getpid()),
                            name=f"download-{i}", daemon=True)
            p.start()
            theirs.close()
            self.conns.append(ours)
            self.procs.append(p)
            self.open.add(i)

    def submit(self, key: int, url: str, rid: str, rel: str) -> None:
        i = host_process(url, len(self.conns))
        try:
            self.conns[i].send((key, url, rid, rel))
        except OSError:
            self._died(i)

    def take(self, block: bool) -> Iterator[tuple]:
        live = [self.conns[i] for i in self.open]
        for conn in multiprocessing.connection.wait(live, timeout=None if block else 0):
            while True:
                msg = self._recv(conn)
                if msg[0] == CLOSED:
                    self.open.discard(self.conns.index(conn))
                    break
                yield msg
                if not conn.poll():
                    break

    def _recv(self, conn) -> tuple:
        try:
            return conn.recv()
        except (EOFError, OSError):
            self._died(self.conns.index(conn))

    def _died(self, i: int):
        self.open.discard(i)
        self.procs[i].join(5)
        raise RuntimeError(f"download worker process {i} died (exit code {self.procs[i].exitcode})")

    def stop(self, cancel: bool) -> Iterator[tuple]:
        """Tell every process to end (dropping queued URLs with ``cancel``); the
        outcomes of the fetches still in flight, until each has closed."""
        for i in list(self.open):
            try:
                self.conns[i].send(("cancel" if cancel else "end",))
            except OSError:
                self.open.discard(i)
        try:
            while self.open:
                try:
                    yield from self.take(block=True)
                except RuntimeError:
                    if not cancel:
                        raise
        finally:
            for p, conn in zip(self.procs, self.conns):
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join()
                conn.close()


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent ends (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:    # the parent ended between fork and prctl
        os._exit(1)


def _serve(conn, make_worker: Callable, threads: int, parent_pid: int) -> None:
    """A worker process: fetch the URLs the parent sends, send back each outcome."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent decides what a Ctrl-C stops
    lock = threading.Lock()

    def reply(msg: tuple) -> None:
        if isinstance(msg[1], BaseException):
            msg = (msg[0], _portable(msg[1]))
        with lock:
            conn.send(msg)

    threads_ = Threads(threads, make_worker)
    threads_.done = _Replies(reply)
    cancel = True
    while True:
        try:
            msg = conn.recv()
        except EOFError:    # the parent is gone
            break
        if len(msg) == 1:
            cancel = msg[0] == "cancel"
            break
        threads_.submit(*msg)
    threads_.pool.shutdown(wait=True, cancel_futures=cancel)
    threads_.worker.close(cancel)
    reply((CLOSED, None))
    conn.close()


class _Replies:
    """Stands in for a Threads' queue in a worker process: outcomes go to the parent at once."""

    def __init__(self, reply: Callable):
        self.put = reply


def _portable(e: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else a RuntimeError naming it."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001
        return RuntimeError(f"in a download worker process: {type(e).__name__}: {e}")


def make_fetcher(dc: dict, make_worker: Callable):
    """Threads here (``processes`` 1) or worker processes, for ``download.threads`` in all."""
    n = process_count(dc)
    if n == 1:
        return Threads(dc["threads"], make_worker)
    return Processes(n, dc["threads"], make_worker)


