"""The downloader's guards: a hard deadline per URL, and no internal addresses.

Servers are raw sockets on 127.0.0.1 that misbehave on purpose (headers a byte
at a time, a chain of slow redirects). Other address ranges are checked through
the address check itself and a resolver stub (``socket.getaddrinfo``), never
by connecting: a fixture fails any test that tries to connect elsewhere.
"""
from __future__ import annotations

import copy
import io
import json
import socket
import socketserver
import threading
import time
from pathlib import Path

import pytest
import urllib3.util.connection
from PIL import Image

from common.errors import UserError
from common.report import Report
from pretrain import download_images as dl
from pretrain import fetch_guard
from pretrain.capfilt_config import DEFAULTS
from pretrain.fetch import fetch, make_session


def jpeg() -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(b, "JPEG")
    return b.getvalue()


JPEG = jpeg()
STOP = threading.Event()     # set at the end of each test: the trickling handlers stop


SENT: dict[int, int] = {}     # id(data) -> bytes a trickling handler got out before the client hung up
TRICKLED = threading.Event()  # set when a trickling handler stops


def _send_slowly(w, data: bytes, pause: float) -> None:
    i = 0
    try:
        for i in range(len(data)):
            if STOP.is_set():
                return
            w.write(data[i:i + 1])
            w.flush()
            time.sleep(pause)
        i = len(data)
    finally:
        SENT[id(data)] = i
        TRICKLED.set()


def _reply(w, status: str, body: bytes, *headers: str) -> None:
    head = [f"HTTP/1.1 {status}", "Connection: close", f"Content-Length: {len(body)}", *headers]
    w.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)


class Handler(socketserver.StreamRequestHandler):
    """One request per connection (Connection: close), so keep-alive never races a close."""
    hits: dict[str, int] = {}
    times: dict[str, list] = {}      # path -> monotonic times its requests arrived
    robots = (404, b"")             # what /robots.txt answers
    busy = 0                         # requests in /wait/ now, and the most at once
    most_busy = 0
    lock = threading.Lock()

    def handle(self):
        try:
            path = self.rfile.readline().split()[1].decode()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            with self.lock:
                self.hits[path] = self.hits.get(path, 0) + 1
                self.times.setdefault(path, []).append(time.monotonic())
            self.route(path)
        except (OSError, IndexError):
            pass

    def route(self, path: str):
        w = self.wfile
        if path == "/photo.jpg":
            _reply(w, "200 OK", JPEG, "Content-Type: image/jpeg")
        elif path == "/slow_headers.jpg":      # ~9 s of headers, a byte every 0.1 s (each read in the read timeout)
            _send_slowly(w, b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 60 + b"\r\n\r\n", 0.1)
        elif path == "/slow_body.jpg":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(JPEG))
            _send_slowly(w, JPEG, 0.1)
        elif path.startswith("/hop/"):          # /hop/<n>: 0.4 s, then a redirect to /hop/<n-1>; /hop/0: image
            n = int(path.rsplit("/", 1)[1])
            time.sleep(0.4)
            if n == 0:
                return self.route("/photo.jpg")
            _reply(w, "302 Found", b"", f"Location: /hop/{n - 1}")
        elif path.startswith("/to/"):           # /to/<url>: a redirect there
            _reply(w, "302 Found", b"", f"Location: {path[4:]}")
        elif path == "/robots.txt":
            code, body = self.robots
            _reply(w, f"{code} X", body)
        elif path.startswith("/busy/") and self.hits[path] == 1:   # 429 first, then the image
            _reply(w, "429 Too Many Requests", b"", "Retry-After: 1")
        elif path.startswith(("/busy/", "/wait/", "/private/", "/all-bots/")):
            with self.lock:
                Handler.busy += 1
                Handler.most_busy = max(Handler.most_busy, Handler.busy)
            time.sleep(0.3 if path.startswith("/wait/") else 0)
            with self.lock:
                Handler.busy -= 1
            self.route("/photo.jpg")
        else:
            _reply(w, "404 Not Found", b"")


