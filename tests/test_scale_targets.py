"""Every expensive step is registered with the launcher, and for each one the
shards (run out of order, one of them twice) merged by translate/scale.py's
combine give the files of a one-shard run, byte for byte, for N in {1, 3}; a
missing shard stops the merge by name. (translate/translate_file.py,
pretrain/translate_train.py and download_images.py: test_scale_shards.py and
test_scale_download.py.)"""
from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES_RAW, REPO, translation_sets
from test_match_generate import english_rows, setup as match_setup
from test_match_hard_match import make_data, sets as hm_sets, tiny_clip  # noqa: F401  (fixture)
from translate import scale
from translate.scale_targets import NOT_SHARDED, TARGETS

EXPENSIVE = ["pretrain/download_images.py", "match/hard_match.py"]


def test_every_expensive_step_is_registered_and_takes_run_keys():
    scripts = sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("**/translate_*.py")
                     if ".venv" not in p.parts and "tests" not in p.parts and p.name != "translate_source.py")
    assert "tasks/imagenet/translate_train.py" in scripts and len(scripts) >= 7
    for s in scripts + EXPENSIVE:
        assert (s in TARGETS) != (s in NOT_SHARDED), f"{s}: neither registered nor exempt (or both)"
        assert (REPO / s).is_file()
    assert set(TARGETS) | set(NOT_SHARDED) == set(scripts + EXPENSIVE)
    for s in TARGETS:   # each registered script's schema has run.num_shards / run.shard_index
        mod = importlib.import_module(s[:-3].replace("/", "."))
        defaults = getattr(mod, "DEFAULTS", None) or importlib.import_module(mod.__name__.rsplit(".", 1)[0]
                                                                               + ".settings").DEFAULTS
        assert set(defaults["run"]) == {"num_shards", "shard_index"}, s
    # The exempt one really has no run keys (so sharding it is refused, not ignored).
    from tasks.imagenet.settings import DEFAULTS
    assert "run" not in DEFAULTS
    with pytest.raises(SystemExit) as e:
        scale.main(["--", "tasks/imagenet/translate_train.py"])
    assert e.value.code == 2


def snapshot(work: Path) -> dict[str, bytes]:
    """Every output file of a stage (reports carry timings; shard files are parts)."""
    return {p.relative_to(work).as_posix(): p.read_bytes() for p in sorted(work.rglob("*"))
            if p.is_file() and ".shard-" not in p.name and "report" not in p.name and not p.name.startswith(".")}


def combine(script: str, args: list[str], n: int) -> None:
    scale.main(["--set", "scale.mode=combine", "--set", f"scale.num_shards={n}", "--", script, *args])


def run_shards(main, args: list[str], n: int) -> None:
    order = [n - 1, *range(n - 1)] + [min(1, n - 1)]   # out of order, and one shard run twice
    for i in order:
        main([*args, "--set", f"run.num_shards={n}", "--set", f"run.shard_index={i}"])


TASKS = {"mscoco": ("tasks.mscoco", "mscoco/captions_translated.jsonl", []),
         "vqa": ("tasks.vqa", "vqav2/questions_translated.jsonl", ["--set", "vqav2.languages=[de,fr,zh,sw,en]"]),
         "llava": ("tasks.llava", "llava/turns_translated.jsonl", [])}


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("task", list(TASKS))
def test_task_translation_shards_merge_to_the_single_run(tmp_path, capsys, task, n):
    pkg, translated, extra = TASKS[task]
    gen, tr = (importlib.import_module(f"{pkg}.{m}") for m in ("generate_train", "translate_train"))
    script = f"{pkg.replace('.', '/')}/translate_train.py"

    def args(root: Path) -> list[str]:
        return ["--set", f"paths.raw_root={FIXTURES_RAW}", "--set", f"paths.work_dir={root}/work",
                "--set", f"paths.out_root={root}/out", *translation_sets("dry-run", root / "cache.sqlite"), *extra]

    single = tmp_path / "single"
    gen.main(args(single))
    tr.main(args(single))
    sharded = tmp_path / "sharded"
    gen.main(args(sharded))
    run_shards(tr.main, args(sharded), n)
    combine(script, args(sharded), n)
    want = snapshot(single / "work")
    assert translated in want and len(want[translated].splitlines()) >= 3
    assert snapshot(sharded / "work") == want
    # The final training file from the merged translation is the same too.
    gen.main(args(single))
    gen.main(args(sharded))
    assert snapshot(sharded / "out") == snapshot(single / "out") != {}
    if n == 3:
        (sharded / "work" / translated).unlink()
        shutil.copy(sharded / "work" / f"{translated}.shard-00001-of-00003", tmp_path / "keep")
        (sharded / "work" / f"{translated}.shard-00001-of-00003").unlink()
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            combine(script, args(sharded), 3)
        assert e.value.code == 2 and f"{Path(translated).name}.shard-00001-of-00003" in capsys.readouterr().err
        assert not (sharded / "work" / translated).exists()


@pytest.mark.parametrize("n", [1, 3])
def test_match_translation_shards_merge_to_the_single_run(tmp_path, capfd, n):
    from match import translate_match_train as tr
    script = "match/translate_match_train.py"
    single = match_setup(tmp_path / "single", english_rows(25))
    tr.main(single)
    sharded = match_setup(tmp_path / "sharded", english_rows(25))
    run_shards(tr.main, sharded, n)
    combine(script, sharded, n)
    out = "work/match/capfilt_match_translated.jsonl"
    assert (tmp_path / "sharded" / out).read_bytes() == (tmp_path / "single" / out).read_bytes()
    if n == 3:
        (tmp_path / "sharded" / out).unlink()
        Path(tmp_path / "sharded" / f"{out}.shard-00002-of-00003").unlink()
        capfd.readouterr()
        with pytest.raises(SystemExit):
            combine(script, sharded, 3)
        assert "capfilt_match_translated.jsonl.shard-00002-of-00003" in capfd.readouterr().err
        assert not (tmp_path / "sharded" / out).exists()


def test_hard_match_sharded_embedding_then_mining_equals_the_single_run(tmp_path, tiny_clip, capfd):  # noqa: F811
    make_data(tmp_path / "a")
    make_data(tmp_path / "b")
    out = "work/match/capfilt_match_en.jsonl"
    from match import hard_match
    hard_match.main(hm_sets(tmp_path / "a", tiny_clip))
    args = hm_sets(tmp_path / "b", tiny_clip)
    run_shards(hard_match.main, [*args, "--set", "embed.only=true"], 3)
    assert not (tmp_path / "b" / out).exists()          # shards only fill the embedding cache
    capfd.readouterr()
    combine("match/hard_match.py", args, 3)             # the mining run
    assert (tmp_path / "b" / out).read_bytes() == (tmp_path / "a" / out).read_bytes()
    assert "no embedding shard had" not in capfd.readouterr().err   # every key came from a shard
    # A shard that never ran costs time, not rows: the mining run embeds its part and says so.
    make_data(tmp_path / "c")
    args = hm_sets(tmp_path / "c", tiny_clip)
    for i in (0, 2):
        hard_match.main([*args, "--set", "embed.only=true", "--set", "run.num_shards=3", "--set", f"run.shard_index={i}"])
    capfd.readouterr()
    combine("match/hard_match.py", args, 3)
    assert (tmp_path / "c" / out).read_bytes() == (tmp_path / "a" / out).read_bytes()
    assert "no embedding shard had" in capfd.readouterr().err
