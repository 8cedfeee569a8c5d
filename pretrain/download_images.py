"""Step 2 of BLIP Web CapFilt: download and normalise the images.

Input: the filter's output, or any JSONL file or JSON array of {url, caption}
rows (e.g. the sample the dataset authors published; rows without an ``id``
get a stable one from url + caption). Every distinct URL is fetched once by
``download.threads`` threads spread over ``download.processes`` processes (one
per core; a host lives in one process: pretrain/download_procs.py) and saved as
``<image_root>/<id>.jpg``, scaled by ``download.resample``. Output:
the input rows whose image exists, with ``image_id`` (relative to
``paths.image_root``), in input order; a status row per distinct URL; a summary
(success rate, failures by kind, images per second).

Re-running resumes: images already on disk are not fetched again, and URLs that
failed for good last time (404, not an image, opted out, ...) are not retried
unless ``download.retry_failed`` is true; an image on disk is kept only when
its status row says it was made from the same URL with the same image settings
(``made``, download_resume.made_key), else it is made again. Progress is durable: every fetch
outcome is appended (and flushed) to ``<status>.journal`` the moment it is
known, so a run that is killed keeps its failures too; the next run reads the
journal and the last status file, and once the complete status file has been
written atomically the journal is deleted.

Slow hosts cannot stall the run: outcomes are taken as the fetches finish, in
any order (at most ``threads * 4`` queued or running), and go to the journal;
a second, quick pass over the input then writes the status and output files
in input order, copying each URL's status line from the journal by its
offset. So the files are the same, byte for byte, whatever order the fetches
finished in, and a URL that takes a minute holds one thread, not the queue.

Memory grows with the number of distinct URLs (not rows): about 110 bytes per
URL (a 64-bit hash and the offset of its outcome in the journal; measured), 70 per
permanent failure of an earlier run: some 1-1.5 GB for 10M distinct URLs.
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
import contextlib
import functools
import importlib.util
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image
from tqdm import tqdm

from common import lifecycle
from common.config import REPO_ROOT, Config, check_ranges, parse_args
from common.errors import UserError, entry_point
from common.procs import die_with_parent
from common.jsonl import BadRows, atomic_open, dumps, iter_json_array, read_jsonl, remove_stale_temps, temp_owner
from common.report import Report
from common.sampling import stable_hash
from common.shards import ShardFiles, ShardRule, check_shard_args, key_shard, shard_path
from common.steptype import Step
from pretrain import fetch as fetchmod
from pretrain import fetch_guard, polite
from pretrain.capfilt_config import CONFIG_FILE, DEFAULTS, check_json_array_file, check_web_row, clean_text, \
    row_id, skip_key
from pretrain.download_procs import make_fetcher, process_count
from pretrain.download_resume import OPT_OUT_SEEN, is_permanent, journal_path, made_key, open_journal, \
    previous_failures, previous_images, remove_stale_tmp, with_limit  # noqa: F401  (is_permanent, journal_path: part of this module's API)
from pretrain.image_norm import RESAMPLE, RESIZE_MODES, ImageError, normalise

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
SUCCESS = ("ok", "exists")
TMP = "_tmp"     # an outcome's temporary image file (never written to the journal)
# Where images are written before their status row is in the journal (then renamed into
# place): one folder, so a killed run's leftovers are found without listing every image.
PARTIAL = ".partial"


def image_rel(image_id_base: str, fanout: int) -> str:
    name = f"{image_id_base}.jpg"
    return f"{image_id_base[:fanout]}/{name}" if fanout > 0 else name


def check_config(dc: dict) -> None:
    if dc["resize_mode"] not in RESIZE_MODES:
        raise UserError(f"download.resize_mode: {dc['resize_mode']!r} is not one of {', '.join(RESIZE_MODES)}")
    if dc["resample"] not in RESAMPLE:
        raise UserError(f"download.resample: {dc['resample']!r} is not one of {', '.join(RESAMPLE)}")
    if dc["resample"] == "area" and importlib.util.find_spec("cv2") is None:
        raise UserError("download.resample: area needs OpenCV (pip install opencv-python-headless, or "
                        "pip install -e '.[opencv]'); box is the same area average in Pillow")
    for key in ("threads", "image_size", "retries", "processes", "image_processes", "image_threads"):
        v, least = dc[key], 1 if key in ("threads", "image_size") else 0
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise UserError(f"download.{key} must be an integer >= {least}, got {v!r}")
    if not 1 <= dc["jpeg_quality"] <= 100:
        raise UserError("download.jpeg_quality must be within 1..100")
    bg = dc["background"]
    if len(bg) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in bg):
        raise UserError(f"download.background must be three integers 0..255 (red, green, blue), got {bg!r}")
    check_ranges(dc, "download", {
        "connect_timeout": ((">", 0), None, "a number of seconds > 0"),
        "read_timeout": ((">", 0), None, "a number of seconds > 0"),
        "backoff": (0, None, "a number of seconds >= 0"),
        "max_backoff": (0, None, "a number of seconds >= 0"),
        "max_redirects": (0, None, "an integer >= 0"),
        "max_bytes": (1, None, "an integer >= 1 (bytes)"),
        "max_pixels": (1, None, "an integer >= 1 (pixels)"),
        "fanout": (0, 4, "within 0..4 (characters of the id that name a subfolder)"),
    })
    if not 0.0 <= dc.get("min_success_rate", 0.0) <= 1.0:
        raise UserError("download.min_success_rate must be within 0..1")
    fetch_guard.check_config(dc)
    polite.check_config(dc)


class Worker:
    """Fetch + normalise + atomic write; one requests.Session per thread. With
    ``images`` (a process pool, or a fetch process's image threads) the
    decoding, resizing and encoding run there, so a fetch thread goes on to
    its next URL at once (and, with processes, the image work uses every
    core). One per process: its ``Hosts`` (robots.txt, per-host limits) is
    shared by the process's threads."""

    def __init__(self, dc: dict, image_root: Path, images: cf.Executor | None = None):
        self.dc = dc
        self.image_root = image_root
        self.images = images
        self.local = threading.local()
        self.hosts = fetchmod.Hosts(dc)    # robots.txt and per-host limits, shared by the threads
        self.sessions: list = []
        self.lock = threading.Lock()

    def session(self):
        s = getattr(self.local, "session", None)
        if s is None:
            s = self.local.session = fetchmod.make_session(self.dc)
            with self.lock:
                self.sessions.append(s)
        return s

    def __call__(self, url: str, rid: str, rel: str, done: Callable[[dict | BaseException], None]) -> None:
        """Fetch one URL; ``done`` gets its outcome (a status row) or the exception
        that stopped it. With image processes the thread does not wait for its
        image: ``done`` is called from the pool's thread when the image is
        written, and this thread fetches the next URL."""
        got = fetchmod.fetch(self.session(), url, self.dc, self.hosts)
        head = {"url": url, "id": rid, "kind": got.kind, "http_status": got.status, "attempts": got.attempts}
        if got.opt_out:
            head["x_robots_opt_out"] = True
        if got.kind != "ok":
            return done({**head, "detail": got.detail})
        path, size, ctype = str(self.image_root / rel), len(got.data), got.detail
        if self.images is None:
            saved = save_image(got.data, self.dc, path, self.image_root / PARTIAL)
            return done(_image_outcome(head, rel, size, ctype, saved, self.dc))

        def finish(future: cf.Future) -> None:
            try:
                done(_image_outcome(head, rel, size, ctype, future.result(), self.dc))
            except BaseException as e:  # noqa: BLE001  (a broken pool: the main thread raises it)
                done(e)

        self.images.submit(_save_in_process, got.data, self.dc, path, self.image_root / PARTIAL) \
            .add_done_callback(finish)

    def close(self, cancel: bool = False) -> None:
        if self.images is not None:
            self.images.shutdown(wait=True, cancel_futures=cancel)
        for s in self.sessions:
            s.close()


def _thread_worker(dc: dict, image_root: Path) -> Worker:
    """The worker of a run in this process (image work in ``image_processes``)."""
    return Worker(dc, image_root, image_pool(dc))


def _process_worker(dc: dict, image_root: Path) -> Worker:
    """The worker of a fetch process: ``download.image_threads`` threads do the
    image work (Pillow lets go of the interpreter lock while it decodes, scales
    and encodes), so the fetch threads go on fetching; 0: the fetch threads do it."""
    Image.MAX_IMAGE_PIXELS = dc["max_pixels"]    # as run() sets it in the main process
    n = dc["image_threads"]
    return Worker(dc, image_root, cf.ThreadPoolExecutor(n, thread_name_prefix="image") if n else None)


def record(journal, st: dict, dc: dict, flush: bool = True) -> int:
    """Append one outcome to the journal (binary, so its offset is known);
    flushed per row: a killed run loses only what was in flight. An image's row
    records what it was made from (``made``: its URL, file name and image settings)."""
    if st.get("kind") == "ok":
        st = {**st, "made": made_key(st["url"], st["image_id"], dc)}
    at = journal.tell()
    journal.write((dumps(with_limit(st, dc)) + "\n").encode("utf-8"))
    if flush:
        journal.flush()
    return at


def _image_outcome(head: dict, rel: str, size: int, ctype: str, saved: tuple, dc: dict) -> dict:
    """The status row of a fetched body, from what ``save_image`` made of it; an
    image's row carries its temporary file (``TMP``, renamed once the row is in the journal)."""
    if saved[0] != "ok":
        kind, detail = saved
        detail = f"{detail} (Content-Type: {ctype or 'none'})" if kind == "not_image" else detail
        return {**head, "kind": kind, "detail": detail, "bytes": size}
    return {**head, "image_id": rel, "bytes": size, "original_size": list(saved[1]), "size": list(saved[2]),
            TMP: saved[3]}


def save_image(data: bytes, dc: dict, path: str, partial: Path) -> tuple:
    """Normalise ``data`` and write it to a temporary file in ``partial``
    (``<image_root>/.partial``, removed when a run ends empty): ("ok",
    original size, size, temporary path), or (kind, detail) when it is no usable
    image. The caller renames it to ``path`` once the image's status row is in
    the journal: an image on disk always has its row (and so its settings).
    The temporary's name says which host and process wrote it, so the next run
    removes those of a killed run (``remove_stale_temps``) and no live one.
    Plain tuples, as it may run in an image process (no exception crosses)."""
    try:
        jpeg, original, size = normalise(data, dc)
    except ImageError as e:
        return e.kind, e.detail
    target = Path(path)
    tmp = partial / f".{target.name}.{temp_owner()}.{threading.get_ident()}.tmp"
    try:
        f = open(tmp, "wb")
    except FileNotFoundError:   # the run's first image, or another shard just removed the empty folder
        partial.mkdir(parents=True, exist_ok=True)
        f = open(tmp, "wb")
    with f:
        f.write(jpeg)
    return "ok", original, size, str(tmp)


def move_into_place(tmp: str, dest: Path) -> None:
    """Rename a finished temporary to its image path; its fanout folder is made
    the first time it is missing (not with a mkdir per image)."""
    try:
        os.replace(tmp, dest)
    except FileNotFoundError:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)


