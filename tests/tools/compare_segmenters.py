"""Compare sentence splitters on hand-labelled long answers.

    python tests/tools/compare_segmenters.py [--file tests/fixtures/segment/paragraphs.jsonl] [--repeat 200]

Each row of the file is a LLaVA-style answer (``text``) with the sentences a
reader would split it into (``sentences``): multi-sentence answers from the
LLaVA fixtures and answers written in the style of LLaVA-Instruct with
numbered and bulleted lists, abbreviations, initials, decimals, quotes, URLs,
emoji and ellipses. For each splitter it prints the share of answers split
exactly right, boundary precision and recall, the answers it gets wrong, and
its speed (answers per second over ``--repeat`` passes, on this machine).
Splitters: the project's rules (translate/segment.py), pySBD and sentencex.
A development tool: no product code imports it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_FILE = ROOT / "tests" / "fixtures" / "segment" / "paragraphs.jsonl"


def splitters() -> dict:
    from translate import segment
    out = {"rules (translate/segment.py)": lambda t: segment.split(t, 10**6)[0]}
    try:
        import pysbd
        seg = pysbd.Segmenter(language="en", clean=False)
        out["pysbd " + getattr(pysbd, "__version__", "")] = lambda t: [s.strip() for s in seg.segment(t) if s.strip()]
    except ImportError:
        print("pysbd not installed: skipped", file=sys.stderr)
    try:
        import sentencex
        out["sentencex"] = lambda t: [s.strip() for s in sentencex.segment("en", t) if s.strip()]
    except ImportError:
        print("sentencex not installed: skipped", file=sys.stderr)
    return out


def boundaries(text: str, pieces: list[str]) -> set[int]:
    """Offsets where each piece after the first starts (pieces found in order in text)."""
    out, pos = set(), 0
    for i, p in enumerate(pieces):
        at = text.find(p, pos)
        if at < 0:
            at = pos  # a splitter that changed the text: count from where we are
        if i:
            out.add(at)
        pos = at + len(p)
    return out


def evaluate(fn, rows: list[dict], repeat: int) -> dict:
    exact, tp, n_pred, n_gold, wrong = 0, 0, 0, 0, []
    for r in rows:
        got = fn(r["text"])
        gold_b, got_b = boundaries(r["text"], r["sentences"]), boundaries(r["text"], got)
        tp += len(gold_b & got_b)
        n_pred += len(got_b)
        n_gold += len(gold_b)
        if got == r["sentences"]:
            exact += 1
        else:
            wrong.append((r["id"], r["kind"], got))
    t0 = time.perf_counter()
    for _ in range(repeat):
        for r in rows:
            fn(r["text"])
    dt = time.perf_counter() - t0
    return {"exact": exact, "n": len(rows), "precision": tp / max(n_pred, 1), "recall": tp / max(n_gold, 1),
            "per_second": repeat * len(rows) / dt, "wrong": wrong}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE)
    ap.add_argument("--repeat", type=int, default=200, help="passes over the file for the speed column")
    args = ap.parse_args(argv)
    with open(args.file, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    results = {name: evaluate(fn, rows, args.repeat) for name, fn in splitters().items()}
    print(f"{len(rows)} hand-labelled answers, {sum(len(r['sentences']) for r in rows)} sentences\n")
    print("| splitter | answers split exactly right | boundary precision | boundary recall | answers/s |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['exact']}/{r['n']} ({100 * r['exact'] / r['n']:.0f}%) | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {r['per_second']:,.0f} |")
    for name, r in results.items():
        if r["wrong"]:
            print(f"\n{name} gets wrong:")
            for rid, kind, got in r["wrong"]:
                print(f"  #{rid} ({kind}): {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
