"""common/jsonl.py to the letter: every message a user sees (file, line or
element, byte offset, reason), every budget edge, the streaming array reader at
every chunk size, invalid UTF-8 in each reader, and the atomic writer's
temporaries. (The mutation check, ``make mutation``, runs this file with
tests/test_jsonl.py against the module.)"""
from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys

import pytest

from common import jsonl
from common.errors import UserError
from common.jsonl import (BadRows, atomic_open, dumps, invalid_utf8_error, iter_json_array, load_json, read_jsonl,
                          remove_stale_temps, stale_temps, write_json, write_jsonl)


# -- BadRows -------------------------------------------------------------------------------------------
def test_bad_rows_budget_keeps_and_prints_the_first_messages(capsys):
    bad = BadRows(max_bad=3, keep=2, key="x.max_bad_rows")
    assert (bad.max_bad, bad.count, bad.seen, bad.examples, bad.keep, bad.quiet, bad.key) == \
        (3, 0, 0, [], 2, False, "x.max_bad_rows")
    for k in range(3):
        bad.add(f"f:{k}", "why")
    assert bad.count == 3 and bad.examples == ["f:0: why", "f:1: why"]
    assert capsys.readouterr().err == "warning: skipped f:0: why\nwarning: skipped f:1: why\n"
    with pytest.raises(UserError) as e:
        bad.add("f:9", "broken")
    assert str(e.value) == "f:9: broken (more than 3 bad rows; raise x.max_bad_rows to go on)"
    with pytest.raises(UserError) as e:
        BadRows(max_bad=0).add("g:1", "r")
    assert str(e.value) == "g:1: r (more than 0 bad rows)"


def test_bad_rows_defaults_and_quiet(capsys):
    bad = BadRows(quiet=True)
    assert (bad.max_bad, bad.max_bad_fraction, bad.keep, bad.key) == (1000, None, 20, None)
    for k in range(1000):
        bad.add(f"f:{k}", "r")
    assert len(bad.examples) == 20 and capsys.readouterr().err == ""
    with pytest.raises(UserError):
        bad.add("f:1000", "r")
    unlimited = BadRows(max_bad=None, quiet=True)
    for k in range(2000):
        unlimited.add("f", "r")
    assert unlimited.count == 2000


def test_bad_rows_fraction_at_its_edge():
    bad = BadRows(max_bad=None, max_bad_fraction=0.25, quiet=True)
    bad.seen, bad.count = 8, 2
    bad.check_fraction("in.jsonl")                      # 2/8 = 0.25: allowed
    bad.count = 3
    with pytest.raises(UserError) as e:
        bad.check_fraction("in.jsonl")
    assert str(e.value) == "in.jsonl: 3 of 8 rows are bad (over the allowed fraction 0.25)"
    BadRows(max_bad=None, max_bad_fraction=0.0).check_fraction("nothing seen")   # no rows: nothing to say
    none = BadRows(max_bad=None, quiet=True)
    none.seen, none.count = 1, 1
    none.check_fraction("no fraction set")


# -- read_jsonl ----------------------------------------------------------------------------------------
def test_read_jsonl_reasons_lines_and_counts(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n\n  \n[1, 2]\n"text"\n{"a": ]}\n{"b": 2}\n{"c": "\xff"}\n{"d": 4}')
    bad = BadRows(quiet=True)
    assert list(read_jsonl(path, bad, validate=lambda r: "no b please" if "b" in r else None)) == [{"a": 1}, {"d": 4}]
    assert bad.seen == 7 and bad.count == 5
    assert bad.examples == [f"{path}:4: expected a JSON object, got list", f"{path}:5: expected a JSON object, got str",
                            f"{path}:6: malformed JSON (Expecting value at column 7)", f"{path}:7: no b please",
                            f"{path}:8: invalid UTF-8 (byte b'\\xff' at column 8)"]


def test_read_jsonl_drops_a_byte_order_mark_and_reads_gzip(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"a": 2}\n')
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 2}]
    short = tmp_path / "short.jsonl"
    short.write_bytes(b'{}')                           # shorter than a byte-order mark
    assert list(read_jsonl(short)) == [{}]
    gz = tmp_path / "x.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write('{"é": "ü"}\n')
    assert list(read_jsonl(gz)) == [{"é": "ü"}]
    with pytest.raises(UserError) as e:
        list(read_jsonl(tmp_path / "none.jsonl"))
    assert str(e.value) == f"input file not found: {tmp_path / 'none.jsonl'}"