@pytest.fixture()
def server():
    Handler.hits, Handler.times, Handler.robots, Handler.busy, Handler.most_busy = {}, {}, (404, b""), 0, 0
    STOP.clear()
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    STOP.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Every connection the downloader opens must go to 127.0.0.1."""
    real = urllib3.util.connection.create_connection

    def create_connection(address, *args, **kwargs):
        assert address[0] == "127.0.0.1", f"a test tried to connect to {address}"
        return real(address, *args, **kwargs)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)


@pytest.fixture()
def resolver(monkeypatch):
    """A stub for socket.getaddrinfo: names of ``table`` resolve to its addresses
    (a list, or a function of the call count); numeric hosts as usual; others fail."""
    real = socket.getaddrinfo
    table: dict = {}
    calls: dict[str, int] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            return real(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
        calls[host] = calls.get(host, 0) + 1
        addrs = table[host](calls[host]) if callable(table[host]) else table[host]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addrs]
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table, calls


def config(**over) -> dict:
    dc = copy.deepcopy(DEFAULTS["download"])
    dc.update(connect_timeout=2.0, read_timeout=2.0, retries=0, backoff=0.01, max_bytes=100000,
              allow_hosts=["127.0.0.1"])
    dc.update(over)
    return dc


def get(url: str, hosts=None, **over):
    dc = config(**over)
    s = make_session(dc)
    try:
        return fetch(s, url, dc, hosts)
    finally:
        s.close()


# -- 1. a hard deadline per URL -------------------------------------------------------------------
@pytest.mark.parametrize("path", ["slow_headers.jpg", "slow_body.jpg", "hop/20"])
def test_a_slow_server_is_cut_at_max_seconds(server, path):
    """Headers a byte at a time (9 s), a body a byte at a time (70 s), twenty
    redirects of 0.4 s each: every read is inside the read timeout, the whole far over."""
    SENT.clear()
    TRICKLED.clear()
    got = get(f"http://127.0.0.1:{server}/{path}", max_seconds=1.0, read_timeout=2.0, max_redirects=25)
    assert got.kind == "timeout" and "max_seconds" in got.detail, got
    # Work, not time: the client hung up long before the server was through (a loaded
    # machine only sends less); without the deadline every byte and every hop is fetched.
    if path == "hop/20":
        assert "/hop/0" not in Handler.hits and sum(k.startswith("/hop/") for k in Handler.hits) < 20
    else:
        assert TRICKLED.wait(60), "the trickling handler never stopped"
        (sent,) = SENT.values()
        assert sent < {"slow_headers.jpg": 92, "slow_body.jpg": len(JPEG)}[path] // 2, sent


def test_fast_redirects_still_arrive_and_retries_stay_within_the_deadline(server):
    assert get(f"http://127.0.0.1:{server}/hop/1", max_seconds=2.0).kind == "ok"
    # A retry whose wait cannot finish before the deadline is not started.
    got = get("http://127.0.0.1:9/refused.jpg", max_seconds=1.0, retries=5, backoff=0.8)
    assert got.kind == "connection_error" and got.attempts <= 2


def test_a_dns_lookup_that_hangs_is_cut_too(server, resolver):
    table, _ = resolver
    release = threading.Event()
    table["hangs.test"] = lambda n: release.wait(30) and ["127.0.0.1"]
    try:
        got = get(f"http://hangs.test:{server}/photo.jpg", max_seconds=1.0)
        # Not "ok": the lookup (released only below, or after 30 s) was abandoned at the deadline.
        assert got.kind == "timeout" and not release.is_set(), got
    finally:
        release.set()


def test_a_slow_url_in_a_run_is_timed_out_and_counted(tmp_path, server):
    dc = config(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "out.jsonl"),
                status=str(tmp_path / "status.jsonl"), image_root=str(tmp_path / "img"), threads=2,
                progress=False, max_seconds=1.0)
    Path(dc["input"]).write_text("".join(json.dumps({"url": f"http://127.0.0.1:{server}/{p}", "caption": p}) + "\n"
                                         for p in ("slow_headers.jpg", "photo.jpg")))
    summary = dl.run(dc, Report("t"), progress=False)
    assert summary["by_kind"] == {"ok": 1, "timeout": 1}


# -- 2. internal addresses ------------------------------------------------------------------------
@pytest.mark.parametrize("addr,why", [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("224.0.0.1", "multicast"),
    ("0.0.0.0", "unspecified"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("100.64.0.1", "not globally routable"), ("::1", "loopback"), ("::", "unspecified"),
    ("fe80::1", "link-local"), ("fc00::1", "private"), ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"), ("::ffff:10.0.0.1", "private"),
    ("2002:7f00:1::", "loopback"), ("64:ff9b::a9fe:a9fe", "link-local"),
    ("8.8.8.8", None), ("93.184.216.34", None), ("::ffff:8.8.8.8", None), ("2606:4700:4700::1111", None),
    ("2002:808:808::1", None)])
def test_internal_addresses(addr, why):
    got = fetch_guard.internal_reason(addr)
    assert (got is None if why is None else got.startswith(why)), got


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "017700000001", "127.1", "0x7f.1", "0177.0.0.1",
                                  "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0"])
def test_numeric_host_forms_are_checked_as_the_address_they_mean(host):
    addrs = fetch_guard.resolve(host, 80, None)
    with pytest.raises(fetch_guard.BlockedAddress, match="refused"):
        fetch_guard.AddressPolicy().check(host, addrs)


def test_loopback_is_refused_by_default_and_allowed_by_option(server):
    for host in ("127.0.0.1", "2130706433", "0x7f.1"):
        url = f"http://{host}:{server}/photo.jpg"
        got = get(url, allow_hosts=[])
        assert got.kind == "blocked_address" and "127.0.0.1" in got.detail, got
        assert get(url, allow_hosts=["127.0.0.0/8"]).kind == "ok"
        assert get(url, allow_hosts=[], allow_private=True).kind == "ok"
    assert Handler.hits["/photo.jpg"] == 6          # the refused ones never reached the server


def test_a_redirect_to_an_internal_address_is_refused(server, resolver):
    """A host allowed by name redirects to loopback (not allowed) and to a name
    that resolves to the metadata service: refused on the hop, not fetched."""
    table, calls = resolver
    table["cdn.test"] = ["127.0.0.1"]
    table["metadata.test"] = ["169.254.169.254"]
    to_loopback = f"http://cdn.test:{server}/to/http://127.0.0.1:{server}/photo.jpg"
    got = get(to_loopback, allow_hosts=["cdn.test"])
    assert got.kind == "blocked_address" and "loopback" in got.detail, got
    assert "/photo.jpg" not in Handler.hits
    assert get(to_loopback, allow_hosts=["cdn.test", "127.0.0.1"]).kind == "ok"
    got = get(f"http://127.0.0.1:{server}/to/http://metadata.test/latest/meta-data/")
    assert got.kind == "blocked_address" and "169.254.169.254" in got.detail and calls["metadata.test"] == 1


def test_a_name_that_resolves_to_a_private_address_is_refused(resolver):
    table, _ = resolver
    table["intranet.test"] = ["10.0.0.5"]
    table["mixed.test"] = ["93.184.216.34", "192.168.0.1"]     # one internal address is enough
    table["mapped.test"] = ["::ffff:10.0.0.5"]
    for name in table:
        got = get(f"http://{name}/a.jpg")
        assert got.kind == "blocked_address" and got.attempts == 1, got


def test_the_connection_goes_to_the_address_that_was_checked(server, resolver):
    """A DNS server that answers loopback (allowed here) first and an internal
    address afterwards gets asked once: no second lookup decides where to connect."""
    table, calls = resolver
    table["rebind.test"] = lambda n: ["127.0.0.1"] if n == 1 else ["10.9.9.9"]
    got = get(f"http://rebind.test:{server}/photo.jpg", allow_hosts=["127.0.0.1"])
    assert got.kind == "ok" and calls["rebind.test"] == 1


def test_blocked_urls_are_their_own_kind_and_retried_on_a_later_run(tmp_path, server):
    dc = config(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "out.jsonl"),
                status=str(tmp_path / "status.jsonl"), image_root=str(tmp_path / "img"), threads=2,
                progress=False, allow_hosts=[], min_success_rate=0.0)
    Path(dc["input"]).write_text(json.dumps({"url": f"http://127.0.0.1:{server}/photo.jpg", "caption": "a"}) + "\n")
    report = Report("t")
    assert dl.run(dc, report, progress=False)["failures_by_kind"] == {"blocked_address": 1}
    assert report.skipped["no image: blocked_address"] == 1
    assert dl.run(dict(dc, allow_hosts=["127.0.0.1"]), Report("t"), progress=False)["by_kind"] == {"ok": 1}


@pytest.mark.parametrize("key,value", [
    ("allow_hosts", "127.0.0.1"), ("allow_hosts", [""]), ("allow_hosts", ["http://10.0.0.1/"]),
    ("allow_hosts", [7]), ("allow_private", "yes"), ("max_seconds", 0), ("max_seconds", -1.0)])
def test_bad_guard_settings_stop_before_any_work(key, value):
    with pytest.raises(UserError, match=f"download.{key}"):
        dl.check_config(config(**{key: value}))


def test_a_bad_allow_hosts_on_the_command_line_exits_2_naming_the_key(tmp_path, capsys):
    from tests.conftest import root_sets
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"url": "http://127.0.0.1:9/a.jpg", "caption": "a"}) + "\n")
    with pytest.raises(SystemExit) as e:
        dl.main([*root_sets(tmp_path), "--set", f"download.input={src}", "--set", "download.allow_hosts=[a b]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and err[-1].startswith("error: download.allow_hosts"), err
    assert not (tmp_path / "work" / "capfilt").exists()


# -- 3. polite: robots.txt, per-host limits, 429 -----------------------------------------------------
ROBOTS = b"""# a site that opts out
User-agent: mblip-data
Disallow: /private/

