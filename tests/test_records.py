"""Run records (common/records.py): what a step reads and writes, the
fingerprints of files and folders, and the done / stale / missing state a user
reads in ``python -m common status``. Synthetic steps on tmp files: each test
changes one thing a user could change and checks the verdict."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from common import records
from common.config import build_config
from common.steptype import Step

DEFAULTS = {"stage": {
    "input": "${paths.raw_root}/in.txt",
    "second": "${paths.raw_root}/second.txt",
    "listed": [],
    "output": "${paths.work_dir}/out.txt",
    "out_dir": "${paths.work_dir}/folder",
    "min": 1,
    "threads": 2,
    "sub": {"k": 1, "batch_size": 8},
}}
STEP = Step("test.step", "tests.nothing", "nothing", "a test step", reads=("${stage.input}",),
            writes=("${stage.output}", "${stage.out_dir}"), shaped_by=("stage",), defaults=DEFAULTS)


def cfg_of(tmp: Path, *sets: str):
    return build_config(DEFAULTS, None, [f"paths.raw_root={tmp / 'raw'}", f"paths.work_dir={tmp / 'work'}",
                                         f"paths.out_root={tmp / 'out'}", *sets])


def ran(tmp: Path, step: Step = STEP, *sets: str):
    """Inputs and outputs on disk, then the run recorded: a done step."""
    cfg = cfg_of(tmp, *sets)
    for p in records.inputs(step, cfg):
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists():
            p.write_text(f"input {p.name}\n", encoding="utf-8")
    out = cfg.path("stage.output")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("rows\n", encoding="utf-8")
    folder = cfg.path("stage.out_dir")
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text("aaaa", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("bbbb", encoding="utf-8")
    records.record(step, cfg)
    assert records.state(step, cfg).status == "done"
    return cfg


# -- done / stale / missing ---------------------------------------------------------------------------
def test_a_run_recorded_is_done_and_its_record_lists_what_it_read_and_wrote(tmp_path):
    cfg = ran(tmp_path)
    rec = json.loads(records.manifest_path(STEP, cfg).read_text(encoding="utf-8"))
    assert records.manifest_path(STEP, cfg) == tmp_path / "work" / "pipeline" / "test.step.json"
    assert rec["step"] == "test.step"
    assert list(rec["inputs"]) == [str(tmp_path / "raw" / "in.txt")]
    assert list(rec["outputs"]) == [str(tmp_path / "work" / "out.txt"), str(tmp_path / "work" / "folder")]
    assert rec["outputs"][str(tmp_path / "work" / "folder")]["kind"] == "dir"
    assert rec["config_values"]["stage.min"] == 1
    assert records.State("done") == records.state(STEP, cfg)


def test_an_absent_output_is_missing_and_named(tmp_path):
    cfg = cfg_of(tmp_path)
    st = records.state(STEP, cfg)
    assert st.status == "missing" and st.reason == f"no {tmp_path / 'work' / 'out.txt'} (+1 more)"
    cfg = ran(tmp_path)
    (tmp_path / "work" / "out.txt").unlink()
    st = records.state(STEP, cfg)
    assert st.status == "missing" and st.reason == f"no {tmp_path / 'work' / 'out.txt'}"


def test_outputs_without_a_record_are_stale(tmp_path):
    cfg = ran(tmp_path)
    records.manifest_path(STEP, cfg).unlink()
    st = records.state(STEP, cfg)
    assert st.status == "stale" and "no run record" in st.reason


def test_a_shaping_setting_changed_is_stale_and_named_speed_settings_are_not(tmp_path):
    ran(tmp_path)
    st = records.state(STEP, cfg_of(tmp_path, "stage.min=2"))
    assert (st.status, st.reason, st.changed) == ("stale", "config changed: stage.min", ["stage.min"])
    st = records.state(STEP, cfg_of(tmp_path, "stage.sub.k=5", "stage.min=3"))
    assert st.changed == ["stage.min", "stage.sub.k"] and st.reason == "config changed: stage.min, stage.sub.k"
    # Speed and bookkeeping keys (NOT_SHAPING), at any depth: still done.
    assert records.state(STEP, cfg_of(tmp_path, "stage.threads=8", "stage.sub.batch_size=64")).status == "done"


def test_a_shaped_by_function_gives_its_own_values_speed_keys_included(tmp_path):
    """A domain that knows which of its settings shape an output says so with a function
    of the config: its values are taken as given (NOT_SHAPING does not filter them)."""
    def own(cfg):
        return {"stage.threads": cfg.at("stage.threads")}   # a name NOT_SHAPING lists, shaping here
    step = dataclasses.replace(STEP, shaped_by=("stage.min", own))
    ran(tmp_path, step)
    assert records.state(step, cfg_of(tmp_path, "stage.sub.k=5")).status == "done"   # not named
    st = records.state(step, cfg_of(tmp_path, "stage.threads=8"))
    assert (st.status, st.reason, st.changed) == ("stale", "config changed: stage.threads", ["stage.threads"])
    assert records.shaping_values(step, cfg_of(tmp_path)) == {"stage.min": 1, "stage.threads": 2}


def test_the_config_reason_names_at_most_five_keys(tmp_path):
    defaults = {"stage": {**DEFAULTS["stage"], **{f"k{i}": 0 for i in range(7)}}}
    step = dataclasses.replace(STEP, defaults=defaults)

    def cfg(*sets):
        return build_config(defaults, None, [f"paths.raw_root={tmp_path / 'raw'}",
                                             f"paths.work_dir={tmp_path / 'work'}", *sets])
    ran(tmp_path)   # the outputs
    records.record(step, cfg())
    st = records.state(step, cfg(*[f"stage.k{i}=1" for i in range(7)]))
    assert st.changed == [f"stage.k{i}" for i in range(7)]
    assert st.reason == "config changed: " + ", ".join(f"stage.k{i}" for i in range(5))


def test_a_key_only_in_the_record_counts_as_changed(tmp_path):
    cfg = ran(tmp_path)
    path = records.manifest_path(STEP, cfg)
    rec = json.loads(path.read_text(encoding="utf-8"))
    rec["config"] = "0" * 64
    rec["config_values"]["stage.gone"] = 1
    path.write_text(json.dumps(rec), encoding="utf-8")
    assert records.state(STEP, cfg).changed == ["stage.gone"]


def test_an_input_with_other_bytes_is_stale_the_same_bytes_rewritten_is_done(tmp_path):
    cfg = ran(tmp_path)
    src = tmp_path / "raw" / "in.txt"
    src.write_bytes(src.read_bytes())                 # new mtime, same bytes
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    assert records.state(STEP, cfg).status == "done"
    src.write_text("input in.tx!\n", encoding="utf-8")   # same size, other bytes
    st = records.state(STEP, cfg)
    assert (st.status, st.reason, st.changed) == ("stale", f"input changed since the run: {src}", [str(src)])


def test_an_input_added_to_a_step_makes_it_stale(tmp_path):
    """A newer version of the step reads one more file: its recorded run never saw it."""
    cfg = ran(tmp_path)
    (tmp_path / "raw" / "second.txt").write_text("more\n", encoding="utf-8")
    more = dataclasses.replace(STEP, reads=("${stage.input}", "${stage.second}"))
    st = records.state(more, cfg)
    assert st.status == "stale" and st.changed == [str(tmp_path / "raw" / "second.txt")]
    assert st.reason.startswith("input changed since the run")
    records.record(more, cfg)
    assert records.state(more, cfg).status == "done"


def test_an_input_added_to_a_listed_inputs_setting_makes_it_stale(tmp_path):
    """``reads`` naming a config list (not a shaping key here): a file added to the list."""
    step = dataclasses.replace(STEP, reads=("stage.listed",), shaped_by=())
    a, b = tmp_path / "raw" / "a.txt", tmp_path / "raw" / "b.txt"
    cfg = ran(tmp_path, step, f"stage.listed=[{a}]")
    b.write_text("b\n", encoding="utf-8")
    st = records.state(step, cfg_of(tmp_path, f"stage.listed=[{a}, {b}]"))
    assert st.status == "stale" and st.changed == [str(b)]
    # A file removed from the list: what is left was recorded, nothing changed.
    assert records.state(step, cfg_of(tmp_path, "stage.listed=[]")).status == "done"


def test_an_input_that_disappears_is_stale(tmp_path):
    cfg = ran(tmp_path)
    (tmp_path / "raw" / "in.txt").unlink()
    assert records.state(STEP, cfg).status == "stale"


def test_an_output_edited_by_hand_is_stale(tmp_path):
    cfg = ran(tmp_path)
    out = tmp_path / "work" / "out.txt"
    out.write_text("ROWS\n", encoding="utf-8")
    st = records.state(STEP, cfg)
    assert (st.status, st.reason, st.changed) == ("stale", f"output changed after the run: {out}", [str(out)])


def test_a_same_size_edit_inside_a_folder_output_is_stale(tmp_path, monkeypatch):
    cfg = ran(tmp_path)
    f = tmp_path / "work" / "folder" / "sub" / "b.txt"
    st0 = f.stat()
    f.write_text("bbbB", encoding="utf-8")                     # same size
    os.utime(f, ns=(st0.st_atime_ns, st0.st_mtime_ns + 10**9))
    st = records.state(STEP, cfg)
    assert st.status == "stale" and st.changed == [str(tmp_path / "work" / "folder")]
    assert st.reason == f"output changed after the run: {tmp_path / 'work' / 'folder'}"
    f.write_text("bbbb", encoding="utf-8")
    assert records.state(STEP, cfg).status == "done"
    # Even with the mtime put back, a later process (python -m common status) hashes the
    # folder's files again: a folder's record keeps no per-file hash to reuse.
    f.write_text("bbbB", encoding="utf-8")
    os.utime(f, ns=(st0.st_atime_ns, st0.st_mtime_ns))
    monkeypatch.setattr(records, "_HASHED", {})
    assert records.state(STEP, cfg).status == "stale"


@pytest.mark.parametrize("change", ["add", "remove", "rename"])
def test_a_file_added_removed_or_renamed_in_a_folder_output_is_stale(tmp_path, change):
    cfg = ran(tmp_path)
    folder = tmp_path / "work" / "folder"
    if change == "add":
        (folder / "c.txt").write_text("", encoding="utf-8")
    elif change == "remove":
        (folder / "a.txt").unlink()
    else:
        (folder / "a.txt").rename(folder / "z.txt")
    assert records.state(STEP, cfg).status == "stale"


def test_an_empty_subfolder_does_not_change_a_folder_output(tmp_path):
    cfg = ran(tmp_path)
    (tmp_path / "work" / "folder" / "empty").mkdir()
    assert records.state(STEP, cfg).status == "done"


def test_a_folder_output_replaced_by_a_file_is_stale(tmp_path):
    cfg = ran(tmp_path)
    folder = tmp_path / "work" / "folder"
    import shutil
    shutil.rmtree(folder)
    folder.write_text("", encoding="utf-8")
    assert records.state(STEP, cfg).status == "stale"


# -- fingerprints --------------------------------------------------------------------------------------
def test_file_fingerprints(tmp_path):
    import hashlib
    assert records.file_fingerprint(tmp_path / "none") == {"kind": "absent"}
    f = tmp_path / "f.bin"
    data = os.urandom(5 << 20)    # more than one 4 MiB read
    f.write_bytes(data)
    fp = records.file_fingerprint(f)
    st = f.stat()
    assert fp == {"kind": "file", "size": len(data), "mtime_ns": st.st_mtime_ns,
                  "sha256": hashlib.sha256(data).hexdigest()}
    # A hash known for this size and mtime is reused (as git's index does); otherwise computed.
    known = {**fp, "sha256": "recorded"}
    assert records.file_fingerprint(f, known)["sha256"] == "recorded"
    for stale in ({**known, "size": 1}, {**known, "mtime_ns": 1}, {**known, "sha256": ""}):
        assert records.file_fingerprint(f, stale)["sha256"] == hashlib.sha256(data).hexdigest()
    d = tmp_path / "d"
    (d / "x").mkdir(parents=True)
    (d / "x" / "f").write_bytes(b"1")
    listing = [["x/f", hashlib.sha256(b"1").hexdigest()]]
    assert records.file_fingerprint(d) == {"kind": "dir",
                                           "sha256": hashlib.sha256(json.dumps(listing).encode()).hexdigest()}


def test_same_content():
    a = {"kind": "file", "sha256": "x", "size": 1}
    assert records.same_content(a, {"kind": "file", "sha256": "x", "size": 2})
    assert not records.same_content(a, {"kind": "file", "sha256": "y"})
    assert not records.same_content(a, {"kind": "dir", "sha256": "x"})
    assert records.same_content({"kind": "absent"}, {"kind": "absent"})
    assert not records.same_content(None, a) and not records.same_content(a, None)
    assert not records.same_content({}, {})


def test_the_hash_recorded_by_an_earlier_step_is_reused_for_its_output(tmp_path):
    """A step's input is the output of a step it runs after: the hash recorded there is not recomputed."""
    cfg = ran(tmp_path)
    down = Step("test.down", "tests.nothing", "nothing", "downstream", reads=("${stage.output}",),
                writes=(), after=("test.step",), shaped_by=(), defaults=DEFAULTS)
    path = records.manifest_path(STEP, cfg)
    rec = json.loads(path.read_text(encoding="utf-8"))
    rec["outputs"][str(tmp_path / "work" / "out.txt")]["sha256"] = "from-the-record"
    path.write_text(json.dumps(rec), encoding="utf-8")
    got = records.input_record(down, cfg)
    assert got["inputs"][str(tmp_path / "work" / "out.txt")]["sha256"] == "from-the-record"
    # ... and the step's own earlier record too.
    own = dataclasses.replace(STEP, reads=("${stage.output}",))
    assert records.input_record(own, cfg)["inputs"][str(tmp_path / "work" / "out.txt")]["sha256"] \
        == "from-the-record"


