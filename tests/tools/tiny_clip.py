"""Build a tiny CLIP model (random weights) for tests and the demo.

No hub access: a byte-level BPE vocabulary (CLIP's ``</w>`` word-end
convention) is trained on the fly, wrapped in the CLIP tokenizer, paired with
a CLIP image processor of size 32, and saved with a CLIPModel of hidden size
32, so ``CLIPModel.from_pretrained`` / ``AutoProcessor.from_pretrained`` load
the folder exactly as they load a hub checkpoint.

    python tests/tools/tiny_clip.py --out work/models/tiny-clip [--corpus captions.txt]
    python tests/tools/tiny_clip.py --set paths.work_dir=demo_work/work   # -> <work_dir>/models/tiny-clip

A development tool (tests and the demo), not part of the pipeline.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

_BUILTIN = [
    "a dog runs on the green grass near a lake",
    "two children are playing with a red ball in the park",
    "a man in a blue shirt is riding a bicycle down the street",
    "a woman holds an umbrella while walking in the rain",
    "the kitchen has white cabinets and a wooden floor",
    "a plate of food with vegetables, rice and meat",
    "a cat sleeping on a sofa next to a window",
    "a train at the station under a cloudy sky",
]
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _train_bpe(lines: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary, trained deterministically.

    The ``tokenizers`` trainer breaks ties between equally frequent pairs in hash
    order, which changes from process to process, so two builds gave different
    merges (and the demo's hard negatives changed). This trainer breaks ties by
    the pair itself: the same lines always give the same vocabulary.
    """
    import collections

    from tokenizers import Regex, normalizers, pre_tokenizers

    # The same normalisation and word split as transformers' CLIPTokenizer, so the
    # trained merges are the ones that tokenizer will apply.
    normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                       normalizers.Lowercase()])
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    freq: collections.Counter = collections.Counter()
    for line in lines:
        for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(line)):
            freq[word] += 1
    words = {w: [*w[:-1], w[-1] + "</w>"] for w in sorted(freq)}
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {BOS: 0, EOS: 1}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size:
        pairs: collections.Counter = collections.Counter()
        for w, syms in words.items():
            for pair in zip(syms, syms[1:]):
                pairs[pair] += freq[w]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merged = best[0] + best[1]
        merges.append(best)
        vocab.setdefault(merged, len(vocab))
        for syms in words.values():
            k = 0
            while k < len(syms) - 1:
                if syms[k] == best[0] and syms[k + 1] == best[1]:
                    syms[k:k + 2] = [merged]
                k += 1
    # Single bytes with the word-end suffix are needed by CLIP's BPE for one-letter words.
    for ch in alphabet:
        vocab.setdefault(ch + "</w>", len(vocab))
    return vocab, merges


def _make_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]], tmp: Path):
    from transformers import CLIPTokenizer

    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:  # the tokenizer takes the vocabulary itself
        return CLIPTokenizer(vocab=vocab, merges=merges)
    else:  # transformers 4: file-based
        (tmp / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n",
                                        encoding="utf-8")
        from transformers import CLIPTokenizerFast
        return CLIPTokenizerFast(vocab_file=str(tmp / "vocab.json"), merges_file=str(tmp / "merges.txt"))


def build_tiny_clip(out_dir: str | Path, corpus: list[str] | None = None, vocab_size: int = 400,
                    hidden: int = 32, layers: int = 2, image_size: int = 32, patch: int = 8,
                    projection: int = 16, seed: int = 0) -> Path:
    """Write a tiny CLIP checkpoint into ``out_dir`` (skipped when one is there)."""
    import torch
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor,
                              CLIPTextConfig, CLIPVisionConfig)

    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file() and (out_dir / "TINY_MODEL.json").is_file():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = _BUILTIN + [c for c in (corpus or []) if c.strip()]
    vocab, merges = _train_bpe(lines * max(1, 50 // len(lines)), vocab_size)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _make_tokenizer(vocab, merges, Path(tmp))
    images = CLIPImageProcessor(size={"shortest_edge": image_size},
                                crop_size={"height": image_size, "width": image_size})
    processor = CLIPProcessor(image_processor=images, tokenizer=tokenizer)
    text_cfg = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                              num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=77,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id, projection_dim=projection)
    vision_cfg = CLIPVisionConfig(hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                                  num_attention_heads=2, image_size=image_size, patch_size=patch,
                                  projection_dim=projection)
    config = CLIPConfig(text_config=text_cfg.to_dict(), vision_config=vision_cfg.to_dict(),
                        projection_dim=projection)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "TINY_MODEL.json").write_text(json.dumps({"random_weights": True, "seed": seed}))
    return out_dir


def _corpus(path: Path | None) -> list[str]:
    """Captions for the vocabulary: a text file (one a line) or a JSONL with 'caption'."""
    corpus: list[str] = []
    if path is None or not path.is_file():
        return corpus
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            text = row.get("caption") if isinstance(row, dict) else None
        except json.JSONDecodeError:
            text = line
        if isinstance(text, str):
            corpus.append(text)
    return corpus


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None,
                    help="output folder (default: ${paths.work_dir}/models/tiny-clip from the match config)")
    ap.add_argument("--corpus", type=Path, default=None,
                    help="captions for the vocabulary (default with the config: match.input when it exists)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config overrides as for match/*.py (used for the default --out and --corpus)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out, corpus = args.out, args.corpus
    if out is None:
        from common.config import build_config
        from match.settings import CONFIG_FILE, DEFAULTS
        cfg = build_config(DEFAULTS, CONFIG_FILE, args.overrides)
        out = cfg.path("paths.work_dir") / "models" / "tiny-clip"
        corpus = corpus or cfg.path("match.input")
    path = build_tiny_clip(out, _corpus(corpus))
    print(f"tiny CLIP model written to {path}", file=sys.stderr)
    print(path)


if __name__ == "__main__":
    main()
