"""translate/ray_translate.py on a local Ray instance (CPU, the tiny model):
the output equals the single-process run of translate/translate_file.py."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from common.jsonl import write_jsonl
from conftest import PYTHON, REPO, translation_sets
from test_scale_launcher import LAX


def test_ray_map_batches_equals_the_single_process_run(tmp_path, tiny_nllb):
    pytest.importorskip("ray.data", reason="ray is an optional extra: pip install -e '.[ray]'")
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, [{"id": i, "caption": f"A dog number {i} plays with {i % 3} red balls in the park.",
                       "lang": ["de", "en", "fr", "sw", "zh"][i % 5] if i % 11 else "xx"} for i in range(50)])
    common = ["--set", f"file.input={inp}", "--set", "file.fields=[caption]", *LAX,
              *translation_sets("hf", "", tiny_nllb)]
    single = tmp_path / "single.jsonl"
    p = subprocess.run([PYTHON, "translate/translate_file.py", *common, "--set", f"file.output={single}"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    out = tmp_path / "ray.jsonl"
    # Batches of 7 rows over 2 actors: many blocks, so order has to be kept on purpose.
    p = subprocess.run([PYTHON, "translate/ray_translate.py", *common, "--set", f"file.output={out}",
                        "--set", "ray.num_cpus=2", "--set", "ray.actors=2", "--set", "ray.batch_rows=7"],
                       cwd=REPO, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert out.read_bytes() == single.read_bytes()
    rows = [json.loads(line) for line in out.open()]
    assert len(rows) == 45                       # rows with an unknown language are skipped, reported
    assert sum(r["lang"] not in ("en",) for r in rows) >= 20
    assert "bad_rows=5" in p.stderr and "rows_translated=" in p.stderr


def test_ray_address_without_a_cluster_is_one_line(tmp_path):
    pytest.importorskip("ray.data", reason="ray is an optional extra: pip install -e '.[ray]'")
    if Path("/tmp/ray/ray_current_cluster").exists():
        pytest.skip("a Ray cluster was started on this machine: address=auto would join it")
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, [{"id": 1, "caption": "a dog", "lang": "de"}])
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    p = subprocess.run([PYTHON, "translate/ray_translate.py", "--set", f"file.input={inp}",
                        "--set", f"file.output={tmp_path / 'o.jsonl'}", "--set", "file.fields=[caption]",
                        *translation_sets("dry-run", ""), "--set", "ray.address=auto"],
                       cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 2 and "ray.address=auto: cannot connect" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "o.jsonl").exists()
