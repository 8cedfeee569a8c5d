"""translate/scale.py (one worker per device, then the merge) and the SLURM
scripts (array index = shard index, combine as a dependent job)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from common.jsonl import write_jsonl
from conftest import PYTHON, REPO, translation_sets
from translate.scale import worker_plan
from translate.scale_targets import TARGETS

# The tiny model's random output would fail every quality check; loosened, its
# (garbage) translations are kept, so the comparison covers translated text.
# max_new_tokens: above the longest test segment (22 tokens; a longer one is
# rejected as too_long unseen), small enough to keep the random model quick.
LAX = ["--set", "translation.quality.max_repeats=100000", "--set", "translation.quality.max_ratio=1000",
       "--set", "translation.quality.min_ratio=0", "--set", "translation.max_new_tokens=24"]


def run(args: list[str], env: dict | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=180,
                       env={**os.environ, **(env or {})})
    if ok:
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p


def captions(path: Path, n: int) -> None:
    words = ["dog", "red", "ball", "park", "man", "bicycle", "street", "kitchen", "white", "beach"]
    write_jsonl(path, [{"id": i, "caption": f"A {words[i % 10]} and a {words[(3 * i) % 10]} near {i % 4} trees."}
                       for i in range(n)])


def test_two_cpu_workers_equal_one_process_with_the_tiny_model(tmp_path, tiny_nllb):
    inp = tmp_path / "in.jsonl"
    captions(inp, 40)
    common = ["--set", f"file.input={inp}", "--set", "file.fields=[caption]", "--set", "file.assign_languages=true",
              *LAX]
    single = tmp_path / "single.jsonl"
    run([PYTHON, "translate/translate_file.py", *common, "--set", f"file.output={single}",
         *translation_sets("hf", "", tiny_nllb)])
    out = tmp_path / "scaled.jsonl"
    p = run([PYTHON, "translate/scale.py", "--set", "scale.devices=[cpu,cpu]", "--set", f"scale.log_dir={tmp_path / 'logs'}",
             "--", "translate/translate_file.py", *common, "--set", f"file.output={out}",
             *translation_sets("hf", tmp_path / "cache.sqlite", tiny_nllb)])
    assert "merged 2 shards: 40 rows" in p.stderr
    assert out.read_bytes() == single.read_bytes()
    rows = [json.loads(line) for line in out.open()]
    assert sum(r["lang"] != "en" for r in rows) > 5      # translated rows are compared, not only English
    log = (tmp_path / "logs" / "translate_file.shard-00001-of-00002.log").read_text()
    assert "run.shard_index=1" in log and "translation.device=cpu" in log and "translation.threads=" in log


def test_worker_plan_gives_each_worker_its_device():
    plan = worker_plan(["cuda:0", "cuda:1"], TARGETS["tasks/mscoco/translate_train.py"], 0, cores=16)
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in plan] == ["0", "1"]
    assert plan[1][0] == ["run.num_shards=2", "run.shard_index=1", "translation.device=cuda"]
    cpu = worker_plan(["cpu"] * 4, TARGETS["translate/translate_file.py"], 0, cores=8)
    assert all("translation.threads=2" in sets and env["OMP_NUM_THREADS"] == "2" and env["CUDA_VISIBLE_DEVICES"] == ""
               for sets, env in cpu)
    # Sharded embedding: the worker only fills the cache; its device key is embed.device.
    emb = worker_plan(["cuda:1"], TARGETS["match/hard_match.py"], 0)
    assert "embed.only=true" in emb[0][0] and "embed.device=cuda" in emb[0][0]
    os.environ["CUDA_VISIBLE_DEVICES"] = "4,6"
    try:   # cuda:1 is the second GPU this process sees
        assert worker_plan(["cuda:1"], TARGETS["translate/translate_file.py"], 0)[0][1]["CUDA_VISIBLE_DEVICES"] == "6"
    finally:
        del os.environ["CUDA_VISIBLE_DEVICES"]


def test_launcher_reports_a_failed_shard(tmp_path):
    p = run([PYTHON, "translate/scale.py", "--set", "scale.devices=[cpu,cpu]", "--set", f"scale.log_dir={tmp_path}",
             "--", "translate/translate_file.py", "--set", f"file.input={tmp_path / 'nope.jsonl'}",
             "--set", f"file.output={tmp_path / 'o.jsonl'}"], ok=False)
    assert p.returncode == 2 and "2 of 2 shards failed" in p.stderr and "input file not found" in p.stderr
    p = run([PYTHON, "translate/scale.py", "--", "README_missing.py"], ok=False)
    assert p.returncode == 2 and "script not found" in p.stderr


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
if "array" in opts:
    lo, hi = map(int, opts["array"].split("%")[0].split("-"))
    ids = range(lo, hi + 1)
else:
    ids = [None]
for i in ids:
    if i is not None:
        env["SLURM_ARRAY_TASK_ID"] = str(i)
    rc = subprocess.call(["bash", *args], env=env)
    if rc:
        sys.exit(rc)
print(jobid + ";fakecluster")
'''


def test_slurm_submit_chains_the_array_and_the_combine(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(FAKE_SBATCH)
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    inp = tmp_path / "in.jsonl"
    captions(inp, 30)

    def args(out: Path) -> list[str]:
        return ["translate/translate_file.py", "--set", f"file.input={inp}", "--set", f"file.output={out}",
                "--set", "file.fields=[caption]", "--set", "file.assign_languages=true",
                *translation_sets("dry-run", tmp_path / "cache.sqlite")]

    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SBATCH_LOG": str(tmp_path / "sbatch.log"),
           "PY": PYTHON, "LOG_DIR": str(tmp_path / "logs")}
    out = tmp_path / "out.jsonl"
    p = run(["bash", "translate/slurm/submit.sh", "3", *args(out)], env=env)
    assert "submitted shards: job 1000" in p.stdout and "combine: job 1001" in p.stdout
    calls = (tmp_path / "sbatch.log").read_text().splitlines()
    assert "--array=0-2" in calls[0] and "shard.sbatch" in calls[0]
    assert "--dependency=afterok:1000" in calls[1] and "combine.sbatch" in calls[1]
    assert "--kill-on-invalid-dep=yes" in calls[1]     # a failed shard cancels the combine job
    assert (tmp_path / "logs").is_dir()
    single = tmp_path / "single.jsonl"
    run([PYTHON, *args(single)])
    assert out.read_bytes() == single.read_bytes()
    # A shard that never ran fails the combine job by name.
    out.unlink()
    (tmp_path / "out.jsonl.shard-00001-of-00003").unlink()
    p = run(["bash", "translate/slurm/combine.sbatch", *args(out)], env={**env, "NUM_SHARDS": "3"}, ok=False)
    assert p.returncode == 2 and "out.jsonl.shard-00001-of-00003" in p.stderr and not out.exists()
