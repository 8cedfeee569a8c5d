"""What a download run remembers (pretrain/download_resume.py): which earlier
failures the next run refetches and which it skips. The policy, as the code
states it: a 4xx other than 408/425/429 and a file that is not a usable image
are failures for good; 429, 408, 425, every 5xx, timeouts and network errors
are retried on the next run. The journal a killed run leaves counts too."""
from __future__ import annotations

import json

import pytest

from common.sampling import stable_hash
from pretrain import download_resume as dr

RETRIED = ["http_429", "http_408", "http_425", "http_500", "http_502", "http_503", "http_504", "http_599",
           "timeout", "connection_error", "dns_error", "request_error", "rate_limited", "robots_disallowed",
           "blocked_address", "ok", "exists", "", "http_", "http_abc", "http_x404", "http_399", "http_600"]
FOR_GOOD = ["http_400", "http_401", "http_403", "http_404", "http_410", "http_451", "http_499",
            "not_image", "decode_error", "too_large", "too_many_pixels", "opted_out", "bad_url",
            "too_many_redirects"]


@pytest.mark.parametrize("kind", RETRIED)
def test_transient_failures_are_retried(kind):
    assert not dr.is_permanent(kind)


@pytest.mark.parametrize("kind", FOR_GOOD)
def test_failures_for_good_are_not_retried(kind):
    assert dr.is_permanent(kind)


def write(path, rows, tail: str = ""):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")


def row(url, kind, status=None, **extra):
    return {"url": url, "kind": kind, "http_status": status, **extra}


def test_the_next_run_skips_only_what_failed_for_good(tmp_path):
    status = tmp_path / "status.jsonl"
    write(status, [{"kind": "http_404"}, {"url": 5, "kind": "http_404"}, row("u/404", "http_404", 404), row("u/410", "http_410", 410), row("u/dec", "decode_error"),
                   row("u/429", "http_429", 429), row("u/503", "http_503", 503), row("u/to", "timeout"),
                   row("u/ok", "ok", 200), {"kind": "http_404"}, {"url": 5, "kind": "http_404"}])
    got = dr.previous_failures(status)
    assert got == {stable_hash("u/404"): ("http_404", 404), stable_hash("u/410"): ("http_410", 410),
                   stable_hash("u/dec"): ("decode_error", None)}


def test_the_journal_of_a_killed_run_is_read_after_the_status_file_later_rows_win(tmp_path):
    status = tmp_path / "status.jsonl"
    write(status, [row("a", "http_404", 404), row("b", "timeout"), row("c", "http_403", 403)])
    # The killed run: a fetched again successfully (a retry_failed run), b now gone for good,
    # and a torn last line.
    write(dr.journal_path(status), [row("a", "ok", 200), row("b", "http_410", 410)], tail='{"url": "c", "ki')
    assert dr.journal_path(status) == tmp_path / "status.jsonl.journal"
    assert dr.previous_failures(status) == {stable_hash("b"): ("http_410", 410), stable_hash("c"): ("http_403", 403)}
    # Only a journal (the first run was killed): still read.
    status.unlink()
    assert dr.previous_failures(status) == {stable_hash("b"): ("http_410", 410)}
    assert dr.previous_failures(tmp_path / "none.jsonl") == {}


