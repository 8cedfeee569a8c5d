"""The SLURM executor against a stand-in ``sbatch``: an array job of the shards
not done (array index = shard index), then the merge as a job that depends on
it; a rerun submits only what is not done."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.conftest import PYTHON, REPO, translation_sets
from tests.test_launch_local import file_args

FAKE_SBATCH = r'''#!/usr/bin/env python3
"""A stand-in for sbatch: runs an array job's tasks (or a plain job) at once."""
import os, subprocess, sys
args, opts = sys.argv[1:], {}
while args and args[0].startswith("--"):
    k, _, v = args.pop(0)[2:].partition("=")
    opts[k] = v
log = os.environ["FAKE_SBATCH_LOG"]
n = sum(1 for _ in open(log)) if os.path.exists(log) else 0
jobid = str(1000 + n)
with open(log, "a") as f:
    f.write(" ".join(f"--{k}={v}" for k, v in opts.items()) + " " + " ".join(args) + "\n")
env = dict(os.environ)
for kv in opts.get("export", "").split(",")[1:]:
    k, _, v = kv.partition("=")
    env[k] = v
env["SLURM_SUBMIT_DIR"] = os.getcwd()
ids = [None]
if "array" in opts:
    ids = []
    for part in opts["array"].split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        ids += range(int(lo), int(hi or lo) + 1)
for i in ids:
    if i is not None:
        env["SLURM_ARRAY_TASK_ID"] = str(i)
    rc = subprocess.call(["bash", *args], env=env)
    if rc:
        sys.exit(rc)
print(jobid + ";fakecluster")
'''


def fake_env(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(FAKE_SBATCH)
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SBATCH_LOG": str(tmp_path / "sbatch.log")}


def run(args: list[str], env: dict, ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
    if ok:
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p


def test_slurm_array_then_dependent_merge_then_only_what_is_not_done(tmp_path):
    env = fake_env(tmp_path)
    out, single = tmp_path / "out.jsonl", tmp_path / "single.jsonl"
    args = file_args(tmp_path, out, *translation_sets("dry-run", tmp_path / "cache.sqlite"))
    slurm = [PYTHON, "-m", "common", "launch", "translate.file", "--set", "launch.executor=slurm",
             "--set", "launch.num_shards=3", "--set", f"launch.log_dir={tmp_path / 'logs'}",
             "--set", "launch.slurm.max_parallel=2"]
    p = run([*slurm, "--", *args], env)
    assert "submitted shards: job 1000 (array 0,1,2)" in p.stdout and "combine: job 1001" in p.stdout
    calls = (tmp_path / "sbatch.log").read_text().splitlines()
    assert "--array=0,1,2%2" in calls[0] and "shard.sbatch translate.file" in calls[0]
    assert "--dependency=afterok:1000" in calls[1] and "combine.sbatch translate.file" in calls[1]
    assert "--kill-on-invalid-dep=yes" in calls[1]     # a failed shard cancels the merge job
    assert (tmp_path / "logs").is_dir()
    run([PYTHON, "translate/translate_file.py", *file_args(tmp_path, single, *translation_sets("dry-run"))], env)
    assert out.read_bytes() == single.read_bytes()

    # A shard whose file is gone is the only one submitted again; then the merge.
    out.unlink()
    (tmp_path / "out.jsonl.shard-00001-of-00003").unlink()
    p = run([*slurm, "--", *args], env)
    calls = (tmp_path / "sbatch.log").read_text().splitlines()
    assert "--array=1%2" in calls[2] and "--dependency=afterok:1002" in calls[3]
    assert out.read_bytes() == single.read_bytes()

    # The merge job alone names a shard that is not done, and writes nothing.
    out.unlink()
    (tmp_path / "out.jsonl.shard-00002-of-00003").unlink()
    p = run(["bash", "common/slurm/combine.sbatch", "translate.file", *args],
            {**env, "NUM_SHARDS": "3", "PY": PYTHON}, ok=False)
    assert p.returncode == 2 and "shard 2 (" in p.stderr and "out.jsonl.shard-00002-of-00003" in p.stderr
    assert not out.exists()


def test_submit_checks_its_arguments(tmp_path):
    env = fake_env(tmp_path)
    p = run(["bash", "common/slurm/submit.sh", "x", "translate.file"], env, ok=False)
    assert p.returncode == 2 and "NUM_SHARDS must be a positive integer" in p.stderr
    p = run(["bash", "common/slurm/submit.sh", "3", "--set", "a=b"], env, ok=False)
    assert p.returncode == 2 and "expected a step id" in p.stderr
