"""Step 2 of BLIP Web CapFilt: download and normalise the images.

Input: the filter's output, or any JSONL file or JSON array of {url, caption}
rows (e.g. the sample the dataset authors published; rows without an ``id``
get a stable one from url + caption). Every distinct URL is fetched once by a pool of
``download.threads`` workers and saved as ``<image_root>/<id>.jpg``. Output:
the input rows whose image exists, with ``image_id`` (relative to
``paths.image_root``), in input order; a status row per distinct URL; a summary
(success rate, failures by kind, images per second).

Re-running resumes: images already on disk are not fetched again, and URLs that
failed for good last time (404, not an image, opted out, ...) are not retried
unless ``download.retry_failed`` is true. Progress is durable: every fetch
outcome is appended (and flushed) to ``<status>.journal`` the moment it is
known, so a run that is killed keeps its failures too; the next run reads the
journal and the last status file, and once the complete status file has been
written atomically the journal is deleted.

Memory grows with the number of distinct URLs (not rows): about 120 bytes per
URL for the duplicate check (a 64-bit hash and the image id, measured), 70 per
permanent failure of an earlier run: some 1.2-1.5 GB for 10M distinct URLs.
Shard the run (below) to divide it.

Sharding: ``--set run.num_shards=N --set run.shard_index=i`` fetches the URLs
with stable_hash(url) % N == i (duplicates of a URL stay in one shard) into
shard files of the output and the status. The launcher (``python -m common
launch capfilt.download``: local processes, SLURM or Ray) runs the shards and
merges them in input order (``SHARDS`` below), byte-identical to a one-shard
run; a shard run by hand prints the merge command.

    python pretrain/download_images.py [--set download.threads=64]
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from PIL import Image
from tqdm import tqdm

from common import pipeline
from common.config import REPO_ROOT, Config, parse_args
from common.errors import UserError, entry_point
from common.jsonl import BadRows, atomic_open, dumps, iter_json_array, read_jsonl
from common.report import Report
from common.sampling import stable_hash
from common.shards import ShardFiles, ShardRule, check_shard_args, key_shard, shard_path
from pretrain import fetch as fetchmod
from pretrain.capfilt_config import CONFIG_FILE, DEFAULTS, check_json_array_file, check_web_row, clean_text, \
    row_id, skip_key
from pretrain.download_resume import is_permanent, journal_path, open_journal, previous_failures, \
    remove_stale_tmp  # noqa: F401  (is_permanent, journal_path: part of this module's API)
from pretrain.image_norm import RESAMPLE, RESIZE_MODES, ImageError, normalise

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
SUCCESS = ("ok", "exists")
_PENDING = object()


def image_rel(image_id_base: str, fanout: int) -> str:
    name = f"{image_id_base}.jpg"
    return f"{image_id_base[:fanout]}/{name}" if fanout > 0 else name


def check_config(dc: dict) -> None:
    if dc["resize_mode"] not in RESIZE_MODES:
        raise UserError(f"download.resize_mode: {dc['resize_mode']!r} is not one of {', '.join(RESIZE_MODES)}")
    if dc["resample"] not in RESAMPLE:
        raise UserError(f"download.resample: {dc['resample']!r} is not one of {', '.join(RESAMPLE)}")
    if dc["threads"] < 1 or dc["image_size"] < 1 or dc["retries"] < 0:
        raise UserError("download.threads and download.image_size must be >= 1, download.retries >= 0")
    if not 1 <= dc["jpeg_quality"] <= 100:
        raise UserError("download.jpeg_quality must be within 1..100")
    if len(dc["background"]) != 3:
        raise UserError("download.background must be three 0..255 values")


class Worker:
    """Fetch + normalise + atomic write; one requests.Session per thread."""

    def __init__(self, dc: dict, image_root: Path, journal=None):
        self.dc = dc
        self.image_root = image_root
        self.journal = journal
        self.local = threading.local()
        self.sessions: list = []
        self.lock = threading.Lock()

    def session(self):
        s = getattr(self.local, "session", None)
        if s is None:
            s = self.local.session = fetchmod.make_session(self.dc)
            with self.lock:
                self.sessions.append(s)
        return s

    def __call__(self, url: str, rid: str, rel: str) -> dict:
        st = {"url": url, "id": rid, **self.fetch(url, rel)}
        if self.journal is not None:
            line = dumps(st) + "\n"
            with self.lock:   # flushed per row: a killed run loses only what was in flight
                self.journal.write(line)
                self.journal.flush()
        return st

    def fetch(self, url: str, rel: str) -> dict:
        got = fetchmod.fetch(self.session(), url, self.dc)
        status = {"kind": got.kind, "http_status": got.status, "attempts": got.attempts}
        if got.kind != "ok":
            return {**status, "detail": got.detail}
        try:
            jpeg, original, size = normalise(got.data, self.dc)
        except ImageError as e:
            detail = f"{e.detail} (Content-Type: {got.detail or 'none'})" if e.kind == "not_image" else e.detail
            return {**status, "kind": e.kind, "detail": detail, "bytes": len(got.data)}
        path = self.image_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            f.write(jpeg)
        os.replace(tmp, path)
        return {**status, "image_id": rel, "bytes": len(got.data),
                "original_size": list(original), "size": list(size)}

    def close(self) -> None:
        for s in self.sessions:
            s.close()


def is_json_array(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def read_rows(path: Path, bad: BadRows, validate) -> Iterator[dict]:
    """JSONL rows, or the elements of a JSON array (the shape of the raw BLIP
    file and of published samples), each checked by ``validate``."""
    if not is_json_array(path):
        yield from read_jsonl(path, bad, validate=validate)
        return
    for i, row in iter_json_array(path, bad):
        reason = validate(row) if isinstance(row, dict) else f"expected an object, got {type(row).__name__}"
        if reason:
            bad.add(f"{path}: element {i}", reason)
            continue
        yield row


def run(dc: dict, report: Report, progress: bool = True, shard: tuple[int, int] = (1, 0)) -> dict:
    """Download every distinct URL of ``dc['input']`` (of shard ``(num_shards, index)``
    into the shard's output and status files); returns the summary dict."""
    check_config(dc)
    # Pillow's own bomb check (at open) then fires at twice our limit; the exact
    # limit is checked on the header size in image_norm. Restored afterwards:
    # it is process-wide.
    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, dc["max_pixels"]
    try:
        return _run(dc, report, progress, shard)
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


def _run(dc: dict, report: Report, progress: bool, shard: tuple[int, int]) -> dict:
    in_path, image_root = Path(dc["input"]), Path(dc["image_root"])
    if is_json_array(in_path):
        check_json_array_file(in_path)
    image_root.mkdir(parents=True, exist_ok=True)
    num_shards, shard_index = shard
    out_path, status_path = Path(dc["output"]), Path(dc["status"])
    failed_before: dict[int, tuple] = {}
    if not dc["retry_failed"]:
        previous_failures(status_path, failed_before)
        if num_shards > 1:   # an earlier run may have been merged, or not
            previous_failures(shard_path(status_path, shard_index, num_shards), failed_before)
    if num_shards > 1:
        out_path = shard_path(out_path, shard_index, num_shards)
        status_path = shard_path(status_path, shard_index, num_shards)
    for path in (out_path, status_path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(path)
    journal = open_journal(journal_path(status_path))
    try:
        summary = _download(dc, report, progress, shard, in_path, image_root, out_path, status_path,
                            failed_before, journal)
    finally:
        journal.close()
    # The status file is complete and in place: the journal has served.
    journal_path(status_path).unlink(missing_ok=True)
    return summary


def _download(dc: dict, report: Report, progress: bool, shard: tuple[int, int], in_path: Path,
              image_root: Path, out_path: Path, status_path: Path, failed_before: dict, journal) -> dict:
    num_shards, shard_index = shard
    worker = Worker(dc, image_root, journal)
    bad = BadRows(max_bad=dc["max_bad_rows"])
    kinds: collections.Counter = collections.Counter()
    outcome: dict[int, object] = {}     # url hash -> image_id, None (failed) or _PENDING
    window: collections.deque = collections.deque()
    max_window = dc["threads"] * 8
    fetched_ok = 0
    t0 = time.monotonic()

    def validate(row: dict) -> str | None:
        reason = check_web_row(row)
        if reason:
            report.skip(skip_key(reason))
        return reason

    foreign_ids: dict[int, int] = {}    # hash of a given id -> hash of the URL that first had it

    def rows():
        for row in read_rows(in_path, bad, validate):
            url, caption = row["url"].strip(), clean_text(row["caption"])
            rid, own = row.get("id"), row_id(url, caption)
            if not (isinstance(rid, str) and _SAFE_ID.match(rid)):
                if rid is not None:
                    report.count("ids_replaced_unsafe_for_file_names")
                rid = own
            elif rid != own:
                # An id from elsewhere names the image file: two URLs sharing it
                # would share one file. Ours (url + caption) cannot collide.
                first = foreign_ids.setdefault(stable_hash(rid), stable_hash(url))
                if first != stable_hash(url):
                    report.count("ids_replaced_shared_with_another_url")
                    rid = own
            yield {**row, "id": rid, "url": url, "caption": caption}

    with cf.ThreadPoolExecutor(dc["threads"], thread_name_prefix="download") as pool, \
            atomic_open(status_path) as status_f, atomic_open(out_path) as out_f, \
            tqdm(desc="download", unit="url", disable=not progress, mininterval=2) as bar:

        def drain_one() -> None:
            nonlocal fetched_ok
            row, key, handle = window.popleft()
            if handle is None:            # a duplicate URL: the first row's outcome decides
                image_id = outcome[key]
            else:
                st = handle.result() if isinstance(handle, cf.Future) else \
                    {"url": row["url"], "id": row["id"], **handle}
                status_f.write(dumps(st) + "\n")
                kinds[st["kind"]] += 1
                fetched_ok += st["kind"] == "ok"
                image_id = st.get("image_id") if st["kind"] in SUCCESS else None
                outcome[key] = image_id
                if image_id is None:
                    report.skip(f"no image: {st['kind']}", f"id {row['id']}: {row['url'][:100]}")
                bar.update(1)
            if image_id is not None:
                out_f.write(dumps({**row, "image_id": image_id}) + "\n")
                report.count("rows_out")
            elif handle is None:
                report.skip("no image: duplicate url of a failed row", f"id {row['id']}")

        try:
            for row in rows():
                if key_shard(row["url"], num_shards) != shard_index:
                    continue
                key = stable_hash(row["url"])
                report.count("rows_valid")
                if key in outcome:
                    report.count("rows_duplicate_url")
                    window.append((row, key, None))
                else:
                    outcome[key] = _PENDING
                    rel = image_rel(row["id"], dc["fanout"])
                    if (image_root / rel).is_file():
                        handle = {"kind": "exists", "image_id": rel, "detail": "already on disk"}
                    elif key in failed_before:
                        kind, http_status = failed_before[key]
                        handle = {"kind": kind, "http_status": http_status,
                                  "detail": "not retried: failed in an earlier run (download.retry_failed=true retries)"}
                    else:
                        handle = pool.submit(worker, row["url"], row["id"], rel)
                    window.append((row, key, handle))
                while len(window) >= max_window:
                    drain_one()
            while window:
                drain_one()
        except BaseException:
            # Ctrl-C or too many bad rows: do not start the queued fetches (up to
            # threads * 8); those in flight finish into the journal.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    worker.close()
    seconds = time.monotonic() - t0
    urls = sum(kinds.values())
    success = sum(kinds[k] for k in SUCCESS)
    summary = {
        "urls": urls,
        "success": success,
        "success_rate": round(success / urls, 4) if urls else 0.0,
        "by_kind": dict(sorted(kinds.items())),
        "failures_by_kind": {k: v for k, v in sorted(kinds.items()) if k not in SUCCESS},
        "downloaded_now": fetched_ok,
        "images_per_second": round(fetched_ok / seconds, 2) if seconds > 0 else 0.0,
        "seconds": round(seconds, 2),
    }
    report.count("rows_in", bad.seen)
    report.count("rows_bad", bad.count)
    if bad.examples:
        report.extra["bad_row_examples"] = bad.examples[:10]
    report.extra["summary"] = summary
    return summary


def combine_download_shards(dc: dict, num_shards: int) -> int:
    """Merge the shard outputs and statuses in input order (the order a one-shard
    run writes): walk the input again; each first occurrence of a URL takes the
    next status row of its shard, and a row whose URL got an image the next
    output row. Returns the rows written; a missing shard is named."""
    out_path, status_path = Path(dc["output"]), Path(dc["status"])
    with ShardFiles(out_path, num_shards) as outs, ShardFiles(status_path, num_shards) as stats, \
            atomic_open(status_path) as status_f, atomic_open(out_path) as out_f:

        def next_line(files: ShardFiles, s: int, url: str) -> str:
            line = files.readline(s)
            if not line or json.loads(line).get("url") != url:
                raise UserError(f"{files.paths[s]} does not match {dc['input']} at {url[:100]} "
                                "(shards of another input or another run.num_shards?)")
            return line

        got_image: dict[int, bool] = {}
        n = 0
        # The shards have reported the bad rows already.
        for row in read_rows(Path(dc["input"]), BadRows(max_bad=None, quiet=True), check_web_row):
            url = row["url"].strip()
            key, s = stable_hash(url), key_shard(url, num_shards)
            if key not in got_image:
                line = next_line(stats, s, url)
                status_f.write(line)
                got_image[key] = json.loads(line).get("kind") in SUCCESS
            if got_image[key]:
                out_f.write(next_line(outs, s, url))
                n += 1
        leftover = outs.leftover() + stats.leftover()
        if leftover:
            raise UserError(f"rows left over in {', '.join(leftover)}: not shards of {dc['input']}")
    return n


def combine_shards(cfg: Config, num_shards: int) -> str:
    dc = cfg["download"]
    rows = combine_download_shards(dc, num_shards)
    return f"merged {num_shards} download shards: {rows} rows -> {dc['output']}; status per URL in {dc['status']}"


# URLs split by stable_hash(url) % N into shard files of the output and the status; the
# launcher (python -m common launch capfilt.download) merges them back by URL, in input order.
SHARDS = ShardRule(device=None, sharded=("${download.output}", "${download.status}"), combine=combine_shards)


def print_summary(summary: dict, file=sys.stderr) -> None:
    print(f"[download] {summary['success']}/{summary['urls']} URLs have an image "
          f"(success rate {summary['success_rate']:.1%}); fetched now: {summary['downloaded_now']} "
          f"at {summary['images_per_second']} images/s", file=file)
    if summary["failures_by_kind"]:
        print("  failures by kind: " + json.dumps(summary["failures_by_kind"]), file=file)


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, str(REPO_ROOT / "configs" / CONFIG_FILE), argv)
    cfg.require_file("download.input")
    dc = cfg["download"]
    check_config(dc)
    num_shards, shard_index = check_shard_args(cfg["run"])
    report = Report("capfilt.download")
    summary = run(dc, report, progress=dc["progress"], shard=(num_shards, shard_index))
    report.print()
    print_summary(summary)
    rp = Path(dc["report"])
    report.save(rp if num_shards == 1 else rp.with_name(f"{rp.stem}_shard{shard_index}.json"))
    out = dc["output"] if num_shards == 1 else shard_path(dc["output"], shard_index, num_shards)
    print(f"wrote {report.counts['rows_out']} rows to {out}; status per URL in {dc['status']}", file=sys.stderr)
    pipeline.finish("capfilt.download", cfg, argv)


if __name__ == "__main__":
    main()
