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

--shape builds a random-weight model of a real NLLB-200 shape instead, without
downloading anything: nllb-200-distilled-600M (12+12 layers, d_model 1024,
FFN 4096, 16 heads), nllb-200-distilled-1.3B (24+24, 1024, 8192, 16) or
nllb-200-3.3B (24+24, 2048, 8192, 16), all with the real 256,206-entry
vocabulary: a small sentencepiece vocabulary trained on the corpus
(tests/tools/tiny_nllb.py) padded with zero rows to the real size, so every
embedding lookup and every output projection costs what the real model's does
(a zero row scores 0 and is never the argmax next to the random real rows).
The end-of-sentence row is zeroed too, so no row stops early on any backend:
every batch decodes to its length cap (length_factor x longest input + extra),
and the sides differ only in how they batch, not in when random weights
happen to stop.
--layers/--d-model/--ffn/--heads/--vocab-size override single dimensions
(the CI test scales the 600M shape down). On a GPU (--device cuda, or auto
where one is visible) the sides are: the plain loop in float16; the engine
with transformers in float16 and in bfloat16; the engine with CTranslate2 in
float16. On CPU: plain loop float32, engine hf float32, ctranslate2 int8.
Besides texts/s (the end-to-end speedup, dedupe included), each side reports
generated tokens/s (the token ids its model generated, counted at the model's
generate / translate_batch call, rejected outputs included): that is R in the
GPU-hours formula of docs/scaling.md. --max-batch-tokens sets the engine's token budget
per batch (on a GPU the default 4096 leaves it under-used).

    python tests/tools/bench_translate.py --shape nllb-200-distilled-1.3B --device cuda
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

# The real NLLB-200 checkpoints' dimensions (their config.json on the hub).
NLLB_VOCAB = 256206
NLLB_SHAPES = {
    "nllb-200-distilled-600M": {"layers": 12, "d_model": 1024, "ffn": 4096, "heads": 16},
    "nllb-200-distilled-1.3B": {"layers": 24, "d_model": 1024, "ffn": 8192, "heads": 16},
    "nllb-200-3.3B": {"layers": 24, "d_model": 2048, "ffn": 8192, "heads": 16},
}


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


def build_shaped_nllb(out_dir: Path, corpus: Path, dims: dict, device: str, seed: int = 0) -> Path:
    """A random-weight M2M100 (NLLB) model with ``dims`` (layers, d_model, ffn,
    heads, vocab) and a tokenizer trained on ``corpus``, whose vocabulary is
    padded with zero rows up to ``dims['vocab']``. float16 where built on a GPU."""
    import torch
    from transformers import AutoTokenizer, M2M100Config, M2M100ForConditionalGeneration
    from tests.tools.tiny_nllb import build_random_nllb

    tok_dir = build_random_nllb(out_dir / "tokenizer_source", corpus=corpus, vocab_size=8000, d_model=16, layers=1)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    config = M2M100Config(
        vocab_size=max(dims["vocab"], len(tok)), d_model=dims["d_model"], encoder_layers=dims["layers"],
        decoder_layers=dims["layers"], encoder_attention_heads=dims["heads"], decoder_attention_heads=dims["heads"],
        encoder_ffn_dim=dims["ffn"], decoder_ffn_dim=dims["ffn"], max_position_embeddings=1024, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, scale_embedding=True, dropout=0.0,
        attention_dropout=0.0, activation_function="relu")
    torch.manual_seed(seed)
    with torch.device(device):
        model = M2M100ForConditionalGeneration(config).eval()
    with torch.no_grad():
        emb = model.get_input_embeddings().weight   # tied: the output projection too
        emb[len(tok):] = 0
        # A zero end-of-sentence row scores 0, below the best random row, so no
        # row ends early on any backend: every batch decodes to its length cap.
        emb[tok.eos_token_id] = 0
    if device.startswith("cuda"):
        model.half()
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    del model
    return out_dir


