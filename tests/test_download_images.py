"""The CapFilt downloader against a real HTTP server on loopback."""
from __future__ import annotations

import copy
import gzip
import http.server
import io
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from common.report import Report
from tests.conftest import PYTHON, REPO, root_sets
from pretrain import download_images as dl
from pretrain.capfilt_config import DEFAULTS
from pretrain.fetch import opted_out
from pretrain.image_norm import ImageError, normalise


def jpeg(size=(40, 30), color=(200, 30, 30), **save) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", size, color).save(b, "JPEG", quality=90, **save)
    return b.getvalue()


def png_alpha() -> bytes:
    """Left half fully transparent (black underneath), right half opaque blue."""
    im = Image.new("RGBA", (32, 32), (0, 0, 255, 255))
    ImageDraw.Draw(im).rectangle([0, 0, 15, 31], fill=(0, 0, 0, 0))
    b = io.BytesIO()
    im.save(b, "PNG")
    return b.getvalue()


def cmyk_jpeg() -> bytes:
    b = io.BytesIO()
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(b, "JPEG", quality=95)
    return b.getvalue()


def exif_rotated() -> bytes:
    """Stored 40x20 with a red left stripe; orientation 6 shows it 20x40, stripe on top."""
    im = Image.new("RGB", (40, 20), (0, 200, 0))
    ImageDraw.Draw(im).rectangle([0, 0, 9, 19], fill=(220, 0, 0))
    ex = Image.Exif()
    ex[0x0112] = 6
    b = io.BytesIO()
    im.save(b, "JPEG", quality=95, exif=ex.tobytes())
    return b.getvalue()


BIG = jpeg((64, 48))
ROUTES = {
    "/photo.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg()),
    "/alpha.png": (200, {"Content-Type": "image/png"}, png_alpha()),
    "/cmyk.jpg": (200, {"Content-Type": "image/jpeg"}, cmyk_jpeg()),
    "/rotated.jpg": (200, {"Content-Type": "image/jpeg"}, exif_rotated()),
    "/page.html": (200, {"Content-Type": "text/html"}, b"<html><body>moved</body></html>"),
    "/truncated.jpg": (200, {"Content-Type": "image/jpeg"}, BIG[: len(BIG) * 2 // 3]),
    "/huge.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg() + b"\0" * 20000),
    "/noai.jpg": (200, {"Content-Type": "image/jpeg", "X-Robots-Tag": "noindex, noai"}, jpeg()),
    "/otherbot.jpg": (200, {"Content-Type": "image/jpeg", "X-Robots-Tag": "somebot: noimageai"}, jpeg()),
    "/redirect.jpg": (302, {"Location": "/photo.jpg"}, b""),
}


class Handler(http.server.BaseHTTPRequestHandler):
    hits: dict[str, int] = {}
    lock = threading.Lock()
    hang_seconds = 0.0       # /hang/... waits this long (the kill-and-resume test)
    release = threading.Event()  # /held.jpg waits for it (the slow-host test)
    drip_sent = (0, 0)           # (bytes /drip.jpg got out before the client hung up, of)
    drip_done = threading.Event()
    slow_release = threading.Event()  # /slow.jpg answers only after it (set when the test ends)

    def log_message(self, *args):
        pass

    def send(self, code, headers, body, length=True):
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with self.lock:
            n = self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path in ROUTES:
            code, headers, body = ROUTES[self.path]
            return self.send(code, headers, body)
        if self.path == "/flaky.jpg":        # 500 first, then the image
            return self.send(500, {}, b"oops") if n == 1 else self.send(200, {"Content-Type": "image/jpeg"}, jpeg())
        if self.path == "/busy.jpg":         # 429 with Retry-After first
            return self.send(429, {"Retry-After": "0"}, b"") if n == 1 else self.send(200, {}, jpeg())
        if self.path == "/always500.jpg":
            return self.send(503, {}, b"down")
        if self.path == "/slow.jpg":         # no answer within any read timeout
            self.slow_release.wait(60)
            return self.send(200, {}, jpeg())
        if self.path == "/huge_stream.jpg":  # no Content-Length: only streaming can tell
            return self.send(200, {"Content-Type": "image/jpeg"}, jpeg() + b"\0" * 20000, length=False)
        if self.path == "/drip.jpg":         # every byte inside the read timeout, the whole far over
            body = jpeg()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            i = 0
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.02)
                i = len(body)
            except OSError:
                pass
            finally:
                Handler.drip_sent = (i, len(body))
                Handler.drip_done.set()
            return
        if self.path == "/chunked.jpg":      # Transfer-Encoding: chunked, in pieces
            body = jpeg()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 100):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100]))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/gzip.jpg":         # Content-Encoding: gzip over an image
            return self.send(200, {"Content-Type": "image/jpeg", "Content-Encoding": "gzip"}, gzip.compress(jpeg()))
        if self.path == "/gzip_bomb.jpg":    # small on the wire, over max_bytes decoded
            return self.send(200, {"Content-Type": "image/jpeg", "Content-Encoding": "gzip"},
                             gzip.compress(jpeg() + b"\0" * 500000))
        if self.path == "/lying.jpg":        # an image served as text/html
            return self.send(200, {"Content-Type": "text/html; charset=utf-8"}, jpeg())
        if self.path == "/loop.jpg":
            return self.send(302, {"Location": "/loop.jpg"}, b"")
        if self.path == "/noai_hop.jpg":     # the opt-out is on the redirect, not on the CDN's answer
            return self.send(302, {"Location": "/photo.jpg", "X-Robots-Tag": "noai"}, b"")
        if self.path == "/held.jpg":
            self.release.wait(120)
            return self.send(200, {"Content-Type": "image/jpeg"}, jpeg())
        if self.path.startswith("/many/ok/"):
            return self.send(200, {"Content-Type": "image/jpeg"}, jpeg())
        if self.path.startswith("/hang/"):
            time.sleep(self.hang_seconds)
            return self.send(200, {"Content-Type": "image/jpeg"}, jpeg())
        return self.send(404, {}, b"not found")


