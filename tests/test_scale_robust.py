"""What goes wrong in a scaled run: a worker that crashes or exits 0 without its
file, a shard run twice, num_shards changed between runs, an input changed
under finished shards, an output folder that does not exist yet."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from common.jsonl import write_jsonl
from conftest import translation_sets
from translate import scale
from translate.stage import shard_path

FAKE = r'''
import os, sys
from pathlib import Path
sets = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
n, i = int(sets["run.num_shards"]), int(sets["run.shard_index"])
mode = os.environ.get("FAKE_MODE", "ok")
print(f"fake worker {i} of {n} starting", flush=True)
if i == 1 and mode == "crash":
    os.abort()
if i == 1 and mode == "exit3":
    print("worker 1: something went wrong", file=sys.stderr)
    sys.exit(3)
if not (i == 1 and mode == "nowrite"):
    out = Path(sets["out"])
    Path(f"{out}.shard-{i:05d}-of-{n:05d}").write_text(f"row {i}\n")
'''


def fake_run(tmp_path: Path, mode: str, devices: str = "[cpu,cpu]") -> None:
    script = tmp_path / "fake_step.py"
    script.write_text(FAKE)
    os.environ["FAKE_MODE"] = mode
    try:
        scale.main(["--set", f"scale.devices={devices}", "--set", f"scale.log_dir={tmp_path / 'logs'}",
                    "--set", f"scale.output={tmp_path / 'out.jsonl'}", "--", str(script),
                    "--set", f"out={tmp_path / 'out.jsonl'}"])
    finally:
        del os.environ["FAKE_MODE"]


@pytest.mark.parametrize("mode,status", [("crash", "killed by signal 6"), ("exit3", "exit 3")])
def test_a_crashed_worker_is_named_with_its_log_and_nothing_is_merged(tmp_path, capfd, mode, status):
    with pytest.raises(SystemExit) as e:
        fake_run(tmp_path, mode)
    err = capfd.readouterr().err
    log = tmp_path / "logs" / "fake_step.shard-00001-of-00002.log"
    assert e.value.code == 2
    assert f"1 of 2 shards failed, nothing merged: shard 1 ({status}, log {log})" in err
    assert "fake worker 1 of 2 starting" in err                # the end of its log is shown
    assert "shard 0/2 on cpu: exit 0" in err
    assert not (tmp_path / "out.jsonl").exists() and (tmp_path / "out.jsonl.shard-00000-of-00002").is_file()


def test_a_worker_that_exits_0_with_an_old_file_is_caught(tmp_path, capfd):
    fake_run(tmp_path, "ok")
    assert (tmp_path / "out.jsonl").read_text() == "row 0\nrow 1\n"
    old = time.time() - 3600
    os.utime(tmp_path / "out.jsonl.shard-00001-of-00002", (old, old))
    with pytest.raises(SystemExit) as e:
        fake_run(tmp_path, "nowrite")       # shard 1 "succeeds" but writes nothing: its old file stays
    assert e.value.code == 2
    assert "out.jsonl.shard-00001-of-00002 (not written by this run" in capfd.readouterr().err


def test_shard_mode_passes_the_exit_status_and_names_the_shard(tmp_path, capfd):
    script = tmp_path / "fake_step.py"
    script.write_text(FAKE)
    os.environ["FAKE_MODE"] = "exit3"
    try:
        with pytest.raises(SystemExit) as e:
            scale.main(["--set", "scale.mode=shard", "--set", "scale.num_shards=4", "--set", "scale.shard_index=1",
                        "--set", f"scale.output={tmp_path / 'o'}", "--", str(script), "--set", f"out={tmp_path / 'o'}"])
    finally:
        del os.environ["FAKE_MODE"]
    assert e.value.code == 3 and f"shard 1 of 4 ({script}) failed: exit 3" in capfd.readouterr().err


ROWS = [{"id": i, "caption": f"caption number {i}, with a comma", "lang": ["de", "fr", "en", "zh"][i % 4]}
        for i in range(20)]


def file_args(tmp_path: Path, out: Path) -> list[str]:
    return ["--set", f"file.input={tmp_path / 'in.jsonl'}", "--set", f"file.output={out}",
            "--set", "file.fields=[caption]", *translation_sets("dry-run", tmp_path / "cache.sqlite")]


def shards(tmp_path: Path, out: Path, n: int, which=None) -> None:
    from translate import translate_file
    for i in (range(n) if which is None else which):
        translate_file.main([*file_args(tmp_path, out), "--set", f"run.num_shards={n}", "--set", f"run.shard_index={i}"])


def combine(tmp_path: Path, out: Path, n: int) -> None:
    scale.main(["--set", "scale.mode=combine", "--set", f"scale.num_shards={n}", "--",
                "translate/translate_file.py", *file_args(tmp_path, out)])


def test_num_shards_changed_between_runs(tmp_path, capfd):
    from translate import translate_file
    write_jsonl(tmp_path / "in.jsonl", ROWS)
    single = tmp_path / "single.jsonl"
    translate_file.main(file_args(tmp_path, single))
    out = tmp_path / "out.jsonl"
    shards(tmp_path, out, 2)
    shards(tmp_path, out, 3)
    shards(tmp_path, out, 3, which=[1])        # the same shard again: same bytes
    capfd.readouterr()
    combine(tmp_path, out, 3)
    err = capfd.readouterr().err
    assert out.read_bytes() == single.read_bytes()
    # The 2-shard files are not merged, but listed (and left alone).
    assert "not merged (another run.num_shards than 3" in err
    assert str(shard_path(out, 0, 2)) in err and str(shard_path(out, 1, 2)) in err
    assert shard_path(out, 1, 2).is_file()
    combine(tmp_path, out, 2)                  # they are a complete 2-shard run of the same input
    assert out.read_bytes() == single.read_bytes()
    # Without shard 1 of 3, the merge names it even though older 2-shard files exist.
    shard_path(out, 1, 3).unlink()
    out.unlink()
    with pytest.raises(SystemExit):
        combine(tmp_path, out, 3)
    assert "out.jsonl.shard-00001-of-00003" in capfd.readouterr().err and not out.exists()


def test_shards_older_than_the_input_are_not_merged(tmp_path, capfd):
    write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    shards(tmp_path, out, 3)
    old = time.time() - 60
    for i in range(3):
        os.utime(shard_path(out, i, 3), (old, old))
    write_jsonl(tmp_path / "in.jsonl", ROWS[:10])      # new input; shards 0 and 2 are redone, 1 is not
    shards(tmp_path, out, 3, which=[0, 2])
    capfd.readouterr()
    with pytest.raises(SystemExit) as e:
        combine(tmp_path, out, 3)
    err = capfd.readouterr().err
    assert e.value.code == 2 and "out.jsonl.shard-00001-of-00003 (older than the input" in err
    assert "shard-00000" not in err and not out.exists()


def test_output_and_log_folders_that_do_not_exist_yet(tmp_path, capfd):
    write_jsonl(tmp_path / "in.jsonl", ROWS)
    from translate import translate_file
    single = tmp_path / "single.jsonl"
    translate_file.main(file_args(tmp_path, single))
    out = tmp_path / "new" / "deeper" / "out.jsonl"
    scale.main(["--set", "scale.devices=[cpu,cpu]", "--set", f"scale.log_dir={tmp_path / 'no' / 'logs'}", "--",
                "translate/translate_file.py", *file_args(tmp_path, out)])
    assert out.read_bytes() == single.read_bytes()
    assert (tmp_path / "no" / "logs" / "translate_file.shard-00001-of-00002.log").is_file()
    assert json.loads(out.read_text().splitlines()[0])["id"] == 0


def test_a_row_with_an_unknown_language_does_not_shift_the_merge(tmp_path):
    from translate import translate_file
    rows = [dict(r) for r in ROWS[:9]]
    rows[4]["lang"] = "xx"
    write_jsonl(tmp_path / "in.jsonl", rows)
    single = tmp_path / "single.jsonl"
    translate_file.main(file_args(tmp_path, single))
    out = tmp_path / "out.jsonl"
    shards(tmp_path, out, 3)
    combine(tmp_path, out, 3)
    assert [json.loads(x)["id"] for x in single.open()] == [0, 1, 2, 3, 5, 6, 7, 8]
    assert out.read_bytes() == single.read_bytes()
