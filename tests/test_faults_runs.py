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


# -- G. no step built on a stale step ---------------------------------------------------------------
def test_the_merge_refuses_a_final_file_whose_chain_is_stale_and_status_says_so(tmp_path, capsys):
    """MSCOCO generate -> translate -> generate, then dataset_coco.json changes
    and the merge runs without the chain rerun: one line naming the stale step
    and its command (and status calls the translate step stale, whose own input
    did not change); after the chain
    reran, the merge runs."""
    from common import status
    from pretrain import merge_train
    from tasks.mscoco import generate_train, translate_train
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW, raw)
    argv = [*root_sets(tmp_path, raw), *translation_sets("dry-run", "")]
    for main in (generate_train.main, translate_train.main, generate_train.main):
        main(argv)
    final = tmp_path / "out" / "train" / "mscoco.jsonl"
    margv = merge_argv(tmp_path, [{"path": str(final), "source": "mscoco"}])
    merge_train.main(margv)
    karpathy = raw / "mscoco" / "dataset_coco.json"
    data = json.loads(karpathy.read_text(encoding="utf-8"))
    next(i for i in data["images"] if i["split"] == "train")["sentences"].append({"raw": "A new one.", "sentid": 9})
    karpathy.write_text(json.dumps(data), encoding="utf-8")

    line = fails(capsys, merge_train.main, margv)
    assert line.startswith("error: step 4.3 (mscoco.final) is stale (input changed since the run: ")
    assert str(karpathy) in line and "Rerun it first: python tasks/mscoco/generate_train.py " in line
    capsys.readouterr()
    status.main(argv)
    out = capsys.readouterr().out
    line = out.split("mscoco.translate", 1)[1].splitlines()[0]    # its own input unchanged: stale upstream
    assert "STALE" in line and "step 4.1 (mscoco.english) is stale (input changed since the run: " in line
    for main in (generate_train.main, translate_train.main, generate_train.main):
        main(argv)
    merge_train.main(margv)


def test_a_step_refuses_to_build_on_a_stale_step_upstream(tmp_path, capsys):
    """The chain one step further: the translate step after the English
    intermediate was edited by hand refuses, naming the English step."""
    from tasks.mscoco import generate_train, translate_train
    argv = [*root_sets(tmp_path), *translation_sets("dry-run", "")]
    generate_train.main(argv)
    translate_train.main(argv)
    english = tmp_path / "work" / "mscoco" / "captions_en.jsonl"
    english.write_bytes(english.read_bytes() + english.read_bytes().splitlines(keepends=True)[0])
    line = fails(capsys, translate_train.main, argv)
    assert line.startswith("error: step 4.1 (mscoco.english) is stale (output changed after the run: ")


def image_sizes(dc: dict) -> dict[str, tuple]:
    return {n: Image.open(Path(dc["image_root"]) / st["image_id"]).size for n, st in statuses(dc).items()
            if st.get("image_id")}


def test_image_settings_and_a_new_url_redo_exactly_the_images_they_affect(tmp_path, server):  # noqa: F811
    from pretrain import download_images as dl
    dc = download_config(tmp_path, image_processes=1)
    write_input(Path(dc["input"]), [{"url": f"{server}/photo.jpg", "caption": "a", "id": "one"},
                                    {"url": f"{server}/cmyk.jpg", "caption": "b", "id": "two"}])
    dl.run(dc, Report("t"), progress=False)
    assert set(image_sizes(dc).values()) == {(256, 256)}
    dl.run(dc, Report("t"), progress=False)                            # nothing changed: nothing fetched
    assert {st["kind"] for st in statuses(dc).values()} == {"exists"}

    dc = {**dc, "image_size": 128, "resize_mode": "center_crop"}
    dl.run(dc, Report("t"), progress=False)
    assert {st["kind"] for st in statuses(dc).values()} == {"ok"} and set(image_sizes(dc).values()) == {(128, 128)}

    write_input(Path(dc["input"]), [{"url": f"{server}/photo.jpg", "caption": "a", "id": "one"},
                                    {"url": f"{server}/alpha.png", "caption": "b", "id": "two"}])   # id two: new URL
    before = (Path(dc["image_root"]) / "two.jpg").read_bytes()
    dl.run(dc, Report("t"), progress=False)
    kinds = {n: st["kind"] for n, st in statuses(dc).items()}
    assert kinds == {"photo.jpg": "exists", "alpha.png": "ok"}
    assert (Path(dc["image_root"]) / "two.jpg").read_bytes() != before


