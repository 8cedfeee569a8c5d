"""The Ray executor (``python -m common launch STEP --set launch.executor=ray``)
on a local Ray instance, CPU only (num_cpus=2): one shardable step of each
kind with 2 shards, each shard a Ray task, and each output equal to the
one-process run's, byte for byte: translation (mscoco.translate, and
translate.file with the tiny NLLB), download (capfilt.download from a loopback
server) and embedding (match.mine with the tiny CLIP: the shards fill the
cache, the merge is the mining run)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray is an optional extra: pip install -e '.[ray]'")

from common import executors  # noqa: E402
from match import hard_match  # noqa: E402
from pretrain import download_images as dl  # noqa: E402
from tests.conftest import PYTHON, REPO, translation_sets  # noqa: E402
from tests.test_download_images import server, write_input  # noqa: E402,F401  (fixture)
from tests.test_launch_local import (TRANSLATED, assert_rows_as_predicted, file_args,  # noqa: E402
                                     mscoco_args, single_run)
from tests.test_launch_steps import download_args, download_rows  # noqa: E402
from tests.test_match_hard_match import make_data, sets as hm_sets, tiny_clip  # noqa: E402,F401  (fixture)
from translate import translate_file  # noqa: E402

RAY = ["--set", "launch.executor=ray", "--set", "launch.num_shards=2", "--set", "launch.devices=[cpu]"]


def test_an_unreachable_ray_address_is_one_line(tmp_path):
    if Path("/tmp/ray/ray_current_cluster").exists():
        pytest.skip("a Ray cluster was started on this machine: address=auto would join it")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "o.jsonl"
    p = subprocess.run([PYTHON, "-m", "common", "launch", "translate.file", *RAY,
                        "--set", "launch.ray.address=auto", "--", *file_args(tmp_path, out, *translation_sets())],
                       cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 2 and "launch.ray.address=auto: cannot connect" in p.stderr
    assert "Traceback" not in p.stderr and not out.exists()


@pytest.fixture(scope="module")
def local_ray():
    """One local instance for the module (the executor uses an initialised Ray as it is)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def ray_launch(step: str, args: list[str]) -> None:
    executors.main([step, *RAY, "--", *args])


def test_translation_step(tmp_path, local_ray, capfd):
    want = single_run(tmp_path / "single")
    args = mscoco_args(tmp_path / "sharded")
    ray_launch("mscoco.translate", args)
    err = capfd.readouterr().err
    assert "shard 0/2: Ray task on CPU" in err and "shard 1/2: Ray task on CPU" in err
    assert (tmp_path / "sharded" / TRANSLATED).read_bytes() == want
    log = (tmp_path / "sharded" / "work" / "pipeline" / "logs" / "mscoco.translate.shard-00001-of-00002.log")
    assert "run.shard_index=1" in log.read_text() and "translation.device=cpu" in log.read_text()
    ray_launch("mscoco.translate", args)             # a rerun: both shards are done
    assert capfd.readouterr().err.count("done earlier for this input and config, skipped") == 2


def test_translate_file_rows_with_the_tiny_model(tmp_path, local_ray, tiny_nllb, tiny_expect):
    sets = translation_sets("hf", "", tiny_nllb)
    single, out = tmp_path / "single.jsonl", tmp_path / "ray.jsonl"
    translate_file.main(file_args(tmp_path, single, *sets))
    ray_launch("translate.file", file_args(tmp_path, out, *sets))
    assert out.read_bytes() == single.read_bytes()
    assert_rows_as_predicted(out, tiny_expect)


def test_download_step(tmp_path, local_ray, server):  # noqa: F811
    write_input(tmp_path / "in.jsonl", download_rows(server))
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    dl.main(download_args(tmp_path, single))
    ray_launch("capfilt.download", download_args(tmp_path, sharded))
    for name in ("out.jsonl", "status.jsonl"):
        assert (sharded / name).read_bytes() == (single / name).read_bytes()
    assert len((sharded / "out.jsonl").read_text().splitlines()) == 8


def test_embedding_step(tmp_path, local_ray, tiny_clip, capfd):  # noqa: F811
    make_data(tmp_path / "a")
    make_data(tmp_path / "b")
    hard_match.main(hm_sets(tmp_path / "a", tiny_clip))
    capfd.readouterr()
    ray_launch("match.mine", hm_sets(tmp_path / "b", tiny_clip))
    out = "work/match/capfilt_match_en.jsonl"
    assert (tmp_path / "b" / out).read_bytes() == (tmp_path / "a" / out).read_bytes()
    assert "no embedding shard had" not in capfd.readouterr().err   # the shards embedded every key