User-agent: *
Disallow: /all-bots/

User-agent: otherbot
Disallow: /
"""


def in_threads(urls: list[str], hosts, **over) -> list:
    out = [None] * len(urls)

    def one(i):
        out[i] = get(urls[i], hosts, **over)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_robots_txt_is_fetched_once_per_host_and_honoured(server):
    from pretrain.polite import Hosts
    Handler.robots = (200, ROBOTS)
    base = f"http://127.0.0.1:{server}"
    hosts = Hosts(config())
    got = in_threads([f"{base}/private/a.jpg", f"{base}/all-bots/b.jpg", f"{base}/photo.jpg", f"{base}/private/c.jpg"],
                     hosts)
    # Our own group applies, not the * one (RFC 9309: the most specific group).
    assert [g.kind for g in got] == ["robots_disallowed", "ok", "ok", "robots_disallowed"]
    assert Handler.hits["/robots.txt"] == 1 and hosts.robots_fetches == 1
    assert "/private/a.jpg" not in Handler.hits and "/private/c.jpg" not in Handler.hits
    Handler.robots = (200, b"User-agent: *\nDisallow: /all-bots/\n")    # a rule for every crawler
    assert get(f"{base}/all-bots/b.jpg", Hosts(config())).kind == "robots_disallowed"
    assert Handler.hits["/robots.txt"] == 2
    assert get(f"{base}/private/a.jpg", Hosts(config(robots_txt=False))).kind == "ok"   # the option off


@pytest.mark.parametrize("code,kind", [(404, "ok"), (401, "ok"), (503, "robots_disallowed"),
                                       (429, "robots_disallowed")])
def test_robots_txt_that_is_missing_or_failing(server, code, kind):
    """RFC 9309: 4xx allows everything, a server error disallows everything (this run)."""
    from pretrain.polite import Hosts
    Handler.robots = (code, b"")
    got = get(f"http://127.0.0.1:{server}/photo.jpg", Hosts(config()))
    assert got.kind == kind, got


def test_429_with_retry_after_pauses_the_whole_host(server):
    """The first URL gets 429 Retry-After: 1; a second URL of the same host,
    asked while the host is paused, waits too; both then arrive."""
    from pretrain.polite import Hosts
    base = f"http://127.0.0.1:{server}"
    hosts = Hosts(config())
    first = get(f"{base}/busy/1.jpg", hosts, retries=2, max_seconds=5.0)
    assert first.kind == "ok" and first.attempts == 2
    t429, t_ok = Handler.times["/busy/1.jpg"]
    assert t_ok - t429 >= 0.9                     # Retry-After honoured (a lower bound: load cannot break it)
    # Without retries the 429 is the URL's outcome, and the host stays paused:
    # the next URL of the host waits out the Retry-After.
    assert get(f"{base}/busy/2.jpg", hosts, retries=0).kind == "http_429"
    assert get(f"{base}/wait/x.jpg", hosts, max_seconds=5.0).kind == "ok"
    assert Handler.times["/wait/x.jpg"][0] - Handler.times["/busy/2.jpg"][0] >= 0.9


def test_per_host_connections_and_rate(server):
    from pretrain.polite import Hosts
    base = f"http://127.0.0.1:{server}"
    in_threads([f"{base}/wait/{i}.jpg" for i in range(4)], Hosts(config(per_host_connections=1)))
    assert Handler.most_busy == 1
    Handler.most_busy = 0
    in_threads([f"{base}/wait/{i}.jpg" for i in range(4)], Hosts(config(per_host_connections=4)))
    assert Handler.most_busy > 1
    # One start per 2 s: of three URLs with 1 s each, the third gets no turn in time.
    got = in_threads([f"{base}/all-bots/{i}.jpg" for i in range(3)], Hosts(config(per_host_rate=0.5)),
                     max_seconds=1.0)
    assert sorted(g.kind for g in got) == ["ok", "rate_limited", "rate_limited"], got


@pytest.mark.parametrize("key,value", [("robots_txt", "no"), ("per_host_connections", 0),
                                       ("per_host_connections", 1.5), ("per_host_rate", -1)])
def test_bad_polite_settings_stop_before_any_work(key, value):
    with pytest.raises(UserError, match=f"download.{key}"):
        dl.check_config(config(**{key: value}))
