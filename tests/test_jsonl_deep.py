"""The JSON readers on documents json cannot parse for their nesting, and the
streaming reader's way into a member's array: where each says the problem is,
and what it keeps (common/jsonl.py)."""
from __future__ import annotations

import pytest

from common.errors import UserError
from common.jsonl import (MAX_DEPTH, TOO_DEEP, BadRows, iter_json_array, load_json, read_json_object, read_jsonl,
                          too_deep_at)

DEEP = "[" * 1500 + "]" * 1500     # one 3 KB line: json's recursive parser gives up on it


def test_deep_json_is_one_bad_record_in_every_reader(tmp_path):
    lines = tmp_path / "a.jsonl"
    lines.write_text(f'{{"a": 1}}\n{{"x": {DEEP}}}\n{{"a": 2}}\n')
    bad = BadRows(quiet=True)
    assert list(read_jsonl(lines, bad)) == [{"a": 1}, {"a": 2}] and bad.count == 1
    assert "nested more than 200 levels deep" in bad.examples[0]

    array = tmp_path / "a.json"
    array.write_text(f'[{{"a": 1}}, {{"x": {DEEP}}}, {{"a": 2}}]')
    for chunk in (64, 1 << 20):     # cut inside the deep element, or not
        bad = BadRows(quiet=True)
        assert list(iter_json_array(array, bad, chunk_size=chunk)) == [(0, {"a": 1}), (2, {"a": 2})]
        assert bad.count == 1, chunk

    doc = tmp_path / "d.json"      # a whole document keyed by id (xGQA), and one with a records member
    doc.write_text(f'{{"q1": {{"a": 1}}, "q2": {{"x": {DEEP}}}, "q3": {{"a": 2}}}}')
    bad = BadRows(quiet=True)
    assert load_json(doc, bad) == {"q1": {"a": 1}, "q3": {"a": 2}} and bad.count == 1
    with pytest.raises(UserError, match="nested more than 200"):
        load_json(doc)
    member = tmp_path / "m.json"
    member.write_text(f'{{"info": 1, "images": [{{"a": 1}}, {{"x": {DEEP}}}]}}')
    bad = BadRows(quiet=True)
    assert load_json(member, bad, "images") == {"info": 1, "images": [{"a": 1}]} and bad.count == 1
    assert read_json_object(doc) is None        # a record of our own: recomputed



def test_too_deep_at_is_the_first_bracket_past_the_limit():
    assert too_deep_at("[" * (MAX_DEPTH + 5)) == MAX_DEPTH
    assert too_deep_at("[" * MAX_DEPTH + "]" * MAX_DEPTH) == -1
    assert too_deep_at("{" * MAX_DEPTH + "[") == MAX_DEPTH
    assert too_deep_at("[]" * 1000) == -1                                   # many brackets, never deep
    assert too_deep_at('["' + "[" * 500 + '"]') == -1                      # brackets inside a string
    assert too_deep_at('["\\"' + "[" * 500 + '"]') == -1                   # an escaped quote stays inside
    text = "xx" + "[" * 300
    assert too_deep_at(text) == 2 + MAX_DEPTH
    assert too_deep_at(text, 50) == 50 + MAX_DEPTH                          # from a start
    assert too_deep_at(text, 0, 150) == -1                                  # up to an end


