"""``python -m common launch`` with the local executor (common/executors.py):
one worker per device, shards skipped when their completion record holds, the
merge done once by the launcher and byte-identical to a one-process run, and
what goes wrong (a killed or failing shard, a shard that exits 0 without
writing, an input changed under finished shards, shards of another N)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from common import cli, executors, pipeline, records
from common.jsonl import write_jsonl
from common.shards import shard_path
from tasks.mscoco import translate_train as mscoco_translate
from tests.conftest import dry_run_expect, root_sets, translation_sets
from translate import translate_file

# Honoured only by this test file's worker processes (PYTHONPATH points at it):
# SHARD_FATE=<index>:<kill|exit3|exit0> ends that shard's worker as it starts.
SITECUSTOMIZE = r'''
import os, signal, sys
fate = os.environ.get("SHARD_FATE", "")
if fate:
    index, what = fate.split(":")
    if f"run.shard_index={index}" in sys.argv:
        if what == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3 if what == "exit3" else 0)
'''


@pytest.fixture()
def fate(tmp_path, monkeypatch):
    """fate("1:kill") makes shard 1's worker die that way; fate(None) lets every shard live."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", str(hook))

    def set_fate(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv("SHARD_FATE", raising=False)
        else:
            monkeypatch.setenv("SHARD_FATE", value)
    return set_fate


def launch(step: str, args: list[str], *own: str) -> None:
    executors.main([step, *own, "--", *args])


def failed_launch(capfd, step: str, args: list[str], *own: str) -> str:
    capfd.readouterr()
    with pytest.raises(SystemExit) as e:
        launch(step, args, *own)
    assert e.value.code == 2
    return capfd.readouterr().err


CAPTIONS = ["A dog runs in the park.", "Two men ride bicycles down a street.", "A kitchen with white cabinets.",
            "A red ball on the beach.", "A cat sleeps on a sofa, next to a lamp."]


def mscoco_args(root: Path, rows: int = 23) -> list[str]:
    """A hand-written English intermediate for mscoco.translate (the step's input)."""
    write_jsonl(root / "work" / "mscoco" / "captions_en.jsonl",
                [{"id": i, "image_id": f"{i:012d}.jpg", "caption": f"{CAPTIONS[i % 5]} ({i})"} for i in range(rows)])
    return [*root_sets(root), *translation_sets("dry-run", "")]


TRANSLATED = "work/mscoco/captions_translated.jsonl"


def single_run(root: Path, rows: int = 23) -> bytes:
    """The one-process run's output, each row checked: its own caption, translated
    (by dry-run) into its own language."""
    mscoco_translate.main(mscoco_args(root, rows))
    got = [json.loads(line) for line in (root / TRANSLATED).open()]
    assert [r["id"] for r in got] == list(range(rows))
    assert [r["caption"] for r in got] == [dry_run_expect(f"{CAPTIONS[i % 5]} ({i})", r["lang"])
                                           for i, r in enumerate(got)]
    assert sum(r["lang"] != "en" for r in got) >= rows // 3
    return (root / TRANSLATED).read_bytes()


def stats(paths: list[Path]) -> dict:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def test_a_killed_shard_is_the_only_one_rerun(tmp_path, capfd, fate):
    want = single_run(tmp_path / "single")
    root = tmp_path / "sharded"
    args, three = mscoco_args(root), ("--set", "launch.devices=[cpu,cpu,cpu]")
    step = pipeline.get("mscoco.translate")
    cfg = cli.load_config(step, args)
    fate("1:kill")
    err = failed_launch(capfd, "mscoco.translate", args, *three)
    assert "shard 1/3 on cpu: killed by signal 9" in err
    assert "1 of 3 shards failed, nothing merged: shard 1 (killed by signal 9" in err
    assert not (root / TRANSLATED).exists()
    recs = [records.manifest_path(step, cfg, (i, 3)) for i in range(3)]
    assert recs[0].is_file() and recs[2].is_file() and not recs[1].exists()
    kept = stats([recs[0], recs[2], shard_path(root / TRANSLATED, 0, 3), shard_path(root / TRANSLATED, 2, 3)])

    fate(None)
    launch("mscoco.translate", args, *three)
    err = capfd.readouterr().err
    assert "shard 0/3: done earlier for this input and config, skipped" in err
    assert "shard 2/3: done earlier for this input and config, skipped" in err
    assert "shard 1/3 on cpu: pid" in err and "shard 0/3 on cpu" not in err and "shard 2/3 on cpu" not in err
    assert stats(list(kept)) == kept                          # the finished shards were not touched
    assert (root / TRANSLATED).read_bytes() == want
    assert records.state(step, cfg).status == "done"
    assert "next: python tasks/mscoco/generate_train.py" in err


def test_a_launch_after_the_input_changed_starts_clean_in_one_go(tmp_path, capfd):
    three = ("--set", "launch.devices=[cpu,cpu,cpu]")
    root = tmp_path / "sharded"
    launch("mscoco.translate", mscoco_args(root, 23), *three)
    args = mscoco_args(root, 10)                               # new input under finished shards
    capfd.readouterr()
    launch("mscoco.translate", args, *three)
    err = capfd.readouterr().err
    assert "skipped" not in err and all(f"shard {i}/3 on cpu: done" in err for i in range(3))
    assert (root / TRANSLATED).read_bytes() == single_run(tmp_path / "single", 10)
    # Another N: the 3-shard files are listed, not merged.
    launch("mscoco.translate", args, "--set", "launch.devices=[cpu,cpu]")
    err = capfd.readouterr().err
    assert "not merged (another run.num_shards than 2" in err and str(shard_path(root / TRANSLATED, 0, 3)) in err
    assert (root / TRANSLATED).read_bytes() == single_run(tmp_path / "single", 10)


def test_a_failing_or_silent_shard_is_named_and_nothing_is_merged(tmp_path, capfd, fate):
    root = tmp_path / "sharded"
    two = ("--set", "launch.devices=[cpu,cpu]")
    fate("1:exit3")
    err = failed_launch(capfd, "mscoco.translate", mscoco_args(root, 12), *two)
    log = root / "work" / "pipeline" / "logs" / "mscoco.translate.shard-00001-of-00002.log"
    assert f"1 of 2 shards failed, nothing merged: shard 1 (exit 3, log {log})" in err
    assert "run.shard_index=1" in err                  # the end of its log: the command line
    assert not (root / TRANSLATED).exists()
    # Exit 0 without writing: its shard file from the earlier input must not pass for this run's.
    fate(None)
    launch("mscoco.translate", mscoco_args(root, 12), *two)
    fate("1:exit0")
    err = failed_launch(capfd, "mscoco.translate", mscoco_args(root, 9), *two)
    assert f"shard 1 (exit 0 but did not write {shard_path(root / TRANSLATED, 1, 2)}" in err


def test_worker_setup_gives_each_worker_its_device(tmp_path, monkeypatch):
    tr = executors.parse(["mscoco.translate", "--", *root_sets(tmp_path)])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    sets, env = executors.worker_setup(tr, "cuda:1", 4)
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and sets == ["translation.device=cuda"]
    sets, env = executors.worker_setup(tr, "cpu", 2)
    assert sets == ["translation.device=cpu", "translation.threads=2"]
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["OMP_NUM_THREADS"] == "2"
    three = executors.parse(["mscoco.translate", "--set", "launch.num_shards=3", "--", *root_sets(tmp_path)])
    assert executors.shard_argv(three, 2, sets)[-8:] == ["--set", "run.num_shards=3", "--set", "run.shard_index=2",
                                                         "--set", sets[0], "--set", sets[1]]
    one = executors.parse(["mscoco.translate", "--set", "launch.devices=[cpu]", "--", *root_sets(tmp_path)])
    assert not any(a.startswith("run.") for a in executors.shard_argv(one, 0, []))   # N = 1: unsharded
    # Sharded embedding: the worker only fills the cache; its device key is embed.device.
    mine = executors.parse(["match.mine", "--set", "launch.num_shards=2", "--", *root_sets(tmp_path)])
    argv = executors.shard_argv(mine, 1, executors.worker_setup(mine, "cuda:0", 1)[0])
    assert argv[0].endswith("match/hard_match.py")
    assert " ".join(argv).endswith("--set run.num_shards=2 --set run.shard_index=1 --set embed.only=true "
                                   "--set embed.device=cuda")
    # The download has no device section: CPU only, no --set for it.
    dl = executors.parse(["capfilt.download", "--", *root_sets(tmp_path)])
    assert executors.worker_setup(dl, "cpu", 3)[0] == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")   # cuda:1 is the second GPU this process sees
    assert executors.worker_setup(tr, "cuda:1", 1)[1]["CUDA_VISIBLE_DEVICES"] == "6"


def test_user_errors_are_one_line(tmp_path, capfd):
    for argv, want in [(["imagenet.translate", "--", *root_sets(tmp_path)], "imagenet.translate is not sharded"),
                       (["no.such.step"], "unknown step 'no.such.step'"),
                       (["mscoco.translate", "--set", "launch.executor=k8s", "--", *root_sets(tmp_path)],
                        "launch.executor: 'k8s' is not one of local, slurm, ray"),
                       (["mscoco.translate", "--set", "launch.devices=[gpu0]", "--", *root_sets(tmp_path)],
                        "launch.devices: 'gpu0'")]:
        with pytest.raises(SystemExit) as e:
            executors.main(argv)
        err = capfd.readouterr().err
        assert e.value.code == 2 and want in err and "Traceback" not in err


# -- the translate.file tool: hand-run shards, the merge alone, the tiny model -----------------
ROWS = [{"id": i, "caption": f"Ein Bild {i}: a dog number {i % 5} runs ✓", "extra": [i, None]} for i in range(23)]
ROWS[4]["caption"] = ""
ROWS[9]["caption"] = "A sentence. And another one! And a third?"
AFTER_BAD = {"id": 99, "caption": "after the bad line"}


def file_args(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    inp = tmp_path / "in.jsonl"
    if not inp.exists():
        write_jsonl(inp, ROWS)
        with open(inp, "a", encoding="utf-8") as f:     # a malformed line, then a good one
            f.write("{not json\n" + json.dumps(AFTER_BAD) + "\n")
    return ["--set", f"paths.work_dir={tmp_path / 'work'}", "--set", f"file.input={inp}",
            "--set", f"file.output={out}", "--set", "file.fields=[caption]", "--set", "file.assign_languages=true",
            "--set", "file.seed=5", *extra]


def test_hand_run_shards_then_the_merge_alone(tmp_path, capfd):
    single = tmp_path / "single.jsonl"
    translate_file.main(file_args(tmp_path, single, *translation_sets("dry-run")))
    out = tmp_path / "sharded.jsonl"
    args = file_args(tmp_path, out, *translation_sets("dry-run", tmp_path / "cache.sqlite"))
    for i in (2, 0):
        translate_file.main([*args, "--set", "run.num_shards=3", "--set", f"run.shard_index={i}"])
    err = capfd.readouterr().err
    assert "next: python -m common launch translate.file --set launch.mode=combine --set launch.num_shards=3" in err
    err = failed_launch(capfd, "translate.file", args, "--set", "launch.mode=combine", "--set", "launch.num_shards=3")
    assert "1 of 3 shards not done for this input and config, nothing merged: shard 1 (no completion record)" in err
    assert "launch.mode=shard --set launch.num_shards=3 --set launch.shard_index=1" in err and not out.exists()
    launch("translate.file", args, "--set", "launch.mode=shard", "--set", "launch.num_shards=3",
           "--set", "launch.shard_index=1")
    launch("translate.file", args, "--set", "launch.mode=combine", "--set", "launch.num_shards=3")
    assert "merged 3 shards: 24 rows" in capfd.readouterr().err
    assert out.read_bytes() == single.read_bytes()


def assert_rows_as_predicted(out: Path, expect) -> None:
    """Every row of the output holds its own input caption as the tiny model
    translates it into the row's language (the bad input line skipped)."""
    source = {r["id"]: r["caption"] for r in [*ROWS, AFTER_BAD]}
    rows = [json.loads(line) for line in out.open()]
    assert [r["id"] for r in rows] == list(source)
    assert [r["caption"] for r in rows] == [expect(source[r["id"]], r["lang"]) for r in rows]
    assert sum(r["lang"] != "en" for r in rows) == 13      # translated rows are compared, not only English


def test_two_cpu_workers_equal_one_process_with_the_tiny_model(tmp_path, tiny_nllb, tiny_expect):
    single = tmp_path / "single.jsonl"
    translate_file.main(file_args(tmp_path, single, *translation_sets("hf", "", tiny_nllb)))
    out = tmp_path / "scaled.jsonl"
    launch("translate.file", file_args(tmp_path, out, *translation_sets("hf", tmp_path / "c.sqlite", tiny_nllb)),
           "--set", "launch.devices=[cpu,cpu]", "--set", f"launch.log_dir={tmp_path / 'logs'}")
    assert out.read_bytes() == single.read_bytes()
    assert_rows_as_predicted(out, tiny_expect)
    log = (tmp_path / "logs" / "translate.file.shard-00001-of-00002.log").read_text()
    assert "run.shard_index=1" in log and "translation.device=cpu" in log and "translation.threads=" in log


def test_shard_mode_passes_the_exit_status_and_names_the_shard(tmp_path, capfd, fate):
    fate("1:exit3")
    with pytest.raises(SystemExit) as e:
        launch("mscoco.translate", mscoco_args(tmp_path, 8), "--set", "launch.mode=shard",
               "--set", "launch.num_shards=4", "--set", "launch.shard_index=1")
    assert e.value.code == 3 and "shard 1 of 4 (mscoco.translate) failed: exit 3" in capfd.readouterr().err


def test_unknown_language_rows_and_new_folders(tmp_path, capfd):
    """Rows every shard skips (unknown language) do not shift the merge; the
    output and log folders are made as needed."""
    rows = [{"id": i, "caption": f"caption number {i}, with a comma", "lang": ["de", "fr", "en", "zh"][i % 4]}
            for i in range(9)]
    rows[4]["lang"] = "xx"
    write_jsonl(tmp_path / "rows.jsonl", rows)

    def args(out: Path) -> list[str]:
        return ["--set", f"paths.work_dir={tmp_path / 'work'}", "--set", f"file.input={tmp_path / 'rows.jsonl'}",
                "--set", f"file.output={out}", "--set", "file.fields=[caption]", *translation_sets("dry-run")]

    single = tmp_path / "single.jsonl"
    translate_file.main(args(single))
    out = tmp_path / "new" / "deeper" / "out.jsonl"
    launch("translate.file", args(out), "--set", "launch.devices=[cpu,cpu,cpu]",
           "--set", f"launch.log_dir={tmp_path / 'no' / 'logs'}")
    assert [json.loads(x)["id"] for x in single.open()] == [0, 1, 2, 3, 5, 6, 7, 8]
    assert out.read_bytes() == single.read_bytes()
    assert (tmp_path / "no" / "logs" / "translate.file.shard-00002-of-00003.log").is_file()
