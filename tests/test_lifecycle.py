"""A step script's lifecycle (common/lifecycle.py) as a user meets it: where
the report goes, what ``begin`` refuses and cleans, the ``next:`` line ``finish``
prints (the user's options kept), a shard's completion record and combine
command, and which run of a two-run script ``auto`` chooses."""
from __future__ import annotations

import json
import shlex

import pytest

from common import cli, lifecycle, pipeline, records
from common.errors import UserError
from tests.conftest import FIXTURES_RAW


def argv_of(tmp_path, *extra):
    return ["--set", f"paths.raw_root={FIXTURES_RAW}", "--set", f"paths.work_dir={tmp_path}/work",
            "--set", f"paths.out_root={tmp_path}/out", *extra]


def cfg_of(step_id, tmp_path, *extra):
    return cli.load_config(pipeline.get(step_id), argv_of(tmp_path, *extra))


# -- shards and reports ------------------------------------------------------------------------------
def test_shard_of(tmp_path):
    assert lifecycle.shard_of(pipeline.get("capfilt.download"), cfg_of("capfilt.download", tmp_path)) is None
    cfg = cfg_of("capfilt.download", tmp_path, "--set", "run.num_shards=4", "--set", "run.shard_index=3")
    assert lifecycle.shard_of(pipeline.get("capfilt.download"), cfg) == (3, 4)
    cfg = cfg_of("capfilt.filter", tmp_path, "--set", "run.num_shards=4", "--set", "run.shard_index=3")
    assert lifecycle.shard_of(pipeline.get("capfilt.filter"), cfg) is None      # not a shardable step
    assert lifecycle.shard_of(pipeline.get("capfilt.download"), {"run": {"num_shards": 2}}) == (0, 2)
    assert lifecycle.shard_of(pipeline.get("capfilt.download"), {"run": None}) is None
    assert lifecycle.shard_of(pipeline.get("capfilt.download"), {}) is None


def test_report_paths(tmp_path):
    cfg = cfg_of("capfilt.filter", tmp_path)
    assert lifecycle.report_path("capfilt.filter", cfg) == tmp_path / "work/reports/capfilt.filter.json"
    assert lifecycle.report_path("capfilt.download", cfg, (2, 10)) == \
        tmp_path / "work/reports/capfilt.download.shard-00002-of-00010.json"
    # A tool run without paths.work_dir: beside its output.
    tool = pipeline.get("translate.file")
    out = tmp_path / "o.jsonl"
    no_work = ["--set", "translation.cache=", "--set", "paths.ct2_model=/m", "--set", "paths.image_root=/i"]
    cfg = cli.load_config(tool, ["--set", f"file.input={tmp_path}/i.jsonl", "--set", f"file.output={out}", *no_work])
    assert lifecycle.report_path("translate.file", cfg) == tmp_path / "o.jsonl.translate.file.report.json"
    cfg = cli.load_config(tool, ["--set", f"file.input={tmp_path}/i.jsonl", "--set", f"file.output={out}",
                                 "--set", f"paths.work_dir={tmp_path}/w"])
    assert lifecycle.report_path("translate.file", cfg) == tmp_path / "w/reports/translate.file.json"


def test_save_report_writes_a_dict_or_a_report_and_says_where(tmp_path, capsys):
    from common.report import Report
    cfg = cfg_of("capfilt.filter", tmp_path)
    path = lifecycle.save_report({"a": 1}, "capfilt.filter", cfg)
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 1}
    assert capsys.readouterr().err.strip() == f"report: {path}"
    r = Report("capfilt.filter")
    r.counts["rows"] = 3
    path = lifecycle.save_report(r, "capfilt.filter", cfg)
    assert json.loads(path.read_text(encoding="utf-8"))["counts"]["rows"] == 3
    cfg = cfg_of("capfilt.download", tmp_path, "--set", "run.num_shards=2", "--set", "run.shard_index=1")
    assert lifecycle.save_report({}, "capfilt.download", cfg).name == "capfilt.download.shard-00001-of-00002.json"


