"""Faults a new user runs into, one test (or a few) per item of the "Fail
loudly, lose nothing" issue, each built on its reproduction: what the user sees
(one line, exit 2, naming the file and line or the config key) and what is kept.
The "Faults and what you see" table in docs/faults.md points here.

(Item 1 for CapFilt, the re-sampled filter, is
test_translated_source.py::test_auto_goes_back_to_the_english_run_when_the_input_changed.)
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common import cli, lifecycle, pipeline, records
from common.jsonl import BadRows, iter_json_array, read_jsonl, write_jsonl
from tests.conftest import FIXTURES_RAW, PYTHON, REPO, root_sets, translation_sets


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def fails(capsys, main, argv: list[str]) -> str:
    """Run a script's main, which must stop with exit 2 and one line; returns that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2, err
    assert err and err[-1].startswith("error: "), err
    return err[-1]


# -- 1. never combine results of different inputs ----------------------------------------------------
def test_mscoco_raw_change_rebuilds_the_english_intermediate(tmp_path, capsys):
    """MSCOCO: generate -> translate -> generate; then dataset_coco.json is
    edited. The next generate writes the English intermediate again (never a
    final file from the old translations), status calls the translate step
    stale, and the final file changes only after it reran."""
    from tasks.mscoco import generate_train, translate_train
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW, raw)   # the evaluation files too: decontamination reads them
    argv = [*root_sets(tmp_path, raw), *translation_sets("dry-run", "")]
    final = tmp_path / "out" / "train" / "mscoco.jsonl"
    generate_train.main(argv)
    translate_train.main(argv)
    generate_train.main(argv)
    first = final.read_bytes()

    karpathy = raw / "mscoco" / "dataset_coco.json"
    data = json.loads(karpathy.read_text(encoding="utf-8"))
    image = next(i for i in data["images"] if i["split"] in ("train", "restval") and i["sentences"])
    image["sentences"].append({"raw": "A brand new caption of this image.", "sentid": 999999})
    karpathy.write_text(json.dumps(data), encoding="utf-8")

    cfg = cli.load_config(pipeline.get("mscoco.english"), argv)
    assert records.state(pipeline.get("mscoco.english"), cfg).status == "stale"
    capsys.readouterr()
    generate_train.main(argv)
    err = capsys.readouterr().err
    assert "next: python tasks/mscoco/translate_train.py" in err
    assert final.read_bytes() == first                     # not rebuilt from the old translations
    english = rows(tmp_path / "work" / "mscoco" / "captions_en.jsonl")
    assert any(r["caption"] == "A brand new caption of this image." for r in english)
    translate_train.main(argv)
    generate_train.main(argv)
    assert len(rows(final)) == len(first.splitlines()) + 1


# -- 2. a config that cannot be right is refused before any work -------------------------------------
@pytest.fixture()
def small_jsonl(tmp_path) -> Path:
    path = tmp_path / "in.jsonl"
    write_jsonl(path, [{"text": "a dog runs", "lang": "de"}, {"text": "a cat sleeps", "lang": "fr"},
                       {"text": "a cow", "lang": "en"}, {"text": "a man walks", "lang": "es"}])
    return path


def file_argv(tmp_path: Path, src: Path, *sets: str, backend: str = "dry-run") -> list[str]:
    out = ["--set", f"paths.work_dir={tmp_path / 'work'}", "--set", f"file.input={src}",
           "--set", f"file.output={tmp_path / 'out.jsonl'}", *translation_sets(backend, "")]
    return out + [x for s in sets for x in ("--set", s)]


@pytest.mark.parametrize("setting, expected", [
    ("file.fields=[nope]", "error: file.fields: no row of"),
    ("file.lang_field=nope", "error: file.lang_field: no row of"),
    ("translation.beam_size=-1", "error: translation.beam_size: must be a number >= 1, got -1"),
    ("translation.length_factor=-1", "error: translation.length_factor: must be a number > 0"),
    ("translation.max_new_tokens=0", "error: translation.max_new_tokens: must be a number >= 1, got 0"),
    ("translation.quality.min_ratio=5", "error: translation.quality.min_ratio (5.0) must be below max_ratio"),
])
def test_translate_file_refuses_before_the_model_loads(tmp_path, capsys, small_jsonl, setting, expected):
    """The hf backend with a model that does not exist: had the model been
    loaded first, the error would name the model; it names the setting."""
    from translate import translate_file
    argv = file_argv(tmp_path, small_jsonl, setting, "translation.model=/nonexistent/model", backend="hf")
    line = fails(capsys, translate_file.main, argv)
    assert line.startswith(expected) and "/nonexistent/model" not in line
    assert not (tmp_path / "out.jsonl").exists()


