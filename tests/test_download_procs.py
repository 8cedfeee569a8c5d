"""The download in several processes: the same bytes as in one, the per-host
guards across processes, and workers that die with their parent. Loopback
servers on several ports stand for several hosts (a host is scheme, name and port)."""
from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from common.report import Report
from pretrain import download_images as dl
from pretrain import download_procs
from tests.conftest import PYTHON, REPO, root_sets
from tests.test_download_images import config, write_input


def jpeg(i: int, size=(120, 90)) -> bytes:
    b = io.BytesIO()
    im = Image.new("RGB", size, (i * 37 % 256, i * 91 % 256, 120))
    im.putpixel((i % size[0], 3), (255, 255, 255))
    im.save(b, "JPEG", quality=90)
    return b.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    lock = threading.Lock()
    hits: dict = {}          # (port, path) -> count
    active: dict = {}        # port -> requests being answered now
    most: dict = {}          # port -> most at a time
    delay = 0.0

    def log_message(self, *args):
        pass

    def do_GET(self):
        port = self.server.server_address[1]
        with self.lock:
            self.hits[port, self.path] = self.hits.get((port, self.path), 0) + 1
            self.active[port] = self.active.get(port, 0) + 1
            self.most[port] = max(self.most.get(port, 0), self.active[port])
        time.sleep(self.delay)
        with self.lock:     # before the answer is sent: the client cannot start its next request earlier
            self.active[port] -= 1
        name = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/img/"):
            code, body, ctype = 200, jpeg(int(name.split(".")[0])), "image/jpeg"
        elif self.path.startswith("/page/"):
            code, body, ctype = 200, b"<html>no image here</html>", "text/html"
        else:
            code, body, ctype = 404, b"not found", "text/plain"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def hosts():
    """Four loopback servers (hosts)."""
    Handler.hits, Handler.active, Handler.most, Handler.delay = {}, {}, {}, 0.0
    servers = []
    while len(servers) < 4:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    yield urls(servers)
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def urls(servers) -> list[str]:
    return [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]


def mixed_rows(bases: list[str], n: int = 40) -> list[dict]:
    rows = []
    for i in range(n):
        base = bases[i % len(bases)]
        kind = "img" if i % 5 else ("missing" if i % 2 else "page")
        rows.append({"url": f"{base}/{kind}/{i}.jpg", "caption": f"row {i}"})
    return rows + rows[:5]          # duplicates of earlier URLs


def outputs(dc: dict) -> tuple:
    images = {p.name: p.read_bytes() for p in sorted(Path(dc["image_root"]).iterdir())}
    return Path(dc["status"]).read_bytes(), Path(dc["output"]).read_bytes(), images


def test_one_and_several_processes_write_the_same_bytes(tmp_path, hosts):
    rows = mixed_rows(hosts)
    got = {}
    for n, image_threads in ((1, 2), (3, 2), (3, 0)):     # image threads: 0, the fetch threads do it
        dc = config(tmp_path / f"{n}_{image_threads}", threads=6, processes=n, image_threads=image_threads)
        Path(dc["input"]).parent.mkdir(parents=True)
        write_input(Path(dc["input"]), rows)
        summary = dl.run(dc, Report("t"), progress=False)
        assert summary["urls"] == 40 and summary["success"] == 32
        got[n, image_threads] = outputs(dc)
    got[1], got[3] = got[1, 2], got[3, 2]
    assert got[1] == got[3] == got[3, 0] and len(got[1][2]) == 32
    # and resumed in several processes: every image already on disk, the same outputs but for the kind
    dc = config(tmp_path / "3_2", threads=6, processes=3)
    dl.run(dc, Report("t"), progress=False)
    assert outputs(dc)[1:] == got[1][1:]


