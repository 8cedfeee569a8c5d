"""Translation backends behind one interface.

    backend.count_tokens(texts) -> [int]
    backend.translate_batch(texts, src_nllb, tgt_nllbs, max_new_tokens) -> [str]

Every call of translate_batch is one model call (counted in ``calls``). A batch
may mix target languages. The codes are the model family's (translate/families.py):
for nllb, ``src`` is set on the tokenizer and each row's target code is forced as
its first decoder token; for madlad, each row's input starts with its target tag
(``<2de>``), ``src`` is not given to the model, and nothing is forced. ``model_key``
names what decides the output (model, dtype or compute type, beam size:
``translate/shaping.py`` ``cache_model_key``; the engine adds the length rule
for the cache key); ``writes_language`` says the
output is real language, so the engine's language check applies to it.
"""
from __future__ import annotations

import os
from pathlib import Path

from common.devices import resolve_device
from common.errors import UserError

from . import cuda_libs
from .shaping import cache_model_key


class DryRunBackend:
    """No model: tags each text with its target code. For rehearsing a pipeline
    cheaply (file plumbing, sharding, resumes); the output is not a translation."""

    name = "dry-run"
    writes_language = False

    def __init__(self, cfg: dict):
        self.model_key = cache_model_key({**cfg, "backend": self.name})
        self.calls = 0

    def count_tokens(self, texts, src=None):
        return [len(t.split()) + 2 for t in texts]

    def translate_batch(self, texts, src, tgts, max_new_tokens):
        self.calls += 1
        return [f"[{tgt}] {text}" for text, tgt in zip(texts, tgts)]


def _load_tokenizer(path: str, src_nllb: str | None):
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(path, **({"src_lang": src_nllb} if src_nllb else {}))
    except OSError as e:
        raise UserError(f"translation model {path!r}: cannot load tokenizer ({' '.join(str(e).split())})") from None


def _resolve_device(device: str) -> str:
    return resolve_device(device, "translation.device")


class _NllbTokenizer:
    """The model's tokenizer: for nllb re-created when the source language changes
    (it writes the source code), for madlad loaded once (the target tag is put
    before each row's ids in ``source_ids``, so it counts as one more token).

    The engine counts the tokens of every segment of a translate() call before it
    batches them; the ids are kept until the next count so that translate_batch
    does not tokenize the same texts again.
    """

    path: str
    family: str = "nllb"
    src: str | None = None
    tok = None
    _ids: dict | None = None

    def _tokenizer(self, src: str):
        src = src if self.family == "nllb" else None
        if self.tok is None or self.src != src:
            self.tok = _load_tokenizer(self.path, src)
            self.src = src
            self._ids = None
        return self.tok

    def count_tokens(self, texts, src="eng_Latn"):
        ids = self._tokenizer(src)(list(texts))["input_ids"]
        self._ids = dict(zip(texts, ids))
        return [len(x) + (self.family == "madlad") for x in ids]

    def source_ids(self, texts, src, tgts) -> list[list[int]]:
        """The model's input ids per row: for madlad the row's target tag first."""
        ids = self.encode(texts, src)
        if self.family == "nllb":
            return ids
        tags = {t: self._tag_id(t) for t in set(tgts)}
        return [[tags[t]] + row for row, t in zip(ids, tgts)]

    def _tag_id(self, tag: str) -> int:
        tok = self.tok
        found = tok.convert_tokens_to_ids(tag)
        if found is None or found == tok.unk_token_id:
            raise UserError(f"translation model {self.path}: its vocabulary has no target tag {tag} "
                            f"(not a MADLAD-400 model? see translation.model_family)")
        return found

    def encode(self, texts, src) -> list[list[int]]:
        """Token ids (with the source code and </s>), from the last count where known."""
        tok = self._tokenizer(src)
        known = self._ids or {}
        missing = [t for t in texts if t not in known]
        if missing:
            known = {**known, **dict(zip(missing, tok(missing)["input_ids"]))}
        return [known[t] for t in texts]


