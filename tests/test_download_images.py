"""The CapFilt downloader against a real HTTP server on loopback."""
from __future__ import annotations

import copy
import http.server
import io
import json
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from common.report import Report
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
        if self.path == "/slow.jpg":
            time.sleep(1.2)
            return self.send(200, {}, jpeg())
        if self.path == "/huge_stream.jpg":  # no Content-Length: only streaming can tell
            return self.send(200, {"Content-Type": "image/jpeg"}, jpeg() + b"\0" * 20000, length=False)
        return self.send(404, {}, b"not found")


@pytest.fixture()
def server():
    Handler.hits = {}
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def config(tmp_path: Path, **over) -> dict:
    dc = copy.deepcopy(DEFAULTS["download"])
    dc.update(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "out.jsonl"),
              status=str(tmp_path / "status.jsonl"), report=str(tmp_path / "report.json"),
              image_root=str(tmp_path / "images"), threads=4, connect_timeout=2.0, read_timeout=0.5,
              retries=2, backoff=0.01, max_bytes=10000, progress=False)
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
    assert st["always500.jpg"]["attempts"] == 3 and st["refused.jpg"]["attempts"] == 3
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
    # Nothing half-written is left behind.
    assert not list(Path(dc["image_root"]).glob(".*.tmp"))


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
    assert set(Handler.hits) == {"/always500.jpg"}
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