# -- whole documents -----------------------------------------------------------------------------------
def test_load_json_messages(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"a": 1,\n "b": }', encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_json(path)
    assert str(e.value) == f"{path}:2: invalid JSON (Expecting value at column 7)"
    data = b'{"a": 1,\n "b": "\xe9t\xe9"}'
    path.write_bytes(data)
    with pytest.raises(UserError) as e:
        load_json(path)
    assert str(e.value) == f"{path}:2: invalid UTF-8 (byte b'\\xe9' at byte offset {data.index(0xe9)})"
    path.write_bytes(b'\xef\xbb\xbf{"a": [1, 2]}')
    assert load_json(path) == {"a": [1, 2]}
    with pytest.raises(UserError) as e:
        load_json(tmp_path / "none.json")
    assert str(e.value) == f"input file not found: {tmp_path / 'none.json'}"


def test_load_json_drops_each_record_with_an_invalid_byte(tmp_path):
    path = tmp_path / "a.json"
    data = b'[{"q": "ok"},\n {"q": "b\xe9d", "r": "\xff\xfe"},\n {"q": "fine"},\n {"\xe9": 1}]'
    path.write_bytes(data)
    bad = BadRows(quiet=True)
    assert load_json(path, bad) == [{"q": "ok"}, {"q": "fine"}]
    assert bad.seen == 2 and bad.examples == [f"{path}:2: record 1 (byte offset {data.index(0xe9)}): invalid UTF-8",
                                              f"{path}:4: record 3 (byte offset {data.rindex(0xe9)}): invalid UTF-8"]
    data = b'{"x": {"q": "ok"},\n "y": {"q": "\xe9"}}'
    path.write_bytes(data)
    bad = BadRows(quiet=True)
    assert load_json(path, bad) == {"x": {"q": "ok"}}
    assert bad.examples == [f"{path}:2: record 'y' (byte offset {data.index(0xe9)}): invalid UTF-8"]
    data = b'{"info": "fine", "questions": [{"q": 1}, {"q": "\xe9"}, {"q": 3}]}'
    path.write_bytes(data)
    bad = BadRows(quiet=True)
    assert load_json(path, bad, records="questions") == {"info": "fine", "questions": [{"q": 1}, {"q": 3}]}
    assert bad.examples == [f"{path}:1: record 1 (byte offset {data.index(0xe9)}): invalid UTF-8"]


@pytest.mark.parametrize("data, records", [
    (b'{"info": "\xe9", "questions": [{"q": 1}]}', "questions"),      # outside the records
    (b'"\xe9"', None),                                                # no records at all
    (b'{"questions": "\xe9"}', "questions"),                          # records that are no container
])
def test_load_json_invalid_bytes_outside_the_records_stop(tmp_path, data, records):
    path = tmp_path / "a.json"
    path.write_bytes(data)
    with pytest.raises(UserError) as e:
        load_json(path, BadRows(quiet=True), records=records)
    off = data.index(b"\xe9")
    assert str(e.value) == (f"{path}:1: invalid UTF-8 outside the records (first invalid byte at byte offset {off}), "
                            "so no record can be skipped in its place")


def test_invalid_utf8_error_names_line_and_offset_at_any_chunk(tmp_path, monkeypatch):
    path = tmp_path / "doc.json"
    data = ("{\n" + '"é": 1,\n' * 3000).encode() + b'"bad": "\xff"\n}'
    path.write_bytes(data)
    at = data.index(b"\xff")
    want = f"{path}:3002: invalid UTF-8 at byte offset {at} (a whole-document file: fix or re-download it)"
    assert str(invalid_utf8_error(path)) == want
    real_open = jsonl._open_binary

    class Small:
        def __init__(self, f):
            self.f = f

        def read(self, n):
            return self.f.read(7)      # chunks that cut "é" (two bytes) in two

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()
    monkeypatch.setattr(jsonl, "_open_binary", lambda p: Small(real_open(p)))
    assert str(invalid_utf8_error(path)) == want
    path.write_bytes("{\n\"é\": 1}".encode() + b"\xc3")    # cut at the very end of the file
    assert str(invalid_utf8_error(path)) == f"{path}:2: invalid UTF-8 at byte offset 10 " \
                                            "(a whole-document file: fix or re-download it)"
    path.write_bytes(b'{"fine": 1}')
    assert str(invalid_utf8_error(path)) == f"{path}: invalid UTF-8"