def test_failures_accumulate_into_a_given_dict_and_share_outcomes(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write(a, [row("x", "http_404", 404)])
    write(b, [row("y", "http_404", 404), row("x", "http_503", 503)])
    out = {stable_hash("z"): ("http_404", 404)}
    assert dr.previous_failures(a, out) is out
    dr.previous_failures(b, out)
    assert out == {stable_hash("z"): ("http_404", 404), stable_hash("y"): ("http_404", 404)}
    write(b, [row("p", "not_image"), row("q", "not_image")])
    got = dr.previous_failures(b)
    assert got[stable_hash("p")] is got[stable_hash("q")]   # one tuple per outcome, not per URL


def test_an_image_kept_despite_an_opt_out_is_remembered(tmp_path):
    status = tmp_path / "s.jsonl"
    write(status, [row("k", "ok", 200, x_robots_opt_out=True), row("m", "ok", 200, x_robots_opt_out="yes"),
                   row("n", "opted_out", 200, x_robots_opt_out=True)])
    # "n" opted out under a config this call does not give: not remembered as a failure (issue 20: an
    # opt-out counts only while the config honours it), but its opt-out is still seen
    assert dr.previous_failures(status) == {stable_hash("k"): dr.OPT_OUT_SEEN, stable_hash("n"): dr.OPT_OUT_SEEN}
    write(dr.journal_path(status), [row("k", "ok", 200)])   # fetched again, no opt-out now
    assert stable_hash("k") not in dr.previous_failures(status)


def test_open_journal_ends_a_torn_line_first(tmp_path):
    p = tmp_path / "j"
    with dr.open_journal(p) as f:          # a new journal
        f.write(b'{"a": 1}\n')
    assert p.read_bytes() == b'{"a": 1}\n'
    with dr.open_journal(p) as f:          # a whole last line: appended as is
        f.write(b'{"b": 2}\n')
    assert p.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    p.write_bytes(b'{"a": 1}\n{"b')        # torn by a kill
    with dr.open_journal(p) as f:
        f.write(b'{"c": 3}\n')
    assert p.read_bytes() == b'{"a": 1}\n{"b\n{"c": 3}\n'
    p.write_bytes(b"")
    with dr.open_journal(p) as f:
        f.write(b"x\n")
    assert p.read_bytes() == b"x\n"


def test_remove_stale_tmp_removes_only_this_files_temporaries(tmp_path):
    target = tmp_path / "st[a]tus*.jsonl"
    ours = [tmp_path / ".st[a]tus*.jsonl.123.tmp", tmp_path / ".st[a]tus*.jsonl.x.tmp"]
    others = [tmp_path / ".status.jsonl.1.tmp", tmp_path / ".sta]tus*.jsonl.1.tmp", tmp_path / "st[a]tus*.jsonl",
              tmp_path / ".st[a]tus*.jsonl.1.tmpx"]
    for p in ours + others:
        p.write_text("", encoding="utf-8")
    dr.remove_stale_tmp(target)
    assert [p.exists() for p in ours] == [False, False] and all(p.exists() for p in others)
    assert dr.glob_escape("a*b?c[d]") == "a[*]b[?]c[[]d]"


def test_bad_lines_are_skipped_quietly_however_many(tmp_path, capsys):
    status = tmp_path / "s.jsonl"
    write(status, [row("a", "http_404", 404)], tail="{torn\n" * 3000 + "[1]\n")
    write(dr.journal_path(status), [row("b", "http_410", 410)], tail='{"url": "c"')
    assert set(dr.previous_failures(status)) == {stable_hash("a"), stable_hash("b")}
    assert capsys.readouterr().err == ""


# -- the limits of the run's own config, and the images on disk (issues 20 and 23) ------------------
DC = {"max_bytes": 1000, "max_pixels": 50, "max_redirects": 3, "opt_out_tokens": ["noai"], "honour_opt_out": True}


def test_a_failure_over_a_limit_records_the_limit():
    assert dr.with_limit({"kind": "too_large", "url": "u"}, DC) == {"kind": "too_large", "url": "u", "limit": 1000}
    assert dr.with_limit({"kind": "too_many_pixels"}, DC)["limit"] == 50
    assert dr.with_limit({"kind": "too_many_redirects"}, DC)["limit"] == 3
    assert dr.with_limit({"kind": "opted_out"}, DC)["limit"] == ["noai"]
    assert dr.with_limit({"kind": "http_404"}, DC) == {"kind": "http_404"}
    assert dr.with_limit({"kind": "too_large"}, {}) == {"kind": "too_large"}      # a config without it
    assert dr.with_limit({"url": "u"}, DC) == {"url": "u"}


@pytest.mark.parametrize("row_,dc,permanent", [
    ({"kind": "http_404"}, DC, True),
    ({"kind": "http_404"}, None, True),
    ({"kind": "timeout"}, DC, False),
    ({}, DC, False),
    ({"kind": "too_large", "limit": 1000}, DC, True),                 # the config keeps the limit
    ({"kind": "too_large", "limit": 1000}, {**DC, "max_bytes": 5000}, False),   # raised: try again
    ({"kind": "too_large"}, DC, False),                               # an older run's row: retried once
    ({"kind": "too_large", "limit": 1000}, None, False),
    ({"kind": "too_large", "limit": 1000}, {"honour_opt_out": True}, False),
    ({"kind": "too_many_redirects", "limit": 3}, DC, True),
    ({"kind": "opted_out", "limit": ["noai"]}, DC, True),
    ({"kind": "opted_out", "limit": ["noai"]}, {**DC, "honour_opt_out": False}, False),  # fetched once not honoured
    ({"kind": "opted_out", "limit": ["noai"]}, {**DC, "opt_out_tokens": ["noai", "noimageai"]}, False),
    ({"kind": "opted_out", "limit": ["noai"]}, {k: v for k, v in DC.items() if k != "honour_opt_out"}, True),
])
def test_which_rows_are_failures_for_good_under_a_config(row_, dc, permanent):
    assert dr.is_permanent_row(row_, dc) is permanent


def test_a_raised_limit_fetches_its_failures_again(tmp_path):
    status = tmp_path / "s.jsonl"
    write(status, [row("big", "too_large", limit=1000), row("gone", "http_404", 404)])
    assert set(dr.previous_failures(status, dc=DC)) == {stable_hash("big"), stable_hash("gone")}
    assert set(dr.previous_failures(status, dc={**DC, "max_bytes": 2000})) == {stable_hash("gone")}


def test_what_an_image_was_made_from():
    base = dr.made_key("http://a/1.jpg", "ab.jpg", DC)
    assert base == dr.made_key("http://a/1.jpg", "ab.jpg", dict(DC))
    assert dr.made_key("http://a/2.jpg", "ab.jpg", DC) != base
    assert dr.made_key("http://a/1.jpg", "cd.jpg", DC) != base
    settings = {"image_size": 384, "resize_mode": "border", "resample": "box", "upscale": False,
                "jpeg_quality": 95, "background": [255, 255, 255]}
    keys = {dr.made_key("u", "r", settings)}
    for k, v in (("image_size", 256), ("resize_mode", "keep_ratio"), ("resample", "lanczos"), ("upscale", True),
                 ("jpeg_quality", 90), ("background", [0, 0, 0])):
        keys.add(dr.made_key("u", "r", {**settings, k: v}))
    assert len(keys) == 7                                        # each image setting changes the key
    assert dr.made_key("u", "r", {**settings, "threads": 8}) == dr.made_key("u", "r", settings)
    assert dr.IMAGE_SETTINGS == ("image_size", "resize_mode", "resample", "upscale", "jpeg_quality", "background")
    # stable across processes: a hash of the JSON of [url, name, settings], not Python's hash()
    assert dr.made_key("u", "r", {}) == stable_hash(json.dumps(["u", "r", [None] * 6], sort_keys=True))


def test_images_on_disk_are_known_by_their_last_row(tmp_path):
    status = tmp_path / "s.jsonl"
    write(status, [{"image_id": "a.jpg", "made": 11}, {"image_id": "b.jpg", "made": 22},
                   {"image_id": "c.jpg"}, {"image_id": 5, "made": 1}, {"image_id": "d.jpg", "made": "33"}])
    write(dr.journal_path(status), [{"image_id": "b.jpg", "made": 99}], tail='{"image_id": "e.j')
    out = {1: 1}
    got = dr.previous_images(status, out)
    assert got is out and got == {1: 1, stable_hash("a.jpg"): 11, stable_hash("b.jpg"): 99}
    assert dr.previous_images(tmp_path / "none.jsonl", {}) == {}