def merge_argv(tmp_path: Path, inputs: list[dict], *sets: str) -> list[str]:
    cfg = tmp_path / "merge.yaml"
    cfg.write_text(json.dumps({"merge": {"inputs": inputs}}))
    return ["--config", str(cfg), *root_sets(tmp_path), *(x for s in sets for x in ("--set", s))]


def train_row(i: int, task: str = "mscoco", lang: str = "en") -> dict:
    return {"context": f"Describe image {i}.", "label": f"caption {i}", "image_id": f"{i}.jpg", "task": task,
            "lang": lang}


def test_merge_refuses_to_overwrite_an_input_and_a_row_of_another_file(tmp_path, capsys):
    from pretrain import merge_train
    train = tmp_path / "out" / "train"
    write_jsonl(train / "mscoco.jsonl", [train_row(i) for i in range(5)])
    write_jsonl(train / "vqav2_vqa.jsonl", [train_row(i, "vqav2_vqa") for i in range(3)] + [train_row(9)])
    inputs = [{"path": str(train / "mscoco.jsonl"), "source": "mscoco"},
              {"path": str(train / "vqav2_vqa.jsonl"), "source": "vqav2"}]
    before = (train / "mscoco.jsonl").read_bytes()
    line = fails(capsys, merge_train.main, merge_argv(tmp_path, inputs, f"merge.output={train / 'mscoco.jsonl'}"))
    assert line == (f"error: merge.output: {train / 'mscoco.jsonl'} is also merge.inputs[0]; "
                    "the merge would overwrite its own input")
    assert (train / "mscoco.jsonl").read_bytes() == before
    line = fails(capsys, merge_train.main, merge_argv(tmp_path, inputs))
    assert line.startswith(f"error: {train / 'vqav2_vqa.jsonl'}:4: task 'mscoco' does not belong in this file")
    assert not (train / "task_mix.jsonl").exists()


# -- 3. one bad byte is one bad record ----------------------------------------------------------------
def test_invalid_utf8_in_the_capfilt_array_is_one_bad_record(tmp_path):
    src = tmp_path / "capfilt.json"
    good = [{"url": f"http://x/{i}.jpg", "caption": f"a dog number {i}"} for i in range(6)]
    data = json.dumps(good).encode().replace(b"a dog number 2", b"a d\xffg number 2")
    src.write_bytes(data)
    for chunk in (5, 1 << 20):
        bad = BadRows(quiet=True, key="filter.max_bad_rows")
        got = [i for i, _ in iter_json_array(src, bad, chunk_size=chunk)]
        assert got == [0, 1, 3, 4, 5]
        start, offset = data.index(b'{"url": "http://x/2'), data.index(b"\xff")
        assert bad.examples == [f"{src}: array element 2 (byte offset {start}): invalid UTF-8 (byte offset {offset})"]


def test_the_filter_skips_an_element_with_invalid_utf8_and_goes_on(tmp_path, capsys):
    from pretrain import filter as capfilt_filter
    raw = tmp_path / "raw"
    (raw / "blip").mkdir(parents=True)
    data = (FIXTURES_RAW / "blip" / "ccs_synthetic_filtered_large.json").read_bytes()
    (raw / "blip" / "ccs_synthetic_filtered_large.json").write_bytes(
        data.replace(b"a brown dog sleeping", b"a brown d\xf6g sleeping"))
    argv = [*root_sets(tmp_path, raw), "--set", "paths.spacy_model=en_core_web_sm", "--set", "filter.n_process=1",
            "--set", "filter.min_captions=2"]
    capfilt_filter.main(argv)
    err = capsys.readouterr().err
    assert "array element 1 (byte offset 95): invalid UTF-8 (byte offset 167)" in err, err
    report = json.loads((tmp_path / "work" / "reports" / "capfilt.filter.json").read_text())
    assert report["counts"]["rows_malformed"] == 1 and report["counts"]["rows_in"] == 27
    assert not any("photo_01" in r["url"] for r in rows(tmp_path / "work" / "capfilt" / "capfilt_filtered.jsonl"))
    # Over the budget: the run stops in the first pass over the file, before spaCy parses anything.
    line = fails(capsys, capfilt_filter.main, argv + ["--set", "filter.max_bad_rows=0",
                                                      "--set", f"filter.index_dir={tmp_path / 'index2'}"])
    assert line.endswith("(more than 0 bad rows; raise filter.max_bad_rows to go on)")
    assert not (tmp_path / "index2").exists()