# -- the streaming array reader ------------------------------------------------------------------------
CHUNKS = [1, 2, 3, 5, 7, 16, 1 << 20]


def elements(path, chunk, max_element=1 << 22):
    bad = BadRows(quiet=True)
    got = list(iter_json_array(path, bad, chunk_size=chunk, max_element=max_element))
    return got, bad


@pytest.mark.parametrize("chunk", CHUNKS)
def test_array_elements_of_every_kind(tmp_path, chunk):
    path = tmp_path / "a.json"
    items = [{"a": "x\\\"]}"}, [1, [2, {"b": []}]], "str\\\"ing", 12.5e-3, -7, True, False, None, {}, [],
             {"ü": "日本"}, 0, 1e300]
    path.write_text("\ufeff \n[ " + " ,\n\t".join(json.dumps(x, ensure_ascii=False) for x in items) + " ] \n",
                    encoding="utf-8")
    got, bad = elements(path, chunk)
    assert got == list(enumerate(items)) and bad.count == 0 and bad.seen == len(items)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_array_bad_elements_are_named_with_index_and_offset(tmp_path, chunk):
    path = tmp_path / "a.json"
    text = '[{"a": 1},\n{"a": oops},\n{"a": 3}, {"a": "\xff"}, {"a": 5}, ' + '{"big": "' + "x" * 40 + '"}, {"a": 7}]'
    data = text.encode("utf-8").replace("\xff".encode("utf-8"), b"\xff")
    path.write_bytes(data)
    got, bad = elements(path, chunk, max_element=30)
    assert [i for i, _ in got] == [0, 2, 4, 6] and [x["a"] for _, x in got] == [1, 3, 5, 7]
    third, ff, big = data.index(b'{"a": "'), data.index(b"\xff"), data.index(b'{"big')
    assert bad.seen == 7 and bad.examples == [
        f"{path}: array element 1 (byte offset 11): malformed JSON (Expecting value)",
        f"{path}: array element 3 (byte offset {third}): invalid UTF-8 (byte offset {ff})",
        f"{path}: array element 5 (byte offset {big}): element too large (over 30 characters; skipped)"]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("text, n_ok, message", [
    ('[{"a": 1}, {"a": 2', 1, "array element 1 (byte offset 11): file ends inside this element (truncated file?)"),
    ('[{"a": 1}, ', 1, "array element 1: file ends inside the top-level array (truncated file?)"),
    ('[{"a": 1}, tru', 1, "array element 1 (byte offset 11): file ends inside this element (truncated file?)"),
    ('[1, bad, 3]', 1, "array element 2: no later element boundary found after the malformed element; "
                       "the rest of the file (7 characters) was skipped"),
    ('[{"a": 1}, {x}]', 1, None),
])
def test_array_truncated_and_unsynced(tmp_path, chunk, text, n_ok, message):
    path = tmp_path / "a.json"
    path.write_text(text, encoding="utf-8")
    got, bad = elements(path, chunk)
    assert len(got) == n_ok
    if message is not None:
        assert bad.examples[-1] == f"{path}: {message}"


@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_too_large_element_is_skipped_by_its_brackets(tmp_path, chunk):
    path = tmp_path / "a.json"
    big = {"s": 'quote " and ] } [ { and backslash \\', "n": [[{"x": "]"}]] * 3, "t": "x" * 50}
    path.write_text(json.dumps([{"a": 1}, big, "a long string that is too large to keep", {"a": 4}]), encoding="utf-8")
    got, bad = elements(path, chunk, max_element=25)
    assert got == [(0, {"a": 1}), (3, {"a": 4})] and bad.count == 2
    path.write_text('[{"a": 1}, {"s": "' + "y" * 60, encoding="utf-8")      # too large, then cut off
    got, bad = elements(path, chunk, max_element=25)
    assert got == [(0, {"a": 1})] and bad.examples[-1].endswith("file ends inside this element (truncated file?)")


