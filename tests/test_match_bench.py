"""The search benchmark runs and FAISS and torch agree on the neighbours."""
from __future__ import annotations

import numpy as np

from tests.tools import bench_search
from match.search import CaptionIndex


def test_bench_search_small(capsys):
    bench_search.main(["--captions", "3000", "--images", "300", "--dim", "64", "--k", "50"])
    out = capsys.readouterr().out
    lines = {line.split("  ")[0].strip(): line.split() for line in out.splitlines()}
    faiss_row = lines["faiss IndexFlatIP cpu"]
    torch_row = lines["torch matmul+topk cpu fp32"]
    assert float(torch_row[-3]) >= 0.99  # same top-k as faiss (exact search both)
    assert float(faiss_row[-4]) > 0      # index MB
    assert "index memory at 600,000 captions" in out


def test_caption_index_is_exact_inner_product():
    rng = np.random.default_rng(0)
    captions = rng.standard_normal((700, 24)).astype(np.float32)
    captions /= np.linalg.norm(captions, axis=1, keepdims=True)
    queries = rng.standard_normal((37, 24)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = queries @ captions.T
    one = CaptionIndex(captions, "cpu")
    chunked = CaptionIndex(dim=24, device="cpu", chunks=(captions[s:s + 128] for s in range(0, 700, 128)))
    in_place = CaptionIndex(dim=24, device="cpu", total=700,
                            chunks=(captions[s:s + 128].astype(np.float16) for s in range(0, 700, 128)))
    assert one.ntotal == chunked.ntotal == in_place.ntotal == 700 and not one.on_gpu
    captions = captions.astype(np.float16).astype(np.float32)  # what in_place holds (the others: near enough)
    exact = queries @ captions.T
    for index in (one, chunked, in_place):
        got = [(start, scores, ids) for start, scores, ids in index.search(queries, 50, batch=10)]
        assert [g[0] for g in got] == [0, 10, 20, 30]
        scores, ids = np.concatenate([g[1] for g in got]), np.concatenate([g[2] for g in got])
        best = np.sort(exact, axis=1)[:, ::-1][:, :50]
        assert np.allclose(scores, best, atol=2e-3)                              # the true top-50 scores
        assert np.allclose(np.take_along_axis(exact, ids, 1), scores, atol=2e-3)  # of those captions
        assert np.array_equal(index.neighbors(queries[3], 50), ids[3])
    _, scores, ids = next(in_place.search(queries, 50))
    assert np.allclose(scores, np.sort(exact, axis=1)[:, ::-1][:, :50], atol=1e-5)   # exact for what it holds
    _, _, ids = next(one.search(queries[:1], 5000))
    assert ids.shape == (1, 700) and sorted(ids[0]) == list(range(700))         # k clipped to the index