def _save_in_process(data: bytes, dc: dict, path: str, partial: Path) -> tuple:
    Image.MAX_IMAGE_PIXELS = dc["max_pixels"]    # as run() sets it in the main process
    return save_image(data, dc, path, partial)


def image_pool(dc: dict) -> cf.ProcessPoolExecutor | None:
    """The image processes (``download.image_processes``: 0 one per CPU core, 1
    none). Forked and started here, before any download thread exists (a fork
    from a process with running threads can deadlock), so no caller's
    ``__main__`` is imported again; spawned where fork does not exist."""
    n = dc["image_processes"] or os.cpu_count() or 1
    if n <= 1:
        return None
    import multiprocessing
    fork = "fork" in multiprocessing.get_all_start_methods()
    pool = cf.ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
                                  initializer=die_with_parent, initargs=(os.getpid(),))   # no worker outlives us
    pool.submit(int).result()    # with fork, this starts all n processes now
    return pool


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
    previous_failures(status_path, failed_before, dc)
    if num_shards > 1:   # an earlier run may have been merged, or not
        previous_failures(shard_path(status_path, shard_index, num_shards), failed_before, dc)
    if dc["retry_failed"]:   # only the opt-outs seen on kept images still count
        failed_before = {k: v for k, v in failed_before.items() if v is OPT_OUT_SEEN}
    made: dict[int, int] = {}
    for path in ([status_path] + ([shard_path(status_path, shard_index, num_shards)] if num_shards > 1 else [])):
        previous_images(path, made)
    failed_before["made"] = made     # carried to _known_outcome with the failures
    if num_shards > 1:
        out_path = shard_path(out_path, shard_index, num_shards)
        status_path = shard_path(status_path, shard_index, num_shards)
    for path in (out_path, status_path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(path)
    left = remove_stale_temps(image_root / PARTIAL, inside=True)   # images of a killed run, never renamed
    if left:
        print(f"removed {len(left)} temporary image file(s) a killed run left in {image_root / PARTIAL}",
              file=sys.stderr)
    journal = open_journal(journal_path(status_path))
    try:
        summary = _download(dc, report, progress, shard, in_path, image_root, out_path, status_path,
                            failed_before, journal)
    finally:
        journal.close()
    # The status file is complete and in place: the journal has served.
    journal_path(status_path).unlink(missing_ok=True)
    with contextlib.suppress(OSError):   # empty unless another shard is writing there
        (image_root / PARTIAL).rmdir()
    return summary


def _download(dc: dict, report: Report, progress: bool, shard: tuple[int, int], in_path: Path,
              image_root: Path, out_path: Path, status_path: Path, failed_before: dict, journal) -> dict:
    """Fetch every distinct URL (outcomes collected as they finish, into the
    journal), then write the status and output files in input order from it."""
    bad = BadRows(max_bad=dc["max_bad_rows"], key="download.max_bad_rows")
    t0 = time.monotonic()
    # Started before any thread of ours exists (a fork from a process with running threads can deadlock).
    fetcher = make_fetcher(dc, functools.partial(_thread_worker if process_count(dc) == 1 else _process_worker,
                                                 dc, image_root))
    where = _fetch_all(dc, report, progress, shard, _input_rows(in_path, bad, report), image_root,
                       failed_before, fetcher, journal)
    journal.flush()
    rows = _input_rows(in_path, BadRows(max_bad=None, quiet=True), None)   # the same rows again, silently
    kinds = _write_in_order(rows, shard, where, journal_path(status_path), out_path, status_path, report)
    summary = _summary(kinds, time.monotonic() - t0)
    report.count("rows_in", bad.seen)
    report.count("rows_bad", bad.count)
    if bad.examples:
        report.extra["bad_row_examples"] = bad.examples[:10]
    report.extra["summary"] = summary
    return summary


def _input_rows(in_path: Path, bad: BadRows, report: Report | None) -> Iterator[dict]:
    """The usable input rows, with url and caption cleaned and the id each image
    file is named by; skips and replaced ids are counted when ``report`` is given."""
    count = report.count if report is not None else (lambda *a: None)

    def validate(row: dict) -> str | None:
        reason = check_web_row(row)
        if reason and report is not None:
            report.skip(skip_key(reason))
        return reason

    foreign_ids: dict[int, int] = {}    # hash of a given id -> hash of the URL that first had it
    for row in read_rows(in_path, bad, validate):
        url, caption = row["url"].strip(), clean_text(row["caption"])
        rid, own = row.get("id"), row_id(url, caption)
        if not (isinstance(rid, str) and _SAFE_ID.match(rid)):
            if rid is not None:
                count("ids_replaced_unsafe_for_file_names")
            rid = own
        elif rid != own:
            # An id from elsewhere names the image file: two URLs sharing it
            # would share one file. Ours (url + caption) cannot collide.
            first = foreign_ids.setdefault(stable_hash(rid), stable_hash(url))
            if first != stable_hash(url):
                count("ids_replaced_shared_with_another_url")
                rid = own
        yield {**row, "id": rid, "url": url, "caption": caption}


def _fetch_all(dc: dict, report: Report, progress: bool, shard: tuple[int, int], rows: Iterator[dict],
               image_root: Path, failed_before: dict, fetcher, journal) -> dict[int, int]:
    """url hash -> offset of the URL's outcome in the journal, for every distinct URL of the shard.

    Outcomes are taken as they finish, in any order, so a slow host holds one
    thread and nothing else: there is no window in input order for it to block.
    At most ``fetcher.window`` fetches (``threads * 4``, twice that with
    processes) are queued or running; the journal, not memory, holds the
    outcomes until the ordered pass."""
    num_shards, shard_index = shard
    where: dict[int, int] = {}
    limit, in_flight = fetcher.window, 0

    def collect(outcomes: Iterator[tuple], stopping: bool = False) -> None:
        nonlocal in_flight
        for key, got in outcomes:
            in_flight -= 1
            if isinstance(got, BaseException):
                if stopping:
                    continue
                raise got
            tmp = got.pop(TMP, None)
            where[key] = record(journal, got, dc)
            if tmp is not None:
                move_into_place(tmp, image_root / got["image_id"])
            bar.update(1)

    with tqdm(desc="download", unit="url", disable=not progress, mininterval=2) as bar:
        try:
            for row in rows:
                if key_shard(row["url"], num_shards) != shard_index:
                    continue
                key = stable_hash(row["url"])
                report.count("rows_valid")
                if key in where:
                    report.count("rows_duplicate_url")
                    continue
                known = _known_outcome(row, key, image_root, dc, failed_before)
                if known is not None:
                    where[key] = record(journal, known, dc, flush=False)
                    bar.update(1)
                    continue
                where[key] = -1      # in flight (every fetch is collected before the ordered pass)
                fetcher.submit(key, row["url"], row["id"], image_rel(row["id"], dc["fanout"]))
                in_flight += 1
                collect(fetcher.take(block=in_flight >= limit))
            while in_flight:
                collect(fetcher.take(block=True))
        except BaseException:
            # Ctrl-C, too many bad rows or a failed write: do not start the queued
            # fetches (up to threads * 4); those in flight finish into the journal.
            collect(fetcher.stop(cancel=True), stopping=True)
            raise
        collect(fetcher.stop(cancel=False))
    return where


def _known_outcome(row: dict, key: int, image_root: Path, dc: dict, failed_before: dict) -> dict | None:
    """The status of a URL that needs no fetch (image on disk, failed for good before), else None.
    An image kept while opt-outs were not honoured is removed once they are. An
    image on disk counts only when an earlier status row says it was made from
    this URL with today's image settings (``made_key``); else it is fetched again."""
    rel = image_rel(row["id"], dc["fanout"])
    seen = failed_before.get(key) is OPT_OUT_SEEN
    if seen and dc["honour_opt_out"]:
        (image_root / rel).unlink(missing_ok=True)
        return {"url": row["url"], "id": row["id"], "kind": "opted_out", "http_status": None,
                "detail": "X-Robots-Tag opt-out seen by an earlier run (honour_opt_out was off): image removed"}
    made = made_key(row["url"], rel, dc)
    if (image_root / rel).is_file() and failed_before["made"].get(stable_hash(rel)) == made:
        return {"url": row["url"], "id": row["id"], "kind": "exists", "image_id": rel, "detail": "already on disk",
                "made": made, **({"x_robots_opt_out": True} if seen else {})}
    # else made from another URL or with other settings (or no row says): removed and
    # fetched again, so a failed fetch leaves no stale image and a run never mixes two
    (image_root / rel).unlink(missing_ok=True)
    if key in failed_before and not seen:
        kind, http_status = failed_before[key]
        return {"url": row["url"], "id": row["id"], "kind": kind, "http_status": http_status,
                "detail": "not retried: failed in an earlier run (download.retry_failed=true retries)"}
    return None


def _write_in_order(rows: Iterator[dict], shard: tuple[int, int], where: dict[int, int], journal: Path,
                    out_path: Path, status_path: Path, report: Report) -> collections.Counter:
    """Walk the input again and write, in input order, each distinct URL's status
    line (copied from the journal) and every row whose URL got an image; returns
    the outcome kinds. ``where`` is reused: a written URL's offset is flipped (~)."""
    num_shards, shard_index = shard
    kinds: collections.Counter = collections.Counter()
    with open(journal, "rb") as jf, atomic_open(status_path) as status_f, atomic_open(out_path) as out_f:
        for row in rows:
            if key_shard(row["url"], num_shards) != shard_index:
                continue
            key = stable_hash(row["url"])
            at = where.get(key)
            if at is None:
                raise UserError(f"{row['url'][:100]}: not seen by the download pass "
                                "(was the input file changed during the run?)")
            first = at >= 0
            jf.seek(at if first else ~at)
            line = jf.readline().decode("utf-8")
            st = json.loads(line)
            image_id = st.get("image_id") if st["kind"] in SUCCESS else None
            if first:
                where[key] = ~at
                status_f.write(line)
                kinds[st["kind"]] += 1
                if image_id is None:
                    report.skip(f"no image: {st['kind']}", f"id {row['id']}: {row['url'][:100]}")
            if image_id is not None:
                out_f.write(dumps({**row, "image_id": image_id}) + "\n")
                report.count("rows_out")
            elif not first:
                report.skip("no image: duplicate url of a failed row", f"id {row['id']}")
    return kinds


def _summary(kinds: collections.Counter, seconds: float) -> dict:
    urls = sum(kinds.values())
    success = sum(kinds[k] for k in SUCCESS)
    fetched_ok = kinds["ok"]
    return {
        "urls": urls,
        "success": success,
        "success_rate": round(success / urls, 4) if urls else 0.0,
        "by_kind": dict(sorted(kinds.items())),
        "failures_by_kind": {k: v for k, v in sorted(kinds.items()) if k not in SUCCESS},
        "downloaded_now": fetched_ok,
        "images_per_second": round(fetched_ok / seconds, 2) if seconds > 0 else 0.0,
        "seconds": round(seconds, 2),
    }


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
    check_success_rate(status_summary(Path(dc["status"])), dc["min_success_rate"])
    return f"merged {num_shards} download shards: {rows} rows -> {dc['output']}; status per URL in {dc['status']}"


def status_summary(status_path: Path) -> dict:
    """URLs, successes and failures by kind of a (merged) status file."""
    kinds = collections.Counter(str(row.get("kind")) for row in read_jsonl(status_path, BadRows(max_bad=None,
                                                                                                  quiet=True)))
    urls, success = sum(kinds.values()), sum(kinds[k] for k in SUCCESS)
    return {"urls": urls, "success": success, "success_rate": round(success / urls, 4) if urls else 0.0,
            "failures_by_kind": {k: v for k, v in sorted(kinds.items()) if k not in SUCCESS}}


# URLs split by stable_hash(url) % N into shard files of the output and the status; the
# launcher (python -m common launch capfilt.download) merges them back by URL, in input order.
SHARDS = ShardRule(device=None, sharded=("${download.output}", "${download.status}"), combine=combine_shards)


def print_summary(summary: dict, file=None) -> None:
    file = file or sys.stderr
    print(f"[download] {summary['success']}/{summary['urls']} URLs have an image "
          f"(success rate {summary['success_rate']:.1%}); fetched now: {summary['downloaded_now']} "
          f"at {summary['images_per_second']} images/s", file=file)
    if summary["failures_by_kind"]:
        print("  failures by kind: " + json.dumps(summary["failures_by_kind"]), file=file)



STEP = Step("capfilt.download", "pretrain.download_images", "capfilt", "download and resize the images",
            reads=("${download.input}",), writes=("${download.output}", "${download.status}"),
            after=("capfilt.filter",), shaped_by=("download",), defaults=DEFAULTS, rule=SHARDS)


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, str(REPO_ROOT / "configs" / CONFIG_FILE), argv)
    cfg.require_file("download.input")
    dc = cfg["download"]
    check_config(dc)
    num_shards, shard_index = check_shard_args(cfg["run"])

    def work() -> lifecycle.Done:
        report = Report("capfilt.download")
        summary = run(dc, report, progress=dc["progress"], shard=(num_shards, shard_index))
        report.print()
        print_summary(summary)

        def then() -> None:
            out = dc["output"] if num_shards == 1 else shard_path(dc["output"], shard_index, num_shards)
            print(f"wrote {report.counts['rows_out']} rows to {out}; status per URL in {dc['status']}",
                  file=sys.stderr)
            if num_shards == 1:   # a shard holds too few URLs to judge: the launcher's merge checks the whole
                check_success_rate(summary, dc["min_success_rate"])
        return lifecycle.Done(report, then)

    lifecycle.run_step(STEP, cfg, argv, work, [("download.image_root", cfg.path("download.image_root"), True)])


def check_success_rate(summary: dict, minimum: float) -> None:
    """Stop (exit 2, no run record) when too few URLs gave an image to go on with."""
    if summary["urls"] and summary["success_rate"] < minimum:
        fails = ", ".join(f"{k}={v}" for k, v in list(summary["failures_by_kind"].items())[:6])
        raise UserError(f"only {summary['success']} of {summary['urls']} URLs gave an image "
                        f"({summary['success_rate']:.1%} < download.min_success_rate={minimum:g}; {fails}): "
                        "is the image server or the network reachable? Rerun when it is (images on disk are kept)")


if __name__ == "__main__":
    main()