def test_a_number_cut_by_a_chunk_is_read_whole(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[0.5, 123456789, -1.25e+10, 7]", encoding="utf-8")
    for chunk in (1, 2, 3, 4):
        assert [x for _, x in elements(path, chunk)[0]] == [0.5, 123456789, -1.25e+10, 7]


def test_not_an_array(tmp_path):
    for text in ('{"a": 1}', "", "   "):
        path = tmp_path / "a.json"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(UserError) as e:
            list(iter_json_array(path))
        assert str(e.value) == f"{path}: expected a JSON array at the top level"
    with pytest.raises(UserError, match="input file not found"):
        list(iter_json_array(tmp_path / "none.json"))


# -- writing -------------------------------------------------------------------------------------------
def test_writers(tmp_path):
    assert dumps({"é": [1, None]}) == '{"é": [1, null]}'
    p = tmp_path / "sub" / "rows.jsonl"
    assert write_jsonl(p, iter([{"a": "ü"}, {"b": 2}])) == 2
    assert p.read_bytes() == '{"a": "ü"}\n{"b": 2}\n'.encode()
    assert oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    write_json(tmp_path / "a.json", {"k": "ü"})
    assert (tmp_path / "a.json").read_bytes() == '{"k": "ü"}'.encode()
    write_json(tmp_path / "b.json", {"k": [1]}, indent=1)
    assert (tmp_path / "b.json").read_text() == '{\n "k": [\n  1\n ]\n}\n'
    with atomic_open(tmp_path / "c.bin", "wb") as f:
        f.write(b"\x00\xff")
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\xff"
    with atomic_open(tmp_path / "d.txt.gz") as f:
        f.write("zipped ü\n")
    assert gzip.open(tmp_path / "d.txt.gz", "rt", encoding="utf-8").read() == "zipped ü\n"
    with atomic_open(tmp_path / "e.txt") as f:
        f.write("a\nb\n")
    assert (tmp_path / "e.txt").read_bytes() == b"a\nb\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.json", "b.json", "c.bin", "d.txt.gz", "e.txt", "sub"]


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    (tmp_path / "keep.jsonl").write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(tmp_path / "keep.jsonl") as f:
            f.write("new")
            raise KeyboardInterrupt
    assert (tmp_path / "keep.jsonl").read_text() == "old\n" and len(list(tmp_path.iterdir())) == 1


