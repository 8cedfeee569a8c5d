"""What ``python -m common status`` and each script's closing ``next:`` line tell
a user (common/status.py, common/cli.py): which step comes next, and a command
that keeps the options the user gave, so pasting it continues the same run."""
from __future__ import annotations

import dataclasses
import shlex

import pytest

from common import cli, pipeline, status
from common.errors import UserError
from common.records import State

FILTER, DOWNLOAD, ENGLISH = (pipeline.get(s) for s in ("capfilt.filter", "capfilt.download", "capfilt.english"))
MINE = pipeline.get("match.mine")
USER = ["--set", "paths.raw_root=/data/raw", "--set", "paths.work_dir=/data/work", "--set", "filter.min_captions=3",
        "--set", "translation.backend=ctranslate2", "--set", "run.num_shards=4", "--set", "merge.seed=9"]


def sets_of(cmd: str) -> list[str]:
    parts = shlex.split(cmd)
    return [parts[i + 1] for i, p in enumerate(parts) if p == "--set"]


# -- the next: line of python -m common status ----------------------------------------------------
def run_status(monkeypatch, capsys, states: dict[str, str], argv: list[str]) -> list[str]:
    rows = [(s, State(states.get(s.id, "done"), "why" if states.get(s.id, "done") != "done" else ""))
            for s in pipeline.STEPS]
    seen = []
    monkeypatch.setattr(pipeline, "status_rows", lambda a: seen.append(a) or rows)
    status.main(argv)
    out = capsys.readouterr().out.strip().splitlines()
    assert seen == [status._parse(argv)]
    return out


def test_next_names_the_first_step_not_done_and_keeps_the_users_sets(monkeypatch, capsys):
    out = run_status(monkeypatch, capsys, {"capfilt.download": "stale", "capfilt.english": "missing",
                                           "match.mine": "error"}, USER)
    assert out[-1].startswith("next: python pretrain/download_images.py ")
    # Every --set the step's config has, in the user's order; run.* (one shard's) and
    # sections the step does not have (merge.*) are left out.
    assert sets_of(out[-1][len("next: "):]) == ["paths.raw_root=/data/raw", "paths.work_dir=/data/work",
                                                "filter.min_captions=3", "translation.backend=ctranslate2"]
    assert out[-2] == f"{len(pipeline.STEPS) - 3} done, 1 stale, 1 missing, 1 error"
    line = next(x for x in out if " capfilt.download " in x)
    assert line.split()[:3] == ["2.2", "capfilt.download", "STALE"] and line.endswith("(why)")
    assert out[0] == "2. BLIP Web CapFilt" and "9. The task mix" in out


def test_next_skips_done_steps_whatever_follows(monkeypatch, capsys):
    out = run_status(monkeypatch, capsys, {"merge": "missing", "eval.pope": "stale"}, USER)
    assert out[-1].startswith("next: python pretrain/merge_train.py ")
    assert "merge.seed=9" in sets_of(out[-1]) and "filter.min_captions=3" not in sets_of(out[-1])
    out = run_status(monkeypatch, capsys, {"eval.chair": "stale"}, [])
    assert out[-1] == "next: python eval_data/chair/convert.py"


def test_every_step_done(monkeypatch, capsys):
    out = run_status(monkeypatch, capsys, {}, USER)
    assert out[-1] == "every step is done" and out[-2] == f"{len(pipeline.STEPS)} done"
    assert not any(x.startswith("next:") for x in out)
    assert all("(" not in x for x in out if x.startswith("  "))   # no reason shown for a done step


def test_status_on_an_empty_work_dir_points_at_the_first_step(tmp_path, capsys):
    """The real rows (no stub): nothing has run, so the first step is next, with the user's --set."""
    argv = ["--set", f"paths.raw_root={tmp_path}/raw", "--set", f"paths.work_dir={tmp_path}/work",
            "--set", f"paths.out_root={tmp_path}/out", "--set", "filter.min_captions=3"]
    status.main(argv)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "next: " + cli.command(FILTER, argv)
    assert last.startswith("next: python pretrain/filter.py --set")
    assert sets_of(last) == [a for a in argv if a != "--set"]