def test_a_caption_over_the_size_limit_is_too_large_and_the_reader_stays_in_step(tmp_path):
    src = tmp_path / "capfilt.json"
    items = [{"url": f"http://x/{i}.jpg", "caption": f"caption {i}"} for i in range(5)]
    items[1]["caption"] = 'huge "},{"url": "http://fake"} ' * 400     # braces and quotes inside the string
    src.write_text(json.dumps(items))
    for chunk in (7, 1000, 1 << 20):
        bad = BadRows(quiet=True)
        got = list(iter_json_array(src, bad, chunk_size=chunk, max_element=2000))
        assert [i for i, _ in got] == [0, 2, 3, 4] and [r for _, r in got] == [items[i] for i in (0, 2, 3, 4)]
        assert len(bad.examples) == 1 and "array element 1" in bad.examples[0]
        assert "element too large (over 2000 characters; skipped)" in bad.examples[0]


def test_invalid_utf8_in_a_translate_file_input_is_one_bad_record(tmp_path, capsys, small_jsonl):
    from translate import translate_file
    with open(small_jsonl, "ab") as f:
        f.write(b'{"text": "caf\xe9 au lait", "lang": "de"}\n{"text": "the end", "lang": "fr"}\n')
    translate_file.main(file_argv(tmp_path, small_jsonl))
    err = capsys.readouterr().err
    assert f"warning: skipped {small_jsonl}:5: invalid UTF-8 (byte b'\\xe9' at column 14)" in err
    assert [r["text"] for r in rows(tmp_path / "out.jsonl")][-1] == "[fra_Latn] the end"
    report = json.loads((tmp_path / "work" / "reports" / "translate.file.json").read_text())
    assert report["counts"]["bad_rows"] == 1 and report["counts"]["rows"] == 5
    # Over the budget: one line that names the key to raise.
    line = fails(capsys, translate_file.main, file_argv(tmp_path, small_jsonl, "file.max_bad_rows=0"))
    assert line.endswith("(more than 0 bad rows; raise file.max_bad_rows to go on)")


def test_invalid_utf8_in_eval_raw_files_is_one_bad_record(tmp_path):
    """POPE (JSON Lines) and xGQA (one JSON document keyed by question id)."""
    from eval_data.pope import convert as pope
    from eval_data.xgqa import convert as xgqa
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW / "pope", raw / "pope")
    shutil.copytree(FIXTURES_RAW / "iglue", raw / "iglue")
    pope_file = raw / "pope" / "output" / "coco" / "coco_pope_random.json"
    lines = pope_file.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"dining table", b"dining t\xe4ble")
    pope_file.write_bytes(b"".join(lines))
    dev = raw / "iglue" / "datasets" / "xGQA" / "annotations" / "few_shot" / "de" / "dev.json"
    dev.write_bytes(dev.read_bytes().replace(b"Who is wearing", b"Wh\xf6 is wearing"))
    argv = root_sets(tmp_path, raw)
    report = pope.main(argv)
    assert report["skipped"]["pope/output/coco/coco_pope_random.json: malformed JSON line"] == 1
    assert f"{pope_file}:2: invalid UTF-8" in report["skipped_examples"][
        "pope/output/coco/coco_pope_random.json: malformed JSON line"][0]
    contexts = [r["context"] for r in rows(tmp_path / "out" / "eval" / "pope" / "pope_random.jsonl")]
    assert not any("dining" in c for c in contexts) and any("snowboard" in c for c in contexts)
    report = xgqa.main(argv)
    key = "iglue/datasets/xGQA/annotations/few_shot/de/dev.json: invalid UTF-8"
    assert report["skipped"][key] == 1 and "record '201640614'" in report["skipped_examples"][key][0]
    assert len(rows(tmp_path / "out" / "eval" / "xgqa" / "xgqa_val_de.jsonl")) == 1