# -- begin ---------------------------------------------------------------------------------------------
def test_begin_refuses_an_unwritable_output_naming_its_key(tmp_path):
    (tmp_path / "blocker").write_text("", encoding="utf-8")
    cfg = cfg_of("capfilt.filter", tmp_path, "--set", f"filter.output={tmp_path}/blocker/x.jsonl")
    with pytest.raises(UserError, match=r"^filter\.output: cannot write"):
        lifecycle.begin("capfilt.filter", cfg)
    cfg = cfg_of("capfilt.filter", tmp_path, "--set", f"paths.work_dir={tmp_path}/blocker")
    with pytest.raises(UserError, match=r"^(paths\.work_dir|filter\.\w+): cannot write"):
        lifecycle.begin("capfilt.filter", cfg)
    with pytest.raises(UserError, match=r"^my\.cache: cannot write"):
        lifecycle.begin("capfilt.filter", cfg_of("capfilt.filter", tmp_path),
                        extra=[("my.cache", tmp_path / "blocker" / "c", False)])


def test_begin_removes_a_killed_runs_temporaries(tmp_path, capsys):
    cfg = cfg_of("capfilt.filter", tmp_path)
    out = cfg.path("filter.output")
    out.parent.mkdir(parents=True)
    temps = [out.with_name(f".{out.name}.{i}.tmp") for i in range(5)]
    for t in temps:
        t.write_text("", encoding="utf-8")
    keep = out.with_name(f".other.{out.name}.tmp")
    keep.write_text("", encoding="utf-8")
    lifecycle.begin("capfilt.filter", cfg)
    assert not any(t.exists() for t in temps) and keep.exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith("removed 5 temporary file(s) a killed run left: ") and err.endswith(" (+2 more)")
    lifecycle.begin("capfilt.filter", cfg)
    assert capsys.readouterr().err == ""


def test_begin_checks_a_translate_steps_cache(tmp_path):
    bad = tmp_path / "cache.sqlite"
    bad.write_text("not a database", encoding="utf-8")
    cfg = cfg_of("capfilt.translate", tmp_path, "--set", f"translation.cache={bad}")
    with pytest.raises(UserError, match="translation.cache"):
        lifecycle.begin("capfilt.translate", cfg)
    lifecycle.begin("capfilt.filter", cfg_of("capfilt.filter", tmp_path, "--set", f"translation.cache={bad}"))


# -- finish and next: ----------------------------------------------------------------------------------
def test_finish_records_the_run_and_prints_the_next_command_with_the_users_options(tmp_path, capsys):
    argv = argv_of(tmp_path, "--set", "filter.min_captions=3", "--set", "merge.seed=2")
    cfg = cli.load_config(pipeline.get("capfilt.filter"), argv)
    for p in records.outputs(pipeline.get("capfilt.filter"), cfg):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x\n", encoding="utf-8")
    lifecycle.finish("capfilt.filter", cfg, argv)
    assert records.state(pipeline.get("capfilt.filter"), cfg).status == "done"
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == "next: " + cli.command(pipeline.get("capfilt.download"), argv, pipeline.get("capfilt.filter"))
    assert "filter.min_captions=3" in shlex.split(line) and "merge.seed=2" not in line


def test_the_last_step_says_nothing_is_left(capsys):
    last = pipeline.STEPS[-1]
    assert lifecycle.next_step(last) is None
    assert lifecycle.next_step(pipeline.STEPS[0]) is pipeline.STEPS[1]
    lifecycle.print_next(last, [])
    assert capsys.readouterr().err.strip() == \
        "next: nothing; every step of the pipeline has run (python -m common status)"


def test_a_shard_leaves_a_completion_record_and_the_combine_command(tmp_path, capsys):
    argv = argv_of(tmp_path, "--set", "run.num_shards=2", "--set", "run.shard_index=1")
    step = pipeline.get("capfilt.download")
    cfg = cli.load_config(step, argv)
    written = [tmp_path / "w1"]
    written[0].write_text("", encoding="utf-8")
    lifecycle.finish("capfilt.download", cfg, argv, written=written)
    rec = json.loads(records.manifest_path(step, cfg, (1, 2)).read_text(encoding="utf-8"))
    assert rec["shard"] == {"index": 1, "num_shards": 2} and list(rec["outputs"]) == [str(written[0])]
    assert not records.manifest_path(step, cfg).exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2] == "shard 1 of 2 done; when all are, merge them with:"
    assert err[-1] == "  next: " + cli.combine_command(step, argv, 2)


def test_a_shard_without_a_list_records_its_rules_files(tmp_path):
    argv = argv_of(tmp_path, "--set", "run.num_shards=2", "--set", "run.shard_index=0")
    step = pipeline.get("capfilt.download")
    cfg = cli.load_config(step, argv)
    lifecycle.finish("capfilt.download", cfg, argv)
    rec = json.loads(records.manifest_path(step, cfg, (0, 2)).read_text(encoding="utf-8"))
    assert list(rec["outputs"]) == [str(p) for p in lifecycle.shard_files(step, cfg, 0, 2)] != []