def test_args_file_and_paths_come_before_the_sets(tmp_path):
    f = tmp_path / "status.args"
    f.write_text("--set\npaths.raw_root=/r\n\n--set\nfilter.min_captions=2\n", encoding="utf-8")
    assert status._parse(["--paths", "p.yaml", "--args-file", str(f), "--set", "filter.min_captions=5"]) == \
        ["--paths", "p.yaml", "--set", "paths.raw_root=/r", "--set", "filter.min_captions=2",
         "--set", "filter.min_captions=5"]
    assert status._parse([]) == []
    with pytest.raises(UserError, match=r"--args-file .*none: cannot read it"):
        status._parse(["--args-file", str(tmp_path / "none")])


def test_steps_command_prints_the_readme_list(capsys):
    status.steps_main([])
    assert capsys.readouterr().out.strip() == pipeline.markdown_steps().strip()


# -- the command line --------------------------------------------------------------------------------
def test_split_args_reads_both_spellings_and_ignores_the_rest():
    argv = ["--config", "a.yaml", "--verbose", "--paths=p.yaml", "--set", "x.y=1", "--set=x.z=2", "pos",
            "--configx", "b", "--set"]
    assert cli.split_args(argv) == ("a.yaml", "p.yaml", ["x.y=1", "x.z=2"])
    assert cli.split_args(["--config=c.yaml", "--paths", "q.yaml", "--config", "d.yaml"]) == ("d.yaml", "q.yaml", [])
    assert cli.split_args([]) == (None, None, [])
    assert cli.split_args(["--set", "--set", "a=1"]) == (None, None, ["--set"])


def test_command_to_a_step_of_the_same_config_keeps_its_sections():
    cmd = cli.command(DOWNLOAD, ["--config", "my.yaml", "--paths", "p.yaml", *USER], FILTER)
    assert shlex.split(cmd)[:6] == ["python", "pretrain/download_images.py", "--config", "my.yaml", "--paths", "p.yaml"]
    assert sets_of(cmd) == ["paths.raw_root=/data/raw", "paths.work_dir=/data/work", "filter.min_captions=3",
                            "translation.backend=ctranslate2"]


def test_command_to_a_step_of_another_config_keeps_only_shared_sections():
    argv = ["--config", "my.yaml", *USER, "--set", "decontam.pope=false", "--set", "generate.seed=4"]
    cmd = cli.command(MINE, argv, FILTER)
    assert "--config" not in cmd     # my.yaml is the filter's config, not matching's
    assert sets_of(cmd) == ["paths.raw_root=/data/raw", "paths.work_dir=/data/work",
                            "translation.backend=ctranslate2", "decontam.pope=false"]


def test_the_default_config_file_is_not_repeated():
    cmd = cli.command(DOWNLOAD, ["--config", str(FILTER.config_file)], FILTER)
    assert cmd == "python pretrain/download_images.py"
    assert cli.command(DOWNLOAD, None) == "python pretrain/download_images.py"


def test_a_two_run_steps_own_sets_come_first_and_are_not_doubled():
    final = dataclasses.replace(ENGLISH, sets=("generate.step=final",))
    cmd = cli.command(final, ["--set", "generate.step=english", "--set", "generate.seed=2"], ENGLISH)
    assert sets_of(cmd) == ["generate.step=final", "generate.seed=2"]
    # generate.step is never carried, even to a step without sets of its own
    assert sets_of(cli.command(ENGLISH, ["--set", "generate.step=final", "--set", " generate.seed = 2"])) == \
        [" generate.seed = 2"]


def test_sets_for_rules():
    sets = ["paths.a=1", "translation.b=2", "decontam.c=3", "filter.d=4", "run.shard_index=1", "merge.e=5",
            "nodot=6", "generate.step=final"]
    assert cli.sets_for(FILTER, sets, same_config=True) == ["paths.a=1", "translation.b=2", "decontam.c=3",
                                                            "filter.d=4"]
    assert cli.sets_for(FILTER, sets, same_config=False) == ["paths.a=1", "translation.b=2", "decontam.c=3"]


