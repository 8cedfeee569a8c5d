"""Benchmark: our downloader against img2dataset, images per second.

Both fetch the same URL list (distinct photo-like JPEGs served by a threaded
keep-alive HTTP server on loopback, in its own process), with the same number
of threads, resize to 256 with white padding and encode JPEG quality 95. Each
side is timed around its download call only (not interpreter start-up), best
of ``--repeat`` runs; the ratio ours / img2dataset is printed.

img2dataset is only needed here (``pip install img2dataset``). Its
dependencies pin other versions of shared packages (e.g. pandas), so it may
live in another environment: ``--img2dataset-python /path/to/venv/bin/python``.

    python tests/tools/bench_download.py [--n 600 --threads 16]
"""
from __future__ import annotations

import argparse
import copy
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

I2D_SCRIPT = r"""
import json, sys, time
from img2dataset import download
url_list, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.monotonic()
download(url_list=url_list, input_format="txt", output_folder=out, output_format="files",
         processes_count=1, thread_count=threads, image_size=256, resize_mode="border",
         encode_quality=95, encode_format="jpg", timeout=10, retries=0, enable_wandb=False,
         number_sample_per_shard=100000, distributor="multiprocessing")
seconds = time.monotonic() - t
import glob
shards = [json.load(open(p)) for p in glob.glob(out + "/*_stats.json")]
print(json.dumps({"seconds": seconds, "shard_seconds": sum(s["duration"] for s in shards)}))
"""


def make_images(folder: Path, n: int, size: tuple[int, int]) -> None:
    """Distinct, smooth, photo-like JPEGs (noise would make them unrealistically big)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        r = np.random.default_rng(i)
        coarse = r.random((6, 8, 3)).astype(np.float32)
        small = Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
        arr = np.asarray(small, dtype=np.float32)
        arr += 30 * np.sin(xx / (7 + i % 13))[..., None] + 20 * np.cos(yy / (5 + i % 7))[..., None]
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)


class KeepAliveHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


def serve(folder: str, port: int) -> None:
    handler = functools.partial(KeepAliveHandler, directory=folder)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.daemon_threads = True
    srv.serve_forever()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ours(urls: list[str], out: Path, threads: int) -> tuple[float, int]:
    from common.report import Report
    from pretrain import download_images as dl
    from pretrain.capfilt_config import DEFAULTS

    out.mkdir(parents=True)
    (out / "in.jsonl").write_text("".join(json.dumps({"url": u, "caption": f"image {i}"}) + "\n"
                                          for i, u in enumerate(urls)))
    dc = copy.deepcopy(DEFAULTS["download"])
    dc.update(input=str(out / "in.jsonl"), output=str(out / "out.jsonl"), status=str(out / "status.jsonl"),
              report=str(out / "report.json"), image_root=str(out / "images"), threads=threads,
              retries=0, progress=False)
    t = time.monotonic()
    summary = dl.run(dc, Report("bench"), progress=False)
    return time.monotonic() - t, summary["success"]


def run_img2dataset(python: str, urls: list[str], out: Path, threads: int) -> tuple[float, int]:
    out.mkdir(parents=True)
    (out / "urls.txt").write_text("\n".join(urls) + "\n")
    r = subprocess.run([python, "-c", I2D_SCRIPT, str(out / "urls.txt"), str(out / "files"), str(threads)],
                       capture_output=True, text=True, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    if r.returncode != 0:
        raise RuntimeError(f"img2dataset failed ({r.returncode}):\n{r.stderr[-2000:]}")
    times = json.loads(r.stdout.strip().splitlines()[-1])
    return times["seconds"], times["shard_seconds"], len(list((out / "files").rglob("*.jpg")))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600, help="number of images")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--width", type=int, default=800)
    ap.add_argument("--height", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--img2dataset-python", default=sys.executable,
                    help="a python with img2dataset installed (default: this one)")
    ap.add_argument("--serve", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve(args.serve[0], int(args.serve[1]))
    probe = subprocess.run([args.img2dataset_python, "-c", "import img2dataset"], capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"img2dataset is not importable by {args.img2dataset_python}: pip install img2dataset "
                 "(or pass --img2dataset-python)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_download_"))
    server = None
    try:
        make_images(tmp / "web", args.n, (args.width, args.height))
        size_mb = sum(p.stat().st_size for p in (tmp / "web").iterdir()) / 1e6
        port = free_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(tmp / "web"), str(port)])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        urls = [f"http://127.0.0.1:{port}/{i:05d}.jpg" for i in range(args.n)]
        print(f"{args.n} JPEGs of {args.width}x{args.height} ({size_mb:.1f} MB), {args.threads} threads, "
              f"{os.cpu_count()} CPUs", file=sys.stderr)
        # img2dataset is timed twice: around its download() call (pool start-up
        # included, like ours) and by its own shard stats (download loop only,
        # the stricter comparison, used for the headline ratio).
        best = {"ours": 0.0, "img2dataset": 0.0, "img2dataset_call": 0.0}
        for rep in range(args.repeat):
            seconds, ok = run_ours(urls, tmp / f"ours_{rep}", args.threads)
            best["ours"] = max(best["ours"], ok / seconds)
            print(f"  run {rep + 1} ours         {ok}/{args.n} images in {seconds:.2f}s = {ok / seconds:.1f} images/s",
                  file=sys.stderr)
            call, loop, ok2 = run_img2dataset(args.img2dataset_python, urls, tmp / f"i2d_{rep}", args.threads)
            best["img2dataset"] = max(best["img2dataset"], ok2 / loop)
            best["img2dataset_call"] = max(best["img2dataset_call"], ok2 / call)
            print(f"  run {rep + 1} img2dataset  {ok2}/{args.n} images in {loop:.2f}s (download loop) / "
                  f"{call:.2f}s (whole call) = {ok2 / loop:.1f} / {ok2 / call:.1f} images/s", file=sys.stderr)
            for name, got in (("ours", ok), ("img2dataset", ok2)):
                if got != args.n:
                    print(f"  warning: {name} saved {got} of {args.n} images", file=sys.stderr)
            shutil.rmtree(tmp / f"ours_{rep}", ignore_errors=True)
            shutil.rmtree(tmp / f"i2d_{rep}", ignore_errors=True)
        print(json.dumps({"images": args.n, "threads": args.threads,
                          "ours_images_per_second": round(best["ours"], 1),
                          "img2dataset_images_per_second": round(best["img2dataset"], 1),
                          "img2dataset_whole_call_images_per_second": round(best["img2dataset_call"], 1),
                          "ratio_ours_over_img2dataset": round(best["ours"] / best["img2dataset"], 2),
                          "ratio_ours_over_img2dataset_whole_call": round(best["ours"] / best["img2dataset_call"], 2)}))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