def test_invalid_utf8_in_a_chair_image_record_skips_that_image(tmp_path):
    """CHAIR streams the Karpathy file (common.jsonl.iter_json_array): an image
    record holding an invalid byte is reported with its index and skipped, the
    other images are converted."""
    from eval_data.chair import convert as chair
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW, raw)
    karpathy = raw / "mscoco" / "dataset_coco.json"
    doc = json.loads(karpathy.read_text(encoding="utf-8"))
    argv = root_sets(tmp_path, raw)
    chair.main(argv)
    before = {split: rows(tmp_path / "out" / "eval" / "chair" / f"chair_{split}.jsonl") for split in ("val", "test")}
    victim = next(i for i, img in enumerate(doc["images"])
                  if img["split"] in ("val", "test") and any(r["image_id"] == img["filename"]
                                                             for r in before[img["split"]]))
    marker = doc["images"][victim]["sentences"][0]["raw"]
    data = karpathy.read_bytes()
    at = data.index(marker.encode("utf-8"))
    karpathy.write_bytes(data[:at] + b"\xff" + data[at + 1:])
    report = chair.main(argv)
    key = "mscoco/dataset_coco.json: invalid UTF-8"
    assert report["skipped"][key] == 1
    assert f"images[{victim}]" in report["skipped_examples"][key][0]
    split = doc["images"][victim]["split"]
    after = rows(tmp_path / "out" / "eval" / "chair" / f"chair_{split}.jsonl")
    assert [r for r in before[split] if r["image_id"] != doc["images"][victim]["filename"]] == after


def test_invalid_utf8_in_a_karpathy_image_record_skips_that_image(tmp_path, capsys):
    """mscoco streams the Karpathy file (common.jsonl.iter_json_array, member
    "images"): an image record with an invalid byte is one bad record, named by
    its index and byte offset, skipped and counted; the other images are used."""
    from tasks.mscoco import generate_train
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW, raw)
    karpathy = raw / "mscoco" / "dataset_coco.json"
    data = karpathy.read_bytes()
    at = data.index(b"A zebra")
    karpathy.write_bytes(data[:at] + b"\xff" + data[at + 1:])
    generate_train.main([*root_sets(tmp_path, raw), *translation_sets("dry-run", "")])
    err = capsys.readouterr().err
    victim = next(i for i, img in enumerate(json.loads(data)["images"])
                  if any("A zebra" in s["raw"] for s in img["sentences"]))
    assert f"warning: skipped {karpathy}: images[{victim}] (byte offset " in err
    assert f"invalid UTF-8 (byte offset {at})" in err
    report = json.loads((tmp_path / "work" / "reports" / "mscoco.english.json").read_text())
    assert report["counts"]["image_records_unreadable"] == 1


