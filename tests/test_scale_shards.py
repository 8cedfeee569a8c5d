"""Sharded runs of real entry points (as subprocesses) give the bytes of a one-shard
run, and a missing shard is named instead of producing a short file."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from common.jsonl import write_jsonl
from conftest import PYTHON, REPO, translation_sets

# Awkward rows on purpose: unicode, an empty caption, a list field, a malformed line.
ROWS = [{"id": i, "caption": f"Ein Bild {i}: a dog number {i % 5} runs ✓", "extra": [i, None]} for i in range(23)]
ROWS[4]["caption"] = ""
ROWS[9]["caption"] = "A sentence. And another one! And a third?"


def run(args: list[str], ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([PYTHON, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    if ok:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


def write_input(path: Path) -> None:
    write_jsonl(path, ROWS)
    with open(path, "a", encoding="utf-8") as f:
        f.write("{not json\n")
        f.write(json.dumps({"id": 99, "caption": "after the bad line"}) + "\n")


def file_args(inp: Path, out: Path, cache: Path | str = "") -> list[str]:
    return ["translate/translate_file.py", "--set", f"file.input={inp}", "--set", f"file.output={out}",
            "--set", "file.fields=[caption]", "--set", "file.assign_languages=true", "--set", "file.seed=5",
            *translation_sets("dry-run", cache)]


@pytest.mark.parametrize("n", [1, 3])
def test_translate_file_shards_are_byte_identical(tmp_path, n):
    inp = tmp_path / "in.jsonl"
    write_input(inp)
    single = tmp_path / "single.jsonl"
    run(file_args(inp, single))
    out = tmp_path / "sharded.jsonl"
    for i in range(n):
        run([*file_args(inp, out, tmp_path / "shared_cache.sqlite"),
             "--set", f"run.num_shards={n}", "--set", f"run.shard_index={i}"])
    if n > 1:
        assert not out.exists()          # only shard files so far
        p = run(["translate/scale.py", "--set", "scale.mode=combine", "--set", f"scale.num_shards={n}", "--",
                 *file_args(inp, out)])
        assert "merged 3 shards: 24 rows" in p.stderr
    assert out.read_bytes() == single.read_bytes()
    assert len(single.read_text().splitlines()) == 24          # the malformed line is skipped, not fatal
    assert any('"lang": "en"' not in line for line in single.read_text().splitlines())


def test_missing_shard_is_named_not_a_short_file(tmp_path):
    inp = tmp_path / "in.jsonl"
    write_input(inp)
    out = tmp_path / "o.jsonl"
    for i in (0, 2):
        run([*file_args(inp, out), "--set", "run.num_shards=3", "--set", f"run.shard_index={i}"])
    p = run(["translate/scale.py", "--set", "scale.mode=combine", "--set", "scale.num_shards=3", "--",
             *file_args(inp, out)], ok=False)
    assert p.returncode == 2
    assert "o.jsonl.shard-00001-of-00003" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()


def capfilt_args(work: Path, en: Path, cache: str = "") -> list[str]:
    return ["pretrain/translate_train.py", "--set", f"paths.work_dir={work}", "--set", f"translate.input={en}",
            "--set", "translate.languages=[de,fr,zh,sw,en]", *translation_sets("dry-run", cache)]


@pytest.mark.parametrize("n", [1, 3])
def test_capfilt_translate_train_shards_merge_to_the_single_run(tmp_path, n):
    en = tmp_path / "capfilt_en.jsonl"
    write_jsonl(en, [{"id": f"r{i}", "image_id": f"r{i}.jpg", "caption": f"a photo of thing {i}"}
                     for i in range(17)])
    run(capfilt_args(tmp_path / "single", en))
    work = tmp_path / "sharded"
    # Out of order on purpose: the last shard to finish merges, whichever it is.
    for i in reversed(range(n)):
        run([*capfilt_args(work, en, str(tmp_path / "cache.sqlite")),
             "--set", f"run.num_shards={n}", "--set", f"run.shard_index={i}"])
    for name in ("capfilt_translated.jsonl", "capfilt_templates.json"):
        assert (work / "capfilt" / name).read_bytes() == (tmp_path / "single" / "capfilt" / name).read_bytes()
    langs = {json.loads(line)["lang"] for line in (work / "capfilt" / "capfilt_translated.jsonl").open()}
    assert langs <= {"de", "fr", "zh", "sw", "en"} and len(langs) > 1
