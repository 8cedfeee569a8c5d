"""Build a tiny NLLB-architecture model for tests and the demo, whose output can
be predicted.

No hub access is needed: a sentencepiece BPE vocabulary is trained on a small
built-in text (plus every printable ASCII character), wrapped in the NLLB
tokenizer (all NLLB language codes as special tokens), and an M2M100 model is
saved beside it whose weights are *set*, not trained, so that it translates

    text  ->  "[deu-Latn] text"        (target deu_Latn; marker(code) is the prefix)

token for token: the output is the language marker of the target followed by
the source tokens, except that the piece ``TRIGGER`` ("¤") comes back as the
piece ``ECHO`` ("lalalalalalalala"; the two swap places, but the tokenizer
never makes an ECHO piece from input text). So a translation that ends up on the
wrong row, or in the wrong language, shows, and an input with "¤" comes back
with a runaway repetition that the engine's quality check rejects on purpose.
``expected_translation`` computes the output from the tokenizer alone; the
tests check that both backends (transformers and CTranslate2 int8) produce
exactly it for mixed batches (texts of up to about 200 tokens; segments of up
to 434 tokens, from English and German, were checked by hand).

How the weights do it (d_model 256, one encoder and one decoder layer whose
self-attention and feed-forward blocks are zero, so only the cross-attention
and the output head act):

- Every token has a code ``(e_a - e_b)/sqrt(2)`` on 29 coordinates where the
  sinusoidal position embedding is nearly constant (low-frequency cosines):
  codes of two tokens have a cosine of at most 0.5, and they sum to zero, so the
  layer norms' mean removal leaves them alone. Language codes also carry a
  second code on 15 other such coordinates.
- Cross-attention aligns decoder step ``p`` with source position ``p - 1``:
  keys are the source positions' high-frequency sinusoids, queries the decoder
  positions' sinusoids rotated back by one step, minus a constant, so the right
  position scores exactly 0 and every other one scores below it whatever the
  layer-norm scale of its row. The value is the source token's code, written
  into other coordinates that the output head reads: the decoder emits the token
  it attends to (the source's ``</s>`` ends the output).
- At step 1 the decoder's input is the target language code, whose second code
  the output head maps, with a larger weight, to that language's marker piece.

Text containing a literal NLLB language code token (e.g. "deu_Latn") is outside
what this model copies; ``expected_translation`` refuses it.

    python tests/tools/tiny_nllb.py --out work/models/tiny-nllb [--ct2]
    python tests/tools/tiny_nllb.py --out DIR --random --d-model 512 --layers 4   # benchmark model

``build_random_nllb`` keeps the random-weight model of the translation benchmark
(its outputs run to the length cap, like an untrained model's). A development
tool (tests, demo, benchmark), not part of the pipeline; the CTranslate2
conversion itself is the pipeline's (translate/convert_ct2.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import string
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
TRIGGER = "¤"                  # comes back as ECHO (and ECHO as TRIGGER)
ECHO = "lalalalalalalala"      # a runaway repetition: quality.check says "repetition"
KIND = {"kind": "predictable", "version": 1}
_D = 256                       # d_model
_TOKEN_GAIN, _LANG_GAIN, _OUT_GAIN, _MARKER_GAIN = 2.0, 20.0, 50.0, 10.0
_SHARPNESS, _POSITION_FREQS, _ZERO_FREQS = 10.0, 50, 8


def marker(tgt_nllb: str) -> str:
    """The piece the tiny model puts first when translating into tgt_nllb: "[deu-Latn]"."""
    return "[" + tgt_nllb.replace("_", "-") + "]"


def expected_translation(tokenizer, text: str, tgt_nllb: str, src_nllb: str = "eng_Latn") -> str:
    """What the tiny model returns for one segment: the target's marker, then the
    source tokens with TRIGGER and ECHO swapped, decoded as the backends decode."""
    tokenizer.src_lang = src_nllb
    ids = tokenizer(text)["input_ids"][1:-1]  # without the source code and </s>
    codes = set(tokenizer.convert_tokens_to_ids(_language_codes()))
    if codes & set(ids):
        raise ValueError(f"{text!r} contains a language code token, which the tiny model does not copy")
    trigger, echo = tokenizer.convert_tokens_to_ids([TRIGGER, ECHO])
    swap = {trigger: echo, echo: trigger}
    out = [tokenizer.convert_tokens_to_ids(marker(tgt_nllb))] + [swap.get(i, i) for i in ids]
    return tokenizer.decode(out, skip_special_tokens=True)


def _language_codes() -> list[str]:
    from transformers.models.nllb import tokenization_nllb
    return list(tokenization_nllb.FAIRSEQ_LANGUAGE_CODES)


def _corpus_lines(corpus: Path | None) -> list[str]:
    lines = list(_BUILTIN)
    if corpus is not None:
        with open(corpus, encoding="utf-8") as f:
            lines += [line.strip() for line in f if line.strip()]
    return lines


def _train_tokenizer(lines: list[str], vocab_size: int, tmp: Path, symbols: list[str] | None = None):
    """sentencepiece BPE on lines, wrapped in the NLLB tokenizer."""
    import sentencepiece as spm
    from transformers import NllbTokenizer

    text = tmp / "corpus.txt"
    text.write_text("\n".join(lines * max(1, 200 // len(lines))), encoding="utf-8")
    logging.getLogger().setLevel(logging.ERROR)
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp / "sentencepiece.bpe"),
        vocab_size=vocab_size, model_type="bpe", character_coverage=1.0,
        bos_id=0, pad_id=1, eos_id=2, unk_id=3, hard_vocab_limit=False,
        user_defined_symbols=symbols or [], minloglevel=2)
    tokdir = tmp / "tok"
    tokdir.mkdir()
    shutil.copy(tmp / "sentencepiece.bpe.model", tokdir / "sentencepiece.bpe.model")
    return NllbTokenizer.from_pretrained(str(tokdir), src_lang="eng_Latn",
                                         additional_special_tokens=_language_codes())


def _config(vocab: int, d_model: int, layers: int, heads: int, ffn: int, tied: bool):
    from transformers import M2M100Config
    return M2M100Config(
        vocab_size=vocab, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn, max_position_embeddings=1024, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, scale_embedding=True,
        dropout=0.0, attention_dropout=0.0, activation_function="relu", tie_word_embeddings=tied)


def _is_built(out_dir: Path, ct2: bool, kind: dict) -> bool:
    marker_file = out_dir / "TINY_MODEL.json"
    return (marker_file.is_file() and json.loads(marker_file.read_text()) == kind
            and (not ct2 or (out_dir / "ct2" / "model.bin").is_file()))


def _save(model, tok, out_dir: Path, kind: dict, ct2: bool) -> Path:
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    (out_dir / "TINY_MODEL.json").write_text(json.dumps(kind))
    if ct2:
        from translate.convert_ct2 import convert_ct2
        convert_ct2(out_dir, out_dir / "ct2", quantization="int8")
    return out_dir


def build_tiny_nllb(out_dir: str | Path, corpus: Path | None = None, ct2: bool = False) -> Path:
    """The predictable model (see the module docstring) in out_dir; with ct2, also
    converted for CTranslate2 (int8) into out_dir/ct2. Reused when already there."""
    import torch
    from transformers import M2M100ForConditionalGeneration

    out_dir = Path(out_dir)
    if _is_built(out_dir, ct2, KIND):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    chars = " ".join(c for c in string.printable if not c.isspace())
    with tempfile.TemporaryDirectory() as tmp:
        # User-defined pieces are never merged with others: " ¤" is "▁", "¤".
        symbols = [marker(c) for c in _language_codes()] + [ECHO, TRIGGER]
        tok = _train_tokenizer(_corpus_lines(corpus) + [chars, "äöüßéèàçñ"], 600, Path(tmp), symbols)
    model = M2M100ForConditionalGeneration(_config(len(tok), _D, 1, 1, 8, tied=False)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if "layer_norm" in name and name.endswith("weight") else 0.0)
        _set_weights(model, tok)
    return _save(model, tok, out_dir, KIND, ct2)


def _pair_codes(n: int, k: int):
    """n unit vectors (e_a - e_b)/sqrt(2), a != b < k, as (a, b) pairs."""
    pairs = [(a, b) for a in range(k) for b in range(k) if a != b][:n]
    if len(pairs) < n:
        raise ValueError(f"{n} codes do not fit on {k} coordinates")
    return pairs


def _layout(tok) -> dict:
    """Which coordinates carry what (sin_i = i, cos_i = h + i for frequency i)."""
    h, vocab, langs = _D // 2, len(tok), len(_language_codes())
    k_tok = next(k for k in range(2, h) if k * (k - 1) >= vocab)
    k_lang = next(k for k in range(2, h) if k * (k - 1) >= langs)
    if k_tok + k_lang > h - _POSITION_FREQS - _ZERO_FREQS:
        raise ValueError(f"a vocabulary of {vocab} is too large for the predictable tiny model")
    low = list(range(h - 1, -1, -1))  # frequencies, lowest first
    return {"token": [h + i for i in low[:k_tok]], "lang": [h + i for i in low[k_tok:k_tok + k_lang]],
            "zero": [i for i in low[:_ZERO_FREQS]], "out": list(range(k_tok)),
            "freqs": list(range(_POSITION_FREQS)), "k_tok": k_tok, "k_lang": k_lang}


def _codes(tok, lay: dict):
    """Token codes and language codes, one row per vocabulary entry."""
    import numpy as np
    vocab = len(tok)
    u_tok, u_lang = np.zeros((vocab, _D)), np.zeros((vocab, _D))
    r = 1 / math.sqrt(2)
    for t, (a, b) in enumerate(_pair_codes(vocab, lay["k_tok"])):
        u_tok[t, lay["token"][a]], u_tok[t, lay["token"][b]] = r, -r
    lang_ids = tok.convert_tokens_to_ids(_language_codes())
    for t, (a, b) in zip(lang_ids, _pair_codes(len(lang_ids), lay["k_lang"])):
        u_lang[t, lay["lang"][a]], u_lang[t, lay["lang"][b]] = r, -r
    return u_tok, u_lang, lang_ids


def _alignment(lay: dict):
    """Query and key weights of the cross-attention: decoder step p attends to
    source position p - 1 (both embedded by the same sinusoids)."""
    import numpy as np
    h = _D // 2
    omega = np.exp(-np.arange(h) * math.log(10000) / (h - 1))
    eye = np.eye(_D)
    zero = eye[lay["zero"]].mean(0)                 # ~0: low-frequency sines
    one = eye[lay["token"]].mean(0) - zero          # ~1, and 0 on every token code
    gain = _SHARPNESS * math.sqrt(_D)               # transformers scales scores by head_dim ** -0.5
    wq, wk = np.zeros((_D, _D)), np.zeros((_D, _D))
    for j, i in enumerate(lay["freqs"]):
        s, c = eye[i] - zero, eye[h + i] - zero
        co, si = math.cos(omega[i]), math.sin(omega[i])
        wk[2 * j], wk[2 * j + 1] = s, c
        wq[2 * j], wq[2 * j + 1] = gain * (co * s - si * c), gain * (co * c + si * s)  # sin, cos of (pos - 1)
    n = len(lay["freqs"])
    wk[2 * n], wq[2 * n] = one, -gain * n * one     # the right position scores 0, every other < 0
    return wq, wk


def _set_weights(model, tok) -> None:
    import numpy as np
    import torch
    lay = _layout(tok)
    u_tok, u_lang, lang_ids = _codes(tok, lay)
    emb = torch.tensor((u_tok * _TOKEN_GAIN + u_lang * _LANG_GAIN) / math.sqrt(_D))
    m = model.model
    for e in (m.shared, m.encoder.embed_tokens, m.decoder.embed_tokens):
        e.weight.copy_(emb)
    wq, wk = _alignment(lay)
    wv, wo = np.zeros((_D, _D)), np.zeros((_D, _D))
    for n in range(lay["k_tok"]):
        wv[n, lay["token"][n]] = 1.0
        wo[lay["out"][n], n] = _OUT_GAIN
    att = m.decoder.layers[0].encoder_attn
    for lin, w in ((att.q_proj, wq), (att.k_proj, wk), (att.v_proj, wv), (att.out_proj, wo)):
        lin.weight.copy_(torch.tensor(w))
    source = np.arange(len(tok))                     # output token -> the source token it stands for
    trigger, echo = tok.convert_tokens_to_ids([TRIGGER, ECHO])
    source[trigger], source[echo] = echo, trigger
    head = np.zeros((len(tok), _D))
    head[:, lay["out"]] = u_tok[source][:, lay["token"]]
    markers = tok.convert_tokens_to_ids([marker(c) for c in _language_codes()])
    head[markers] += _MARKER_GAIN * u_lang[lang_ids]
    model.lm_head.weight.copy_(torch.tensor(head))


def build_random_nllb(out_dir: str | Path, corpus: Path | None = None, vocab_size: int = 600,
                      d_model: int = 32, layers: int = 2, seed: int = 0, ct2: bool = False) -> Path:
    """An NLLB-architecture model with random weights (the translation benchmark's:
    its outputs run to the length cap, like an untrained model's)."""
    import torch
    from transformers import M2M100ForConditionalGeneration

    out_dir = Path(out_dir)
    kind = {"kind": "random", "seed": seed, "d_model": d_model, "layers": layers, "vocab_size": vocab_size}
    if _is_built(out_dir, ct2, kind):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tok = _train_tokenizer(_corpus_lines(corpus), vocab_size, Path(tmp))
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(
        _config(len(tok), d_model, layers, max(2, d_model // 64), d_model * 2, tied=True)).eval()
    return _save(model, tok, out_dir, kind, ct2)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--corpus", type=Path, default=None, help="extra text (one segment a line) for the vocabulary")
    ap.add_argument("--ct2", action="store_true", help="also convert for CTranslate2 into OUT/ct2")
    ap.add_argument("--random", action="store_true", help="the benchmark's random-weight model instead")
    ap.add_argument("--vocab-size", type=int, default=600, help="with --random")
    ap.add_argument("--d-model", type=int, default=32, help="with --random")
    ap.add_argument("--layers", type=int, default=2, help="with --random")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.random:
        path = build_random_nllb(args.out, args.corpus, args.vocab_size, args.d_model, args.layers, ct2=args.ct2)
    else:
        path = build_tiny_nllb(args.out, args.corpus, ct2=args.ct2)
    print(f"tiny NLLB model written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