@pytest.fixture()
def server():
    Handler.hits = {}
    Handler.slow_release.clear()
    Handler.drip_done.clear()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    Handler.slow_release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def no_hang():
    Handler.hang_seconds = 0.0


def config(tmp_path: Path, **over) -> dict:
    dc = copy.deepcopy(DEFAULTS["download"])
    dc.update(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "out.jsonl"),
              status=str(tmp_path / "status.jsonl"),
              image_root=str(tmp_path / "images"), threads=4, connect_timeout=2.0, read_timeout=3.0,
              retries=2, backoff=0.01, max_bytes=10000, progress=False,
              allow_hosts=["127.0.0.1"])   # the loopback test server (refused by default)
    dc.update(over)
    return dc


def write_input(path: Path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def statuses(dc: dict) -> dict[str, dict]:
    return {json.loads(line)["url"].rsplit("/", 1)[1]: json.loads(line)
            for line in Path(dc["status"]).read_text().splitlines()}


def test_every_awkward_case_gets_its_kind(tmp_path, server):
    names = ["photo.jpg", "alpha.png", "cmyk.jpg", "rotated.jpg", "missing.jpg", "flaky.jpg", "busy.jpg",
             "always500.jpg", "slow.jpg", "page.html", "truncated.jpg", "huge.jpg", "huge_stream.jpg",
             "redirect.jpg", "noai.jpg", "otherbot.jpg"]
    rows = [{"url": f"{server}/{n}", "caption": f"caption of {n}"} for n in names]
    rows += [{"url": "http://127.0.0.1:9/refused.jpg", "caption": "unreachable host"},
             {"url": f"{server}/photo.jpg", "caption": "the same url again"},
             {"caption": "no url"}, {"url": f"{server}/x.jpg", "caption": "  "}, "{not json"]
    dc = config(tmp_path)
    write_input(Path(dc["input"]), rows)
    report = Report("t")
    summary = dl.run(dc, report, progress=False)
    st = statuses(dc)
    kinds = {k: v["kind"] for k, v in st.items()}
    assert kinds == {
        "photo.jpg": "ok", "alpha.png": "ok", "cmyk.jpg": "ok", "rotated.jpg": "ok",
        "missing.jpg": "http_404", "flaky.jpg": "ok", "busy.jpg": "ok", "always500.jpg": "http_503",
        "slow.jpg": "timeout", "page.html": "not_image", "truncated.jpg": "decode_error",
        "huge.jpg": "too_large", "huge_stream.jpg": "too_large", "redirect.jpg": "ok",
        "noai.jpg": "opted_out", "otherbot.jpg": "ok", "refused.jpg": "connection_error"}
    assert st["flaky.jpg"]["attempts"] == 2 and st["busy.jpg"]["attempts"] == 2
    assert st["always500.jpg"]["attempts"] == 3
    # A host that cannot be reached fails on its robots.txt already (asked again by its next URL).
    assert st["refused.jpg"]["attempts"] == 1 and "robots.txt unreachable" in st["refused.jpg"]["detail"]
    assert "text/html" in st["page.html"]["detail"]
    # The duplicate URL was fetched once and shares the first row's image.
    assert Handler.hits["/photo.jpg"] == 2  # once directly, once through the redirect
    out = [json.loads(line) for line in Path(dc["output"]).read_text().splitlines()]
    assert len(out) == 9
    assert out[-1]["caption"] == "the same url again" and out[-1]["image_id"] == out[0]["image_id"]
    for row in out:
        with Image.open(Path(dc["image_root"]) / row["image_id"]) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (256, 256)
        assert row["image_id"] == row["id"] + ".jpg" or row["caption"] == "the same url again"
    assert summary["urls"] == 17 and summary["success"] == 8
    assert summary["failures_by_kind"]["too_large"] == 2
    assert report.counts["rows_duplicate_url"] == 1 and report.counts["rows_bad"] == 3
    assert report.skipped["missing url"] == 1 and report.skipped["empty caption"] == 1
    assert report.skipped["no image: timeout"] == 1
    # Nothing half-written is left behind: the folder of temporaries is gone with them.
    assert not (Path(dc["image_root"]) / dl.PARTIAL).exists()
    assert not list(Path(dc["image_root"]).rglob("*.tmp"))


def test_pixels_alpha_cmyk_and_exif(tmp_path, server):
    dc = config(tmp_path)
    write_input(Path(dc["input"]), [{"url": f"{server}/{n}", "caption": n, "id": n.split(".")[0]}
                                    for n in ["alpha.png", "cmyk.jpg", "rotated.jpg"]])
    dl.run(dc, Report("t"), progress=False)
    root = Path(dc["image_root"])
    with Image.open(root / "alpha.jpg") as im:
        assert all(c > 245 for c in im.getpixel((30, 128)))          # transparent -> white
        r, g, b = im.getpixel((220, 128))
        assert b > 200 and r < 40                                     # opaque blue stays blue
    with Image.open(root / "cmyk.jpg") as im:
        r, g, b = im.getpixel((128, 128))
        assert r > 180 and g < 80 and b < 80                          # CMYK red is red in RGB
    with Image.open(root / "rotated.jpg") as im:
        # Upright it is 20x40 -> 128x256 centred: red stripe on top, white pad on the sides.
        r, g, b = im.getpixel((128, 20))
        assert r > 150 and g < 80
        assert all(c > 245 for c in im.getpixel((20, 128)))


def test_resume_skips_images_on_disk_and_permanent_failures(tmp_path, server):
    dc = config(tmp_path)
    write_input(Path(dc["input"]), [{"url": f"{server}/photo.jpg", "caption": "a"},
                                    {"url": f"{server}/missing.jpg", "caption": "b"},
                                    {"url": f"{server}/always500.jpg", "caption": "c"}])
    dl.run(dc, Report("t"), progress=False)
    first = Path(dc["output"]).read_text()
    Handler.hits.clear()
    summary = dl.run(dc, Report("t"), progress=False)
    st = statuses(dc)
    assert st["photo.jpg"]["kind"] == "exists" and st["missing.jpg"]["kind"] == "http_404"
    # Only the transient failure is tried again.
    assert set(Handler.hits) - {"/robots.txt"} == {"/always500.jpg"}   # robots.txt: once per run
    assert summary["downloaded_now"] == 0 and Path(dc["output"]).read_text() == first
    Handler.hits.clear()
    dl.run(config(tmp_path, retry_failed=True), Report("t"), progress=False)
    assert "/missing.jpg" in Handler.hits and "/photo.jpg" not in Handler.hits


def test_opt_out_can_be_switched_off_and_fanout(tmp_path, server):
    dc = config(tmp_path, honour_opt_out=False, fanout=2, resize_mode="keep_ratio")
    write_input(Path(dc["input"]), [{"url": f"{server}/noai.jpg", "caption": "a", "id": "abcdef"}])
    dl.run(dc, Report("t"), progress=False)
    row = json.loads(Path(dc["output"]).read_text())
    assert row["image_id"] == "ab/abcdef.jpg"
    with Image.open(Path(dc["image_root"]) / "ab" / "abcdef.jpg") as im:
        assert im.size == (256, 192)


def test_turning_the_opt_out_on_removes_images_kept_while_it_was_off(tmp_path, server):
    """Run 1 (and 2) with honour_opt_out off keep an opted-out image and mark its
    status; run 3 with it on removes the image without asking the host again."""
    dc = config(tmp_path, honour_opt_out=False)
    write_input(Path(dc["input"]), [{"url": f"{server}/noai.jpg", "caption": "a", "id": "kept"},
                                    {"url": f"{server}/photo.jpg", "caption": "b", "id": "fine"}])
    root = Path(dc["image_root"])
    dl.run(dc, Report("t"), progress=False)
    st = statuses(dc)
    assert st["noai.jpg"]["kind"] == "ok" and st["noai.jpg"]["x_robots_opt_out"] is True
    assert "x_robots_opt_out" not in st["photo.jpg"] and (root / "kept.jpg").is_file()
    dl.run(dc, Report("t"), progress=False)           # still off: the mark is kept
    assert statuses(dc)["noai.jpg"]["kind"] == "exists" and statuses(dc)["noai.jpg"]["x_robots_opt_out"] is True
    Handler.hits.clear()
    for _ in range(2):                                  # turned on, and once more
        summary = dl.run(dict(dc, honour_opt_out=True), Report("t"), progress=False)
        st = statuses(dc)
        assert st["noai.jpg"]["kind"] == "opted_out" and st["photo.jpg"]["kind"] == "exists"
        assert summary["failures_by_kind"] == {"opted_out": 1}
        assert not (root / "kept.jpg").exists() and (root / "fine.jpg").is_file()
        assert [json.loads(x)["id"] for x in Path(dc["output"]).read_text().splitlines()] == ["fine"]
    assert "/noai.jpg" not in Handler.hits


@pytest.mark.parametrize("values,expected", [
    (["noai"], True), (["noindex, noimageai"], True), (["NoAI"], True), (["noindex"], False),
    (["otherbot: noai"], False), (["mblip-data: noai"], True), (["*: noimageai"], True),
    (["otherbot: noindex, noai"], False), (["otherbot: noindex", "noai"], True), ([], False)])
def test_x_robots_tag(values, expected):
    assert opted_out(values, {"noai", "noimageai"}, "mblip-data") is expected


@pytest.mark.parametrize("mode,size,expected", [
    ("pad", (400, 200), (256, 256)), ("keep_ratio", (400, 200), (256, 128)),
    ("center_crop", (400, 200), (256, 256)), ("none", (400, 200), (400, 200)),
    ("keep_ratio", (2000, 1000), (256, 128))])
def test_resize_modes(mode, size, expected):
    dc = dict(DEFAULTS["download"], resize_mode=mode)
    out, original, got = normalise(jpeg(size), dc)
    assert original == size and got == expected
    with Image.open(io.BytesIO(out)) as im:
        assert im.size == expected


def test_no_upscale_and_decompression_bomb():
    dc = dict(DEFAULTS["download"], resize_mode="keep_ratio", upscale=False)
    assert normalise(jpeg((40, 30)), dc)[2] == (40, 30)
    with pytest.raises(ImageError) as e:
        normalise(jpeg((100, 100)), dict(dc, max_pixels=5000))
    assert e.value.kind == "too_many_pixels"


def test_bad_config_is_a_user_error(tmp_path):
    from common.errors import UserError
    with pytest.raises(UserError, match="resize_mode"):
        dl.check_config(config(tmp_path, resize_mode="stretch"))


def test_ready_made_json_array_sample(tmp_path, server):
    """A published {url, caption} sample as a JSON array, without ids."""
    dc = config(tmp_path)
    Path(dc["input"]).write_text(json.dumps([{"url": f"{server}/photo.jpg", "caption": "a red square"},
                                             {"url": f"{server}/cmyk.jpg"}, 7]))
    report = Report("t")
    dl.run(dc, report, progress=False)
    out = [json.loads(line) for line in Path(dc["output"]).read_text().splitlines()]
    assert len(out) == 1 and len(out[0]["id"]) == 16 and out[0]["image_id"] == out[0]["id"] + ".jpg"
    assert report.counts["rows_bad"] == 2 and report.skipped["missing caption"] == 1


def test_real_server_quirks(tmp_path, server):
    """Drip feed, chunked and gzip bodies, a gzip bomb, a lying Content-Type,
    a redirect loop, and an opt-out on a redirect hop."""
    names = ["drip.jpg", "chunked.jpg", "gzip.jpg", "gzip_bomb.jpg", "lying.jpg", "page.html", "loop.jpg",
             "noai_hop.jpg"]
    dc = config(tmp_path, max_seconds=1.0, read_timeout=2.0)
    write_input(Path(dc["input"]), [{"url": f"{server}/{n}", "caption": n} for n in names])
    dl.run(dc, Report("t"), progress=False)
    # The drip (about 14 s at a byte per 20 ms) is cut at max_seconds, not after the whole body:
    # counted in bytes the server got out, not in seconds (a loaded machine only sends fewer).
    assert Handler.drip_done.wait(60), "the drip handler never stopped"
    sent, whole = Handler.drip_sent
    assert sent < whole // 2, (sent, whole)
    st = statuses(dc)
    assert {k: v["kind"] for k, v in st.items()} == {
        "drip.jpg": "timeout", "chunked.jpg": "ok", "gzip.jpg": "ok", "gzip_bomb.jpg": "too_large",
        "lying.jpg": "ok", "page.html": "not_image", "loop.jpg": "too_many_redirects",
        "noai_hop.jpg": "opted_out"}
    assert st["loop.jpg"]["attempts"] == 1 and dl.is_permanent("too_many_redirects")
    assert Handler.hits["/loop.jpg"] == DEFAULTS["download"]["max_redirects"] + 1
    for name in ("chunked.jpg", "gzip.jpg", "lying.jpg"):
        with Image.open(Path(dc["image_root"]) / st[name]["image_id"]) as im:
            assert im.size == (256, 256) and im.getpixel((128, 128))[0] > 150


def resume_rows(server: str) -> list[dict]:
    rows = [{"url": f"{server}/missing{i}.jpg", "caption": f"gone {i}"} for i in range(3)]
    rows += [{"url": f"{server}/photo.jpg", "caption": "ok"}]
    rows += [{"url": f"{server}/hang/{i}.jpg", "caption": f"slow {i}"} for i in range(6)]
    return rows


def test_killed_run_resumes_without_refetching_its_failures(tmp_path, server):
    """SIGKILL mid-run: no final status yet, but the journal has every outcome
    known so far; the next run does not fetch those failures (nor the image on
    disk) again, writes the complete status, and drops the journal."""
    dc = config(tmp_path, threads=2)
    write_input(Path(dc["input"]), resume_rows(server))
    journal = dl.journal_path(Path(dc["status"]))
    Handler.hang_seconds = 60.0
    sets = [f"download.{k}={v}" for k, v in dc.items() if k in ("input", "output", "status",
                                                                  "image_root", "threads", "retries", "allow_hosts")]
    proc = subprocess.Popen([PYTHON, "pretrain/download_images.py", *root_sets(tmp_path),
                             "--set", "download.read_timeout=90",
                             "--set", "download.progress=false", *sum((["--set", x] for x in sets), [])],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120      # a hang guard, not a timing check
        while time.monotonic() < deadline:
            done = journal.read_text().splitlines() if journal.is_file() else []
            if len(done) >= 4:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        assert len(done) == 4
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not Path(dc["status"]).exists() and not Path(dc["output"]).exists()
    assert sorted(json.loads(line)["kind"] for line in done) == ["http_404"] * 3 + ["ok"]
    # A torn last line (killed mid-write) must not swallow the next run's first row.
    with open(journal, "a") as f:
        f.write('{"url": "http://torn')
    Handler.hits.clear()
    Handler.hang_seconds = 0.0
    summary = dl.run(dc, Report("t"), progress=False)
    assert not any(p.startswith("/missing") for p in Handler.hits) and "/photo.jpg" not in Handler.hits
    assert sorted(set(Handler.hits) - {"/robots.txt"}) == [f"/hang/{i}.jpg" for i in range(6)]
    st = statuses(dc)
    assert len(st) == 10 and all(st[f"missing{i}.jpg"]["kind"] == "http_404" for i in range(3))
    assert "not retried" in st["missing0.jpg"]["detail"] and st["photo.jpg"]["kind"] == "exists"
    assert summary["success"] == 7 and not journal.exists()
    assert not list(Path(dc["status"]).parent.glob(".*.tmp"))


def test_journal_of_an_interrupted_run_is_read(tmp_path, server):
    """The same without a subprocess: an exception mid-run (a bad-row budget
    exceeded) keeps the journal; a later row for the same URL wins. Four threads
    of one process: all four URLs are in flight (not queued) when the run stops."""
    dc = config(tmp_path, processes=1)
    rows = resume_rows(server)[:4] + ["{bad"] * 3
    write_input(Path(dc["input"]), rows)
    from common.errors import UserError
    with pytest.raises(UserError):
        dl.run(dict(dc, max_bad_rows=1), Report("t"), progress=False)
    journal = dl.journal_path(Path(dc["status"]))
    assert journal.is_file() and not Path(dc["status"]).exists()
    failed = dl.previous_failures(Path(dc["status"]))
    assert len(failed) == 3 and set(failed.values()) == {("http_404", 404)}
    with open(journal, "a") as f:     # a retry_failed run that got one of them after all
        f.write(json.dumps({"url": f"{server}/missing0.jpg", "kind": "ok"}) + "\n")
    assert len(dl.previous_failures(Path(dc["status"]))) == 2


def gif_animated() -> bytes:
    frames = []
    for colour in (0, 1, 2):
        f = Image.new("P", (20, 10), colour)
        f.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
        frames.append(f)
    b = io.BytesIO()
    frames[0].save(b, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return b.getvalue()


def png_16bit_grey() -> bytes:
    """Black top half, white bottom half, 16 bits per sample."""
    import numpy as np
    a = np.zeros((32, 32), dtype=np.uint16)
    a[16:] = 65535
    b = io.BytesIO()
    Image.fromarray(a).save(b, "PNG")
    assert Image.open(io.BytesIO(b.getvalue())).mode.startswith("I")
    return b.getvalue()


def test_animated_gif_16bit_png_palette_and_adobe_cmyk():
    dc = dict(DEFAULTS["download"])
    out, original, size = normalise(gif_animated(), dc)        # first frame, palette -> RGB
    with Image.open(io.BytesIO(out)) as im:
        assert im.mode == "RGB" and (original, size) == ((20, 10), (256, 256))
        r, g, b = im.getpixel((128, 128))
        assert r > 200 and g < 60 and all(c > 245 for c in im.getpixel((128, 10)))
    with Image.open(io.BytesIO(normalise(png_16bit_grey(), dc)[0])) as im:
        # Scaled to 8 bits, not clipped at 255 (which would make everything white).
        assert max(im.getpixel((128, 40))) < 30 and min(im.getpixel((128, 215))) > 225
    # Pillow writes (and reads) CMYK JPEGs the Adobe way, inverted with an APP14
    # "Adobe" marker, as Photoshop does: the case the pixel test above covers.
    assert b"\xff\xee\x00\x0eAdobe" in cmyk_jpeg()[:200]


def test_jpeg_quality_95_without_resizing():
    """A 256x256 lossless input is only re-encoded: byte-identical to Pillow at q95."""
    im = Image.new("RGB", (256, 256), (10, 120, 200))
    ImageDraw.Draw(im).ellipse([40, 40, 200, 220], fill=(250, 200, 0))
    png, ref = io.BytesIO(), io.BytesIO()
    im.save(png, "PNG")
    im.save(ref, "JPEG", quality=95)
    out, _, size = normalise(png.getvalue(), dict(DEFAULTS["download"]))
    assert size == (256, 256) and out == ref.getvalue()


def test_an_id_shared_by_two_urls_does_not_share_a_file(tmp_path, server):
    """Ready-made samples bring their own ids; two URLs with one id would
    overwrite each other's image. The second gets our id; duplicate URLs keep sharing."""
    dc = config(tmp_path)
    write_input(Path(dc["input"]), [{"url": f"{server}/photo.jpg", "caption": "a", "id": "x1"},
                                    {"url": f"{server}/cmyk.jpg", "caption": "b", "id": "x1"},
                                    {"url": f"{server}/photo.jpg", "caption": "c", "id": "x1"}])
    report = Report("t")
    dl.run(dc, report, progress=False)
    out = [json.loads(line) for line in Path(dc["output"]).read_text().splitlines()]
    assert out[0]["image_id"] == "x1.jpg" == out[2]["image_id"]
    assert out[1]["image_id"] != "x1.jpg" and len(out[1]["id"]) == 16
    assert report.counts["ids_replaced_shared_with_another_url"] == 1


def test_a_slow_url_does_not_hold_back_the_others(tmp_path, server):
    """The first URL's server answers only once every other URL's outcome is in
    the journal: the run completes only if outcomes are collected as they
    finish (a window in input order, held by its head, would stop after a few
    threads' worth of URLs and never get there). Output order is still input order.
    One host lives in one process: two processes of two threads give it two."""
    n_others = 60
    dc = config(tmp_path, threads=4, processes=2)
    rows = [{"url": f"{server}/held.jpg", "caption": "the slow one"}]
    rows += [{"url": f"{server}/many/{'ok' if i % 3 else 'missing'}/{i}.jpg", "caption": f"row {i}"}
             for i in range(n_others)]
    write_input(Path(dc["input"]), rows)
    journal = dl.journal_path(Path(dc["status"]))
    Handler.release = threading.Event()
    all_others_first = []

    def release_when_the_others_are_recorded():
        # A safety valve, not a timing check: without it a regression would hang the test.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines = journal.read_bytes().splitlines() if journal.is_file() else []
            if len(lines) >= n_others:
                all_others_first.append(not any(b"held.jpg" in line for line in lines))
                break
            time.sleep(0.02)
        Handler.release.set()

    watcher = threading.Thread(target=release_when_the_others_are_recorded)
    watcher.start()
    try:
        summary = dl.run(dc, Report("t"), progress=False)
    finally:
        Handler.release.set()
        watcher.join()
    assert all_others_first == [True]
    assert summary["urls"] == n_others + 1 and summary["success"] == 1 + 40
    status = [json.loads(line) for line in Path(dc["status"]).read_text().splitlines()]
    assert [s["url"] for s in status] == [r["url"] for r in rows]
    assert status[0]["kind"] == "ok" and not journal.exists()


def test_image_processes_write_the_same_files_as_the_threads(tmp_path, server):
    """Decoding, resizing and encoding in worker processes (the default: one per
    core) or in the download threads (image_processes=1): the same status,
    output and image bytes."""
    names = ["photo.jpg", "alpha.png", "cmyk.jpg", "rotated.jpg", "truncated.jpg", "page.html", "missing.jpg",
             "huge.jpg", "gzip.jpg", "lying.jpg"]
    got = {}
    for n in (1, 2):
        dc = config(tmp_path / str(n), image_processes=n)
        Path(dc["input"]).parent.mkdir(parents=True)
        write_input(Path(dc["input"]), [{"url": f"{server}/{x}", "caption": x} for x in names])
        dl.run(dc, Report("t"), progress=False)
        images = {p.name: p.read_bytes() for p in sorted(Path(dc["image_root"]).iterdir()) if p.is_file()}
        got[n] = (Path(dc["status"]).read_bytes(), Path(dc["output"]).read_bytes(), images)
    assert got[1] == got[2] and len(got[1][2]) == 6


def test_a_session_reads_the_environment_only_when_it_sets_something(tmp_path, monkeypatch):
    """requests looks up proxies, CA bundles and netrc for every URL when
    trust_env is on; the session turns it off only when no proxy and no netrc
    is set (a CA bundle variable becomes its verify), so what a user relies on
    still applies."""
    from pretrain.fetch import make_session
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    dc = config(tmp_path)
    s = make_session(dc)
    assert s.trust_env is False and s.verify is True
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))   # applied once, as requests would
    s = make_session(dc)
    assert s.trust_env is False and s.verify == str(tmp_path / "ca.pem")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert make_session(dc).trust_env is True
    monkeypatch.delenv("https_proxy")
    (tmp_path / ".netrc").write_text("machine example.org login a password b\n")
    assert make_session(dc).trust_env is True


def test_a_session_keeps_no_cookies(tmp_path):
    """A jar would grow with every host that sets a cookie, and requests copies
    it into every request."""
    import requests
    from pretrain.fetch import make_session
    s = make_session(config(tmp_path))
    resp = requests.Response()
    resp.url, resp.status_code = "http://example.org/a.jpg", 200
    resp.headers["Set-Cookie"] = "tracker=1; Path=/"
    req = requests.Request("GET", resp.url).prepare()
    resp.request = req
    from requests.cookies import extract_cookies_to_jar

    class Raw:   # what extract_cookies_to_jar reads the headers from
        _original_response = type("M", (), {"msg": type("H", (), {"get_all": lambda self, n, d=None: ["tracker=1; Path=/"]})()})()
    extract_cookies_to_jar(s.cookies, req, Raw())
    assert len(s.cookies) == 0
    plain = requests.Session()
    extract_cookies_to_jar(plain.cookies, req, Raw())
    assert len(plain.cookies) == 1     # the same header is kept by a default session


def test_a_killed_runs_temporary_images_are_removed_and_a_live_ones_kept(tmp_path, server):
    """Images are written into image_root/.partial first and renamed once their row
    is in the journal; a kill between the two leaves a temporary there. The next
    run removes those of dead processes on this host, never one a live run writes."""
    from common.jsonl import temp_owner
    dc = config(tmp_path)
    write_input(Path(dc["input"]), [{"url": f"{server}/photo.jpg", "caption": "a"}])
    partial = Path(dc["image_root"]) / dl.PARTIAL
    partial.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "30"])
    try:
        host = temp_owner().rsplit("-", 1)[0]
        stale = partial / f".photo.jpg.{host}-{dead.pid}.123.tmp"
        kept = partial / f".other.jpg.{host}-{live.pid}.456.tmp"
        for p in (stale, kept):
            p.write_bytes(b"half an image")
        dl.run(dc, Report("t"), progress=False)
        assert not stale.exists() and kept.exists()
    finally:
        live.kill()
        live.wait()
    # The run's own image went through .partial and is in place, with nothing of it left there.
    out = json.loads(Path(dc["output"]).read_text())
    assert (Path(dc["image_root"]) / out["image_id"]).is_file()
    assert [p.name for p in partial.iterdir()] == [kept.name]
