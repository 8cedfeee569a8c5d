"""The second fault run (issue 20), families F-J: one writer per step and work
dir, no step built on a stale one, workers that die with their parent, work
committed by time, launcher options in their place. Each test fails on the code
before these fixes. The "Faults and what you see" table in docs/faults.md points here."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image

from common.report import Report
from tests.conftest import FIXTURES_RAW, PYTHON, REPO, root_sets, translation_sets
from tests.test_download_images import config as download_config, server, statuses, write_input  # noqa: F401
from tests.test_faults import fails, merge_argv


# -- F. one writer per step and work dir ----------------------------------------------------------
HOLD = """
import sys, time
from common import cli, pipeline, procs
step = pipeline.get(sys.argv[1])
cfg = cli.load_config(step, sys.argv[3:])
shard = None if sys.argv[2] == "-" else (int(sys.argv[2]), 2)
procs.acquire(procs.lock_name(step, cfg, shard), step.id)
print("held", flush=True)
time.sleep(600)
"""


def holding(step_id: str, shard: int | None, argv: list[str]) -> subprocess.Popen:
    """Another live process holding the lock of ``step_id`` (or of its shard ``shard`` of 2)."""
    p = subprocess.Popen([PYTHON, "-c", HOLD, step_id, "-" if shard is None else str(shard), *argv], cwd=REPO,
                         stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.stdout.readline().strip() == "held"
    return p


def download_argv(tmp_path: Path, urls: list[str], *sets: str) -> list[str]:
    write_input(tmp_path / "in.jsonl", [{"url": u, "caption": f"c{i}"} for i, u in enumerate(urls)])
    out = [*root_sets(tmp_path), "--set", f"download.input={tmp_path / 'in.jsonl'}",
           "--set", "download.allow_hosts=[127.0.0.1]", "--set", "download.progress=false",
           "--set", "download.min_success_rate=0", "--set", "download.image_processes=1"]
    return out + [x for s in sets for x in ("--set", s)]


def test_a_second_download_on_one_work_dir_exits_2_naming_the_holder(tmp_path, capsys, server):  # noqa: F811
    """The reported case: two download_images.py runs on one work dir. The second
    stops before any work, naming the first (pid, host, since); shards of one
    step take their own locks and run side by side."""
    from pretrain import download_images
    argv = download_argv(tmp_path, [f"{server}/photo.jpg"])
    first = holding("capfilt.download", None, argv)
    try:
        line = fails(capsys, download_images.main, argv)
        assert f"capfilt.download is already running on this work dir (pid {first.pid} on " in line
        assert " since 20" in line and not (tmp_path / "work" / "capfilt").exists()
    finally:
        first.kill()
        first.wait()
    download_images.main(argv)      # the holder is gone (killed): its lock went with it

    shard0 = holding("capfilt.download", 0, argv)
    try:
        download_images.main([*argv, "--set", "run.num_shards=2", "--set", "run.shard_index=1"])   # runs
        line = fails(capsys, download_images.main, [*argv, "--set", "run.num_shards=2", "--set", "run.shard_index=0"])
        assert f"capfilt.download shard 0 of 2 is already running on this work dir (pid {shard0.pid}" in line
    finally:
        shard0.kill()
        shard0.wait()


def test_a_relaunch_never_starts_a_shard_another_process_runs(tmp_path, capsys, server):  # noqa: F811
    from common import executors
    argv = download_argv(tmp_path, [f"{server}/photo.jpg", f"{server}/alpha.png"])
    launch = ["capfilt.download", "--set", "launch.num_shards=2", "--set", "launch.devices=[cpu,cpu]", "--", *argv]
    shard0 = holding("capfilt.download", 0, argv)
    try:
        line = fails(capsys, executors.main, launch)
        assert f"capfilt.download shard 0 of 2 is still running (pid {shard0.pid} on " in line
        assert not list((tmp_path / "work" / "pipeline").glob("capfilt.download.shard-*.json"))
    finally:
        shard0.kill()
        shard0.wait()
    executors.main(launch)
    assert (tmp_path / "work" / "pipeline" / "capfilt.download.json").is_file()
