"""Build a tiny random-weight MADLAD-400-like model (T5) for tests, with no hub access.

A sentencepiece unigram vocabulary is trained on a few built-in lines (plus every
printable ASCII character), with the target tags of every language of the table
(``<2de>``, ``<2he>``, ... from common/madlad_codes.tsv) as user-defined pieces,
as in MADLAD's own vocabulary; it is wrapped in the transformers T5 tokenizer and
a T5ForConditionalGeneration with random weights is saved next to it. The output
head never picks <pad>, </s> or <unk> (their rows are zero, every other logit is
drawn from a normal distribution), so an output runs to the length cap: gibberish,
but a deterministic function of the input ids, which is what the tests compare
(transformers against CTranslate2, and one target tag against another).

    python tests/tools/tiny_madlad.py --out DIR [--ct2]      # DIR/ct2: float32 conversion
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import string
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

KIND = {"kind": "tiny-madlad", "version": 1}
_LINES = [
    "A dog runs on the green grass near a lake.",
    "Two children are playing with a red ball in the park.",
    "What color is the car parked next to the building?",
    "Is there a cat sitting on the table?",
    "A woman holds an umbrella while walking in the rain.",
    "Describe the image in detail.",
]


def tags(exclude: tuple[str, ...] = ()) -> list[str]:
    """The target tag of every language of the table (bar ``exclude``, our codes)."""
    from common.languages import load_languages, model_code
    return [model_code(c, "madlad") for c in load_languages() if c not in exclude]


def _tokenizer(tmp: Path, exclude: tuple[str, ...]):
    import sentencepiece as spm
    from transformers import T5Tokenizer

    chars = " ".join(c for c in string.printable if not c.isspace())
    (tmp / "corpus.txt").write_text("\n".join(_LINES * 30 + [chars]), encoding="utf-8")
    logging.getLogger().setLevel(logging.ERROR)
    spm.SentencePieceTrainer.train(
        input=str(tmp / "corpus.txt"), model_prefix=str(tmp / "spiece"), vocab_size=300,
        model_type="unigram", character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        user_defined_symbols=tags(exclude), hard_vocab_limit=False, minloglevel=2)
    folder = tmp / "tok"
    folder.mkdir()
    shutil.copy(tmp / "spiece.model", folder / "spiece.model")
    return T5Tokenizer.from_pretrained(str(folder), extra_ids=0)


def build_tiny_madlad(out_dir: str | Path, ct2: bool = False, seed: int = 0,
                      exclude: tuple[str, ...] = ()) -> Path:
    """The model in out_dir (and, with ct2, its float32 CTranslate2 conversion in
    out_dir/ct2); reused when already there. ``exclude``: languages whose tag the
    vocabulary leaves out."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    out_dir = Path(out_dir)
    kind = {**KIND, "seed": seed, "exclude": list(exclude)}
    marker = out_dir / "TINY_MODEL.json"
    if marker.is_file() and json.loads(marker.read_text()) == kind and (not ct2 or (out_dir / "ct2" / "model.bin").is_file()):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tok = _tokenizer(Path(tmp), tuple(exclude))
    torch.manual_seed(seed)
    config = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                      num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0)
    model = T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 1.0)
        model.lm_head.weight[:3] = 0.0          # never <pad>, </s>, <unk>: outputs run to the cap
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    marker.write_text(json.dumps(kind))
    if ct2:
        from translate.convert_ct2 import convert_ct2
        convert_ct2(out_dir, out_dir / "ct2", quantization="float32")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--ct2", action="store_true", help="also convert for CTranslate2 (float32) into OUT/ct2")
    args = ap.parse_args(argv)
    print(f"tiny MADLAD model written to {build_tiny_madlad(args.out, ct2=args.ct2)}", file=sys.stderr)


if __name__ == "__main__":
    main()
