import gzip
import json

import pytest

from common.errors import UserError
from common.jsonl import BadRows, atomic_open, iter_json_array, load_json, read_jsonl, write_jsonl


def test_read_reports_file_and_line_and_counts(tmp_path, capsys):
    p = tmp_path / "a.jsonl"
    p.write_text('{"a": 1}\n{oops\n\n[1, 2]\n{"a": 2}\n', encoding="utf-8")
    bad = BadRows(max_bad=5)
    rows = list(read_jsonl(p, bad))
    assert rows == [{"a": 1}, {"a": 2}]
    assert bad.count == 2
    assert bad.examples[0].startswith(f"{p}:2: malformed JSON")
    assert bad.examples[1].startswith(f"{p}:4: expected a JSON object")
    assert f"{p}:2" in capsys.readouterr().err


def test_bad_row_budget_stops_with_user_error(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text("x\ny\nz\n")
    with pytest.raises(UserError, match=r"a.jsonl:3: .*more than 2 bad rows"):
        list(read_jsonl(p, BadRows(max_bad=2, quiet=True)))


def test_validate_hook_skips_rows(tmp_path):
    p = tmp_path / "a.jsonl"
    write_jsonl(p, [{"url": "u"}, {"caption": "c"}])
    bad = BadRows(quiet=True)
    rows = list(read_jsonl(p, bad, validate=lambda r: None if "url" in r else "missing url"))
    assert rows == [{"url": "u"}] and bad.examples == [f"{p}:2: missing url"]


def test_gzip_roundtrip_and_unicode(tmp_path):
    p = tmp_path / "a.jsonl.gz"
    write_jsonl(p, [{"t": "日本語 ü #"}])
    with gzip.open(p, "rt", encoding="utf-8") as f:
        assert "日本語" in f.read()  # ensure_ascii=False
    assert list(read_jsonl(p)) == [{"t": "日本語 ü #"}]


def test_atomic_write_leaves_nothing_on_crash(tmp_path):
    p = tmp_path / "out.jsonl"
    write_jsonl(p, [{"old": True}])
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write('{"new": true}\n')
            raise RuntimeError("killed")
    assert p.read_text() == '{"old": true}\n'
    assert [x.name for x in tmp_path.iterdir()] == ["out.jsonl"]


def test_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match="input file not found"):
        list(read_jsonl(tmp_path / "nope.jsonl"))
    with pytest.raises(UserError, match="input file not found"):
        load_json(tmp_path / "nope.json")


def test_load_json_names_line(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{\n"a": 1,\n}\n')
    with pytest.raises(UserError, match=r"a.json:3: invalid JSON"):
        load_json(p)


@pytest.mark.parametrize("chunk", [3, 7, 64, 1 << 20])
def test_iter_json_array_streams_and_skips_bad_elements(tmp_path, chunk):
    rows = [{"url": f"http://x/{i}", "caption": f"caption {i} with, commas}} and {{braces"} for i in range(50)]
    text = json.dumps(rows, indent=1)
    # Corrupt element 10 (a missing comma between key-value pairs).
    text = text.replace('"url": "http://x/10",', '"url": "http://x/10"', 1)
    p = tmp_path / "big.json"
    p.write_text(text)
    bad = BadRows(quiet=True)
    got = list(iter_json_array(p, bad, chunk_size=chunk, max_element=4096))
    assert [i for i, _ in got] == [i for i in range(50) if i != 10]
    assert [r for _, r in got] == [r for i, r in enumerate(rows) if i != 10]
    assert bad.count == 1 and "array element 10" in bad.examples[0]


def test_iter_json_array_rejects_non_array(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"a": 1}')
    with pytest.raises(UserError, match="expected a JSON array"):
        list(iter_json_array(p))


def test_byte_order_mark_is_ignored(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes('\ufeff{"a": 1}\n{"a": 2}\n'.encode("utf-8"))
    assert list(read_jsonl(p)) == [{"a": 1}, {"a": 2}]
    q = tmp_path / "a.json"
    q.write_bytes('\ufeff[{"a": 1}]'.encode("utf-8"))
    assert list(iter_json_array(q)) == [(0, {"a": 1})]
    assert load_json(q) == [{"a": 1}]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 1 << 20])
def test_iter_json_array_tricky_elements_at_every_chunk_boundary(tmp_path, chunk):
    elements = [123456789, -0.5e-3, True, None, "s},{t", [1, [2, {"x": "]"}]], {"u": "日本語😀\\"},
                {"a": "x" * 300}, {}, []]
    p = tmp_path / "a.json"
    p.write_text(" [ " + " ,\n ".join(json.dumps(e, ensure_ascii=False) for e in elements) + " ] \n",
                 encoding="utf-8")
    got = list(iter_json_array(p, BadRows(max_bad=0), chunk_size=chunk))
    assert got == list(enumerate(elements))


@pytest.mark.parametrize("text, rows, reason", [
    ("[]", [], None),
    ("  [ \n ] ", [], None),
    ('[{"a":1},{"b":2', [{"a": 1}], "file ends inside this element (truncated file?)"),
    ('[{"a":1},', [{"a": 1}], "file ends inside the top-level array (truncated file?)"),
    ("[1, x, 3, 4]", [1], "no later element boundary found"),
])
def test_iter_json_array_empty_and_truncated(tmp_path, text, rows, reason):
    p = tmp_path / "a.json"
    p.write_text(text)
    bad = BadRows(quiet=True)
    assert [r for _, r in iter_json_array(p, bad, chunk_size=4)] == rows
    assert (reason is None) == (bad.count == 0)
    if reason:
        assert reason in bad.examples[-1]


def test_a_number_cut_by_a_chunk_boundary_inside_an_element_is_read_whole(tmp_path):
    """Every chunk size: "-1.5e" at a window's end is a number still coming, not
    malformed JSON (the element would be skipped otherwise)."""
    path = tmp_path / "a.json"
    doc = [{"x": -1.5e-3, "y": [2.25e2, 7], "z": "s"}, {"w": 10, "v": 0.5}]
    path.write_text('[{"x": -1.5e-3, "y": [2.25E+2, 7], "z": "s"}, {"w": 10, "v": 0.5}]')
    for chunk in range(1, 40):
        bad = BadRows(max_bad=None, quiet=True)
        assert [e for _, e in iter_json_array(path, bad, chunk_size=chunk)] == doc, chunk
        assert bad.count == 0
