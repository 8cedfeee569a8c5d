"""Nearest-caption search speed: FAISS exact inner product against a plain torch
matrix product + top-k, on random L2-normalised vectors (default 100,000 caption
vectors, 10,000 image vectors, 768-d as CLIP ViT-L/14, k = search.top_k = 400).

Prints queries per second, the index memory, whether the two agree, and what
the same search costs at 600,000 captions and 600,000 images (scaled linearly
in both counts: exact search is one dense matrix product).

    python tests/tools/bench_search.py [--captions 100000 --images 10000 --dim 768 --k 400]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def bench_faiss(captions: np.ndarray, images: np.ndarray, k: int, gpu: bool) -> tuple[float, np.ndarray, int]:
    import faiss
    index = faiss.IndexFlatIP(captions.shape[1])
    index.add(captions)
    memory = int(faiss.serialize_index(index).size)
    if gpu:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
    index.search(images[:64], k)  # warm-up
    t0 = time.perf_counter()
    _, ids = index.search(images, k)
    return time.perf_counter() - t0, ids, memory


def bench_torch(captions: np.ndarray, images: np.ndarray, k: int, device: str,
                chunk: int) -> tuple[float, np.ndarray, int]:
    import torch
    dtype = torch.float16 if device == "cuda" else torch.float32
    c = torch.from_numpy(captions).to(device, dtype)
    q_all = torch.from_numpy(images).to(device, dtype)
    memory = c.numel() * c.element_size()
    (q_all[:64] @ c.T).topk(k, dim=1)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    out = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(q_all), chunk):
            out.append((q_all[s:s + chunk] @ c.T).topk(k, dim=1).indices)
        if device == "cuda":
            torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return elapsed, torch.cat(out).cpu().numpy(), memory


def overlap(a: np.ndarray, b: np.ndarray, rows: int = 200) -> float:
    """Share of the same neighbours (as sets) over the first rows: ties and fp16 may reorder."""
    return float(np.mean([len(set(a[i]) & set(b[i])) / a.shape[1] for i in range(min(rows, len(a)))]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captions", type=int, default=100_000)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--k", type=int, default=400)
    ap.add_argument("--chunk", type=int, default=1024, help="torch: image queries per matrix product")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import faiss
    import torch

    from match.search import gpu_count

    captions = random_unit(args.captions, args.dim, args.seed)
    images = random_unit(args.images, args.dim, args.seed + 1)
    print(f"{args.images} image queries x {args.captions} captions, dim {args.dim}, top-{args.k}; "
          f"CPU threads: faiss {faiss.omp_get_max_threads()}, torch {torch.get_num_threads()} "
          f"({os.cpu_count()} cores)", file=sys.stderr)
    runs = [("faiss IndexFlatIP cpu", lambda: bench_faiss(captions, images, args.k, False)),
            ("torch matmul+topk cpu fp32", lambda: bench_torch(captions, images, args.k, "cpu", args.chunk))]
    if gpu_count():
        runs.append(("faiss IndexFlatIP gpu", lambda: bench_faiss(captions, images, args.k, True)))
    if torch.cuda.is_available():
        runs.append(("torch matmul+topk cuda fp16", lambda: bench_torch(captions, images, args.k, "cuda",
                                                                        args.chunk)))
    reference = None
    scale = (600_000 / args.captions) * (600_000 / args.images)
    print(f"{'method':32s} {'seconds':>8s} {'queries/s':>10s} {'index MB':>9s} {'same top-k':>10s} "
          f"{'600k x 600k est.':>17s}")
    for name, fn in runs:
        seconds, ids, memory = fn()
        if reference is None:
            reference = ids
        est = seconds * scale
        print(f"{name:32s} {seconds:8.2f} {args.images / seconds:10.0f} {memory / 2**20:9.1f} "
              f"{overlap(reference, ids):10.3f} {est / 60:13.1f} min")
    print(f"index memory at 600,000 captions: {600_000 * args.dim * 4 / 2**30:.2f} GiB float32 "
          f"({600_000 * args.dim * 2 / 2**30:.2f} GiB float16 on disk in the embedding cache)")


if __name__ == "__main__":
    main()
