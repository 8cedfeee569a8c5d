"""CapFilt's filter with NLTK's stop words (the default, the original rule) against spaCy's.

    python tests/tools/compare_stopwords.py [--n 20000] [--seed 0] [--source synthetic|flickr30k]
                                            [--min-captions 10] [--max-captions 30] [--json out.json]

``synthetic``: ``--n`` real-style captions (tests/tools/synthetic.py, as
bench_filter.py uses; 20,000 rows hold about 9,100 distinct captions).
``flickr30k``: every English caption of Flickr30k's valid and test annotation
files under ``../shared/real`` (real text; about 10,000), BLIP-style (lower
case, no final period).

Each distinct caption is parsed once with spaCy; its noun phrases are taken
under both stop-word lists from the same parse, then ``pretrain/filter.py``'s
own ``run`` (index, thresholds, seeded sample, output) runs once per list on
the same input. Prints how many captions get other phrases, the phrases kept
by one list only, the sample's size and overlap, and the words behind the
difference. A development tool: no product code imports it.
"""
from __future__ import annotations

import argparse
import collections
import copy
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

LISTS = ("nltk", "spacy")


def flickr30k_captions() -> list[str]:
    from tests.conftest import SHARED_REAL
    out = []
    for name in ("valid_ann.jsonl", "test_ann.jsonl"):
        path = SHARED_REAL / "iglue" / "datasets" / "flickr30k" / "annotations" / name
        if not path.is_file():
            sys.exit(f"error: {path} not found (the real Flickr30k annotations of ../shared/real)")
        with open(path, encoding="utf-8") as f:
            for line in f:
                out += json.loads(line)["sentences"]
    return [re.sub(r"\s+", " ", c).strip().rstrip(".").strip().lower() for c in out]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=("synthetic", "flickr30k"), default="synthetic")
    ap.add_argument("--n", type=int, default=20000, help="captions (synthetic source)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-captions", type=int, default=10)
    ap.add_argument("--max-captions", type=int, default=30)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    from common.report import Report
    from pretrain import filter as flt
    from pretrain import phrase_index as pix
    from pretrain.capfilt_config import DEFAULTS, clean_text

    if args.source == "synthetic":
        from tests.tools import synthetic
        captions = synthetic.captions(args.n, args.seed)
    else:
        captions = flickr30k_captions()
    captions = [clean_text(c) for c in captions]
    distinct = list(dict.fromkeys(captions))
    nlp = pix.load_spacy("en_core_web_sm")
    words = {name: pix.load_stopwords(name) for name in LISTS}
    phrases: dict[str, dict[str, list[str]]] = {name: {} for name in LISTS}
    dropped_by_spacy_only: collections.Counter = collections.Counter()
    for doc in nlp.pipe(distinct, batch_size=256):
        for name in LISTS:
            phrases[name][doc.text] = pix.doc_phrases(doc, words[name])
        for chunk in doc.noun_chunks:
            for t in chunk:
                if t.is_stop and t.lower_ not in words["nltk"] and not (t.is_punct or t.is_space):
                    dropped_by_spacy_only[t.lower_] += 1

    tmp = Path(tempfile.mkdtemp(prefix="compare_stopwords_"))
    try:
        src = tmp / "captions.json"
        src.write_text(json.dumps([{"url": f"http://h/{i:08d}.jpg", "caption": c} for i, c in enumerate(captions)]),
                       encoding="utf-8")
        runs = {}
        for name in LISTS:
            fc = copy.deepcopy(DEFAULTS["filter"])
            fc.update(input=str(src), output=str(tmp / f"{name}.jsonl"), index_dir=str(tmp / f"index_{name}"),
                      spacy_model="en_core_web_sm", stopwords=name, n_process=1, seed=args.seed,
                      min_captions=args.min_captions, max_captions=args.max_captions)

            def extract(pairs, table=phrases[name]):
                for caption, idx in pairs:
                    yield table[caption], idx
            report = Report(name)
            flt.run(fc, report, extract=extract, progress=False)
            index = pix.load_index(Path(fc["index_dir"]), pix.cache_key(src, "en_core_web_sm", name))
            counts = index.counts()
            kept = {p: int(c) for p, c in zip(index.phrases, counts) if c >= args.min_captions}
            rows = [json.loads(line) for line in Path(fc["output"]).read_text(encoding="utf-8").splitlines()]
            runs[name] = {"stats": dict(report.extra), "kept": kept, "all": set(index.phrases),
                          "sample": {r["url"] for r in rows}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    differ_distinct = [c for c in distinct if phrases["nltk"][c] != phrases["spacy"][c]]
    differ_set = set(differ_distinct)
    differ_rows = sum(1 for c in captions if c in differ_set)
    a, b = runs["nltk"], runs["spacy"]
    only_nltk = sorted(set(a["kept"]) - set(b["kept"]), key=lambda p: -a["kept"][p])
    only_spacy = sorted(set(b["kept"]) - set(a["kept"]), key=lambda p: -b["kept"][p])
    both = a["sample"] & b["sample"]
    res = {
        "source": args.source, "captions": len(captions), "distinct": len(distinct),
        "min_captions": args.min_captions, "max_captions": args.max_captions, "seed": args.seed,
        "captions_with_other_phrases": differ_rows, "distinct_captions_with_other_phrases": len(differ_distinct),
        "phrases_total": {n: runs[n]["stats"]["phrases_total"] for n in LISTS},
        "phrases_kept": {n: runs[n]["stats"]["phrases_kept"] for n in LISTS},
        "kept_only_nltk": len(only_nltk), "kept_only_spacy": len(only_spacy),
        "kept_only_nltk_top": [[p, a["kept"][p]] for p in only_nltk[:15]],
        "kept_only_spacy_top": [[p, b["kept"][p]] for p in only_spacy[:15]],
        "captions_with_a_phrase": {n: runs[n]["stats"]["captions_with_a_phrase"] for n in LISTS},
        "sample": {n: len(runs[n]["sample"]) for n in LISTS},
        "sample_both": len(both), "sample_only_nltk": len(a["sample"] - b["sample"]),
        "sample_only_spacy": len(b["sample"] - a["sample"]),
        "sample_jaccard": round(len(both) / max(1, len(a["sample"] | b["sample"])), 3),
        "spacy_only_stopwords_top": dropped_by_spacy_only.most_common(20),
        "examples": [[c, phrases["nltk"][c], phrases["spacy"][c]] for c in differ_distinct[:8]],
    }
    print(json.dumps(res, indent=1, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
