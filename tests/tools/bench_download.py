"""Benchmark: our downloader against img2dataset on a web-like URL list, in one run.

A loopback HTTP server (its own process, keep-alive, asyncio, responses
prepared in memory so that serving costs little next to downloading) serves
``--n`` URLs over ``--hosts`` loopback hosts (ports; a real list has many
hosts, and ours keeps each host in one of its processes): photo-like JPEGs of
mixed sizes (320x240 to 1600x1200), of which ``--slow`` answer only after
``--slow-seconds`` (a slow host) and ``--fail`` are 404s, spread through the
list in a seeded order. Captions are real-style (tests/tools/synthetic.py).
Both sides resize to 256 with white padding and encode JPEG quality 95, no
retries, the same total threads: ours ``--threads`` over its default
``download.processes`` (two per core, each with ``download.image_threads``
image threads) with the guards at their defaults
(loopback allowed); img2dataset in its recommended layout, ``--processes``
processes (one per core) x ``--threads / --processes`` threads,
``number_sample_per_shard`` small enough that every process has shards. Ours
is timed around ``pretrain.download_images.run`` (reading the list, every
fetch, the ordered status and output files); img2dataset around its
``download()`` call (pool start-up included) and by its download loop alone
(first shard start to last shard end, from its own shard stats): both are
reported, and the ratio against the loop is the headline. Each round prints
the cores each side used (CPU / wall seconds); ``--background N`` runs N busy
processes the whole time (a shared machine). Success and failure counts of
both sides are printed; the run stops if they disagree about which URLs work.

img2dataset must live in its own environment (installing it into .venv
downgrades pandas):

    python3 -m venv /tmp/i2d && /tmp/i2d/bin/pip install img2dataset
    python tests/tools/bench_download.py --img2dataset-python /tmp/i2d/bin/python [--n 10000]
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SIZES = [(320, 240), (640, 480), (800, 600), (1024, 768), (1600, 1200)]

I2D_SCRIPT = r"""
import glob, json, sys, time
from img2dataset import download
url_list, out, processes, threads, per_shard = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t = time.time()
download(url_list=url_list, input_format="csv", url_col="url", caption_col="caption", output_folder=out,
         output_format="files", processes_count=processes, thread_count=threads, image_size=256,
         resize_mode="border", encode_quality=95, encode_format="jpg", timeout=10, retries=0,
         enable_wandb=False, number_sample_per_shard=per_shard, distributor="multiprocessing")
end = time.time()
shards = [json.load(open(p)) for p in glob.glob(out + "/*_stats.json")]
print(json.dumps({"call_start": t, "call_end": end, "shards": shards}))
"""


def make_images(folder: Path, n: int, sizes: list[tuple[int, int]] = SIZES) -> list[str]:
    """``n`` distinct smooth photo-like JPEGs, sizes cycling through ``sizes``; their names."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        r = np.random.default_rng(i)
        coarse = Image.fromarray((r.random((6, 8, 3)) * 255).astype(np.uint8))
        arr = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        arr += 30 * np.sin(xx / (7 + i % 13))[..., None] + 20 * np.cos(yy / (5 + i % 7))[..., None]
        names.append(f"{i:05d}.jpg")
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(folder / names[-1], quality=90)
    return names


