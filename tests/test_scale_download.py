"""Sharded image download: disjoint parts by URL hash, merged back into the bytes
of a one-shard run (output rows and status rows), a missing shard named."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import UserError
from pretrain import download_images as dl
from test_download_images import server, write_input  # noqa: F401  (fixture)
from translate.stage import shard_path


def main_args(tmp_path: Path, out: Path, images: Path, extra: list[str] = ()) -> list[str]:
    sets = {"download.input": tmp_path / "in.jsonl", "download.output": out / "out.jsonl",
            "download.status": out / "status.jsonl", "download.report": out / "report.json",
            "download.image_root": images, "download.threads": 3, "download.retries": 0,
            "download.read_timeout": 2.0, "download.progress": "false"}
    args = []
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return args + list(extra)


def rows(server: str) -> list:
    names = ["photo.jpg", "missing.jpg", "alpha.png", "page.html", "cmyk.jpg", "rotated.jpg", "redirect.jpg",
             "noai.jpg", "otherbot.jpg", "gone1.jpg", "gone2.jpg"]
    out = [{"url": f"{server}/{n}", "caption": f"caption of {n}"} for n in names]
    out.insert(5, {"url": f"{server}/photo.jpg", "caption": "the same url again"})
    out.insert(3, {"url": f"{server}/missing.jpg", "caption": "a failed url again"})
    out.insert(7, "{not json")
    out.append({"url": f"  {server}/cmyk.jpg ", "caption": "spaces around the url"})
    return out


@pytest.mark.parametrize("n", [1, 3])
def test_download_shards_merge_to_the_single_run(tmp_path, server, n):  # noqa: F811
    write_input(tmp_path / "in.jsonl", rows(server))
    single = tmp_path / "single"
    dl.main(main_args(tmp_path, single, tmp_path / "images_single"))
    sharded = tmp_path / "sharded"
    for i in reversed(range(n)):   # the last one to finish merges
        dl.main(main_args(tmp_path, sharded, tmp_path / "images",
                          ["--set", f"run.num_shards={n}", "--set", f"run.shard_index={i}"]))
    for name in ("out.jsonl", "status.jsonl"):
        assert (sharded / name).read_bytes() == (single / name).read_bytes()
    out = [json.loads(line) for line in (single / "out.jsonl").open()]
    assert len(out) == 8 and sum(1 for line in (single / "status.jsonl").open()) == 11
    if n > 1:
        # Every URL was fetched by exactly one shard.
        parts = [{json.loads(line)["url"] for line in shard_path(sharded / "status.jsonl", i, n).open()}
                 for i in range(n)]
        assert sum(map(len, parts)) == len(set().union(*parts)) == 11 and all(parts)


def test_download_missing_shard_is_named(tmp_path, server):  # noqa: F811
    write_input(tmp_path / "in.jsonl", rows(server))
    out = tmp_path / "o"
    for i in (0, 1):
        dl.main(main_args(tmp_path, out, tmp_path / "images", ["--set", "run.num_shards=3", "--set", f"run.shard_index={i}"]))
    assert not (out / "out.jsonl").exists()
    dc = {"input": str(tmp_path / "in.jsonl"), "output": str(out / "out.jsonl"), "status": str(out / "status.jsonl")}
    with pytest.raises(UserError, match=r"out.jsonl.shard-00002-of-00003"):
        dl.combine_download_shards(dc, 3)
    # Shards of a different sharding do not pass for this one.
    with pytest.raises(UserError, match="missing shard"):
        dl.combine_download_shards(dc, 2)
