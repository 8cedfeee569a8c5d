"""Exact nearest captions per image: FAISS inner product over L2-normalised
vectors (= cosine), on the GPU when faiss-gpu sees one.

Memory: the flat index holds the captions as float32 (600k x 768 = 1.72 GiB).
Given the total, its storage is allocated once and filled chunk by chunk from
the float16 cache, so no second full float32 copy exists while it is built
(a plain ``add`` of everything, or repeated adds that regrow the vector, peak
at about twice the index). The host index is kept also when the search
runs on the GPU: it serves the rare widened searches (``neighbors``) with any
k, which the GPU index (k <= 2048) cannot.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from common.errors import UserError

GPU_MAX_K = 2048


def gpu_count() -> int:
    import faiss
    if not hasattr(faiss, "StandardGpuResources"):
        return 0  # faiss-cpu build
    return int(faiss.get_num_gpus())


class CaptionIndex:
    def __init__(self, vectors: np.ndarray | None = None, device: str = "auto", *,
                 dim: int | None = None, chunks: Iterable[np.ndarray] = (), total: int | None = None):
        """From one matrix, or (dim=, chunks=, total=) row blocks added in order;
        with ``total`` (the rows the chunks hold) the storage is allocated once."""
        import faiss

        if vectors is not None:
            dim, chunks = vectors.shape[1], [vectors]
        if dim is None:
            raise ValueError("CaptionIndex needs vectors or dim and chunks")
        self.dim = int(dim)
        self.cpu = faiss.IndexFlatIP(self.dim)
        if total is not None and _fill_in_place(self.cpu, self.dim, total, chunks):
            pass
        else:
            for chunk in chunks:
                self.cpu.add(np.ascontiguousarray(chunk, dtype=np.float32))
        self.ntotal = int(self.cpu.ntotal)
        gpus = gpu_count()
        if device == "gpu" and not gpus:
            raise UserError("search.device=gpu: faiss has no GPU support here (install faiss-gpu) or sees no GPU")
        self.on_gpu = device != "cpu" and gpus > 0
        if self.on_gpu:
            self._res = faiss.StandardGpuResources()
            self.index = faiss.index_cpu_to_gpu(self._res, 0, self.cpu)
        else:
            self.index = self.cpu
        self.memory_bytes = self.ntotal * self.dim * 4  # a flat index stores the float32 vectors

    def search(self, queries: np.ndarray, k: int, batch: int = 4096) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(start, scores, caption positions) per query batch, best first, k clipped to the index size."""
        k = min(k, self.ntotal)
        if self.on_gpu and k > GPU_MAX_K:
            raise UserError(f"search.top_k={k}: the faiss GPU index returns at most {GPU_MAX_K} neighbours")
        for start in range(0, len(queries), batch):
            q = np.ascontiguousarray(queries[start:start + batch], dtype=np.float32)
            scores, ids = self.index.search(q, k)
            yield start, scores, ids

    def neighbors(self, query: np.ndarray, k: int) -> np.ndarray:
        """Caption positions of one query, best first, k clipped to the index size
        (exact, on the host index)."""
        k = min(k, self.ntotal)
        _, ids = self.cpu.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        return ids[0]


def _fill_in_place(index, dim: int, total: int, chunks: Iterable[np.ndarray]) -> bool:
    """Write the chunks straight into a flat index's storage; False (nothing
    done) when this faiss build does not expose it, so the caller adds instead."""
    import faiss
    codes = getattr(index, "codes", None)
    if codes is None or not hasattr(codes, "resize") or not hasattr(codes, "data") or total == 0:
        return False
    nbytes = total * dim * 4
    codes.resize(nbytes)
    view = faiss.rev_swig_ptr(codes.data(), nbytes).view(np.float32).reshape(total, dim)
    filled = 0
    for chunk in chunks:
        if filled + len(chunk) > total:
            raise ValueError(f"CaptionIndex: chunks hold more than total={total} rows")
        view[filled:filled + len(chunk)] = chunk
        filled += len(chunk)
        del chunk  # not held while the next chunk is made
    if filled != total:
        raise ValueError(f"CaptionIndex: chunks held {filled} rows, total={total}")
    index.ntotal = total
    return True