def test_shaping_values_skip_speed_keys_and_keys_a_config_lacks(tmp_path):
    cfg = cfg_of(tmp_path)
    step = dataclasses.replace(STEP, shaped_by=("stage.sub", "stage.min", "nosuch.key"))
    assert records.shaping_values(step, cfg) == {"stage.sub.k": 1, "stage.min": 1}
    assert records.config_fingerprint({"a": 1, "b": 2}) == records.config_fingerprint({"b": 2, "a": 1})
    assert records.config_fingerprint({"a": 1}) != records.config_fingerprint({"a": 2})


def test_a_shard_record_names_its_shard_and_the_files_it_wrote(tmp_path):
    cfg = ran(tmp_path)
    part = tmp_path / "work" / "out.txt.part"
    part.write_text("p", encoding="utf-8")
    path = records.record(STEP, cfg, shard=(2, 12), written=[part])
    assert path == tmp_path / "work" / "pipeline" / "test.step.shard-00002-of-00012.json"
    assert records.manifest_path("test.step", cfg, (2, 12)) == path
    rec = json.loads(path.read_text(encoding="utf-8"))
    assert rec["shard"] == {"index": 2, "num_shards": 12} and list(rec["outputs"]) == [str(part)]
    assert "shard" not in json.loads(records.manifest_path(STEP, cfg).read_text(encoding="utf-8"))