class GeneratedTokens:
    """Counts the token ids a backend's model generates (the forced language code
    and padding excluded), by wrapping the hf model's ``generate`` or the
    CTranslate2 translator's ``translate_batch``: the decoder's real work, which
    re-tokenising decoded text cannot see (random weights often produce special
    tokens, which decoding drops)."""

    def __init__(self, backend):
        self.count = 0
        if hasattr(backend, "translator"):
            backend.translator = _CountingTranslator(backend.translator, self)
        else:
            inner, pad = backend.model.generate, backend.model.config.pad_token_id

            def generate(*args, **kwargs):
                out = inner(*args, **kwargs)
                self.count += int((out[:, 2:] != pad).sum())
                return out
            backend.model.generate = generate


class _CountingTranslator:
    def __init__(self, translator, counter: GeneratedTokens):
        self.translator, self.counter = translator, counter

    def translate_batch(self, *args, **kwargs):
        results = self.translator.translate_batch(*args, **kwargs)
        self.counter.count += sum(max(0, len(r.hypotheses[0]) - 1) for r in results)
        return results


def plain_loop(model_dir: str, texts, tgts, cfg, batch_size=256, device="cpu",
               dtype="float32") -> tuple[float, int]:
    """Seconds and generated tokens of the plain loop (tokens decoded to text as
    a user would, but counted as ids)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    from common.languages import nllb_code
    tok = AutoTokenizer.from_pretrained(model_dir, src_lang="eng_Latn")
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
    start = model.config.decoder_start_token_id
    with torch.inference_mode():   # untimed warm-up: CUDA context, kernels, allocator
        enc = tok(texts[:2], return_tensors="pt", padding=True).to(device)
        prefix = torch.tensor([[start, tok.convert_tokens_to_ids(nllb_code(t))] for t in tgts[:2]], device=device)
        model.generate(**enc, decoder_input_ids=prefix, max_new_tokens=4, num_beams=1, do_sample=False)
    outputs: list[str] = []
    tokens = 0
    _sync(device)
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True).to(device)
        longest = enc["input_ids"].shape[1]
        cap = min(cfg["max_new_tokens"], int(cfg["length_factor"] * longest + cfg["length_extra"]))
        prefix = torch.tensor([[start, tok.convert_tokens_to_ids(nllb_code(t))] for t in tgts[i:i + batch_size]],
                              device=device)
        with torch.inference_mode():
            out = model.generate(**enc, decoder_input_ids=prefix, max_new_tokens=cap, num_beams=1, do_sample=False)
        outputs += tok.batch_decode(out[:, 2:], skip_special_tokens=True)
        tokens += int((out[:, 2:] != model.config.pad_token_id).sum())
    _sync(device)
    seconds = time.perf_counter() - t0
    del model
    return seconds, tokens


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def engine_run(backend: str, model_dir: Path, texts, tgts, device="cpu",
               dtype="auto", max_batch_tokens: int | None = None) -> tuple[float, dict, int]:
    import copy
    from common.languages import nllb_code
    from translate.engine import TRANSLATION_DEFAULTS, Engine
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    cfg.update(backend=backend, model=str(model_dir), ct2_model=str(model_dir / "ct2"), device=device,
               dtype=dtype, cache="", progress=False)
    if max_batch_tokens:
        cfg["max_batch_tokens"] = max_batch_tokens
    engine = Engine(cfg)
    # Untimed warm-up on the backend itself (not the engine, whose counts stay clean).
    engine.backend.translate_batch(texts[:2], "eng_Latn", [nllb_code(t) for t in tgts[:2]], 4)
    generated = GeneratedTokens(engine.backend)
    _sync(device)
    t0 = time.perf_counter()
    engine.translate(texts, tgts)
    _sync(device)
    dt = time.perf_counter() - t0
    s = engine.summary()
    engine.close()
    return dt, s, generated.count


def model_dims(args) -> dict | None:
    """The dimensions of the model to build: a named NLLB-200 shape, else the
    small default; single dimensions overridden by the options given."""
    base = dict(NLLB_SHAPES[args.shape], vocab=NLLB_VOCAB) if args.shape else \
        {"layers": 4, "d_model": 512, "ffn": 1024, "heads": 8, "vocab": 8000}
    for key, value in (("layers", args.layers), ("d_model", args.d_model), ("ffn", args.ffn),
                       ("heads", args.heads), ("vocab", args.vocab_size)):
        if value is not None:
            base[key] = value
    return base


def sides_for(device: str) -> list[tuple[str, str, str]]:
    """(name, backend, dtype) of every side; "plain" is the plain loop."""
    if device.startswith("cuda"):
        return [("plain", "plain", "float16"), ("hf_fp16", "hf", "float16"), ("hf_bf16", "hf", "bfloat16"),
                ("ct2_fp16", "ctranslate2", "float16")]
    return [("plain", "plain", "float32"), ("hf", "hf", "float32"), ("ct2", "ctranslate2", "int8")]


def chosen_sides(device: str, names: str | None) -> list[tuple[str, str, str]]:
    """The sides named in ``--sides`` (comma-separated), else every side of the device."""
    every = sides_for(device)
    if not names:
        return every
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(wanted) - {name for name, _, _ in every})
    if unknown or "plain" not in wanted:
        sys.exit(f"error: --sides takes plain (always) and any of {', '.join(n for n, _, _ in every[1:])} "
                 f"on {device}; got {names!r}")
    return [side for side in every if side[0] in wanted]


def build_model(args, dims: dict, texts: list[str], tmp: Path, device: str, ct2: bool = True) -> Path:
    from tests.tools.tiny_nllb import build_random_nllb
    from translate.convert_ct2 import convert_ct2
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n".join(texts), encoding="utf-8")
    if args.shape:
        model = build_shaped_nllb(tmp / "model", corpus, dims, device, args.seed)
        if ct2:
            convert_ct2(model, model / "ct2", quantization="float16" if device.startswith("cuda") else "int8")
        return model
    return build_random_nllb(tmp / "tiny", corpus=corpus, vocab_size=dims["vocab"], d_model=dims["d_model"],
                           layers=dims["layers"], ct2=ct2)


def run_sides(model: Path, texts, tgts, device: str, repeat: int, sides: list[tuple[str, str, str]],
              max_batch_tokens: int | None = None) -> dict:
    """Each side's best time over ``repeat`` alternating rounds (a load spike on a
    shared machine then hurts one sample, not one side of a ratio), its outputs'
    tokens. Each timed call starts with an untimed warm-up. An engine side that
    cannot run here (say CTranslate2 without the CUDA libraries it was built
    for) is reported with its error, and the others still run."""
    from translate.engine import TRANSLATION_DEFAULTS
    best: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for _ in range(repeat):
        for name, backend, dtype in sides:
            if name in failed:
                continue
            if backend == "plain":
                t, tokens = plain_loop(str(model), texts, tgts, TRANSLATION_DEFAULTS, device=device, dtype=dtype)
                summary = {}
            else:
                try:
                    t, summary, tokens = engine_run(backend, model, texts, tgts, device, dtype, max_batch_tokens)
                except Exception as e:  # noqa: BLE001  (reported in the results; the run exits 1)
                    failed[name] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
                    print(f"bench: side {name} failed: {failed[name]}", file=sys.stderr)
                    continue
            if name not in best or t < best[name]["seconds"]:
                best[name] = {"seconds": t, "tokens": tokens, "summary": summary, "dtype": dtype}
    for name, error in failed.items():
        best[name] = {"error": error}
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="NLLB folder (with ct2/ inside for ctranslate2)")
    ap.add_argument("--shape", choices=sorted(NLLB_SHAPES), default=None,
                    help="build a random-weight model of this real NLLB-200 shape (256,206 vocabulary)")
    ap.add_argument("--device", default="auto", help="auto (a GPU when visible) | cpu | cuda | cuda:N")
    ap.add_argument("--per-source", type=int, default=SHIPPED_PER_SOURCE,
                    help=f"texts per source (the shipped corpus holds {SHIPPED_PER_SOURCE} each)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--d-model", type=int, default=None, help="override the built model's width")
    ap.add_argument("--layers", type=int, default=None, help="override its encoder and decoder layers (each)")
    ap.add_argument("--ffn", type=int, default=None, help="override its feed-forward width (--shape only)")
    ap.add_argument("--heads", type=int, default=None, help="override its attention heads (--shape only)")
    ap.add_argument("--vocab-size", type=int, default=None, help="override its vocabulary size")
    ap.add_argument("--max-batch-tokens", type=int, default=None,
                    help="the engine's translation.max_batch_tokens (default: the config's, 4096)")
    ap.add_argument("--sides", default=None,
                    help="comma-separated sides to run (plain always; on CPU hf, ct2; on a GPU hf_fp16, hf_bf16, "
                         "ct2_fp16); default: all")
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
    from common.devices import resolve_device
    from common.languages import assign_languages
    device = resolve_device(args.device, "--device")
    texts = load_corpus(args.corpus, args.per_source)
    tgts = assign_languages(len(texts), args.seed, exclude=["en"])
    dup = 1 - len(set(zip(texts, tgts))) / len(texts)
    dims = model_dims(args) if args.model is None else None
    sides = chosen_sides(device, args.sides)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_model(args, dims, texts, Path(tmp), device,
                                          ct2=any(b == "ctranslate2" for _, b, _ in sides))
        results = run_sides(model, texts, tgts, device, args.repeat, sides, args.max_batch_tokens)
    report(args, dims, device, texts, dup, results)
    if any("error" in side for side in results.values()):
        sys.exit(1)


def report(args, dims, device: str, texts: list[str], dup: float, sides: dict) -> None:
    plain = sides["plain"]["seconds"]
    res = {
        "texts": len(texts), "duplicate_rate": round(dup, 3), "device": device, "cores": os.cpu_count(),
        "unique_segments": next((s["summary"].get("unique") for s in sides.values() if s.get("summary")), None),
        "model": (str(args.model) if args.model else
                  f"random-weight NLLB{' ' + args.shape if args.shape else ''} layers={dims['layers']}+{dims['layers']} "
                  f"d_model={dims['d_model']} ffn={dims['ffn'] if args.shape else dims['d_model'] * 2} "
                  f"heads={dims['heads'] if args.shape else max(2, dims['d_model'] // 64)} vocab={dims['vocab']}"),
        "plain_texts_per_s": round(len(texts) / plain, 1),
        "plain_tokens_per_s": round(sides["plain"]["tokens"] / plain, 1),
    }
    for name, side in sides.items():
        if name == "plain":
            continue
        key = name
        if "error" in side:
            res[f"engine_{key}_error"] = side["error"]
            continue
        res[f"engine_{key}_texts_per_s"] = round(len(texts) / side["seconds"], 1)
        res[f"engine_{key}_tokens_per_s"] = round(side["tokens"] / side["seconds"], 1)
        res[f"speedup_{key}"] = round(plain / side["seconds"], 2)
    print(f"bench: {res['model']} on {device}; {res['texts']} texts (duplicate rate {dup:.1%}); plain loop "
          f"{res['plain_texts_per_s']} texts/s, {res['plain_tokens_per_s']} generated tokens/s; " + "; ".join(
              f"engine {k} {res[f'engine_{k}_texts_per_s']} texts/s ({res[f'speedup_{k}']}x), "
              f"{res[f'engine_{k}_tokens_per_s']} tokens/s" if f"engine_{k}_error" not in res else
              f"engine {k} failed" for k in sides if k != "plain"))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