# -- which run of a two-run script ---------------------------------------------------------------------
def mark_done(step_id, cfg):
    step = pipeline.get(step_id)
    for p in records.outputs(step, cfg):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(step_id + "\n", encoding="utf-8")
    records.record(step, cfg)


def test_choose_run(tmp_path):
    cfg = cfg_of("mscoco.english", tmp_path)
    choose = lambda wanted: lifecycle.choose_run("mscoco.english", "mscoco.final", cfg, wanted)  # noqa: E731
    with pytest.raises(UserError, match="generate.step: 'both' is not one of auto, english, final"):
        choose("both")
    assert choose("auto") == "english" and choose("english") == "english"
    with pytest.raises(UserError, match=r"step 4\.1 \(mscoco\.english\) is missing .*run: python tasks/mscoco"):
        choose("final")
    mark_done("mscoco.english", cfg)
    assert choose("auto") == "english"                       # not translated yet
    with pytest.raises(UserError, match=r"step 4\.2 \(mscoco\.translate\) is missing"):
        choose("final")
    mark_done("mscoco.translate", cfg)
    assert choose("auto") == "final" and choose("final") == "final" and choose("english") == "english"
    # The English run's own config changed (its translation still matches its file): English again.
    other = cfg_of("mscoco.english", tmp_path, "--set", "mscoco.train_splits=[train]")
    assert records.state(pipeline.get("mscoco.translate"), other).status == "done"
    assert lifecycle.choose_run("mscoco.english", "mscoco.final", other, "auto") == "english"
    # The English intermediate rewritten: its translation is stale, auto goes back to English.
    (cfg.path("mscoco.work_dir") / "captions_en.jsonl").write_text("other\n", encoding="utf-8")
    assert choose("auto") == "english"
    with pytest.raises(UserError, match=r"cannot write the final file: step 4\.1 \(mscoco\.english\) is stale"):
        choose("final")


# -- what the mutation run found untested ---------------------------------------------------------------
def test_a_shard_writes_and_checks_only_its_own_files(tmp_path):
    from common.shards import shard_path
    step = pipeline.get("capfilt.download")
    cfg = cfg_of("capfilt.download", tmp_path, "--set", "run.num_shards=3", "--set", "run.shard_index=2")
    got = lifecycle._write_targets(step, cfg)
    files = {str(p) for p in lifecycle.shard_files(step, cfg, 2, 3)}
    assert {str(p) for _, p, _ in got} == files and len(got) == len(files) > 0
    out, status = cfg.path("download.output"), cfg.path("download.status")
    assert ("download.output", shard_path(out, 2, 3), False) in got
    assert ("download.status", shard_path(status, 2, 3), False) in got
    whole = lifecycle._write_targets(step, cfg_of("capfilt.download", tmp_path))
    assert [(k, p) for k, p, _ in whole][:2] == [("download.output", out), ("download.status", status)]


def test_begin_names_the_report_folder_and_cleans_inside_folder_outputs(tmp_path, capsys):
    cfg = cfg_of("mscoco.eval", tmp_path)
    folder = cfg.path("mscoco.eval_dir")
    assert lifecycle._write_targets(pipeline.get("mscoco.eval"), cfg) == [("mscoco.eval_dir", folder, True)]
    (folder / "sub").mkdir(parents=True)
    temps = [folder / ".a.jsonl.1.tmp", folder / ".b.json.2.tmp", folder / ".c.json.3.tmp", folder / ".d.json.4.tmp"]
    for t in temps:
        t.write_text("", encoding="utf-8")
    lifecycle.begin("mscoco.eval", cfg)
    assert not any(t.exists() for t in temps)
    err = capsys.readouterr().err.strip()
    assert err == "removed 4 temporary file(s) a killed run left: " + ", ".join(map(str, temps[:3])) + " (+1 more)"
    (folder / ".e.json.5.tmp").write_text("", encoding="utf-8")
    lifecycle.begin("mscoco.eval", cfg)
    assert capsys.readouterr().err.strip() == f"removed 1 temporary file(s) a killed run left: {folder / '.e.json.5.tmp'}"
    (tmp_path / "work" / "reports").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "work" / "reports").write_text("", encoding="utf-8")      # the reports folder is a file
    with pytest.raises(UserError, match=r"^paths\.work_dir: cannot write .*/reports/eval\.mscoco\.json|"
                                        r"^paths\.work_dir: cannot write .*/reports/mscoco\.eval\.json"):
        lifecycle.begin("mscoco.eval", cfg)
    cfg = cfg_of("capfilt.download", tmp_path, "--set", "run.num_shards=3", "--set", "run.shard_index=2")
    with pytest.raises(UserError, match=r"^paths\.work_dir: cannot write .*capfilt\.download\.shard-00002-of-00003"):
        lifecycle.begin("capfilt.download", cfg)