# -- what a step reads and writes ----------------------------------------------------------------------
def test_expand_reads_and_writes_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = cfg_of(tmp_path, "stage.listed=[{path: ~/a.txt}, '', {path: ''}, /b.txt, {other: x}]",
                 "stage.output=~/o.txt")
    assert records.expand(cfg, "${stage.output}") == [tmp_path / "home" / "o.txt"]
    assert records.expand(cfg, "${stage.input}.gz") == [tmp_path / "raw" / "in.txt.gz"]
    assert records.expand(cfg, "stage.listed") == [tmp_path / "home" / "a.txt", Path("/b.txt")]
    assert records.expand(cfg, "stage.input") == [tmp_path / "raw" / "in.txt"]
    assert records.expand(cfg, "stage.min") == []
    assert records.expand(cfg, lambda c: [str(c.at("paths.raw_root")) + "/f"]) == [tmp_path / "raw" / "f"]


def test_a_section_s_raw_inputs(tmp_path):
    raw = tmp_path / "raw"
    defaults = {"ev": {"file": "${paths.raw_root}/{lang}/{split}.json", "one": "${paths.raw_root}/one.json",
                       "image_root": "${paths.raw_root}/images", "out": "${paths.work_dir}/x.json",
                       "elsewhere": "/data/x.json", "odd": "${paths.raw_root}/{other}.json", "n": 3,
                       "langs": ["de", "fr"], "nlvr2_langs": ["zh"], "splits": ["dev", "test"]}}
    cfg = build_config(defaults, None, [f"paths.raw_root={raw}", f"paths.work_dir={tmp_path / 'w'}"])
    got = records.expand(cfg, "ev.*")
    want = sorted({raw / f"{lang}/{split}.json" for lang in ("de", "fr", "zh") for split in ("dev", "test")}
                  | {raw / "one.json"})
    assert got == want
    cfg = build_config({"ev": {"one": "/x/one.json"}}, None, [f"paths.work_dir={tmp_path / 'w'}"])
    assert records.expand(cfg, "ev.*") == []    # no raw root set: nothing under it


