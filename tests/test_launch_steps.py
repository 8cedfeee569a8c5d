"""Every shardable step through ``python -m common launch`` (local executor, 3
workers): the merged outputs equal a one-process run's, byte for byte, and so
do the files the next step writes from them. (translate.file and
mscoco.translate's failure cases: test_launch_local.py; Ray: test_launch_ray.py.)"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from common import executors
from common.errors import UserError
from common.jsonl import write_jsonl
from common.shards import key_shard, shard_path
from pretrain import download_images as dl
from tests.conftest import dry_run_expect, root_sets, translation_sets
from tests.test_download_images import server, write_input  # noqa: F401  (fixture)
from tests.test_match_generate import english_rows, setup as match_setup
from tests.test_match_hard_match import make_data, sets as hm_sets, tiny_clip  # noqa: F401  (fixture)

THREE = ["--set", "launch.devices=[cpu,cpu,cpu]"]


def launch(step: str, args: list[str], *own: str) -> None:
    executors.main([step, *THREE, *own, "--", *args])


def snapshot(root: Path) -> dict[str, bytes]:
    """Every output file (reports carry timings; shard files are parts; run records carry times)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".shard-" not in p.name and "report" not in p.name and not p.name.startswith(".")
            and not {"pipeline", "reports"} & set(p.relative_to(root).parts)}


TASKS = {"mscoco": ("tasks.mscoco", "mscoco.translate", "mscoco/captions_translated.jsonl", []),
         "vqa": ("tasks.vqa", "vqav2.translate", "vqav2/questions_translated.jsonl",
                 ["--set", "vqav2.languages=[de,fr,zh,sw,en]"]),
         "llava": ("tasks.llava", "llava.translate", "llava/turns_translated.jsonl", [])}


@pytest.mark.parametrize("task", list(TASKS))
def test_task_translations(tmp_path, task):
    pkg, step, translated, extra = TASKS[task]
    gen, tr = (importlib.import_module(f"{pkg}.{m}") for m in ("generate_train", "translate_train"))

    def args(root: Path) -> list[str]:
        return [*root_sets(root), *translation_sets("dry-run", root / "cache.sqlite"), *extra]

    single, sharded = tmp_path / "single", tmp_path / "sharded"
    for root in (single, sharded):
        gen.main(args(root))
    tr.main(args(single))
    launch(step, args(sharded))
    want = snapshot(single / "work")
    assert translated in want and len(want[translated].splitlines()) >= 3
    assert snapshot(sharded / "work") == want
    for root in (single, sharded):     # the final training files from the merged translation
        gen.main(args(root))
    assert snapshot(sharded / "out") == snapshot(single / "out") != {}


def test_capfilt_translation(tmp_path):
    from pretrain import translate_train as tr
    en = tmp_path / "capfilt_en.jsonl"
    write_jsonl(en, [{"id": f"r{i}", "image_id": f"r{i}.jpg", "caption": f"a photo of thing {i}"} for i in range(17)])

    def args(root: Path) -> list[str]:
        return [*root_sets(root), "--set", f"translate.input={en}", "--set", "translate.languages=[de,fr,zh,sw,en]",
                *translation_sets("dry-run", root / "cache.sqlite")]

    tr.main(args(tmp_path / "single"))
    launch("capfilt.translate", args(tmp_path / "sharded"))
    want = snapshot(tmp_path / "single" / "work")
    assert {"capfilt/capfilt_translated.jsonl", "capfilt/capfilt_templates.json"} <= set(want)
    assert snapshot(tmp_path / "sharded" / "work") == want
    rows = [json.loads(line) for line in want["capfilt/capfilt_translated.jsonl"].splitlines()]
    assert [(r["id"], r["caption"]) for r in rows] == [
        (f"r{i}", dry_run_expect(f"a photo of thing {i}", r["lang"])) for i, r in enumerate(rows)]
    assert len({r["lang"] for r in rows}) >= 3


