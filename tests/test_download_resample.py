"""download.resample: the resamplers, their place in the step's fingerprint, and
images made with other resize settings made again (never a mix in one run)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.errors import UserError
from common.report import Report
from pretrain import download_images as dl
from pretrain.capfilt_config import DEFAULTS
from pretrain.download_resume import made_key
from pretrain.image_norm import RESAMPLE, normalise
from tests.conftest import root_sets
from tests.test_download_images import Handler, config, server, statuses, write_input  # noqa: F401  (fixture)


def photo(size=(640, 480)) -> bytes:
    r = np.random.default_rng(0)
    base = Image.fromarray((r.random((6, 8, 3)) * 255).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    b = io.BytesIO()
    base.save(b, "JPEG", quality=90)
    return b.getvalue()


@pytest.mark.parametrize("resample", RESAMPLE)
@pytest.mark.parametrize("size", [(640, 480), (100, 60)])     # down and up
def test_every_resampler_gives_the_size_and_the_picture(resample, size):
    dc = dict(DEFAULTS["download"], resample=resample)
    jpeg, original, out = normalise(photo(size), dict(dc, resize_mode="keep_ratio"))
    lanczos = normalise(photo(size), dict(dc, resize_mode="keep_ratio", resample="lanczos"))[0]
    a, b = (np.asarray(Image.open(io.BytesIO(x)).convert("RGB"), dtype=np.float64) for x in (jpeg, lanczos))
    assert original == size and out == Image.open(io.BytesIO(jpeg)).size and max(out) == 256
    assert np.abs(a - b).mean() < 3.0        # the same picture as Lanczos makes, within a few levels


def test_area_averages_fine_detail_away():
    """1-pixel stripes scaled down become even grey: no aliasing pattern left."""
    stripes = (np.mgrid[0:1200, 0:1600][1] % 2 * 255).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(stripes).convert("RGB").save(b, "PNG")
    out = normalise(b.getvalue(), dict(DEFAULTS["download"], resample="area", resize_mode="keep_ratio"))[0]
    grey = np.asarray(Image.open(io.BytesIO(out)).convert("L"), dtype=np.float64)
    assert abs(grey.mean() - 127.5) < 3 and grey.std() < 8


def test_the_default_and_a_bad_name_is_refused_before_work(tmp_path):
    assert DEFAULTS["download"]["resample"] == "box"
    with pytest.raises(UserError, match="download.resample"):
        dl.run(config(tmp_path, resample="nearest"), Report("t"), progress=False)
    assert not (tmp_path / "status.jsonl.journal").exists()


def test_the_resize_settings_shape_the_download_fingerprint(tmp_path):
    from common import cli, pipeline, records
    step = pipeline.get("capfilt.download")
    prints = set()
    for sets in ([], ["download.resample=lanczos"], ["download.image_size=224"], ["download.jpeg_quality=90"],
                 ["download.resize_mode=center_crop"], ["download.background=[0,0,0]"], ["download.upscale=false"]):
        cfg = cli.load_config(step, [*root_sets(tmp_path), *(x for s in sets for x in ("--set", s))])
        values = records.shaping_values(step, cfg)
        assert {"download.resample", "download.image_size", "download.jpeg_quality"} <= set(values)
        prints.add(records.config_fingerprint(values))
    assert len(prints) == 7
    cfg = cli.load_config(step, [*root_sets(tmp_path), "--set", "download.processes=3"])
    assert "download.processes" not in records.shaping_values(step, cfg)    # how, not what, is written


def image_bytes(dc: dict) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(dc["image_root"]).iterdir()}


def test_images_made_with_other_settings_are_made_again(tmp_path, server):
    names = ["photo.jpg", "cmyk.jpg", "rotated.jpg", "missing.jpg"]
    dc = config(tmp_path, resample="lanczos")
    write_input(Path(dc["input"]), [{"url": f"{server}/{n}", "caption": n} for n in names])
    dl.run(dc, Report("t"), progress=False)
    lanczos = image_bytes(dc)
    first = statuses(dc)["photo.jpg"]
    assert first["made"] == made_key(first["url"], first["image_id"], dc)
    hits = dict(Handler.hits)
    area = dict(dc, resample="area")
    assert made_key(first["url"], first["image_id"], area) != first["made"]
    assert dl.run(area, Report("t"), progress=False)["by_kind"] == {"ok": 3, "http_404": 1}
    assert all(Handler.hits[f"/{n}"] == hits[f"/{n}"] + 1 for n in names[:3])     # fetched again
    assert Handler.hits["/missing.jpg"] == hits["/missing.jpg"]                    # a failure stays one
    assert image_bytes(area) != lanczos and set(image_bytes(area)) == set(lanczos)
    assert all(s["made"] == made_key(s["url"], s["image_id"], area) for s in statuses(area).values() if "image_id" in s)
    assert "made" not in statuses(area)["missing.jpg"]
    assert dl.run(area, Report("t"), progress=False)["by_kind"] == {"exists": 3, "http_404": 1}
    # the same settings again: the same bytes as the first run with them
    dl.run(dc, Report("t"), progress=False)
    assert image_bytes(dc) == lanczos


def test_a_resumed_run_redoes_only_what_other_settings_made(tmp_path, server):
    """A run with new settings killed halfway: its journal has some images made
    the new way, the status file the rest the old way (and a row of an older
    run without "made"): only those are made again."""
    names = ["photo.jpg", "cmyk.jpg", "rotated.jpg", "alpha.png"]
    dc = config(tmp_path, resample="lanczos")
    write_input(Path(dc["input"]), [{"url": f"{server}/{n}", "caption": n} for n in names])
    dl.run(dc, Report("t"), progress=False)
    area = dict(dc, resample="area")
    rows = [json.loads(line) for line in Path(dc["status"]).read_text().splitlines()]
    del rows[2]["made"]                   # rotated.jpg: a row of an older run
    Path(dc["status"]).write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = dict(rows[0], made=made_key(rows[0]["url"], rows[0]["image_id"], area))
    Path(dc["image_root"], rows[0]["image_id"]).write_bytes(b"made the new way")
    dl.journal_path(Path(dc["status"])).write_text(json.dumps(done) + "\n")
    hits = dict(Handler.hits)
    dl.run(area, Report("t"), progress=False)
    again = {n for n in names if Handler.hits[f"/{n}"] > hits[f"/{n}"]}
    assert again == {"cmyk.jpg", "rotated.jpg", "alpha.png"}
    assert Path(dc["image_root"], rows[0]["image_id"]).read_bytes() == b"made the new way"
    assert statuses(area)["photo.jpg"]["kind"] == "exists"


def test_an_image_to_redo_whose_url_now_fails_is_not_kept(tmp_path, server):
    dc = config(tmp_path, resample="lanczos")
    write_input(Path(dc["input"]), [{"url": f"{server}/photo.jpg", "caption": "x"}])
    dl.run(dc, Report("t"), progress=False)
    moved = dict(statuses(dc)["photo.jpg"], url=f"{server}/missing.jpg")
    Path(dc["status"]).write_text(json.dumps(moved) + "\n")
    write_input(Path(dc["input"]), [{"url": f"{server}/missing.jpg", "caption": "x", "id": moved["id"]}])
    summary = dl.run(dict(dc, resample="area"), Report("t"), progress=False)
    assert summary["by_kind"] == {"http_404": 1} and not list(Path(dc["image_root"]).iterdir())
