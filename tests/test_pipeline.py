"""The pipeline declaration (common/pipeline.py): its shape, the status view, the next-step hints,
and the README's numbered steps, which must agree with it."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common import cli, lifecycle, pipeline, records

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "raw"
PRODUCT = ("common", "pretrain", "match", "tasks", "eval_data", "translate")


def paths_args(tmp_path: Path, raw: Path = FIXTURES) -> list[str]:
    return ["--set", f"paths.raw_root={raw}", "--set", f"paths.work_dir={tmp_path}/work",
            "--set", f"paths.out_root={tmp_path}/out"]


def test_every_step_names_a_script_and_config_that_exist():
    for step in pipeline.STEPS:
        assert (REPO / step.script).is_file(), step
        assert step.config_file.is_file(), step
        assert isinstance(step.defaults, dict) and step.defaults, step.id


def test_steps_depend_only_on_earlier_steps_and_ids_are_unique():
    seen: set[str] = set()
    for step in pipeline.STEPS:
        assert step.id not in seen
        assert set(step.after) <= seen, (step.id, step.after)
        seen.add(step.id)


def test_numbers_follow_the_stages():
    numbers = [s.number for s in pipeline.STEPS]
    assert numbers[0] == "2.1" and numbers[-1] == "10.8"
    assert len(set(numbers)) == len(numbers)


def test_each_step_is_declared_by_its_own_module_with_its_rule():
    import importlib
    for step in pipeline.STEPS:
        module = importlib.import_module(step.module)
        assert step in {getattr(module, n, None) for n in ("STEP", "ENGLISH_STEP", "FINAL_STEP")}, step.id
        assert (getattr(module, "SHARDS", None) is step.rule) and (step.rule is None) != step.shards, step.id


def test_merge_task_list_and_inputs_come_from_the_pipeline(tmp_path):
    from pretrain import merge_train
    assert merge_train.TASKS == list(pipeline.TASKS)
    assert len(pipeline.TASKS) == 11
    merge = pipeline.get("merge")
    cfg = cli.load_config(merge, paths_args(tmp_path))
    assert cfg.at("merge.tasks") == list(pipeline.TASKS)
    inputs = {str(p) for p in records.inputs(merge, cfg)}
    for step in pipeline.STEPS:
        if step.tasks:
            out = records.outputs(step, cli.load_config(step, paths_args(tmp_path)))
            assert {str(p) for p in out} <= inputs, step.id
            assert step.id in merge.after


def test_readme_lists_exactly_the_declared_steps():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- steps:begin -->\n(.*?)\n<!-- steps:end -->", text, re.S)
    assert m, "README.md has no <!-- steps:begin --> ... <!-- steps:end --> block"
    assert m.group(1).strip() == pipeline.markdown_steps().strip(), \
        "README's numbered steps differ from common/pipeline.py: paste `python -m common steps`"


def test_no_script_hard_codes_its_next_step():
    pattern = re.compile(r"next: python |next: pretrain/|\"next\"\] = ")
    offenders = [str(p.relative_to(REPO)) for d in PRODUCT for p in (REPO / d).rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_command_carries_the_options_that_apply_to_the_next_step():
    filt, download, mine = pipeline.get("capfilt.filter"), pipeline.get("capfilt.download"), pipeline.get("match.mine")
    argv = ["--set", "paths.raw_root=/data/raw", "--set", "filter.min_captions=3",
            "--set", "translation.backend=ctranslate2", "--set", "run.num_shards=2", "--set", "generate.seed=4"]
    same = cli.command(download, argv, filt)
    assert same == ("python pretrain/download_images.py --set paths.raw_root=/data/raw --set filter.min_captions=3"
                    " --set translation.backend=ctranslate2 --set generate.seed=4")
    # Another config file: only the shared sections carry over (generate.* means something else there).
    other = cli.command(mine, argv, filt)
    assert other == "python match/hard_match.py --set paths.raw_root=/data/raw --set translation.backend=ctranslate2"


def test_commands_with_spaces_are_quoted():
    cmd = cli.command(pipeline.get("capfilt.download"), ["--set", "paths.raw_root=/my data"],
                           pipeline.get("capfilt.filter"))
    assert "'paths.raw_root=/my data'" in cmd


def _status(tmp_path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "common", "status", *paths_args(tmp_path), *extra],
                          cwd=REPO, capture_output=True, text=True)


def _line(out: str, step_id: str) -> str:
    return next(ln for ln in out.splitlines() if f" {step_id} " in ln)


def test_status_done_stale_missing_and_next(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / "blip", raw / "blip")
    demo = ["--set", "filter.min_captions=3", "--set", "filter.max_captions=4", "--set", "filter.n_process=1"]
    r = _status(tmp_path, "--set", f"paths.raw_root={raw}")
    assert r.returncode == 0, r.stderr
    assert "missing" in _line(r.stdout, "capfilt.filter")
    assert r.stdout.strip().splitlines()[-1].startswith("next: python pretrain/filter.py")

    run = subprocess.run([sys.executable, "pretrain/filter.py", *paths_args(tmp_path, raw), *demo],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    hint = run.stderr.strip().splitlines()[-1]
    assert hint.startswith("next: python pretrain/download_images.py") and "filter.min_captions=3" in hint

    args = ["--set", f"paths.raw_root={raw}", *demo]
    r = _status(tmp_path, *args)
    assert "done" in _line(r.stdout, "capfilt.filter")
    assert r.stdout.strip().splitlines()[-1].startswith("next: python pretrain/download_images.py")

    # Another threshold: the recorded run no longer matches the config.
    r = _status(tmp_path, *args[:-2], "--set", "filter.n_process=1", "--set", "filter.min_captions=2")
    assert "STALE" in _line(r.stdout, "capfilt.filter") and "filter.min_captions" in r.stdout

    # The same bytes written again (new mtime): still done; other bytes: stale.
    src = raw / "blip" / "ccs_synthetic_filtered_large.json"
    src.write_bytes(src.read_bytes())
    assert "done" in _line(_status(tmp_path, *args).stdout, "capfilt.filter")
    rows = json.loads(src.read_text(encoding="utf-8"))
    src.write_text(json.dumps(rows[:-1]), encoding="utf-8")
    r = _status(tmp_path, *args)
    assert "STALE" in _line(r.stdout, "capfilt.filter") and "input changed" in r.stdout

    # An output edited by hand is not the recorded one.
    run = subprocess.run([sys.executable, "pretrain/filter.py", *paths_args(tmp_path, raw), *demo],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0
    out = cli.load_config(pipeline.get("capfilt.filter"), [*paths_args(tmp_path, raw), *demo]).path("filter.output")
    out.write_text(out.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    r = _status(tmp_path, *args)
    assert "output changed" in _line(r.stdout, "capfilt.filter")


def test_status_reports_a_config_error_in_one_line(tmp_path):
    r = _status(tmp_path, "--set", "filter.no_such_key=1")
    assert r.returncode == 0
    assert "ERROR" in _line(r.stdout, "capfilt.filter") and "no_such_key" in _line(r.stdout, "capfilt.filter")


@pytest.mark.parametrize("step", [s.id for s in pipeline.STEPS if s.id.startswith(("eval.", "mscoco.eval"))])
def test_single_run_steps_record_and_point_to_the_next(step, tmp_path):
    s = pipeline.get(step)
    r = subprocess.run([sys.executable, s.script, *paths_args(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    nxt = lifecycle.next_step(s)
    want = f"next: python {nxt.script}" if nxt else "next: nothing"
    assert r.stderr.strip().splitlines()[-1].startswith(want)
    cfg = cli.load_config(s, paths_args(tmp_path))
    assert records.state(s, cfg).status == "done"


@pytest.mark.parametrize("script", sorted({s.script for s in pipeline.STEPS}))
def test_every_step_script_runs_by_hand_with_help(script):
    r = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-1000:]
    assert "--config" in r.stdout and "--set" in r.stdout
