"""Build a tiny NLLB-architecture model for tests and the demo.

No hub access is needed: a sentencepiece BPE vocabulary is trained on the
given text, wrapped in the NLLB tokenizer (with all NLLB language codes as
special tokens), and an M2M100 model with random weights is saved beside it.
Optionally the model is converted for CTranslate2 (int8).

    python tests/tools/tiny_nllb.py --out work/models/tiny-nllb [--ct2]

A development tool (tests, demo, benchmark), not part of the pipeline; the
CTranslate2 conversion itself is the pipeline's (translate/convert_ct2.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# A small built-in corpus so the builder works without any input file.
_BUILTIN = [
    "A dog runs on the green grass near a lake.",
    "Two children are playing with a red ball in the park.",
    "What color is the car parked next to the building?",
    "Is there a cat sitting on the table?",
    "A man in a blue shirt is riding a bicycle down the street.",
    "How many people are standing on the beach?",
    "A woman holds an umbrella while walking in the rain.",
    "The kitchen has white cabinets and a wooden floor.",
    "Describe the image in detail.",
    "A plate of food with vegetables, rice and meat.",
]


def _corpus_lines(corpus: Path | None) -> list[str]:
    lines = list(_BUILTIN)
    if corpus is not None:
        with open(corpus, encoding="utf-8") as f:
            lines += [line.strip() for line in f if line.strip()]
    return lines


def build_tiny_nllb(out_dir: str | Path, corpus: Path | None = None, vocab_size: int = 600,
                    d_model: int = 32, layers: int = 2, seed: int = 0, ct2: bool = False) -> Path:
    import sentencepiece as spm
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer
    from transformers.models.nllb import tokenization_nllb

    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file() and (not ct2 or (out_dir / "ct2" / "model.bin").is_file()):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "corpus.txt"
        lines = _corpus_lines(corpus)
        text.write_text("\n".join(lines * max(1, 200 // len(lines))), encoding="utf-8")
        logging.getLogger().setLevel(logging.ERROR)
        spm.SentencePieceTrainer.train(
            input=str(text), model_prefix=str(Path(tmp) / "sentencepiece.bpe"),
            vocab_size=vocab_size, model_type="bpe", character_coverage=1.0,
            bos_id=0, pad_id=1, eos_id=2, unk_id=3, hard_vocab_limit=False,
            minloglevel=2)
        tokdir = Path(tmp) / "tok"
        tokdir.mkdir()
        shutil.copy(Path(tmp) / "sentencepiece.bpe.model", tokdir / "sentencepiece.bpe.model")
        tok = NllbTokenizer.from_pretrained(
            str(tokdir), src_lang="eng_Latn",
            additional_special_tokens=list(tokenization_nllb.FAIRSEQ_LANGUAGE_CODES))
    torch.manual_seed(seed)
    config = M2M100Config(
        vocab_size=len(tok), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=max(2, d_model // 64), decoder_attention_heads=max(2, d_model // 64), encoder_ffn_dim=d_model * 2,
        decoder_ffn_dim=d_model * 2, max_position_embeddings=1024, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, scale_embedding=True,
        dropout=0.0, attention_dropout=0.0, activation_function="relu")
    model = M2M100ForConditionalGeneration(config).eval()
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    (out_dir / "TINY_MODEL.json").write_text(json.dumps({"random_weights": True, "seed": seed}))
    if ct2:
        from translate.convert_ct2 import convert_ct2
        convert_ct2(out_dir, out_dir / "ct2", quantization="int8")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--corpus", type=Path, default=None, help="extra text (one segment a line) for the vocabulary")
    ap.add_argument("--vocab-size", type=int, default=600)
    ap.add_argument("--ct2", action="store_true", help="also convert for CTranslate2 into OUT/ct2")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    path = build_tiny_nllb(args.out, args.corpus, args.vocab_size, ct2=args.ct2)
    print(f"tiny NLLB model written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