def test_inputs_and_outputs_follow_the_declaration(tmp_path):
    cfg = cfg_of(tmp_path)
    assert records.inputs(STEP, cfg) == [tmp_path / "raw" / "in.txt"]
    assert records.outputs(STEP, cfg) == [tmp_path / "work" / "out.txt", tmp_path / "work" / "folder"]


# -- what the mutation run found untested ---------------------------------------------------------------
def test_status_on_an_unchanged_tree_reads_no_file_again(tmp_path, monkeypatch):
    """The recorded hash is reused while size and mtime are unchanged: a later
    ``status`` does not re-read big inputs or outputs (folders are listed again)."""
    step = dataclasses.replace(STEP, writes=("${stage.output}",))
    cfg = ran(tmp_path, step)
    monkeypatch.setattr(records, "_HASHED", {})         # a new process
    read = []
    monkeypatch.setattr(records, "_sha256", lambda p: read.append(p) or "x")
    assert records.state(step, cfg).status == "done" and read == []
    (tmp_path / "raw" / "in.txt").write_text("other\n", encoding="utf-8")
    assert records.state(step, cfg).status == "stale" and read == [tmp_path / "raw" / "in.txt"]


def test_the_hash_recorded_for_an_earlier_steps_input_is_reused_too(tmp_path, monkeypatch):
    cfg = ran(tmp_path)
    down = Step("test.down", "tests.nothing", "nothing", "downstream", reads=("${stage.input}",),
                after=("test.step",), defaults=DEFAULTS)
    monkeypatch.setattr(records, "_HASHED", {})
    monkeypatch.setattr(records, "_sha256", lambda p: "rehashed")
    got = records.input_record(down, cfg)["inputs"][str(tmp_path / "raw" / "in.txt")]["sha256"]
    assert got != "rehashed"


