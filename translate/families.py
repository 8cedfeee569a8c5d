"""Model families: how the translation model is told the languages.

    translation.model_family: auto | nllb | madlad

- ``nllb`` (NLLB-200, M2M100 architecture; CC-BY-NC): the source language's
  NLLB code on the tokenizer, the target's (``deu_Latn``) forced as the first
  decoder token.
- ``madlad`` (MADLAD-400, T5 architecture; Apache-2.0): a target tag before the
  text (``<2de> A dog.``), no source-language token, the output decoded as is.
  The codes come from common/madlad_codes.tsv.
- ``auto``: from the model's own files, read without loading it: for the hf
  backend its ``config.json`` (``model_type`` t5/mt5/umt5 -> madlad, m2m_100 or
  nllb-moe -> nllb; a hub name is looked up in the local hub cache only), for
  ctranslate2 the tokenizer class saved with the converted model. A model whose
  files are not there counts as nllb (its loading fails later with its own
  message); the dry-run and openai backends are nllb (openai names languages by
  name and cannot take madlad).
"""
from __future__ import annotations

from pathlib import Path

from common.errors import UserError
from common.jsonl import read_json_object
from common.languages import MODEL_FAMILIES, model_code

FAMILY_OF_MODEL_TYPE = {"t5": "madlad", "mt5": "madlad", "umt5": "madlad",
                        "m2m_100": "nllb", "nllb-moe": "nllb", "nllb_moe": "nllb"}
FAMILY_OF_TOKENIZER = {"T5Tokenizer": "madlad", "T5TokenizerFast": "madlad",
                       "NllbTokenizer": "nllb", "NllbTokenizerFast": "nllb", "M2M100Tokenizer": "nllb"}
MODEL_BACKENDS = ("hf", "ctranslate2")   # the backends that run a model of a family


def _hf_config(model: str) -> dict | None:
    """The config.json of a local folder or, for a hub name, of the local hub cache."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return read_json_object(folder / "config.json")
    try:
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(model, "config.json")
    except Exception:   # not a valid repo name, no hub package: nothing to read
        return None
    return read_json_object(Path(cached)) if isinstance(cached, str) else None


def detect_family(tcfg: dict) -> tuple[str | None, str]:
    """(family or None, what decided it): None when the model's files are not
    there (or the backend runs no model), "?" when they name another architecture."""
    backend = tcfg.get("backend")
    if backend == "hf":
        config = _hf_config(str(tcfg.get("model") or ""))
        if config is None:
            return None, "no config.json"
        kind = str(config.get("model_type"))
        return FAMILY_OF_MODEL_TYPE.get(kind, "?"), f"model_type {kind!r} of {tcfg.get('model')}"
    if backend == "ctranslate2":
        config = read_json_object(Path(str(tcfg.get("ct2_model") or "")).expanduser() / "tokenizer_config.json")
        if config is None:
            return None, "no tokenizer_config.json"
        kind = str(config.get("tokenizer_class"))
        return FAMILY_OF_TOKENIZER.get(kind, "?"), f"tokenizer_class {kind!r} of {tcfg.get('ct2_model')}"
    return None, f"backend {backend}"


def resolve_family(tcfg: dict) -> str:
    """The family in use: the configured one, or for auto the model's (nllb when unknown)."""
    family = tcfg.get("model_family", "auto")
    if family != "auto":
        return family
    found, _ = detect_family(tcfg)
    return found if found in MODEL_FAMILIES else "nllb"


def check_family(tcfg: dict) -> None:
    """Refuse, in one line and before any work, a model_family that is not one of
    auto/nllb/madlad, madlad with a backend that runs no such model, and a family
    the model's files contradict (or, for auto, cannot tell)."""
    family = tcfg.get("model_family", "auto")
    if family not in ("auto", *MODEL_FAMILIES):
        raise UserError(f"translation.model_family: {family!r} is not one of auto, {', '.join(MODEL_FAMILIES)}")
    backend = tcfg.get("backend")
    if family == "madlad" and backend not in (*MODEL_BACKENDS, "dry-run"):
        raise UserError(f"translation.model_family=madlad: the {backend} backend does not run a MADLAD model "
                        f"(use hf or ctranslate2)")
    found, why = detect_family(tcfg)
    if found == "?":
        raise UserError(f"translation.model_family={family}: the model is neither NLLB nor MADLAD ({why}); "
                        f"the engine knows {', '.join(MODEL_FAMILIES)}")
    if found is not None and family != "auto" and found != family:
        raise UserError(f"translation.model_family={family}, but the model is {found} ({why}): "
                        f"set translation.model_family={found} or auto")


def check_model_codes(tcfg: dict, codes) -> None:
    """Every language has a code in the family in use (UserError, one line, else)."""
    family = resolve_family(tcfg)
    for code in codes:
        model_code(code, family)
