"""``lifecycle.run_step`` as every step script meets it (MSCOCO's steps, in
this process, with the dry-run engine and work of the test's own): which
report is saved when, when a run record is written, what a stale step
upstream stops, and that the step's lock is let go whatever happens."""
from __future__ import annotations

import json
import shutil

import pytest

from common import cli, lifecycle, pipeline, records
from common.errors import UserError
from common.report import Report
from tasks.mscoco import generate_train, translate_train
from tests.conftest import FIXTURES_RAW, translation_sets

STEP = "mscoco.english"


def argv_of(tmp_path, *extra):
    return ["--set", f"paths.raw_root={tmp_path}/raw", "--set", f"paths.work_dir={tmp_path}/work",
            "--set", f"paths.out_root={tmp_path}/out", *translation_sets("dry-run", tmp_path / "cache.sqlite"),
            *extra]


@pytest.fixture
def raw(tmp_path):
    shutil.copytree(FIXTURES_RAW, tmp_path / "raw")      # a copy: one test edits a raw file
    return tmp_path / "raw"


def run(tmp_path, step_id, work, *extra, partial=None):
    argv = argv_of(tmp_path, *extra)
    return lifecycle.run_step(pipeline.get(step_id), cli.load_config(pipeline.get(step_id), argv), argv, work,
                              partial=partial)


def state(tmp_path, step_id):
    step = pipeline.get(step_id)
    return records.state(step, cli.load_config(step, argv_of(tmp_path))).status


def make_output(tmp_path):
    out = tmp_path / "work" / "mscoco" / "captions_en.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text('{"a": 1}\n', encoding="utf-8")
    return out


def test_a_run_saves_its_report_records_the_run_and_says_what_is_next(tmp_path, raw, capsys):
    def work():
        make_output(tmp_path)
        return {"stage": STEP, "rows": 1}
    assert run(tmp_path, STEP, work) == {"stage": STEP, "rows": 1}
    path = tmp_path / "work" / "reports" / f"{STEP}.json"
    assert json.loads(path.read_text()) == {"stage": STEP, "rows": 1}
    assert path.read_text().startswith('{\n  "stage"')              # indented by 2
    err = capsys.readouterr().err
    assert f"report: {path}\n" in err and "next: python tasks/mscoco/translate_train.py" in err
    assert state(tmp_path, STEP) == "done"


def test_a_report_object_is_saved_as_its_dict(tmp_path, raw):
    def work():
        make_output(tmp_path)
        report = Report(STEP)
        report.count("rows", 3)
        return report
    run(tmp_path, STEP, work)
    saved = json.loads((tmp_path / "work" / "reports" / f"{STEP}.json").read_text())
    assert saved["stage"] == STEP and saved["counts"] == {"rows": 3}


def test_a_failing_check_after_the_report_leaves_no_run_record(tmp_path, raw):
    def check():
        raise UserError("no rows written")

    def work():
        make_output(tmp_path)
        return lifecycle.Done({"rows": 0}, then=check)
    with pytest.raises(UserError, match="no rows written"):
        run(tmp_path, STEP, work)
    assert json.loads((tmp_path / "work" / "reports" / f"{STEP}.json").read_text()) == {"rows": 0}
    assert state(tmp_path, STEP) != "done"


def test_a_partial_run_saves_its_report_and_records_nothing(tmp_path, raw, capsys):
    def work():
        make_output(tmp_path)
        return lifecycle.Done({"rows": 1}, record=False)
    assert run(tmp_path, STEP, work) == {"rows": 1}
    assert (tmp_path / "work" / "reports" / f"{STEP}.json").is_file()
    assert state(tmp_path, STEP) != "done" and "next:" not in capsys.readouterr().err


def test_failed_work_saves_the_partial_report_only_when_there_is_one_and_lets_go_of_the_lock(tmp_path, raw):
    report = tmp_path / "work" / "reports" / f"{STEP}.json"

    def boom():
        raise RuntimeError("disk on fire")
    with pytest.raises(RuntimeError, match="disk on fire"):
        run(tmp_path, STEP, boom)
    assert not report.exists()
    partial = Report(STEP)
    partial.count("rows", 2)
    with pytest.raises(RuntimeError):
        run(tmp_path, STEP, boom, partial=partial)
    assert json.loads(report.read_text())["counts"] == {"rows": 2}
    # the lock was let go both times: the next run of the step goes ahead
    assert run(tmp_path, STEP, lambda: (make_output(tmp_path), {"ok": 1})[1]) == {"ok": 1}


def test_a_stale_step_upstream_stops_the_run_naming_it_and_its_command(tmp_path, raw, capsys):
    argv = argv_of(tmp_path)
    generate_train.main(argv)
    translate_train.main(argv)
    work_dir = tmp_path / "work" / "mscoco"
    ran = []
    final = ("mscoco.final", lambda: ran.append(1) or {"ok": 1})
    translated = work_dir / "captions_translated.jsonl"
    original = translated.read_bytes()
    translated.write_bytes(original + b'{"x": 1}\n')           # an output edited after its run
    with pytest.raises(UserError) as e:
        run(tmp_path, *final)
    step = pipeline.get("mscoco.translate")
    assert str(e.value).startswith(f"step {step.number} (mscoco.translate) is stale (output changed after the run: "
                                   f"{translated}); this run would build on it. Rerun it first: python "
                                   "tasks/mscoco/translate_train.py")
    assert f"--set paths.work_dir={tmp_path}/work" in str(e.value) and not ran
    translated.write_bytes(original)
    english = work_dir / "captions_en.jsonl"
    english.write_bytes(english.read_bytes() + b"\n")         # the translate step's input changed since
    with pytest.raises(UserError, match=rf"\(mscoco.translate\) is stale \(input changed since the run: {english}\)"):
        run(tmp_path, *final)
    generate_train.main(argv)                                # the English file made again by its own step
    translate_train.main(argv)
    (raw / "mscoco" / "dataset_coco.json").write_bytes((raw / "mscoco" / "dataset_coco.json").read_bytes() + b"\n")
    # two steps up: the English step's raw input changed since it ran
    with pytest.raises(UserError, match=r"\(mscoco.english\) is stale \(input changed since the run: .*dataset_coco"):
        run(tmp_path, *final)
    assert not ran


def test_an_upstream_step_without_a_run_record_is_taken_as_given(tmp_path, raw):
    work_dir = tmp_path / "work" / "mscoco"
    work_dir.mkdir(parents=True)
    (work_dir / "captions_translated.jsonl").write_text('{"a": 1}\n', encoding="utf-8")
    assert run(tmp_path, "mscoco.final", lambda: lifecycle.Done({"ok": 1}, record=False)) == {"ok": 1}
    assert lifecycle.upstream_problem(None) is None and lifecycle.upstream_problem({}) is None
