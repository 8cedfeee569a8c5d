"""Where the download's fetches run: threads of this process, or worker processes.

``download.processes`` (0: two per CPU core this process may use) worker
processes, each with its own pool of ``download.threads / processes`` threads
that fetch and ``download.image_threads`` threads that decode, resize, encode
and write the images; the parent reads the
input, decides what needs a fetch, hands each URL to a process and writes
every outcome to the journal (the only writer, so offsets stay valid). So the
download is not bound by one interpreter's lock: every core fetches.

Per-host limits across processes: **a host lives in one process**
(``HostHomes``; origin = scheme, host and port, the unit of
pretrain/polite.py), so that process's ``Hosts`` alone fetches the host's
robots.txt (once), counts its connections and rate and pauses it on 429/503:
the limits hold exactly as in one process. A host seen for the first time
goes to the process with the least work out (not by a hash of its name, which
splits by the count of hosts, whatever their sizes). The price: a list dominated by one host fetches that host in one process
(its limits bound it anyway).

Workers die with the parent: on Linux they ask for SIGKILL when it ends
(``prctl(PR_SET_PDEATHSIG)``), and exit at once if it ended before they asked.
They ignore Ctrl-C (it reaches the whole process group): the parent tells
them to drop what is queued; fetches in flight finish into the journal.

``processes: 1`` runs the threads in this process, with image work in
``download.image_processes`` separate processes (the layout before).
"""
from __future__ import annotations

import collections
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

from pretrain.polite import MAX_HOSTS, origin

PR_SET_PDEATHSIG = 1
CLOSED = "closed"


def cores() -> int:
    """CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def process_count(dc: dict) -> int:
    """Fetch processes: ``download.processes`` (0: two per core), at most one per thread.
    Two per core, as a process's threads queue for its one interpreter lock
    (measured on 2 cores, 32 threads: 4 processes 5-10% faster than 2, 8 slower)."""
    return max(1, min(dc["processes"] or 2 * cores(), dc["threads"]))


class HostHomes:
    """The process each host lives in. A new host goes to the process with the
    least work (``load``); it stays there while this remembers it: the
    ``max_hosts`` most recently used, and every host with URLs out."""

    def __init__(self, max_hosts: int = MAX_HOSTS):
        self.max_hosts = max_hosts
        self.homes: collections.OrderedDict[str, list[int]] = collections.OrderedDict()  # origin -> [process, out]

    def place(self, url: str, load: Callable[[], list[int]]) -> tuple[int, str]:
        """(process, origin) for a URL about to be sent; ``finished(origin)`` when it is back.
        ``load()``, each process's work out, is asked only for a host not seen yet."""
        key = origin(url)
        home = self.homes.get(key)
        if home is None:
            loads = load()
            home = self.homes[key] = [min(range(len(loads)), key=loads.__getitem__), 1]
            if len(self.homes) > self.max_hosts:
                self._forget_one()
        else:
            self.homes.move_to_end(key)
            home[1] += 1
        return home[0], key

    def finished(self, key: str) -> None:
        self.homes[key][1] -= 1

    def _forget_one(self) -> None:
        """The least recently used host with no URL out (one with URLs out keeps its process)."""
        for key, (_, out) in self.homes.items():
            if out == 0:
                del self.homes[key]
                return


class Threads:
    """Fetches in threads of this process (``make_worker()`` is called once)."""

    def __init__(self, threads: int, make_worker: Callable):
        self.window = threads * 4     # fetches the parent keeps queued or running
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
    """Fetches in ``n`` worker processes, each host in one of them (``HostHomes``).

    Each process is sent at most ``threads / n * 4`` URLs at a time; the next
    ones for a busy process wait here (``backlog``) while the parent reads on
    and feeds the others. One window shared by all processes would fill with
    the URLs of the process that runs behind (a slow host, a heavy image)
    while the others stand idle: a process has one interpreter lock, so only
    all of them together use every core."""

    def __init__(self, n: int, threads: int, make_worker: Callable):
        fork = "fork" in multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if fork else "spawn")
        self.conns, self.procs, self.open = [], [], set()
        self.cap = max(1, threads // n) * 4
        self.window = self.cap * n * 2     # sent or waiting in a backlog
        self.sent = [0] * n
        self.backlog: list[collections.deque] = [collections.deque() for _ in range(n)]
        self.homes, self.origin_of = HostHomes(), {}    # key of a URL out -> its origin
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
        i, self.origin_of[key] = self.homes.place(url, self._loads)
        if self.sent[i] < self.cap:
            self._send(i, (key, url, rid, rel))
        else:
            self.backlog[i].append((key, url, rid, rel))

    def _loads(self) -> list[int]:
        return [s + len(b) for s, b in zip(self.sent, self.backlog)]

    def _send(self, i: int, msg: tuple) -> None:
        try:
            self.conns[i].send(msg)
        except OSError:
            self._died(i)
        self.sent[i] += 1

    def take(self, block: bool) -> Iterator[tuple]:
        live = [self.conns[i] for i in self.open]
        for conn in multiprocessing.connection.wait(live, timeout=None if block else 0):
            i = self.conns.index(conn)
            while True:
                msg = self._recv(conn)
                if msg[0] == CLOSED:
                    self.open.discard(i)
                    break
                self.sent[i] -= 1
                self.homes.finished(self.origin_of.pop(msg[0]))
                if self.backlog[i]:
                    self._send(i, self.backlog[i].popleft())
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
            while self.backlog[i] and not cancel:     # (the parent collects every outcome first)
                self._send(i, self.backlog[i].popleft())
            self.backlog[i].clear()
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