def test_load_config_builds_the_steps_config_from_a_command_line(tmp_path):
    argv = ["--set", f"paths.raw_root={tmp_path}", "--set", f"paths.work_dir={tmp_path}/w",
            "--set", f"paths.out_root={tmp_path}/o", "--set", "filter.min_captions=7", "--set", "merge.seed=3"]    # merge.*: not this step's
    cfg = cli.load_config(FILTER, argv)
    assert cfg.at("filter.min_captions") == 7 and str(cfg.at("paths.raw_root")) == str(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text("filter:\n  min_captions: 5\n", encoding="utf-8")
    assert cli.load_config(FILTER, ["--config", str(other), *argv[:6]]).at("filter.min_captions") == 5
    paths = tmp_path / "paths.yaml"
    paths.write_text(f"paths:\n  raw_root: {tmp_path}/pr\n  work_dir: {tmp_path}/pw\n  out_root: {tmp_path}/po\n",
                     encoding="utf-8")
    cfg = cli.load_config(FILTER, ["--paths", str(paths)])
    assert str(cfg.at("paths.work_dir")) == f"{tmp_path}/pw"
    two = dataclasses.replace(ENGLISH, sets=("generate.seed=11",))
    assert cli.load_config(two, argv).at("generate.seed") == 11
    assert cli.load_config(two, [*argv, "--set", "generate.seed=12"]).at("generate.seed") == 12   # the user's wins


def test_combine_command_keeps_the_users_options_but_the_shard_ones():
    cmd = cli.combine_command(FILTER, ["--config", "c.yaml", "--paths", "p.yaml", "--set", "run.shard_index=2",
                                       "--set", "filter.min_captions=3", "--set", "a b=1"], 4)
    assert shlex.split(cmd) == ["python", "-m", "common", "launch", "capfilt.filter", "--set", "launch.mode=combine",
                                "--set", "launch.num_shards=4", "--", "--config", "c.yaml", "--paths", "p.yaml",
                                "--set", "filter.min_captions=3", "--set", "a b=1"]
    assert cli.combine_command(FILTER, [], 2).endswith("launch.num_shards=2 --")


def test_help_says_what_status_does_and_takes(capsys):
    with pytest.raises(SystemExit) as e:
        status.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert " ".join(out.split()).startswith(
        "usage: python -m common status [-h] [--paths PATHS] [--set KEY=VALUE] [--args-file FILE]")
    # The module's description, its layout kept (the indented example line).
    assert "\n    python -m common status [--paths FILE] [--args-file FILE] [--set paths.raw_root=DIR" in out
    assert "The command printed last is the first step that is not done." in out
    flat = " ".join(out.split())
    for text in ("--paths PATHS paths YAML (default: configs/paths.yaml) --set",
                 "--set KEY=VALUE override a config value for every step that has it (repeatable) --args-file",
                 "--args-file FILE more arguments, one per line, read before --set (make demo writes OUT/status.args)"):
        assert text in flat, text
    assert flat.endswith("(make demo writes OUT/status.args)")


def test_an_unreadable_args_file_says_why(tmp_path):
    with pytest.raises(UserError) as e:
        status._parse(["--args-file", str(tmp_path / "none")])
    assert str(e.value) == f"--args-file {tmp_path / 'none'}: cannot read it (No such file or directory)"


def test_nested_keys_and_a_two_run_steps_own_keys():
    # A three-level key is carried by its section (translation.*), to any step.
    assert cli.sets_for(MINE, ["translation.quality.max_repeats=3", "filter.a.b=1"], same_config=False) == \
        ["translation.quality.max_repeats=3"]
    # The step's own --set wins over the user's for the same key, whatever the values hold.
    own = dataclasses.replace(ENGLISH, sets=("generate.seed=1",))
    assert cli.sets_for(own, ["generate.seed=5", "generate.captions=a=b", "generate.seed=a=b"], same_config=True) \
        == ["generate.captions=a=b"]


def test_load_config_applies_nested_keys(tmp_path):
    argv = ["--set", f"paths.raw_root={tmp_path}", "--set", f"paths.work_dir={tmp_path}/w",
            "--set", f"paths.out_root={tmp_path}/o", "--set", "translation.quality.max_repeats=9"]
    assert cli.load_config(FILTER, argv).at("translation.quality.max_repeats") == 9