def test_stale_temporaries_are_those_of_dead_local_processes(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    host = jsonl._HOST
    out = tmp_path / "out.jsonl"
    names = {"dead": f".out.jsonl.{host}-{dead}.abc.tmp", "live": f".out.jsonl.{host}-{os.getpid()}.abc.tmp",
             "other_host": f".out.jsonl.elsewhere-{dead}.abc.tmp", "old_style": ".out.jsonl.k2j3.tmp",
             "shard": f".out.jsonl.shard-00000-of-00002.{host}-{dead}.x.tmp",
             "another_file": f".other.jsonl.{host}-{dead}.abc.tmp", "not_temp": "out.jsonl.tmp"}
    for name in names.values():
        (tmp_path / name).write_text("x")
    want = sorted(tmp_path / names[k] for k in ("dead", "old_style", "shard"))
    assert stale_temps(out) == want
    assert stale_temps(tmp_path, inside=True) == sorted(want + [tmp_path / names["another_file"]])
    assert stale_temps(tmp_path / "no" / "x.jsonl") == [] and stale_temps(tmp_path / "none", inside=True) == []
    assert remove_stale_temps(out) == want
    assert not any(p.exists() for p in want) and (tmp_path / names["live"]).exists()
    assert remove_stale_temps(out) == []
    assert jsonl._HOST == "".join(c if c.isalnum() or c in "_-" else "_" for c in socket.gethostname())


def test_alive():
    assert jsonl._alive(os.getpid()) is True
    assert jsonl._alive(1) is True                     # init: another user's process, or ours in a container
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    assert jsonl._alive(int(dead)) is False


# -- more edges: lines counted from the file's start, keys, nesting, the third bad record ---------------
def test_lines_are_counted_from_the_first_byte(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b'\n{"a": "\xe9",\n "b": 1\n}\n')
    with pytest.raises(UserError, match=r"d\.json:2: invalid UTF-8 \(byte b'\\xe9' at byte offset 8\)"):
        load_json(path)
    assert str(invalid_utf8_error(path)).startswith(f"{path}:2: invalid UTF-8 at byte offset 8 ")
    path.write_bytes(b'\n[{"q": "\xe9"},\n {"q": 2}]')
    bad = BadRows(quiet=True)
    assert load_json(path, bad) == [{"q": 2}] and bad.examples == [f"{path}:2: record 0 (byte offset 9): invalid UTF-8"]


def test_bad_bytes_in_keys_and_nested_values(tmp_path):
    path = tmp_path / "d.json"
    data = b'{"x": {"q": 1}, "\xe9y": {"q": 2}, "z": {"q": ["a", ["\xe9"]]}, "w": {"q": 4}}'
    path.write_bytes(data)
    bad = BadRows(quiet=True)
    assert load_json(path, bad) == {"x": {"q": 1}, "w": {"q": 4}}
    assert [e.split(": record ")[1] for e in bad.examples] == [
        f"'\\udce9y' (byte offset {data.index(0xe9)}): invalid UTF-8",
        f"'z' (byte offset {data.rindex(0xe9)}): invalid UTF-8"]
    for doc in (b'{"in\xe9fo": 1, "questions": []}', b'{"info": "\xe9\xe9", "questions": [{"q": "\xe9"}]}'):
        path.write_bytes(doc)
        with pytest.raises(UserError, match="outside the records"):
            load_json(path, BadRows(quiet=True), records="questions")
    path.write_bytes(b'"just a string"')
    assert load_json(path, BadRows(quiet=True)) == "just a string"


def test_each_bad_record_gets_the_offset_of_its_own_first_byte(tmp_path):
    path = tmp_path / "a.json"
    data = b'[{"q": "\xe9\xe9"}, {"q": "ok"}, {"q": "\xff"}, {"q": "\xfe"}]'
    path.write_bytes(data)
    bad = BadRows(quiet=True)
    assert load_json(path, bad) == [{"q": "ok"}]
    offsets = [i for i, b in enumerate(data) if b >= 0x80]
    assert [int(e.split("byte offset ")[1].split(")")[0]) for e in bad.examples] == [offsets[0], offsets[2], offsets[3]]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_escapes_marks_and_the_seen_count(tmp_path, chunk):
    path = tmp_path / "a.json"
    items = ["caf\u00e9 \u65e5\u672c", "zero\ufeffwidth", {"k": "\\u00e9 literally"}]
    path.write_text("[" + ", ".join(json.dumps(x, ensure_ascii=True) for x in items) + "]", encoding="utf-8")
    got, bad = elements(path, chunk)
    assert got == list(enumerate(items)) and bad.count == 0
    path.write_bytes(b'\xef\xbb\xbf[{"a": oops}, {"a": 2}]')
    got, bad = elements(path, chunk)
    assert got == [(1, {"a": 2})] and bad.examples == [f"{path}: array element 0 (byte offset 4): malformed JSON "
                                                       "(Expecting value)"]
    path.write_text('[{"a": 1}, ', encoding="utf-8")
    got, bad = elements(path, chunk)
    assert bad.seen == 2 and bad.count == 1
    path.write_text('[{"a": 1}, {"s": "' + "y" * 60, encoding="utf-8")
    got, bad = elements(path, chunk, max_element=25)
    assert bad.examples == [f"{path}: array element 1 (byte offset 11): element too large (over 25 characters; skipped)",
                            f"{path}: array element 1 (byte offset 11): file ends inside this element (truncated file?)"]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_an_element_of_exactly_max_element_characters_is_kept(tmp_path, chunk):
    path = tmp_path / "a.json"
    path.write_text('[{"a": 12}, {"a": 123}]', encoding="utf-8")      # 9 and 10 characters
    got, bad = elements(path, chunk, max_element=9)
    assert got == [(0, {"a": 12})] and bad.count == 1


def test_remove_stale_temps_inside_a_folder(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    a, b = tmp_path / f".a.jsonl.{jsonl._HOST}-{dead}.x.tmp", tmp_path / f".b.json.{jsonl._HOST}-{dead}.y.tmp"
    a.write_text("x")
    b.write_text("y")
    assert remove_stale_temps(tmp_path, inside=True) == [a, b] and not a.exists() and not b.exists()


@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_byte_order_mark_character_inside_the_file_is_kept(tmp_path, chunk):
    path = tmp_path / "a.json"
    path.write_text('["zero\ufeffwidth", "\ufeff"]', encoding="utf-8")
    assert [x for _, x in elements(path, chunk)[0]] == ["zero\ufeffwidth", "\ufeff"]


def test_invalid_bytes_outside_the_records_in_keys_and_values_alike(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'{"in\xe9fo": "\xe9",\n "questions": [{"q": 1}]\n}')
    with pytest.raises(UserError) as e:
        load_json(path, BadRows(quiet=True), records="questions")
    assert str(e.value).startswith(f"{path}:1: invalid UTF-8 outside the records (first invalid byte at byte offset 4)")