def test_two_files_of_the_same_size_and_mtime_are_hashed_each(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    os.utime(b, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns))
    assert records.file_fingerprint(a)["sha256"] != records.file_fingerprint(b)["sha256"]


def test_a_record_says_when_it_finished_and_a_missing_record_is_named(tmp_path):
    import datetime
    cfg = ran(tmp_path)
    rec = json.loads(records.manifest_path(STEP, cfg).read_text(encoding="utf-8"))
    assert abs(datetime.datetime.fromisoformat(rec["finished"]) - datetime.datetime.now()).total_seconds() < 3600
    records.manifest_path(STEP, cfg).unlink()
    assert records.state(STEP, cfg).reason == "no run record (outputs from an older run or another tool)"


def test_config_values_that_are_not_json_still_fingerprint():
    import datetime
    fp = records.config_fingerprint({"a": datetime.date(2020, 1, 2), "b": Path("/x")})
    assert fp == records.config_fingerprint({"a": "2020-01-02", "b": "/x"})


def test_a_key_a_config_lacks_does_not_hide_the_keys_after_it(tmp_path):
    step = dataclasses.replace(STEP, shaped_by=("nosuch.key", "stage.min"))
    assert records.shaping_values(step, cfg_of(tmp_path)) == {"stage.min": 1}


def test_a_longer_section_s_inputs_and_keys_not_under_the_raw_root_first(tmp_path):
    raw = tmp_path / "raw"
    defaults = {"evalset": {"out": "${paths.work_dir}/x.json", "n": 3, "file": "${paths.raw_root}/{split}.json",
                            "splits": ["dev"]}}
    cfg = build_config(defaults, None, [f"paths.raw_root={raw}", f"paths.work_dir={tmp_path / 'w'}"])
    assert records.expand(cfg, "evalset.*") == [raw / "dev.json"]
