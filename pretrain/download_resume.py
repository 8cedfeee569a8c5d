"""What a download run remembers between runs: the outcome journal and earlier failures.

A run appends every fetch outcome to ``<status>.journal`` (flushed per row) as
it happens, and writes the complete status file atomically at the end, then
deletes the journal. A run that was killed leaves the journal; the next run
reads it (and the last status file) so that URLs which failed for good are not
fetched again (unless ``download.retry_failed``), while images on disk are
skipped by their file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from common.jsonl import BadRows, read_jsonl
from common.sampling import stable_hash
from pretrain.image_norm import made_with


def is_permanent(kind: str) -> bool:
    """Failures a later run would only repeat (transient ones are retried on resume)."""
    if kind.startswith("http_"):
        code = int(kind[5:]) if kind[5:].isdigit() else 0
        return 400 <= code < 500 and code not in (408, 425, 429)
    return kind in ("not_image", "decode_error", "too_large", "too_many_pixels", "opted_out", "bad_url",
                    "too_many_redirects")


# Failures that only say the image was over a limit of the run's own config: a
# status row records the limit ("limit"), and the failure counts as permanent
# only while the config keeps that limit (raising it retries them; a row of an
# older run without the limit is retried once).
CONFIG_LIMITS = {"too_large": "max_bytes", "too_many_pixels": "max_pixels", "too_many_redirects": "max_redirects"}


def with_limit(st: dict, dc: dict) -> dict:
    """An outcome row, with the limit that caused it where the config caused it."""
    key = CONFIG_LIMITS.get(st.get("kind"))
    return {**st, "limit": dc[key]} if key and key in dc else st


def is_permanent_row(row: dict, dc: dict | None) -> bool:
    """A failure a later run with config ``dc`` would only repeat: a fact about
    the world (HTTP 404, not an image), or a limit the config still sets."""
    kind = str(row.get("kind", ""))
    if not is_permanent(kind):
        return False
    key = CONFIG_LIMITS.get(kind)
    return key is None or (dc is not None and key in dc and row.get("limit") == dc[key])


# An image stored while opt-outs were not honoured, from a host that opted out
# (status rows with "x_robots_opt_out": true): removed once download.honour_opt_out is on.
OPT_OUT_SEEN = ("opt_out_seen", None)


# An image on disk made with other resize settings than this run's (its status
# row's "made_with" differs, or a row of an older run has none): removed and fetched
# again, so a resumed run never mixes two resamplings.
REDO = ("redo", None)


def journal_path(status_path: Path) -> Path:
    return status_path.with_name(status_path.name + ".journal")


def previous_failures(status_path: Path, out: dict | None = None, dc: dict | None = None) -> dict[int, tuple]:
    """url hash -> (kind, http_status), for URLs that failed for good in an earlier
    run (OPT_OUT_SEEN for images kept despite an opt-out, REDO for images made with
    other resize settings than ``dc``'s): from its status file, then its journal (later rows win; a torn last
    line of a killed run is skipped quietly). Outcome tuples are shared, so an
    entry costs a dict slot and an int. A failure over a limit of the config
    counts only while ``dc`` keeps that limit (CONFIG_LIMITS)."""
    out = {} if out is None else out
    shared: dict[tuple, tuple] = {}
    for path in (status_path, journal_path(status_path)):
        if not path.is_file():
            continue
        for row in read_jsonl(path, BadRows(max_bad=None, quiet=True)):
            if not isinstance(row.get("url"), str):
                continue
            key, kind = stable_hash(row["url"]), str(row.get("kind", ""))
            if kind in ("ok", "exists") and dc is not None and row.get("made_with") != made_with(dc):
                out[key] = REDO
            elif is_permanent_row(row, dc):
                outcome = (kind, row.get("http_status"))
                out[key] = shared.setdefault(outcome, outcome)
            elif row.get("x_robots_opt_out") is True:
                out[key] = OPT_OUT_SEEN
            else:
                out.pop(key, None)
    return out


def open_journal(path: Path):
    """Append to the journal, first ending a line a kill tore (or the next row would join it)."""
    torn = False
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    f = open(path, "ab")   # binary: the run reads its outcomes back by offset
    if torn:
        f.write(b"\n")
    return f


def remove_stale_tmp(path: Path) -> None:
    """Temporary files of a killed run's atomic writes (ours only: the names are this run's)."""
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        tmp.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)
