"""Engine speed against a plain translation loop, on real question and caption text.

Plain loop: input order, fixed batches of 256, no dedupe, no length sorting,
HF generate. Engine: the same model (hf backend, then ctranslate2 on the same
weights), dedupe, sentence split, length-sorted token-budget batches. Both use
the same generation-length rule (length_factor * longest input + extra).
The corpus: 1,000 real texts shipped in tests/fixtures/bench/corpus.jsonl (250
each of GQA questions, Flickr30k and xFlickrCO captions and POPE questions; see
the README there for where they come from), each text given a language by mC4
share (English excluded, so every text needs translating).

    python tests/tools/bench_translate.py [--model DIR] [--per-source N]   # make bench
    python tests/tools/bench_translate.py --write-corpus [--real ../shared/real]

--write-corpus redraws the shipped file from the real release files (the first
N texts of each source, in file order: the same texts every time).

Without --model, a small random-weight NLLB-architecture model is built
(d_model 512, 4+4 layers, 8k vocabulary: big enough that compute, not Python
overhead, dominates; a real NLLB is far larger still). Its outputs mostly run to the length cap, and both sides
use the same cap rule, so they generate comparable numbers of steps.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO))

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CORPUS = REPO / "tests" / "fixtures" / "bench" / "corpus.jsonl"
REAL = REPO.parent / "shared" / "real"   # only for --write-corpus
SHIPPED_PER_SOURCE = 250


def draw_corpus(real: Path, per_source: int) -> list[dict]:
    """The first ``per_source`` texts of each source in the real release files,
    as rows {"source", "file", "text"}."""
    from common.jsonl import load_json, read_jsonl
    rows: list[dict] = []

    def take(source: str, items: list[tuple[str, str]]) -> None:
        rows.extend({"source": source, "file": f, "text": t} for f, t in items[:per_source])

    gqa = "iglue/datasets/gqa/annotations/testdev.json"
    take("gqa", [(gqa, r["sent"]) for r in load_json(real / gqa)[:per_source]])
    flickr = []
    for split in ("valid_ann.jsonl", "test_ann.jsonl"):
        rel = f"iglue/datasets/flickr30k/annotations/{split}"
        for row in read_jsonl(real / rel):
            flickr += [(rel, t) for t in row["sentences"]]
    take("flickr30k", flickr)
    xf = []
    rel = "iglue/datasets/xFlickrCO/annotations/en/test.jsonl"
    for row in read_jsonl(real / rel):
        xf += [(rel, t) for t in row["sentences"]]
    take("xflickrco", xf)
    pope = []
    for kind in ("adversarial", "popular", "random"):
        rel = f"pope/output/coco/coco_pope_{kind}.json"
        pope += [(rel, r["text"]) for r in read_jsonl(real / rel)]
    take("pope", pope)
    return rows


def load_corpus(path: Path, per_source: int) -> list[str]:
    """The first ``per_source`` texts of each source in the shipped corpus."""
    from common.jsonl import read_jsonl
    by_source: dict[str, list[str]] = {}
    for row in read_jsonl(path):
        by_source.setdefault(row["source"], []).append(row["text"])
    short = [s for s, t in by_source.items() if len(t) < per_source]
    if short:
        print(f"note: {path} holds fewer than {per_source} texts for {', '.join(short)}; using all",
              file=sys.stderr)
    return [t for texts in by_source.values() for t in texts[:per_source]]


def plain_loop(model_dir: str, texts, tgts, cfg, batch_size=256) -> float:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    from common.languages import nllb_code
    tok = AutoTokenizer.from_pretrained(model_dir, src_lang="eng_Latn")
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    start = model.config.decoder_start_token_id
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True)
        longest = enc["input_ids"].shape[1]
        cap = min(cfg["max_new_tokens"], int(cfg["length_factor"] * longest + cfg["length_extra"]))
        prefix = torch.tensor([[start, tok.convert_tokens_to_ids(nllb_code(t))] for t in tgts[i:i + batch_size]])
        with torch.inference_mode():
            out = model.generate(**enc, decoder_input_ids=prefix, max_new_tokens=cap, num_beams=1, do_sample=False)
        tok.batch_decode(out[:, 2:], skip_special_tokens=True)
    return time.perf_counter() - t0


def engine_run(backend: str, model_dir: Path, texts, tgts) -> tuple[float, dict]:
    import copy
    from translate.engine import TRANSLATION_DEFAULTS, Engine
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    cfg.update(backend=backend, model=str(model_dir), ct2_model=str(model_dir / "ct2"), device="cpu",
               dtype="auto", cache="", progress=False)
    engine = Engine(cfg)
    t0 = time.perf_counter()
    engine.translate(texts, tgts)
    dt = time.perf_counter() - t0
    s = engine.summary()
    engine.close()
    return dt, s


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="NLLB folder (with ct2/ inside for ctranslate2)")
    ap.add_argument("--per-source", type=int, default=SHIPPED_PER_SOURCE,
                    help=f"texts per source (the shipped corpus holds {SHIPPED_PER_SOURCE} each)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--d-model", type=int, default=512, help="size of the built model (without --model)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help=f"texts to translate (default: {CORPUS})")
    ap.add_argument("--write-corpus", action="store_true",
                    help="redraw --corpus from --real (the first --per-source texts of each source) and stop")
    ap.add_argument("--real", type=Path, default=REAL, help=f"real release files for --write-corpus (default: {REAL})")
    args = ap.parse_args(argv)
    if args.write_corpus:
        if not args.real.is_dir():
            sys.exit(f"error: real release files not found at {args.real}")
        from common.jsonl import write_jsonl
        n = write_jsonl(args.corpus, draw_corpus(args.real, args.per_source))
        print(f"wrote {n} texts to {args.corpus}", file=sys.stderr)
        return
    if not args.corpus.is_file():
        sys.exit(f"error: bench corpus not found at {args.corpus}")
    from common.languages import assign_languages
    from translate.engine import TRANSLATION_DEFAULTS
    texts = load_corpus(args.corpus, args.per_source)
    tgts = assign_languages(len(texts), args.seed, exclude=["en"])
    dup = 1 - len(set(zip(texts, tgts))) / len(texts)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from tests.tools.tiny_nllb import build_tiny_nllb
            corpus = Path(tmp) / "corpus.txt"
            corpus.write_text("\n".join(texts), encoding="utf-8")
            model = build_tiny_nllb(Path(tmp) / "tiny", corpus=corpus, vocab_size=args.vocab_size,
                                    d_model=args.d_model, layers=args.layers, ct2=True)
        # Alternate the three runs and keep each one's best time: a load spike on
        # this shared machine then hurts one sample, not one side of the ratio.
        plain_s = hf_s = ct2_s = float("inf")
        for _ in range(args.repeat):
            plain_s = min(plain_s, plain_loop(str(model), texts, tgts, TRANSLATION_DEFAULTS))
            t, hf_sum = engine_run("hf", model, texts, tgts)
            hf_s = min(hf_s, t)
            t, ct2_sum = engine_run("ctranslate2", model, texts, tgts)
            ct2_s = min(ct2_s, t)
    res = {
        "texts": len(texts), "duplicate_rate": round(dup, 3), "unique_segments": hf_sum.get("unique"),
        "plain_texts_per_s": round(len(texts) / plain_s, 1),
        "engine_hf_texts_per_s": round(len(texts) / hf_s, 1),
        "engine_ct2_texts_per_s": round(len(texts) / ct2_s, 1),
        "speedup_hf": round(plain_s / hf_s, 2), "speedup_ct2": round(plain_s / ct2_s, 2),
        "model": (f"random-weight NLLB d_model={args.d_model} layers={args.layers} vocab={args.vocab_size}"
                  if args.model is None else str(args.model)),
        "cores": os.cpu_count(),
    }
    print(f"bench: {res['texts']} texts (duplicate rate {dup:.1%}), plain loop {res['plain_texts_per_s']}/s, "
          f"engine hf {res['engine_hf_texts_per_s']}/s ({res['speedup_hf']}x), "
          f"engine ctranslate2 {res['engine_ct2_texts_per_s']}/s ({res['speedup_ct2']}x)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