def test_opt_out_settings_redo_exactly_the_images_they_affect(tmp_path, server):  # noqa: F811
    """honour_opt_out on: the opted-out URL has no image; turned off, the rerun
    fetches that one (the other stays); on again, its image is removed."""
    from pretrain import download_images as dl
    dc = download_config(tmp_path, image_processes=1)
    write_input(Path(dc["input"]), [{"url": f"{server}/noai.jpg", "caption": "a", "id": "one"},
                                    {"url": f"{server}/photo.jpg", "caption": "b", "id": "two"}])
    dl.run(dc, Report("t"), progress=False)
    assert {n: st["kind"] for n, st in statuses(dc).items()} == {"noai.jpg": "opted_out", "photo.jpg": "ok"}
    dl.run({**dc, "honour_opt_out": False}, Report("t"), progress=False)
    assert {n: st["kind"] for n, st in statuses(dc).items()} == {"noai.jpg": "ok", "photo.jpg": "exists"}
    dl.run(dc, Report("t"), progress=False)
    assert statuses(dc)["noai.jpg"]["kind"] == "opted_out" and not (Path(dc["image_root"]) / "one.jpg").exists()


# -- H. workers die with their parent ---------------------------------------------------------------
def children_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    """The processes of ``pids`` still alive (zombies count as gone) after at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def kill_and_check(proc: subprocess.Popen, want: int, match: str) -> None:
    """Wait (bounded) for ``want`` descendants of ``proc`` whose command line has
    ``match``, kill -9 ``proc``, and assert none of them remains."""
    deadline = time.monotonic() + 120
    kids: list[psutil.Process] = []
    while time.monotonic() < deadline and proc.poll() is None:
        kids = [k for k in psutil.Process(proc.pid).children(recursive=True) if match in " ".join(k.cmdline())]
        if len(kids) >= want:
            break
        time.sleep(0.1)
    assert len(kids) >= want, f"{len(kids)} of {want} children started (exit {proc.poll()})"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert children_gone([k.pid for k in kids]) == []


@pytest.fixture()
def silent_port():
    """A port that accepts connections and never answers: a fetch there waits."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()


def test_kill_9_of_the_download_leaves_no_image_worker(tmp_path, silent_port):
    argv = download_argv(tmp_path, [f"http://127.0.0.1:{silent_port}/{i}.jpg" for i in range(4)],
                         "download.image_processes=2", "download.read_timeout=600")
    proc = subprocess.Popen([PYTHON, "pretrain/download_images.py", *argv], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_and_check(proc, 2, "download_images.py")


SPACY_LIKE = """
import time
from pretrain import phrase_index
class Slow:
    def pipe(self, texts, batch_size):
        time.sleep(600)
list(phrase_index._parallel_extract(Slow(), [("a dog", 0), ("a cat", 1)], 2, 1))
"""


def test_kill_9_of_the_filter_leaves_no_spacy_worker(tmp_path):
    proc = subprocess.Popen([PYTHON, "-c", SPACY_LIKE], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    kill_and_check(proc, 2, "-c")


def test_kill_9_of_the_launcher_leaves_no_shard_and_a_relaunch_runs_them(tmp_path, silent_port):
    argv = download_argv(tmp_path, [f"http://127.0.0.1:{silent_port}/{i}.jpg" for i in range(8)],
                         "download.read_timeout=600")
    cmd = [PYTHON, "-m", "common", "launch", "capfilt.download", "--set", "launch.num_shards=2",
           "--set", "launch.devices=[cpu,cpu]", "--", *argv]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_and_check(proc, 2, "download_images.py")


# -- I. work committed by time ---------------------------------------------------------------------
def test_translation_commits_by_time_as_well_as_by_size(tmp_path, monkeypatch):
    """flush_segments far away: with a clock that moves 31 s per look, finished
    batches reach the cache while the run goes on (a kill loses about a minute)."""
    from tests.test_translate_engine import FakeBackend, make_cfg
    from translate import engine as eng
    clock = iter(range(0, 10 ** 6, 31))
    monkeypatch.setattr(eng.time, "monotonic", lambda: next(clock))
    engine = eng.Engine(make_cfg(cache=str(tmp_path / "c.sqlite"), flush_segments=10 ** 6, max_batch_tokens=40),
                        backend=FakeBackend())
    commits: list[int] = []
    put = engine.cache.put_many
    monkeypatch.setattr(engine.cache, "put_many", lambda rows: (commits.append(len(rows)), put(rows))[1])
    engine.translate([f"A dog number {i} runs in the park." for i in range(40)], ["de"] * 40)
    engine.close()
    assert len(commits) >= 5 and sum(commits) == 40


def test_flush_seconds_is_checked():
    from common.errors import UserError
    from tests.test_translate_engine import make_cfg
    from translate.engine import check_settings
    assert make_cfg()["flush_seconds"] == 60
    with pytest.raises(UserError, match="translation.flush_seconds: must be a number > 0"):
        check_settings(make_cfg(flush_seconds=0))


# -- J. launcher options in their place ------------------------------------------------------------
@pytest.mark.parametrize("own", [["--set", "paths.work_dir=/elsewhere"], ["--paths", "p.yaml"]])
def test_a_step_option_before_the_double_dash_is_an_error(tmp_path, capsys, own):
    from common import executors
    line = fails(capsys, executors.main, ["capfilt.download", *own, "--", *root_sets(tmp_path)])
    assert "before '--'" in line and "put it after '--'" in line