class HFBackend(_NllbTokenizer):
    """transformers seq2seq (NLLB): source language on the tokenizer, forced target
    code as the first decoder token; fp16/bf16 on GPU."""

    name = "hf"
    writes_language = True

    def __init__(self, cfg: dict):
        import torch
        from transformers import AutoModelForSeq2SeqLM

        self.path = str(cfg["model"])
        self.family = cfg.get("model_family", "nllb")
        self.device = _resolve_device(cfg["device"])
        dtype = cfg["dtype"]
        if dtype == "auto":   # T5 (madlad) overflows in float16: bfloat16, as it was trained
            dtype = ({"madlad": "bfloat16"}.get(self.family, "float16")
                     if self.device.startswith("cuda") else "float32")
        if dtype not in ("float32", "float16", "bfloat16"):
            raise UserError(f"translation.dtype: {dtype!r} is not one of auto, float32, float16, bfloat16 for hf")
        try:
            self.model = AutoModelForSeq2SeqLM.from_pretrained(self.path, dtype=getattr(torch, dtype))
        except OSError as e:
            raise UserError(f"translation.model {self.path!r}: cannot load ({' '.join(str(e).split())})") from None
        self.model.to(self.device).eval()
        if cfg.get("threads"):
            torch.set_num_threads(int(cfg["threads"]))
        self.num_beams = int(cfg["beam_size"])
        self.model_key = cache_model_key({**cfg, "backend": self.name}, dtype)
        self.calls = 0

    def translate_batch(self, texts, src, tgts, max_new_tokens):
        import torch
        tok = self._tokenizer(src)
        enc = tok.pad({"input_ids": self.source_ids(texts, src, tgts)}, return_tensors="pt").to(self.device)
        start = self.model.config.decoder_start_token_id
        forced = [[start, tok.convert_tokens_to_ids(t)] for t in tgts] if self.family == "nllb" else [[start]] * len(tgts)
        prefix = torch.tensor(forced, device=self.device)
        with torch.inference_mode():
            out = self.model.generate(**enc, decoder_input_ids=prefix, max_new_tokens=max_new_tokens,
                                      num_beams=self.num_beams, do_sample=False)
        self.calls += 1
        return tok.batch_decode(out[:, prefix.shape[1]:], skip_special_tokens=True)


class CTranslate2Backend(_NllbTokenizer):
    """A CTranslate2-converted model: int8 on CPU, float16 on GPU by default."""

    name = "ctranslate2"
    writes_language = True

    def __init__(self, cfg: dict):
        try:
            import ctranslate2
        except ImportError:
            raise UserError("translation.backend=ctranslate2 needs the fast extra: pip install -e '.[fast]'") from None
        self.path = str(cfg["ct2_model"])
        if not (Path(self.path) / "model.bin").is_file():
            raise UserError(f"translation.ct2_model: no converted model at {self.path} "
                            f"(run translate/convert_ct2.py first)")
        self.family = cfg.get("model_family", "nllb")
        device = self.device = _resolve_device(cfg["device"])
        if device.startswith("cuda"):   # CUDA 12 libraries from pip on a CUDA-13-only machine (docs/translation.md)
            cuda_libs.preload()
        compute = cfg["dtype"]
        if compute == "auto":   # T5 (madlad) overflows in float16
            compute = ({"madlad": "bfloat16"}.get(self.family, "float16")
                       if device.startswith("cuda") else "int8")
        threads = int(cfg.get("threads") or os.cpu_count() or 1)
        kind, _, index = device.partition(":")  # "cuda:1" -> device="cuda", device_index=1
        self.translator = ctranslate2.Translator(self.path, device=kind, device_index=int(index or 0),
                                                 compute_type=compute,
                                                 intra_threads=threads if kind == "cpu" else 0)
        self.num_beams = int(cfg["beam_size"])
        self.model_key = cache_model_key({**cfg, "backend": self.name}, compute)
        self.calls = 0

    def translate_batch(self, texts, src, tgts, max_new_tokens):
        tok = self._tokenizer(src)
        source = [tok.convert_ids_to_tokens(ids) for ids in self.source_ids(texts, src, tgts)]
        forced = self.family == "nllb"   # madlad: the tag is in the source, nothing forced
        results = self.translator.translate_batch(
            source, target_prefix=[[t] for t in tgts] if forced else None, beam_size=self.num_beams,
            max_batch_size=len(texts), max_decoding_length=max_new_tokens + forced)
        self.calls += 1
        outs = []
        for r in results:
            tokens = r.hypotheses[0][forced:]  # drop the forced target code
            outs.append(tok.decode(tok.convert_tokens_to_ids(tokens), skip_special_tokens=True))
        return outs


def _openai_backend(cfg: dict):
    from .openai_backend import OpenAIBackend
    return OpenAIBackend(cfg)


BACKENDS = {"dry-run": DryRunBackend, "hf": HFBackend, "ctranslate2": CTranslate2Backend,
            "openai": _openai_backend}


def make_backend(cfg: dict):
    """The backend of ``cfg``; hf and ctranslate2 read the resolved ``model_family``."""
    name = cfg["backend"]
    if name not in BACKENDS:
        raise UserError(f"translation.backend: {name!r} is not one of {', '.join(BACKENDS)}")
    return BACKENDS[name](cfg)