# -- 4. filesystem faults: one line, exit 2, before the work -------------------------------------------
@pytest.fixture()
def readonly_dir(tmp_path):
    """A folder nobody may write into: chmod for a normal user; a read-only tmpfs for root."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only tmpfs: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_output_path_that_is_a_folder(tmp_path, capsys, small_jsonl):
    from translate import translate_file
    (tmp_path / "out.jsonl").mkdir()
    line = fails(capsys, translate_file.main, file_argv(tmp_path, small_jsonl))
    out = tmp_path / "out.jsonl"
    assert line == f"error: file.output: cannot write {out}: {out} is a folder, not a file"
    line = fails(capsys, translate_file.main, file_argv(tmp_path, small_jsonl, f"file.output={small_jsonl}"))
    assert line == f"error: file.output: {small_jsonl} is the input file; write somewhere else"


def test_out_root_that_is_a_file_stops_the_merge_before_it_reads(tmp_path, capsys):
    from pretrain import merge_train
    train = tmp_path / "in"
    write_jsonl(train / "mscoco.jsonl", [train_row(i) for i in range(5)])
    (tmp_path / "out").write_text("not a folder")
    argv = merge_argv(tmp_path, [{"path": str(train / "mscoco.jsonl"), "source": "mscoco"}])
    line = fails(capsys, merge_train.main, argv)
    assert line == (f"error: merge.output: cannot write {tmp_path / 'out/train/task_mix.jsonl'}: "
                    f"{tmp_path / 'out'} is a file, not a folder")


def test_work_dir_that_is_a_file_and_a_read_only_output_folder(tmp_path, capsys, readonly_dir):
    from tasks.mscoco import generate_train
    (tmp_path / "work").write_text("")
    line = fails(capsys, generate_train.main, [*root_sets(tmp_path), *translation_sets("dry-run", "")])
    assert line.startswith("error: mscoco.work_dir: cannot write") and line.endswith(
        f"{tmp_path / 'work'} is a file, not a folder")
    line = fails(capsys, generate_train.main, [*root_sets(tmp_path), *translation_sets("dry-run", ""),
                                               "--set", f"paths.work_dir={readonly_dir}"])
    assert line.endswith(f"the folder {readonly_dir} is read-only")


def test_a_cache_that_is_not_a_database(tmp_path, capsys):
    from tasks.mscoco import generate_train, translate_train
    argv = [*root_sets(tmp_path), *translation_sets("dry-run", tmp_path / "cache.sqlite")]
    generate_train.main(argv)
    (tmp_path / "cache.sqlite").write_text('{"this": "is not sqlite"}\n')
    line = fails(capsys, translate_train.main, argv)
    assert line.startswith(f"error: translation.cache: {tmp_path / 'cache.sqlite'} is not a SQLite database")
    assert not (tmp_path / "work" / "mscoco" / "captions_translated.jsonl").exists()


def test_the_next_run_removes_what_a_killed_merge_left(tmp_path):
    """kill -9 of the merge while it writes the mix leaves .task_mix.jsonl.*.tmp;
    the next run removes it (and a live process's temporary is left alone)."""
    train = tmp_path / "out" / "train"
    write_jsonl(train / "mscoco.jsonl", [train_row(i) for i in range(400_000)])
    cfg = merge_argv(tmp_path, [{"path": str(train / "mscoco.jsonl"), "source": "mscoco"}])
    cmd = [PYTHON, "pretrain/merge_train.py", *cfg]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(train.glob(".task_mix.jsonl.*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = list(train.glob(".task_mix.jsonl.*.tmp"))
    if not left:
        pytest.skip("the merge finished before it could be killed mid-write")
    assert not (train / "task_mix.jsonl").exists()
    live = train / f".task_mix.jsonl.{left[0].name.split('.')[3]}".replace(
        f"-{proc.pid}", f"-{os.getpid()}")
    live = live.with_name(live.name + ".live.tmp")
    live.write_text("a live run's")
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"removed 1 temporary file(s) a killed run left: {left[0]}" in r.stderr
    assert sorted(train.glob(".task_mix.jsonl.*.tmp")) == [live]
    assert len((train / "task_mix.jsonl").read_bytes().splitlines()) == 400_000


def test_two_concurrent_runs_on_one_output_and_a_shared_cache(tmp_path):
    """One writer per output (issue 20): two runs of translate_file on one output
    at once: each exits 0, or the later one exits 2 naming the holder; runs on
    two outputs share the cache side by side. Each output equals a single run's."""
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [{"text": f"A dog number {i} runs in the park.", "lang": ["de", "fr", "sw"][i % 3]}
                      for i in range(3000)])

    def cmd(out: Path) -> list[str]:
        return [PYTHON, "translate/translate_file.py", "--set", f"paths.work_dir={tmp_path / 'work'}",
                "--set", f"file.input={src}", "--set", f"file.output={out}",
                *translation_sets("dry-run", tmp_path / "cache.sqlite")]
    outs = [tmp_path / "out.jsonl", tmp_path / "out.jsonl", tmp_path / "other.jsonl"]
    procs = [subprocess.Popen(cmd(out), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for out in outs]
    codes = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        codes.append(p.returncode)
        # The holder is named by pid, or as "another process" in the moment between its
        # taking the lock and writing its pid into it (common/procs.py holder).
        assert p.returncode == 0 or (p.returncode == 2 and re.search(
            r"is already running on this work dir \((pid \d+ on \S+ since \S+|another process); lock ", err)), err
    assert sorted(codes[:2])[0] == 0 and codes[2] == 0
    r = subprocess.run(cmd(tmp_path / "single.jsonl"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for out in ("out.jsonl", "other.jsonl"):
        assert (tmp_path / out).read_bytes() == (tmp_path / "single.jsonl").read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_truncated_jsonl_loses_only_its_torn_line(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [{"n": i} for i in range(5)])
    path.write_bytes(path.read_bytes()[:-4])              # killed mid-write by a tool that writes in place
    bad = BadRows(quiet=True)
    assert [r["n"] for r in read_jsonl(path, bad)] == [0, 1, 2, 3]
    assert bad.examples[0].startswith(f"{path}:5: malformed JSON")


# -- 5. a sharded rerun after the input changed ----------------------------------------------------------
def test_slurm_launch_after_the_input_changed_runs_in_one_go(tmp_path):
    """Under SLURM (a stand-in sbatch that runs the array tasks one after the
    other, so shard 0 runs while shards 1 and 2 still hold the old input's
    files): a resubmission after the input changed runs every shard and the
    merge in one go, and the merge equals a one-process run of the new input."""
    from tests.test_launch_local import ROWS
    from tests.test_launch_slurm import fake_env, run
    env = fake_env(tmp_path)
    inp, out, single = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "single.jsonl"

    def args(target: Path) -> list[str]:
        return ["--set", f"paths.work_dir={tmp_path / 'work'}", "--set", f"file.input={inp}",
                "--set", f"file.output={target}", "--set", "file.fields=[caption]",
                "--set", "file.assign_languages=true", *translation_sets("dry-run", "")]
    slurm = [PYTHON, "-m", "common", "launch", "translate.file", "--set", "launch.executor=slurm",
             "--set", "launch.num_shards=3", "--set", f"launch.log_dir={tmp_path / 'logs'}"]
    write_jsonl(inp, ROWS)
    run([*slurm, "--", *args(out)], env)
    write_jsonl(inp, ROWS[:5] + [{"id": 100 + i, "caption": f"a new caption {i}"} for i in range(4)])
    p = run([*slurm, "--", *args(out)], env)
    calls = (tmp_path / "sbatch.log").read_text().splitlines()
    assert "--array=0,1,2" in calls[2] and "--dependency=afterok:1002" in calls[3]
    assert "combine: job 1003" in p.stdout
    run([PYTHON, "translate/translate_file.py", *args(single)], env)
    assert out.read_bytes() == single.read_bytes()


# -- 6. say when nothing useful happened ---------------------------------------------------------------
def test_a_download_with_no_image_stops(tmp_path, capsys):
    from pretrain import download_images
    with socket.socket() as s:          # a port nobody listens on: the image server is not running
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = tmp_path / "sample.jsonl"
    write_jsonl(src, [{"url": f"http://127.0.0.1:{port}/{i}.jpg", "caption": f"a photo {i}"} for i in range(4)])
    argv = [*root_sets(tmp_path), "--set", f"download.input={src}", "--set", "download.retries=0",
            "--set", "download.progress=false", "--set", "download.allow_hosts=[127.0.0.1]"]
    line = fails(capsys, download_images.main, argv)
    assert line.startswith("error: only 0 of 4 URLs gave an image (0.0% < download.min_success_rate=0.05;")
    assert "connection" in line
    assert len(rows(tmp_path / "work" / "capfilt" / "download_status.jsonl")) == 4     # what happened is kept
    assert (tmp_path / "work" / "reports" / "capfilt.download.json").is_file()
    cfg = cli.load_config(pipeline.get("capfilt.download"), argv)
    assert records.state(pipeline.get("capfilt.download"), cfg).status != "done"   # no run record


def test_a_filter_that_selects_nothing_stops(tmp_path, capsys):
    from pretrain import filter as capfilt_filter
    argv = [*root_sets(tmp_path), "--set", "paths.spacy_model=en_core_web_sm", "--set", "filter.n_process=1",
            "--set", "filter.min_captions=100000"]
    line = fails(capsys, capfilt_filter.main, argv)
    assert line.startswith("error: nothing was selected: no noun phrase is in at least filter.min_captions=100000")


def test_rejected_translations_warn_per_language_and_stop_when_all_are(tmp_path, capsys):
    """dry-run adds an 11-character tag; with max_ratio 1.5 every text under 22
    characters fails the length check: German (short texts) entirely, French
    (long) never. Then with everything rejected: exit 2."""
    from translate import translate_file
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [{"text": "a short text", "lang": "de"}, {"text": "a dog is short", "lang": "de"},
                      {"text": "a much longer caption of a dog that runs across the park", "lang": "fr"}])
    quality = ["translation.quality.max_ratio=1.5", "translation.quality.min_ratio=0.1"]
    translate_file.main(file_argv(tmp_path, src, *quality))
    err = capsys.readouterr().err
    assert "WARNING: translate.file: every text into 1 language(s) was rejected by the quality checks, " \
           "so those rows stay English: de (2)" in err
    line = fails(capsys, translate_file.main, file_argv(tmp_path, src, *quality, "translation.quality.max_ratio=1.1"))
    assert line.startswith("error: translate.file: 3 of 3 texts rejected (100%, translation.max_reject_rate=1; "
                           "reasons: length_ratio=3)")


def test_a_translate_step_without_any_translated_template_says_so(tmp_path, capsys):
    """Every template translation rejected (and every caption: then the step stops too)."""
    from tasks.mscoco import generate_train, translate_train
    argv = [*root_sets(tmp_path), *translation_sets("dry-run", "")]
    generate_train.main(argv)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        translate_train.main(argv + ["--set", "translation.quality.max_ratio=1.01",
                                     "--set", "translation.quality.min_ratio=0.01"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "WARNING: no translated template for every language" in err
    assert err.strip().splitlines()[-1].startswith("error: mscoco.translate: ")


def test_duplicated_rows_in_the_merge_inputs_are_dropped_and_reported(tmp_path, capsys):
    from pretrain import merge_train
    train = tmp_path / "out" / "train"
    write_jsonl(train / "mscoco.jsonl", [train_row(i) for i in range(5)] + [train_row(2), train_row(2)])
    merge_train.main(merge_argv(tmp_path, [{"path": str(train / "mscoco.jsonl"), "source": "mscoco"}]))
    err = capsys.readouterr().err
    assert "dropped 2 duplicated rows" in err and f"{train / 'mscoco.jsonl'}:6" in err
    assert len(rows(train / "task_mix.jsonl")) == 5
    report = json.loads((tmp_path / "work" / "reports" / "merge.json").read_text())
    assert report["duplicates_dropped"] == {"mscoco": 2}


def test_duplicated_pope_question_ids(tmp_path):
    from eval_data.pope import convert as pope
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW / "pope", raw / "pope")
    path = raw / "pope" / "output" / "coco" / "coco_pope_popular.json"
    lines = path.read_text().splitlines()
    other = json.loads(lines[1])
    other["text"] = "Is there a giraffe in the image?"                 # the same id, another question
    path.write_text("\n".join(lines + [lines[0], json.dumps(other)]) + "\n")
    report = pope.main(root_sets(tmp_path, raw))
    source = "pope/output/coco/coco_pope_popular.json"
    assert report["skipped"][f"{source}: duplicate of an earlier record (same question_id, image, text, label)"] == 1
    assert report["counts"]["question_id used by two different questions (both kept)"] == 1
    assert len(rows(tmp_path / "out" / "eval" / "pope" / "pope_popular.jsonl")) == len(lines) + 1


# -- 7. hints a user can copy ---------------------------------------------------------------------------
def test_next_hint_works_when_pasted_with_config_and_quoted_values(tmp_path):
    """A --config copy and a --set value with spaces and quotes: the printed
    next command, pasted into a shell, runs the next step with the same settings."""
    own = tmp_path / "my configs"
    own.mkdir()
    (own / "mscoco.yaml").write_text((REPO / "configs" / "mscoco.yaml").read_text())
    quoted = "Describe it, \"briefly\" & well."
    cmd = [PYTHON, "tasks/mscoco/generate_train.py", "--config", str(own / "mscoco.yaml"), *root_sets(tmp_path),
           *translation_sets("dry-run", ""), "--set", f"mscoco.templates.english=[{json.dumps(quoted)}]"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    hint = [x for x in r.stderr.splitlines() if x.startswith("next: ")][-1][len("next: "):]
    assert shlex.split(hint)[:4] == ["python", "tasks/mscoco/translate_train.py", "--config", str(own / "mscoco.yaml")]
    env = {**os.environ, "PATH": f"{Path(PYTHON).parent}:{os.environ['PATH']}"}
    r = subprocess.run(hint, shell=True, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    store = json.loads((tmp_path / "work" / "mscoco" / "templates_translated.json").read_text())
    assert store["key"]["templates"] == {"english": [quoted]}
    assert lifecycle.next_step(pipeline.get("capfilt.final")).id == "match.mine"


def test_bad_row_errors_name_the_stage_key(tmp_path, capsys):
    from tasks.mscoco import generate_train, translate_train
    argv = [*root_sets(tmp_path), *translation_sets("dry-run", ""), "--set", "mscoco.max_bad_rows=0"]
    generate_train.main(argv)
    en = tmp_path / "work" / "mscoco" / "captions_en.jsonl"
    en.write_text(en.read_text() + "{broken\n")
    # An English file edited after its run is a stale step (test_faults_runs.py); one from
    # elsewhere (no run record) is taken as given, and its bad rows counted.
    (tmp_path / "work" / "pipeline" / "mscoco.english.json").unlink()
    line = fails(capsys, translate_train.main, argv)
    assert line.endswith("raise mscoco.max_bad_rows to go on)") and "io.max_bad_rows" not in line


def test_summary_lines_wrap_and_dry_run_prints_no_rate(capsys):
    from common.languages import load_languages
    from translate.engine import TRANSLATION_DEFAULTS, Engine
    engine = Engine({**TRANSLATION_DEFAULTS, "cache": "", "progress": False})
    langs = [c for c in load_languages() if c != "en"]
    engine.translate([f"A dog number {i}." for i in range(len(langs))], langs)
    capsys.readouterr()
    engine.print_summary()
    err = capsys.readouterr().err.splitlines()
    assert max(len(x) for x in err) <= 200 and len(err) > 5
    assert "segments_per_second=n/a (dry-run)" in err[0]
    assert "segments_per_second" not in engine.summary()


# -- 8. every report in one documented place --------------------------------------------------------------
def test_every_report_goes_to_work_dir_reports_and_its_path_is_printed(tmp_path, capsys, small_jsonl):
    from eval_data.pope import convert as pope
    from tasks.mscoco import generate_train, translate_train
    from translate import translate_file
    reports = tmp_path / "work" / "reports"
    argv = [*root_sets(tmp_path), *translation_sets("dry-run", "")]
    for main, args, name in [(generate_train.main, argv, "mscoco.english"),
                             (translate_train.main, argv, "mscoco.translate"),
                             (pope.main, root_sets(tmp_path), "eval.pope"),
                             (translate_file.main, file_argv(tmp_path, small_jsonl), "translate.file")]:
        capsys.readouterr()
        main(args)
        assert f"report: {reports / name}.json" in capsys.readouterr().err
        assert json.loads((reports / f"{name}.json").read_text())
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "${paths.work_dir}/reports/<step id>.json" in readme


def test_every_step_script_checks_its_outputs_before_any_work():
    """Through the one lifecycle (lifecycle.run_step calls begin before any work),
    directly or through the shared entry points that call it."""
    entry = ("lifecycle.run_step(", "source.generate(", "source.translate_step(", "run_main(")
    for step in (*pipeline.STEPS, *pipeline.TOOLS):
        text = (REPO / step.script).read_text(encoding="utf-8")
        assert any(e in text for e in entry), step.script
    assert "    begin(step.id, cfg, extra)" in (REPO / "common" / "lifecycle.py").read_text(encoding="utf-8")
    for path, call in (("translate/source.py", "lifecycle.run_step("), ("eval_data/run.py", "lifecycle.run_step(")):
        assert call in (REPO / path).read_text(encoding="utf-8")


def test_docs_have_the_fault_table():
    section = (REPO / "docs" / "faults.md").read_text(encoding="utf-8")
    assert section.startswith("# Faults and what you see")
    for attack in ("kill -9", "concurrent", "shared cache", "truncated JSONL", "cut JSON array", "invalid UTF-8",
                   "not a SQLite database", "read-only", "0%", "duplicated"):
        assert attack in section, attack


def test_read_jsonl_decodes_per_line(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    import gzip
    with gzip.open(path, "wb") as f:
        f.write(b'\xef\xbb\xbf{"a": 1}\n{"a": "\xff"}\n{"a": 3}\n')
    bad = BadRows(quiet=True)
    assert list(read_jsonl(path, bad)) == [{"a": 1}, {"a": 3}]
    assert bad.examples == [f"{path}:2: invalid UTF-8 (byte b'\\xff' at column 8)"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
