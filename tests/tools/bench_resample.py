"""Speed and quality of the download's resamplers (``download.resample``).

For each resampler, ``normalise`` (decode with JPEG draft scaling, resize,
pad to 256, JPEG q95: what the download does per image) runs over the
benchmark's photo-like JPEGs (320x240 to 1600x1200, tests/tools/bench_download.py)
in one thread: milliseconds per image (best of ``--repeat`` rounds, the
resamplers alternating within each round), and the quality against a
reference made without shortcuts (full decode, no draft, Lanczos in floating
point from the full-size image): PSNR in dB over the image area, higher is
closer. Aliasing: a 1600x1200 pattern of 1-pixel stripes and a fine
checkerboard (both average to mid grey) scaled down to 256; the standard
deviation of the result is the aliasing left (0 is none).

    python tests/tools/bench_resample.py [--images 100] [--repeat 5]
"""
from __future__ import annotations

import argparse
import copy
import io
import os
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
from PIL import Image

from pretrain.capfilt_config import DEFAULTS
from pretrain.image_norm import RESAMPLE, normalise


def reference(data: bytes, size: int) -> np.ndarray:
    """The image area of the padded output, made the slow careful way (float Lanczos from full size)."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    chans = [np.asarray(Image.fromarray(np.asarray(im, dtype=np.float32)[..., c], mode="F")
                        .resize((nw, nh), Image.Resampling.LANCZOS)) for c in range(3)]
    return np.clip(np.stack(chans, -1), 0, 255)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / mse) if mse > 0 else 99.0


def area_of(jpeg: bytes, shape: tuple[int, int], size: int) -> np.ndarray:
    """The image area (without the padding) of a padded output."""
    out = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float64)
    h, w = shape
    top, left = (size - h) // 2, (size - w) // 2
    return out[top:top + h, left:left + w]


def patterns() -> list[bytes]:
    yy, xx = np.mgrid[0:1200, 0:1600]
    out = []
    for arr in ((xx % 2) * 255, ((xx + yy) % 2) * 255):
        b = io.BytesIO()
        Image.fromarray(arr.astype(np.uint8)).convert("RGB").save(b, "PNG")
        out.append(b.getvalue())
    return out


def aliasing(data: bytes, dc: dict) -> float:
    out = normalise(data, dict(dc, resize_mode="keep_ratio"))[0]
    return float(np.std(np.asarray(Image.open(io.BytesIO(out)).convert("L"), dtype=np.float64)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    from tests.tools.bench_download import make_images
    folder = Path(tempfile.mkdtemp(prefix="bench_resample_"))
    datas = [(folder / n).read_bytes() for n in make_images(folder, args.images)]
    dc = copy.deepcopy(DEFAULTS["download"])
    size = dc["image_size"]
    refs = [reference(d, size) for d in datas]
    print(f"{len(datas)} JPEGs, normalise to {size} (pad, q{dc['jpeg_quality']}), one thread, "
          f"load average {os.getloadavg()[0]:.1f} at the start", file=sys.stderr)
    best = {name: float("inf") for name in RESAMPLE}
    outs = {}
    for _ in range(args.repeat):      # rounds alternate the resamplers: a noisy machine hits each alike
        for name in RESAMPLE:
            t = time.perf_counter()
            outs[name] = [normalise(d, dict(dc, resample=name)) for d in datas]
            best[name] = min(best[name], (time.perf_counter() - t) / len(datas) * 1000)
    print("| resample | ms per image | PSNR vs reference (dB, mean / worst) | stripes std | checker std |")
    print("|---|---:|---:|---:|---:|")
    for name in RESAMPLE:
        scores = [psnr(area_of(o[0], r.shape[:2], size), r) for o, r in zip(outs[name], refs)]
        alias = [aliasing(p, dict(dc, resample=name)) for p in patterns()]
        print(f"| {name} | {best[name]:.2f} | {np.mean(scores):.1f} / {min(scores):.1f} | {alias[0]:.1f} | "
              f"{alias[1]:.1f} |")
    print(f"load average {os.getloadavg()[0]:.1f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()
