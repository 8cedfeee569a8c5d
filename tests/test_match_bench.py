"""The search benchmark runs and FAISS and torch agree on the neighbours."""
from __future__ import annotations

from match import bench_search


def test_bench_search_small(capsys):
    bench_search.main(["--captions", "3000", "--images", "300", "--dim", "64", "--k", "50"])
    out = capsys.readouterr().out
    lines = {line.split("  ")[0].strip(): line.split() for line in out.splitlines()}
    faiss_row = lines["faiss IndexFlatIP cpu"]
    torch_row = lines["torch matmul+topk cpu fp32"]
    assert float(torch_row[-3]) >= 0.99  # same top-k as faiss (exact search both)
    assert float(faiss_row[-4]) > 0      # index MB
    assert "index memory at 600,000 captions" in out