def test_translate_file_checks_its_cache_too(tmp_path):
    bad = tmp_path / "cache.sqlite"
    bad.write_text("not a database", encoding="utf-8")
    cfg = cli.load_config(pipeline.get("translate.file"), argv_of(
        tmp_path, "--set", f"file.input={tmp_path}/i.jsonl", "--set", f"file.output={tmp_path}/o.jsonl",
        "--set", f"translation.cache={bad}"))
    with pytest.raises(UserError, match=r"^translation\.cache"):
        lifecycle.begin("translate.file", cfg)


def test_no_shards_when_num_shards_is_zero_or_one():
    step = pipeline.get("capfilt.download")
    assert lifecycle.shard_of(step, {"run": {"num_shards": 0, "shard_index": 0}}) is None
    assert lifecycle.shard_of(step, {"run": {"num_shards": 1, "shard_index": 0}}) is None


def test_the_second_to_last_step_points_at_the_last():
    assert lifecycle.next_step(pipeline.STEPS[-2]) is pipeline.STEPS[-1]


def test_finish_reads_the_command_line_keeps_the_config_file_and_records_what_was_written(tmp_path, capsys,
                                                                                          monkeypatch):
    step = pipeline.get("capfilt.filter")
    mine = tmp_path / "capfilt.yaml"
    mine.write_text("filter:\n  min_captions: 2\n", encoding="utf-8")
    argv = ["--config", str(mine), *argv_of(tmp_path, "--set", "filter.n_process=1")]
    monkeypatch.setattr("sys.argv", ["pretrain/filter.py", *argv])
    cfg = cli.load_config(step, argv)
    made = tmp_path / "made.jsonl"
    made.write_text("x\n", encoding="utf-8")
    lifecycle.finish("capfilt.filter", cfg, written=[made])
    rec = json.loads(records.manifest_path(step, cfg).read_text(encoding="utf-8"))
    assert list(rec["outputs"]) == [str(made)]
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == f"next: python pretrain/download_images.py --config {mine} " + " ".join(
        f"--set {s}" for s in argv[3::2])


def test_the_final_run_refused_names_the_step_its_state_and_the_command(tmp_path, monkeypatch):
    cfg = cfg_of("mscoco.english", tmp_path)
    mark_done("mscoco.english", cfg)
    mark_done("mscoco.translate", cfg)
    mine = tmp_path / "mscoco.yaml"
    mine.write_text("mscoco:\n  train_splits: [train]\n", encoding="utf-8")
    monkeypatch.setattr("sys.argv", ["tasks/mscoco/generate_train.py", "--config", str(mine),
                                     *argv_of(tmp_path)])
    other = cli.load_config(pipeline.get("mscoco.english"), ["--config", str(mine), *argv_of(tmp_path)])
    with pytest.raises(UserError) as e:
        lifecycle.choose_run("mscoco.english", "mscoco.final", other, "final")
    msg = str(e.value)
    assert msg.startswith("cannot write the final file: step 4.1 (mscoco.english) is stale "
                          "(config changed: mscoco.train_splits); run: python tasks/mscoco/generate_train.py "
                          f"--config {mine} --set paths.raw_root=")


def test_three_temporaries_are_all_named(tmp_path, capsys):
    cfg = cfg_of("mscoco.eval", tmp_path)
    folder = cfg.path("mscoco.eval_dir")
    folder.mkdir(parents=True)
    temps = [folder / f".{c}.json.1.tmp" for c in "abc"]
    for t in temps:
        t.write_text("", encoding="utf-8")
    lifecycle.begin("mscoco.eval", cfg)
    assert capsys.readouterr().err.strip() == "removed 3 temporary file(s) a killed run left: " + \
        ", ".join(map(str, temps))