def test_per_host_limits_and_robots_hold_across_processes(tmp_path, hosts):
    """Each host lives in one process: one connection at a time with
    per_host_connections=1 and one robots.txt fetch per host, with 3 processes."""
    Handler.delay = 0.05
    dc = config(tmp_path, threads=12, processes=3, per_host_connections=1)
    rows = [{"url": f"{base}/img/{i}.jpg", "caption": f"{i}"} for i in range(24) for base in hosts]
    write_input(Path(dc["input"]), rows)
    assert dl.run(dc, Report("t"), progress=False)["success"] == len(rows)
    assert set(Handler.most.values()) == {1}
    robots = {port: n for (port, path), n in Handler.hits.items() if path == "/robots.txt"}
    assert len(robots) == len(hosts) and set(robots.values()) == {1}


def test_image_threads_is_checked(tmp_path):
    from common.errors import UserError
    with pytest.raises(UserError, match="download.image_threads must be an integer >= 0"):
        dl.run(config(tmp_path, image_threads=-1), Report("t"), progress=False)


def test_worker_processes_count_and_threads():
    dc = {"processes": 0, "threads": 32}
    assert download_procs.process_count(dc) == min(2 * download_procs.cores(), 32)
    assert download_procs.process_count({"processes": 8, "threads": 3}) == 3     # at most one per thread
    assert download_procs.process_count({"processes": 1, "threads": 32}) == 1


def test_a_host_stays_in_its_process_and_a_new_host_goes_to_the_least_busy():
    homes = download_procs.HostHomes(max_hosts=2)

    def never():
        raise AssertionError("the loads are asked for a host already placed")
    assert homes.place("http://a.example/1.jpg", lambda: [3, 1, 2]) == (1, "http://a.example")
    assert homes.place("HTTP://A.example/2.jpg", never)[0] == 1      # same origin: same process
    assert homes.place("http://b.example/1.jpg", lambda: [5, 4, 0])[0] == 2
    homes.finished("http://b.example")
    assert homes.place("http://a.example:8080/1.jpg", lambda: [0, 1, 1])[0] == 0      # another port, another host
    # over max_hosts, the least recently used host with nothing out is forgotten (b; a has two out)
    assert list(homes.homes) == ["http://a.example", "http://a.example:8080"]
    homes.finished("http://a.example")
    homes.finished("http://a.example")
    homes.finished("http://a.example:8080")
    assert homes.place("http://c.example/1.jpg", lambda: [1, 0, 1])[0] == 1
    assert list(homes.homes) == ["http://a.example:8080", "http://c.example"]      # a was used longest ago
    assert homes.place("http://a.example/3.jpg", lambda: [0, 5, 5])[0] == 0       # forgotten: placed anew


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_worker_processes_die_when_the_parent_is_killed(tmp_path, hosts):
    """SIGKILL to the parent alone (not its process group): no worker outlives it."""
    Handler.delay = 30.0      # every fetch hangs: the workers are busy when the parent dies
    inp = tmp_path / "in.jsonl"
    write_input(inp, [{"url": f"{b}/img/{i}.jpg", "caption": str(i)} for i, b in enumerate(hosts)])
    proc = subprocess.Popen([PYTHON, "pretrain/download_images.py", *root_sets(tmp_path),
                             "--set", f"download.input={inp}", "--set", "download.processes=3",
                             "--set", "download.threads=6", "--set", "download.progress=false",
                             "--set", "download.robots_txt=false", "--set", "download.allow_hosts=[127.0.0.1]"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(Handler.active.values()) < len(hosts):   # all hanging
        time.sleep(0.05)
    workers = children(proc.pid)
    assert len(workers) == 3 and sum(Handler.active.values()) == len(hosts), proc.stderr.read1(4000)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60      # a hang guard: the workers usually go within a second
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() and not zombie(w) for w in workers):
        time.sleep(0.05)
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and not zombie(w)]


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def test_a_worker_that_dies_stops_the_run_with_an_error(tmp_path, hosts, monkeypatch):
    """A worker process that ends without a word (killed, out of memory) is an
    error of the run, not a hang; the journal keeps what was recorded."""
    dc = config(tmp_path, threads=4, processes=2)
    write_input(Path(dc["input"]), mixed_rows(hosts, 12))
    real = dl._process_worker

    def dying(dc_, root):
        os._exit(3)
    monkeypatch.setattr(dl, "_process_worker", dying)
    with pytest.raises(RuntimeError, match="died"):
        dl.run(dc, Report("t"), progress=False)
    monkeypatch.setattr(dl, "_process_worker", real)
    assert dl.run(dc, Report("t"), progress=False)["urls"] == 12
    assert json.loads(Path(dc["status"]).read_text().splitlines()[0])["url"].endswith("/page/0.jpg")