class Server(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive server (asyncio, one process), so that serving
    costs little next to downloading: /img/<k>/<i>.jpg answers image k;
    /slow/<k>/<i>.jpg the same after ``slow_seconds``; anything else is a 404.
    Responses are prepared once; a request costs a dict lookup and a write."""
    responses: list[bytes] = []
    not_found = b""
    slow_seconds = 1.0

    def connection_made(self, transport):
        self.transport, self.buf = transport, b""

    def data_received(self, data: bytes):
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            parts = head.split(b" ", 2)[1].decode("latin-1").split("/") if b" " in head else []
            if len(parts) == 4 and parts[1] in ("img", "slow") and parts[2].isdigit():
                response = self.responses[int(parts[2]) % len(self.responses)]
                if parts[1] == "slow":
                    asyncio.get_running_loop().call_later(self.slow_seconds, self._send, response)
                    continue
            else:
                response = self.not_found
            self._send(response)

    def _send(self, response: bytes):
        if not self.transport.is_closing():
            self.transport.write(response)


def _response(code: str, ctype: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: keep-alive\r\n\r\n").encode("latin-1") + body


def serve(folder: str, ports: list[int], slow_seconds: float) -> None:
    """Serve on every port of ``ports`` (each one host: scheme, name and port)."""
    Server.responses = [_response("200 OK", "image/jpeg", p.read_bytes()) for p in sorted(Path(folder).glob("*.jpg"))]
    Server.not_found = _response("404 Not Found", "text/plain", b"not found")
    Server.slow_seconds = slow_seconds

    async def main():
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(Server, "127.0.0.1", port, backlog=1024) for port in ports]
        await asyncio.gather(*(srv.serve_forever() for srv in servers))

    asyncio.run(main())


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def url_list(ports: list[int], n: int, n_images: int, slow: int, fail: int, seed: int) -> list[str]:
    """``n`` URLs in a seeded order, their hosts (ports) drawn at random."""
    kinds = ["slow"] * slow + ["missing"] * fail + ["img"] * (n - slow - fail)
    rng = random.Random(seed)
    rng.shuffle(kinds)
    return [f"http://127.0.0.1:{rng.choice(ports)}/{kind}/{i % n_images}/{i}.jpg" for i, kind in enumerate(kinds)]


def run_ours(rows: list[dict], out: Path, threads: int, **settings) -> dict:
    from common.report import Report
    from pretrain import download_images as dl
    from pretrain.capfilt_config import DEFAULTS

    out.mkdir(parents=True)
    (out / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    dc = copy.deepcopy(DEFAULTS["download"])
    dc.update(input=str(out / "in.jsonl"), output=str(out / "out.jsonl"), status=str(out / "status.jsonl"),
              image_root=str(out / "images"), threads=threads,
              # The guards as configured by default (robots.txt, here a 404 per host; 8 connections
              # per host; the deadline); loopback allowed, as it is refused by default.
              retries=0, progress=False, allow_hosts=["127.0.0.1"], **settings)
    cpu0 = _cpu_seconds()
    t = time.monotonic()
    summary = dl.run(dc, Report("bench"), progress=False)
    seconds = time.monotonic() - t
    cpu = _cpu_seconds() - cpu0
    ok_urls = [json.loads(line)["url"] for line in open(out / "status.jsonl", encoding="utf-8")
               if json.loads(line)["kind"] == "ok"]
    from pretrain.download_procs import process_count
    n = process_count(dc)
    return {"seconds": seconds, "success": summary["success"], "failed": summary["urls"] - summary["success"],
            "layout": f"{n} processes x {max(1, threads // n)} threads (+ {dc['image_threads'] if n > 1 else 0} "
                      f"image threads each), resample {dc['resample']}",
            "failures_by_kind": summary["failures_by_kind"], "ok_urls": set(ok_urls), "cpu_seconds": cpu}


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its finished children (the
    image processes; img2dataset's process and its pool)."""
    import resource
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def run_img2dataset(python: str, rows: list[dict], out: Path, processes: int, threads: int) -> dict:
    import csv
    out.mkdir(parents=True)
    with open(out / "urls.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["url", "caption"])
        w.writerows([r["url"], r["caption"]] for r in rows)
    per_shard = -(-len(rows) // (2 * processes))
    cpu0 = _cpu_seconds()
    r = subprocess.run([python, "-c", I2D_SCRIPT, str(out / "urls.csv"), str(out / "files"), str(processes),
                        str(threads // processes), str(per_shard)],
                       capture_output=True, text=True, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    cpu = _cpu_seconds() - cpu0
    if r.returncode != 0:
        raise RuntimeError(f"img2dataset failed ({r.returncode}):\n{r.stderr[-2000:]}")
    got = json.loads(r.stdout.strip().splitlines()[-1])
    shards = got["shards"]
    ok_urls = set()
    for meta in (out / "files").rglob("*.json"):
        if not meta.name.endswith("_stats.json"):
            m = json.loads(meta.read_text())
            if m.get("status") == "success":
                ok_urls.add(m["url"])
    return {"seconds": got["call_end"] - got["call_start"],
            "loop_seconds": max(s["end_time"] for s in shards) - min(s["start_time"] for s in shards),
            "success": sum(s["successes"] for s in shards), "count": sum(s["count"] for s in shards),
            "failed": sum(s["count"] - s["successes"] for s in shards),
            "failures_by_kind": _i2d_failures(shards), "ok_urls": ok_urls, "cpu_seconds": cpu}


def _i2d_failures(shards: list[dict]) -> dict:
    out: dict[str, int] = {}
    for s in shards:
        for k, v in (s.get("status_dict") or {}).items():
            if k != "success":
                out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


def start_server(folder: Path, slow_seconds: float, port: int | None = None) -> tuple[subprocess.Popen, int]:
    """One loopback host (on ``port``, or a free one)."""
    server, ports = start_servers(folder, slow_seconds, [port] if port else free_ports(1))
    return server, ports[0]


def start_servers(folder: Path, slow_seconds: float, ports: list[int]) -> tuple[subprocess.Popen, list[int]]:
    """One server process listening on every port of ``ports`` (each a host)."""
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(folder), ",".join(map(str, ports)),
                               str(slow_seconds)])
    for _ in range(200):
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
            return server, ports
        except OSError:
            time.sleep(0.05)
    server.terminate()
    sys.exit(f"error: the loopback server did not start (ports {ports[:3]}... in use?)")


def one_round(rep: int, rows: list[dict], tmp: Path, args, settings: dict) -> tuple[dict, dict]:
    """Ours, then img2dataset, on the same URLs; both printed with the cores they used."""
    load = os.getloadavg()[0]
    ours = run_ours(rows, tmp / f"ours_{rep}", args.threads, **settings)
    i2d = run_img2dataset(args.img2dataset_python, rows, tmp / f"i2d_{rep}", args.processes, args.threads)
    if ours["ok_urls"] != i2d["ok_urls"]:
        sys.exit(f"error: the two sides disagree on {len(ours['ok_urls'] ^ i2d['ok_urls'])} URLs")
    print(f"  run {rep + 1} (load average {load:.1f} before) ours ({ours['layout']}) {ours['success']} ok / "
          f"{ours['failed']} failed {json.dumps(ours['failures_by_kind'])} in {ours['seconds']:.2f}s = "
          f"{ours['success'] / ours['seconds']:.1f} images/s; CPU {ours['cpu_seconds']:.1f}s = "
          f"{ours['cpu_seconds'] / max(1, ours['success']) * 1000:.2f} ms per image, "
          f"{ours['cpu_seconds'] / ours['seconds']:.2f} cores", file=sys.stderr)
    print(f"  run {rep + 1} img2dataset ({args.processes} x {args.threads // args.processes} threads) "
          f"{i2d['success']} ok / {i2d['failed']} failed {json.dumps(i2d['failures_by_kind'])} in "
          f"{i2d['loop_seconds']:.2f}s (download loop) / {i2d['seconds']:.2f}s (whole call) = "
          f"{i2d['success'] / i2d['loop_seconds']:.1f} / {i2d['success'] / i2d['seconds']:.1f} images/s; "
          f"CPU {i2d['cpu_seconds']:.1f}s = {i2d['cpu_seconds'] / max(1, i2d['success']) * 1000:.2f} ms per "
          f"image, {i2d['cpu_seconds'] / i2d['seconds']:.2f} cores (whole call); ratio over its loop "
          f"{ratio(ours, i2d, 'loop_seconds'):.2f}x", file=sys.stderr)
    shutil.rmtree(tmp / f"ours_{rep}", ignore_errors=True)
    shutil.rmtree(tmp / f"i2d_{rep}", ignore_errors=True)
    return ours, i2d


def ratio(ours: dict, i2d: dict, key: str) -> float:
    """Ours over img2dataset in images per second."""
    return i2d[key] / ours["seconds"] * ours["success"] / i2d["success"]


def summary(results: list[tuple[dict, dict]], args, slow: int, fail: int) -> dict:
    """Best round of each side, and the worst round's ratio."""
    ours = min((o for o, _ in results), key=lambda r: r["seconds"])
    i2d = min((i for _, i in results), key=lambda r: r["loop_seconds"])
    i2d_call = min(results, key=lambda r: r[1]["seconds"])[1]
    return {"urls": args.n, "slow": slow, "failing_404": fail, "threads": args.threads, "hosts": args.hosts,
            "background_processes": args.background, "rounds": len(results), "ours_layout": ours["layout"],
            "img2dataset_layout": f"{args.processes} processes x {args.threads // args.processes} threads",
            "ours_success": ours["success"], "ours_failed": ours["failed"],
            "img2dataset_success": i2d["success"], "img2dataset_failed": i2d["failed"],
            "ours_images_per_second": round(ours["success"] / ours["seconds"], 1),
            "img2dataset_loop_images_per_second": round(i2d["success"] / i2d["loop_seconds"], 1),
            "img2dataset_whole_call_images_per_second": round(i2d_call["success"] / i2d_call["seconds"], 1),
            "ratio_over_loop": round(ratio(ours, i2d, "loop_seconds"), 2),
            "ratio_over_whole_call": round(ratio(ours, i2d_call, "seconds"), 2),
            "round_ratios_over_loop": [round(ratio(o, i, "loop_seconds"), 2) for o, i in results],
            "worst_round_ratio_over_loop": round(min(ratio(o, i, "loop_seconds") for o, i in results), 2),
            "ours_cores_used": round(ours["cpu_seconds"] / ours["seconds"], 2),
            "img2dataset_cores_used": round(i2d["cpu_seconds"] / i2d["seconds"], 2),
            "ours_cpu_ms_per_image": round(ours["cpu_seconds"] / max(1, ours["success"]) * 1000, 2),
            "img2dataset_cpu_ms_per_image": round(i2d["cpu_seconds"] / max(1, i2d["success"]) * 1000, 2)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="number of URLs")
    ap.add_argument("--slow", type=int, default=None, help="URLs that answer after --slow-seconds (default 3.75%%)")
    ap.add_argument("--fail", type=int, default=None, help="URLs that are 404 (default 8.75%%)")
    ap.add_argument("--slow-seconds", type=float, default=1.0)
    ap.add_argument("--images", type=int, default=500, help="distinct images behind the URLs")
    ap.add_argument("--threads", type=int, default=32, help="total threads, both sides")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="img2dataset processes")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--img2dataset-python", default=sys.executable,
                    help="a python with img2dataset installed (default: this one)")
    ap.add_argument("--hosts", type=int, default=64, help="loopback hosts (ports) the URLs are spread over")
    ap.add_argument("--background", type=int, default=0, help="busy processes run alongside (a shared machine)")
    ap.add_argument("--resample", default=None, help="our download.resample (default: the config's)")
    ap.add_argument("--ours-processes", type=int, default=None, help="our download.processes (default: the config's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    ap.add_argument("--serve", nargs=3, metavar=("DIR", "PORT", "SLOW"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve(args.serve[0], [int(p) for p in args.serve[1].split(",")], float(args.serve[2]))
    slow = round(args.n * 0.0375) if args.slow is None else args.slow
    fail = round(args.n * 0.0875) if args.fail is None else args.fail
    probe = subprocess.run([args.img2dataset_python, "-c", "import img2dataset"], capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"img2dataset is not importable by {args.img2dataset_python}: install it in its own venv "
                 "(python3 -m venv /tmp/i2d && /tmp/i2d/bin/pip install img2dataset) and pass --img2dataset-python")
    from tests.tools import synthetic

    tmp = Path(tempfile.mkdtemp(prefix="bench_download_"))
    server = None
    try:
        make_images(tmp / "web", args.images)
        size_mb = sum(p.stat().st_size for p in (tmp / "web").iterdir()) / 1e6
        server, ports = start_servers(tmp / "web", args.slow_seconds, free_ports(args.hosts))
        urls = url_list(ports, args.n, args.images, slow, fail, args.seed)
        rows = [{"url": u, "caption": c} for u, c in zip(urls, synthetic.captions(args.n, args.seed))]
        print(f"{args.n} URLs ({slow} slow by {args.slow_seconds}s, {fail} 404), {args.images} distinct JPEGs "
              f"of {len(SIZES)} sizes ({size_mb:.1f} MB), {args.threads} threads in total, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
        settings = {k: v for k, v in (("resample", args.resample), ("processes", args.ours_processes))
                    if v is not None}
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.background)]
        try:
            results = [one_round(rep, rows, tmp, args, settings) for rep in range(args.repeat)]
        finally:
            for p in busy:
                p.kill()
                p.wait()
        res = summary(results, args, slow, fail)
        print(f"bench-download: ours {res['ours_images_per_second']} images/s; img2dataset "
              f"{res['img2dataset_loop_images_per_second']} (loop) / {res['img2dataset_whole_call_images_per_second']}"
              f" (whole call) images/s: {res['ratio_over_loop']}x / {res['ratio_over_whole_call']}x (best rounds); "
              f"worst round {res['worst_round_ratio_over_loop']}x of the loop")
        print(json.dumps(res))
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
