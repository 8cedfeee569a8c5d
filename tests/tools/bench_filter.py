"""The CapFilt filter against plain one-process spaCy, on the same captions, in one run.

    python tests/tools/bench_filter.py [--n 20000] [--n-process 2] [--repeat 2]   # make bench-filter

The captions are real-style (tests/tools/synthetic.py: 20,000 rows hold about
9,100 distinct captions), written as the raw BLIP JSON array. Three timings,
alternated ``--repeat`` times (best of each kept, so a load spike on a shared
machine hurts one sample rather than one side of a ratio):

- plain: ``nlp.pipe(captions, batch_size)`` in this process, every row, the
  Docs consumed and dropped (no phrase extraction: the strict baseline);
- filter, every row parsed (``dedupe=False``): ``pretrain/filter.py``'s whole
  run (two reads of the JSON file, the worker processes, phrase extraction,
  the index, the sample and the output file); its rate over the plain rate is
  the parallel speedup before deduplication;
- filter as shipped (each distinct caption parsed once): its time against the
  previous one is the deduplication gain;
- for reference, ``plain`` on ``--n-process`` slices at once in as many
  forked processes: the speedup the machine gives that many processes at that
  moment (on a shared machine, less than the number of cores).

Both sides use the same loaded pipeline (``phrase_index.load_spacy``; the load
is timed separately and left out of both), and the two filter runs must write
byte-identical output and index files.
"""
from __future__ import annotations

import argparse
import copy
import filecmp
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def plain(nlp, texts: list[str], batch_size: int) -> float:
    t = time.perf_counter()
    for _doc in nlp.pipe(texts, batch_size=batch_size):
        pass
    return time.perf_counter() - t


def plain_in_parallel(nlp, texts: list[str], batch_size: int, n: int) -> float:
    """``plain`` on n slices at once in n forked processes: what the machine
    gives n processes right now (the ceiling of any parallel speedup)."""
    import multiprocessing
    parts = [texts[i::n] for i in range(n)]
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(n) as pool:
        pool.starmap(plain, [(nlp, part, batch_size) for part in parts])
    return time.perf_counter() - t


def filter_run(nlp, src: Path, out: Path, n_process: int, batch_size: int, dedupe: bool) -> tuple[float, dict]:
    from common.report import Report
    from pretrain import filter as flt
    from pretrain import phrase_index as pix
    from pretrain.capfilt_config import DEFAULTS

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    fc = copy.deepcopy(DEFAULTS["filter"])
    fc.update(input=str(src), output=str(out / "filtered.jsonl"), index_dir=str(out / "index"),
              spacy_model="en_core_web_sm", n_process=n_process, batch_size=batch_size)
    report = Report("bench")
    t = time.perf_counter()
    extract = pix.spacy_extractor(nlp, n_process, batch_size, fc["stopwords"])
    flt.run(fc, report, extract=extract, progress=False, dedupe=dedupe)
    return time.perf_counter() - t, dict(report.extra)


def same_files(a: Path, b: Path) -> bool:
    names = ["filtered.jsonl", "index/phrases.txt", "index/offsets.npy", "index/captions.npy"]
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="captions (rows of the input array)")
    ap.add_argument("--n-process", type=int, default=2, help="the filter's worker processes (filter.n_process)")
    ap.add_argument("--batch-size", type=int, default=256, help="spaCy batch size, both sides (filter.batch_size)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    from pretrain import phrase_index as pix
    from pretrain.capfilt_config import clean_text
    from tests.tools import synthetic

    tmp = Path(tempfile.mkdtemp(prefix="bench_filter_"))
    try:
        src = synthetic.write_capfilt_array(tmp / "ccs_synthetic_filtered_large.json", args.n, args.seed)
        texts = [clean_text(r["caption"]) for r in json.loads(src.read_text(encoding="utf-8"))]
        distinct = len(set(texts))
        t = time.perf_counter()
        nlp = pix.load_spacy("en_core_web_sm")
        load_s = time.perf_counter() - t
        print(f"{args.n} captions ({distinct} distinct), spaCy load {load_s:.1f}s, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
        best = {"plain": float("inf"), "every_row": float("inf"), "dedupe": float("inf"),
                "plain_parallel": float("inf")}
        for rep in range(args.repeat):
            times = {"plain": plain(nlp, texts, args.batch_size)}
            times["every_row"], _ = filter_run(nlp, src, tmp / "every_row", args.n_process, args.batch_size, False)
            times["dedupe"], extra = filter_run(nlp, src, tmp / "dedupe", args.n_process, args.batch_size, True)
            times["plain_parallel"] = plain_in_parallel(nlp, texts, args.batch_size, args.n_process)
            if not same_files(tmp / "every_row", tmp / "dedupe"):
                sys.exit("error: the filter's output differs with and without deduplication")
            print(f"  run {rep + 1}: " + ", ".join(f"{k} {v:.2f}s = {args.n / v:.0f} captions/s"
                                                   for k, v in times.items()), file=sys.stderr)
            best = {k: min(best[k], times[k]) for k in best}
        res = {
            "captions": args.n, "distinct": distinct, "n_process": args.n_process, "cpus": os.cpu_count(),
            "plain_captions_per_s": round(args.n / best["plain"], 1),
            "filter_every_row_captions_per_s": round(args.n / best["every_row"], 1),
            "filter_captions_per_s": round(args.n / best["dedupe"], 1),
            "ratio_before_dedupe": round(best["plain"] / best["every_row"], 2),
            "dedupe_gain": round(best["every_row"] / best["dedupe"], 2),
            "ratio_with_dedupe": round(best["plain"] / best["dedupe"], 2),
            "captions_parsed": extra.get("captions_parsed"), "spacy_load_s": round(load_s, 2),
            "machine_ceiling": round(best["plain"] / best["plain_parallel"], 2),
            "load_average_end": round(os.getloadavg()[0], 1),
        }
        print(f"bench-filter: plain spaCy {res['plain_captions_per_s']}/s; filter (every row parsed) "
              f"{res['filter_every_row_captions_per_s']}/s = {res['ratio_before_dedupe']}x; dedupe gain "
              f"{res['dedupe_gain']}x ({distinct} of {args.n} captions distinct); filter as shipped "
              f"{res['filter_captions_per_s']}/s = {res['ratio_with_dedupe']}x; plain in {args.n_process} "
              f"processes at once: {res['machine_ceiling']}x (the machine's ceiling in this run)")
        print(json.dumps(res))
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