def test_a_deep_document_names_its_line_without_a_bad_rows_budget(tmp_path):
    doc = tmp_path / "d.json"
    doc.write_text('{\n"a": 1,\n"b": ' + DEEP + "\n}", encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_json(doc)
    assert str(e.value) == f"{doc}:3: {TOO_DEEP}"


def test_deep_records_are_dropped_by_key_or_index_and_counted(tmp_path):
    doc = tmp_path / "d.json"
    doc.write_text('{"q1": {"a": 1},\n"q2": {"x": ' + DEEP + '},\n"q3": [' + DEEP + '], "q4": 4}', encoding="utf-8")
    bad = BadRows(quiet=True)
    assert load_json(doc, bad) == {"q1": {"a": 1}, "q4": 4}
    assert bad.count == 2 and bad.seen == 2
    assert bad.examples == [f"{doc}:2: record 'q2': {TOO_DEEP}", f"{doc}:3: record 'q3': {TOO_DEEP}"]
    arr = tmp_path / "a.json"
    arr.write_text('[{"a": 1},\n' + DEEP + ',\n{"a": 2}]', encoding="utf-8")
    bad = BadRows(quiet=True)
    assert load_json(arr, bad) == [{"a": 1}, {"a": 2}]
    assert bad.count == 1 and f"{arr}:2: record 1" in bad.examples[0] and TOO_DEEP in bad.examples[0]


def test_nesting_outside_the_records_is_still_an_error(tmp_path):
    doc = tmp_path / "m.json"
    doc.write_text('{"info":\n' + DEEP + ', "images": [{"a": 1}]}', encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_json(doc, BadRows(quiet=True), "images")
    assert str(e.value) == f"{doc}:2: {TOO_DEEP} (outside the records)"
    one = tmp_path / "one.json"
    one.write_text(DEEP, encoding="utf-8")      # an array whose one record is too deep: dropped
    bad = BadRows(quiet=True)
    assert load_json(one, bad) == [] and bad.count == 1


def test_read_json_object_is_none_for_anything_but_an_object(tmp_path):
    p = tmp_path / "r.json"
    assert read_json_object(p) is None
    for text in ("[1, 2]", "{broken", "\"s\"", DEEP):
        p.write_text(text, encoding="utf-8")
        assert read_json_object(p) is None, text
    p.write_text('{"a": [1]}', encoding="utf-8")
    assert read_json_object(p) == {"a": [1]}
    p.write_bytes(b'{"a": "\xff"}')
    assert read_json_object(p) is None


@pytest.mark.parametrize("text,message", [
    ('[{"a": 1}]', "expected a JSON object with an array at 'images' at the top level"),
    ('{"info": 1}', "expected a JSON object with an array at 'images'; the object ends without it"),
    ('{"images": {"a": 1}}', "expected a JSON object with an array at 'images'; 'images' is not an array"),
    # the offset is where the reader stands: past the number, at the value without a colon
    ('{"info": 1, 7: [1]}', "expected a JSON object with an array at 'images': no member name at byte offset 13"),
    ('{"info" 1}', "expected a JSON object with an array at 'images': no member name at byte offset 8"),
    ('{"images":   ', "expected a JSON object with an array at 'images'; the file ends after 'images'"),
    ('{"info": [1, 2, oops], "images": []}', "member 'info' (byte offset 9): "),
])
def test_the_way_into_a_members_array_names_what_is_wrong(tmp_path, text, message):
    p = tmp_path / "k.json"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as e:
        list(iter_json_array(p, BadRows(quiet=True), member="images"))
    assert str(e.value).startswith(f"{p}: {message}")


def test_members_before_the_array_are_read_past_even_when_too_large_or_deep(tmp_path):
    p = tmp_path / "k.json"
    p.write_text('{"info": {"v": "' + "x" * 5000 + '"}, "deep": ' + DEEP + ', "images": [{"a": 1}, {"a": 2}], '
                 '"after": 1}', encoding="utf-8")
    for chunk in (64, 1 << 20):
        got = list(iter_json_array(p, BadRows(quiet=True), chunk_size=chunk, max_element=1000, member="images"))
        assert got == [(0, {"a": 1}), (1, {"a": 2})], chunk


def test_read_jsonl_keeps_the_rows_around_a_deep_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"a": 1}\n' + DEEP + '\n{"a": 2}\n', encoding="utf-8")
    bad = BadRows(quiet=True)
    assert list(read_jsonl(p, bad)) == [{"a": 1}, {"a": 2}]
    assert bad.count == 1 and f"{p}:2" in bad.examples[0]