def test_match_translation(tmp_path):
    from match import translate_match_train as tr
    single = match_setup(tmp_path / "single", english_rows(25))
    tr.main(single)
    launch("match.translate", match_setup(tmp_path / "sharded", english_rows(25)))
    out = "work/match/capfilt_match_translated.jsonl"
    assert (tmp_path / "sharded" / out).read_bytes() == (tmp_path / "single" / out).read_bytes()


def test_hard_match_sharded_embedding_then_one_mining_run(tmp_path, tiny_clip, capfd):  # noqa: F811
    from match import hard_match
    make_data(tmp_path / "a")
    make_data(tmp_path / "b")
    out = "work/match/capfilt_match_en.jsonl"
    hard_match.main(hm_sets(tmp_path / "a", tiny_clip))
    capfd.readouterr()
    launch("match.mine", hm_sets(tmp_path / "b", tiny_clip))
    err = capfd.readouterr().err
    assert (tmp_path / "b" / out).read_bytes() == (tmp_path / "a" / out).read_bytes()
    log = (tmp_path / "b" / "work" / "pipeline" / "logs" / "match.mine.shard-00002-of-00003.log").read_text()
    assert "embed.only=true" in log and "embed.device=cpu" in log
    assert "mined " in err and "no embedding shard had" not in err   # every key came from a shard


def download_args(tmp_path: Path, out: Path) -> list[str]:
    sets = {"download.input": tmp_path / "in.jsonl",
            "download.output": out / "out.jsonl", "download.status": out / "status.jsonl",
            "download.image_root": out / "images",
            "download.threads": 3, "download.retries": 0, "download.read_timeout": 2.0, "download.progress": "false",
            "download.allow_hosts": "[127.0.0.1]"}
    return [*root_sets(out), *(x for k, v in sets.items() for x in ("--set", f"{k}={v}"))]


def download_rows(server: str) -> list:
    names = ["photo.jpg", "missing.jpg", "alpha.png", "page.html", "cmyk.jpg", "rotated.jpg", "redirect.jpg",
             "noai.jpg", "otherbot.jpg", "gone1.jpg", "gone2.jpg"]
    out = [{"url": f"{server}/{n}", "caption": f"caption of {n}"} for n in names]
    out.insert(5, {"url": f"{server}/photo.jpg", "caption": "the same url again"})
    out.insert(3, {"url": f"{server}/missing.jpg", "caption": "a failed url again"})
    out.insert(7, "{not json")
    out.append({"url": f"  {server}/cmyk.jpg ", "caption": "spaces around the url"})
    return out


def test_download(tmp_path, server):  # noqa: F811
    write_input(tmp_path / "in.jsonl", download_rows(server))
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    dl.main(download_args(tmp_path, single))
    launch("capfilt.download", download_args(tmp_path, sharded))
    for name in ("out.jsonl", "status.jsonl"):
        assert (sharded / name).read_bytes() == (single / name).read_bytes()
    assert len((single / "out.jsonl").read_text().splitlines()) == 8
    # Every URL was fetched by exactly one shard.
    parts = [{json.loads(line)["url"] for line in shard_path(sharded / "status.jsonl", i, 3).open()}
             for i in range(3)]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 11
    # Each shard fetched exactly the URLs the rule gives it (the server's port is random, so
    # which shard gets how many differs from run to run; a shard may even get none).
    assert parts == [{u for u in set().union(*parts) if key_shard(u, 3) == i} for i in range(3)]


def test_download_merge_names_a_missing_shard(tmp_path, server):  # noqa: F811
    write_input(tmp_path / "in.jsonl", download_rows(server))
    out = tmp_path / "o"
    for i in (0, 1):
        dl.main([*download_args(tmp_path, out), "--set", "run.num_shards=3", "--set", f"run.shard_index={i}"])
    assert not (out / "out.jsonl").exists()
    dc = {"input": str(tmp_path / "in.jsonl"), "output": str(out / "out.jsonl"), "status": str(out / "status.jsonl")}
    with pytest.raises(UserError, match=r"out.jsonl.shard-00002-of-00003"):
        dl.combine_download_shards(dc, 3)
    with pytest.raises(UserError, match="missing shard"):   # shards of another N do not pass for these
        dl.combine_download_shards(dc, 2)
