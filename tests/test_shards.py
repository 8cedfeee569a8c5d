"""The shard primitives (common/shards.py): names, row selection, the ordered
merge, shard files of another N, completion records, and every shardable
step's rule."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from common import cli, pipeline, records, shards
from common.errors import UserError
from common.jsonl import write_jsonl
from common.shards import interleave, round_robin, shard_path
from tests.conftest import root_sets


def test_names_and_arguments():
    assert shard_path("/w/out.jsonl", 2, 16) == Path("/w/out.jsonl.shard-00002-of-00016")
    assert shards.check_shard_args({"num_shards": 4, "shard_index": 3}) == (4, 3)
    for bad in ({"num_shards": 0, "shard_index": 0}, {"num_shards": 3, "shard_index": 3},
                {"num_shards": 3, "shard_index": -1}):
        with pytest.raises(UserError, match="0 <= shard_index < num_shards"):
            shards.check_shard_args(bad)


def test_round_robin_deals_every_item_once_and_interleave_restores_the_order(tmp_path):
    rows = [{"id": i, "text": f"row {i} ✓"} for i in range(23)]
    write_jsonl(tmp_path / "single.jsonl", rows)
    for n in (1, 2, 3, 7, 30):
        parts = [list(round_robin(rows, n, i)) for i in range(n)]
        assert sorted(r["id"] for p in parts for r in p) == list(range(23))
        out = tmp_path / f"out{n}.jsonl"
        for i, part in enumerate(parts):
            write_jsonl(shard_path(out, i, n), part)
        assert interleave(out, n) == 23
        assert out.read_bytes() == (tmp_path / "single.jsonl").read_bytes()


def test_key_shard_is_stable_and_keeps_equal_keys_together():
    urls = [f"http://x/{i}.jpg" for i in range(200)]
    a = [shards.key_shard(u, 5) for u in urls]
    assert a == [shards.key_shard(u, 5) for u in urls] and set(a) == set(range(5))
    from common.sampling import stable_hash
    assert shards.key_shard("k", 7) == stable_hash("k") % 7
    assert shards.key_shard("k", 7, salt="s") == stable_hash("s", "k") % 7


def test_interleave_names_a_missing_shard_and_writes_nothing(tmp_path):
    out = tmp_path / "o.jsonl"
    for i in (0, 2):
        write_jsonl(shard_path(out, i, 3), [{"i": i}])
    with pytest.raises(UserError, match=r"missing shard file\(s\): .*o.jsonl.shard-00001-of-00003"):
        interleave(out, 3)
    assert not out.exists()


def test_interleave_merges_the_rejects_too(tmp_path):
    out = tmp_path / "o.jsonl"
    for i in range(2):
        write_jsonl(shard_path(out, i, 2), [{"i": i}])
        write_jsonl(Path(f"{shard_path(out, i, 2)}.rejects.jsonl"), [{"source": f"bad {i}"}])
    interleave(out, 2)
    rejects = [json.loads(x)["source"] for x in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert rejects == ["bad 0", "bad 1"]


def test_shard_files_of_another_n_are_listed_never_merged(tmp_path):
    out = tmp_path / "o.jsonl"
    for n in (2, 3):
        for i in range(n):
            write_jsonl(shard_path(out, i, n), [{"n": n, "i": i}])
    assert shards.foreign_shards(out, 2) == [shard_path(out, i, 3) for i in range(3)]
    note = shards.foreign_note([out], 3)
    assert "another run.num_shards than 3" in note and str(shard_path(out, 1, 2)) in note
    assert interleave(out, 2) == 2 and {json.loads(x)["n"] for x in out.read_text().splitlines()} == {2}


def test_shard_files_reader_reports_leftovers(tmp_path):
    out = tmp_path / "o.jsonl"
    write_jsonl(shard_path(out, 0, 2), [{"a": 1}, {"a": 2}])
    write_jsonl(shard_path(out, 1, 2), [{"b": 1}])
    with shards.ShardFiles(out, 2) as f:
        assert json.loads(f.readline(0)) == {"a": 1} and json.loads(f.readline(1)) == {"b": 1}
        assert f.leftover() == [str(shard_path(out, 0, 2))]


def test_every_shardable_step_declares_a_rule_whose_outputs_it_writes(tmp_path):
    for step in [*pipeline.STEPS, *pipeline.TOOLS]:
        if not step.shards:
            with pytest.raises(UserError, match="not sharded"):
                shards.rule_of(step)
            continue
        rule = shards.rule_of(step)
        assert rule.device in ("translation", "embed", None), step.id
        cfg = cli.load_config(step, [*root_sets(tmp_path), "--set", "file.output=/x/o.jsonl"])
        declared = {str(p) for p in records.outputs(step, cfg)}
        mine = {str(p) for p in rule.files(cfg, 0, 1)}
        assert mine <= declared, (step.id, mine - declared)       # a rule names only the step's outputs
        assert rule.combine is not None or rule.sharded, step.id  # something to merge, or its own merge


def test_a_completion_record_holds_only_for_the_same_input_config_and_files(tmp_path):
    step = pipeline.get("translate.file")
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(inp, [{"text": "a", "lang": "de"}])
    args = ["--set", f"paths.work_dir={tmp_path / 'work'}", "--set", f"file.input={inp}",
            "--set", f"file.output={out}"]
    cfg = cli.load_config(step, args)
    rule = shards.rule_of(step)
    assert shards.record_problem(step, cfg, rule, 1, 2) == "no completion record"
    write_jsonl(shard_path(out, 1, 2), [{"text": "x"}])
    records.record(step, cfg, shard=(1, 2), written=rule.files(cfg, 1, 2))
    assert shards.record_problem(step, cfg, rule, 1, 2) is None
    other = cli.load_config(step, [*args, "--set", "file.seed=4"])
    assert shards.record_problem(step, other, rule, 1, 2) == "config changed since it ran"
    # Speed-only keys (device, threads, the shard's own keys) are not part of the fingerprint.
    fast = cli.load_config(step, [*args, "--set", "translation.threads=3", "--set", "translation.device=cpu"])
    assert shards.record_problem(step, fast, rule, 1, 2) is None
    write_jsonl(shard_path(out, 1, 2), [{"text": "changed"}])
    assert "not the file it wrote" in shards.record_problem(step, cfg, rule, 1, 2)
    records.record(step, cfg, shard=(1, 2), written=rule.files(cfg, 1, 2))
    write_jsonl(inp, [{"text": "b", "lang": "de"}])
    assert shards.record_problem(step, cfg, rule, 1, 2).startswith("input changed since it ran")
    with pytest.raises(UserError, match=r"2 of 2 shards not done .*shard 0 \(no completion record\)"):
        shards.check_complete(step, cfg, rule, 2)


# -- edges and messages ----------------------------------------------------------------------------------
def test_shard_args_at_their_edges():
    assert shards.check_shard_args({"num_shards": 1, "shard_index": 0}) == (1, 0)
    assert shards.check_shard_args({"num_shards": 3, "shard_index": 0}) == (3, 0)
    assert shards.check_shard_args({"num_shards": "2", "shard_index": "1"}) == (2, 1)
    with pytest.raises(UserError) as e:
        shards.check_shard_args({"num_shards": 2, "shard_index": 2})
    assert str(e.value) == "run.shard_index=2 run.num_shards=2: need 0 <= shard_index < num_shards"


def test_missing_shard_files_are_all_named(tmp_path):
    out = tmp_path / "o.jsonl"
    write_jsonl(shard_path(out, 1, 3), [{"a": 1}])
    with pytest.raises(UserError) as e:
        shards.ShardFiles(out, 3)
    assert str(e.value) == f"missing shard file(s): {shard_path(out, 0, 3)}, {shard_path(out, 2, 3)}"


def test_the_foreign_note_lists_six_files_then_counts(tmp_path):
    outs = []
    for k in range(7):
        out = tmp_path / f"o{k}.jsonl"
        outs.append(out)
        write_jsonl(shard_path(out, 0, 2), [{"a": 1}])    # another N
        write_jsonl(shard_path(out, 0, 3), [{"a": 1}])    # this run's N: never listed
    six = [str(shard_path(o, 0, 2)) for o in outs[:6]]
    head = "not merged (another run.num_shards than 3; delete when no longer needed): "
    assert shards.foreign_note(outs[:6], 3) == head + ", ".join(six)
    assert shards.foreign_note(outs, 3) == head + ", ".join(six) + ", ... (7 files)"
    assert shards.foreign_note(outs, 2) == head.replace("than 3", "than 2") + \
        ", ".join(str(shard_path(o, 0, 3)) for o in outs[:6]) + ", ... (7 files)"
    assert shards.foreign_note([tmp_path / "none.jsonl"], 3) is None


def _file_step(tmp_path, n_rows=1):
    step = pipeline.get("translate.file")
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(inp, [{"text": "a", "lang": "de"}] * n_rows)
    cfg = cli.load_config(step, ["--set", f"paths.work_dir={tmp_path / 'work'}", "--set", f"file.input={inp}",
                                      "--set", f"file.output={out}"])
    return step, cfg, out


def test_a_rule_names_its_files_and_merges_them(tmp_path):
    step, cfg, out = _file_step(tmp_path)
    rule = shards.ShardRule(sharded=("${file.output}", "${paths.work_dir}/second.jsonl"),
                            first_shard=("${paths.work_dir}/whole.json",))
    whole, second = tmp_path / "work" / "whole.json", tmp_path / "work" / "second.jsonl"
    assert rule.files(cfg, 0, 2) == [shard_path(out, 0, 2), shard_path(second, 0, 2), whole]
    assert rule.files(cfg, 1, 2) == [shard_path(out, 1, 2), shard_path(second, 1, 2)]
    assert rule.files(cfg, 0, 1) == [out, second, whole] and rule.parts(cfg, 1, 1) == [out, second]
    for i, rows in enumerate(([{"r": 0}, {"r": 2}], [{"r": 1}])):
        write_jsonl(shard_path(out, i, 2), rows)
        write_jsonl(shard_path(second, i, 2), rows[:1])
    assert rule.merge(cfg, 2) == f"merged 2 shards: 3 rows -> {out}; 2 rows -> {second}"
    assert [json.loads(x)["r"] for x in out.read_text().splitlines()] == [0, 1, 2]
    seen = []
    own = shards.ShardRule(sharded=("${file.output}",), combine=lambda c, n: seen.append((c, n)) or "done my way")
    assert own.merge(cfg, 5) == "done my way" and seen == [(cfg, 5)]


def test_rule_of_a_step_without_a_rule_is_named():
    with pytest.raises(UserError) as e:
        shards.rule_of(pipeline.get("capfilt.filter"))
    assert str(e.value) == "step capfilt.filter is not sharded: run python pretrain/filter.py directly"


def test_a_record_without_inputs_or_outputs_does_not_hold(tmp_path):
    step, cfg, out = _file_step(tmp_path)
    rule = shards.rule_of(step)
    write_jsonl(shard_path(out, 0, 2), [{"text": "x"}])
    path = records.record(step, cfg, shard=(0, 2), written=rule.files(cfg, 0, 2))
    full = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in full.items() if k != "inputs"}))
    assert shards.record_problem(step, cfg, rule, 0, 2).startswith("input changed since it ran: ")
    path.write_text(json.dumps({k: v for k, v in full.items() if k != "outputs"}))
    assert shards.record_problem(step, cfg, rule, 0, 2) == f"{shard_path(out, 0, 2)} is missing or not the file it wrote"


def test_a_recorded_file_is_trusted_while_its_size_and_time_match(tmp_path, monkeypatch):
    """The completion check hashes a shard file again only when its size or
    modification time changed (shard files can be large)."""
    import os
    monkeypatch.setattr(records, "_HASHED", {})        # the launcher: another process than the shard's
    step, cfg, out = _file_step(tmp_path)
    rule = shards.rule_of(step)
    part = shard_path(out, 0, 2)
    write_jsonl(part, [{"text": "x"}])
    records.record(step, cfg, shard=(0, 2), written=rule.files(cfg, 0, 2))
    st = part.stat()
    records._HASHED.clear()
    part.write_text(part.read_text().replace("x", "y"))          # same size
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns))          # same time
    assert shards.record_problem(step, cfg, rule, 0, 2) is None
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert "not the file it wrote" in shards.record_problem(step, cfg, rule, 0, 2)


def test_check_complete_names_ten_shards_then_elides_and_hints_the_first(tmp_path, capsys):
    step, cfg, out = _file_step(tmp_path)
    rule = shards.rule_of(step)
    for n, tail in ((10, ""), (11, " ...")):
        named = "; ".join(f"shard {i} (no completion record)" for i in range(10))
        with pytest.raises(UserError) as e:
            shards.check_complete(step, cfg, rule, n)
        assert str(e.value) == f"{n} of {n} shards not done for this input and config, nothing merged: {named}{tail}"
    write_jsonl(shard_path(out, 0, 2), [{"text": "x"}])
    records.record(step, cfg, shard=(0, 2), written=rule.files(cfg, 0, 2))
    with pytest.raises(UserError) as e:
        shards.check_complete(step, cfg, rule, 2, rerun_hint=lambda i: f"rerun shard {i}")
    assert str(e.value).endswith("nothing merged: shard 1 (no completion record); run it: rerun shard 1")
    write_jsonl(shard_path(out, 1, 2), [{"text": "y"}])
    records.record(step, cfg, shard=(1, 2), written=rule.files(cfg, 1, 2))
    write_jsonl(shard_path(out, 0, 3), [{"text": "old"}])
    capsys.readouterr()
    shards.check_complete(step, cfg, rule, 2)
    assert capsys.readouterr().err == f"warning: {shards.foreign_note([out], 2)}\n"
    (shard_path(out, 0, 3)).unlink()
    shards.check_complete(step, cfg, rule, 2)
    assert capsys.readouterr().err == ""


def test_chunks_are_lazy_lists_of_size_the_last_shorter():
    pulled = []

    def items():
        for i in range(7):
            pulled.append(i)
            yield i
    it = shards.chunks(items(), 3)
    assert next(it) == [0, 1, 2] and pulled == [0, 1, 2]      # read as far as the first chunk only
    assert list(it) == [[3, 4, 5], [6]]
    assert list(shards.chunks([], 3)) == [] and list(shards.chunks("abcd", 2)) == [["a", "b"], ["c", "d"]]
    assert list(shards.chunks(range(3), 1)) == [[0], [1], [2]]
