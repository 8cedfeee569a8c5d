"""Exact nearest captions per image: FAISS inner product over L2-normalised
vectors (= cosine), on the GPU when faiss-gpu sees one."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from common.errors import UserError


def gpu_count() -> int:
    import faiss
    if not hasattr(faiss, "StandardGpuResources"):
        return 0  # faiss-cpu build
    return int(faiss.get_num_gpus())


class CaptionIndex:
    def __init__(self, vectors: np.ndarray, device: str = "auto"):
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.ntotal, self.dim = vectors.shape
        cpu = faiss.IndexFlatIP(self.dim)
        cpu.add(vectors)
        gpus = gpu_count()
        if device == "gpu" and not gpus:
            raise UserError("search.device=gpu: faiss has no GPU support here (install faiss-gpu) or sees no GPU")
        self.on_gpu = device != "cpu" and gpus > 0
        if self.on_gpu:
            self._res = faiss.StandardGpuResources()
            self.index = faiss.index_cpu_to_gpu(self._res, 0, cpu)
        else:
            self.index = cpu
        self.memory_bytes = self.ntotal * self.dim * 4  # a flat index stores the float32 vectors

    def search(self, queries: np.ndarray, k: int, batch: int = 4096) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(start, scores, caption positions) per query batch, best first, k clipped to the index size."""
        k = min(k, self.ntotal)
        if self.on_gpu and k > 2048:
            raise UserError(f"search.top_k={k}: the faiss GPU index returns at most 2048 neighbours")
        for start in range(0, len(queries), batch):
            q = np.ascontiguousarray(queries[start:start + batch], dtype=np.float32)
            scores, ids = self.index.search(q, k)
            yield start, scores, ids