def test_the_deadline_holds_in_workers_forked_after_a_fetch_here(tmp_path):
    """The watchdog thread (and DNS pool) of a parent that has fetched before are
    not in a forked worker: each worker starts its own, so max_seconds still cuts
    a server that sends its headers a byte at a time (9 s)."""
    import socketserver
    from tests.test_download_guards import SENT, STOP, TRICKLED, Handler as Slow, get
    STOP.clear()      # (the guards' tests set it when they end: their trickling handlers stop)
    SENT.clear()
    TRICKLED.clear()
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Slow)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        assert get(f"{base}/photo.jpg").kind == "ok"      # the watchdog now runs in this process
        dc = config(tmp_path, threads=4, processes=2, max_seconds=1.0, robots_txt=False)
        write_input(Path(dc["input"]), [{"url": f"{base}/slow_headers.jpg", "caption": "slow"}])
        assert dl.run(dc, Report("t"), progress=False)["by_kind"] == {"timeout": 1}
        # Work, not time: the worker hung up long before the server was through with its
        # 92 bytes of headers (a loaded machine only sends fewer).
        assert TRICKLED.wait(60), "the trickling handler never stopped"
        (sent,) = SENT.values()
        assert sent < 92 // 2, sent
    finally:
        STOP.set()
        srv.shutdown()
        srv.server_close()


class _GatedWorker:
    """A fetch worker for Processes: URLs with 'hold' in them wait until ``gate`` exists."""

    def __init__(self, gate: str):
        self.gate = gate

    def __call__(self, url, rid, rel, done):
        while "hold" in url and not os.path.exists(self.gate):
            time.sleep(0.01)
        done({"url": url, "id": rid})

    def close(self, cancel):
        pass


def test_a_process_that_runs_behind_does_not_starve_the_others(tmp_path):
    """Each process is sent at most its share of the window; a busy one's next
    URLs wait in the parent, so the other process's URLs go out and finish while
    it is stuck, and every URL still comes back once it moves again."""
    gate = tmp_path / "go"
    fetcher = download_procs.Processes(2, 4, lambda: _GatedWorker(str(gate)))
    busy_host, free_host = "http://busy.example", "http://free.example"
    try:
        for k in range(20):     # more than a process's share (2 threads x 4)
            fetcher.submit(k, f"{busy_host}/hold/{k}.jpg", str(k), f"{k}.jpg")
        busy = fetcher.homes.homes[busy_host][0]
        assert fetcher.sent[busy] == fetcher.cap == 8 and len(fetcher.backlog[busy]) == 12
        assert fetcher.window >= 20 + 5
        for k in range(20, 25):
            fetcher.submit(k, f"{free_host}/{k}.jpg", str(k), f"{k}.jpg")
        assert fetcher.homes.homes[free_host][0] == 1 - busy      # a new host goes to the idle process
        got = {}
        while len(got) < 5:      # the free process answers while the busy one holds all of its URLs
            got.update(fetcher.take(block=True))
        assert sorted(got) == list(range(20, 25))
        gate.touch()
        while len(got) < 25:
            got.update(fetcher.take(block=True))
        assert sorted(got) == list(range(25)) and not fetcher.backlog[busy] and fetcher.sent == [0, 0]
        assert fetcher.homes.homes[busy_host][1] == 0 and not fetcher.origin_of
    finally:
        gate.touch()
        list(fetcher.stop(cancel=False))
