"""What shapes a translation: the one definition.

A ``translation.*`` setting either shapes the output (another value can give
another translation) or changes only speed, resources or bookkeeping.
``shaping_settings`` gives the shaping ones, for the backend in use:

- ``backend`` and ``model``, the model that backend runs: ``translation.model``
  (hf), ``translation.ct2_model`` (ctranslate2), ``translation.openai.model``
  (openai), none (dry-run);
- ``dtype`` for hf and ctranslate2 (float16 and float32 outputs can differ);
- for openai the prompt: its version ``openai.prompt`` and a hash of its text;
- ``model_family``, ``beam_size`` and the length rule (``max_new_tokens``,
  ``length_factor``, ``length_extra``);
- how texts are cut and which outputs are kept: ``max_words_per_segment``,
  ``quality.*``.

Not shaping: ``device``, ``threads``, ``max_batch_tokens``, ``cache``,
``flush_segments``, ``flush_seconds``, ``progress``, ``max_reject_rate`` (a
check of the outcome) and the openai backend's ``base_url``, ``api_key_env``,
``concurrency``, ``timeout``, ``retries``, ``max_retry_wait``.

Derived from it, so the three can never disagree:

- the translation cache's key: ``cache_model_key`` (the backend, its model,
  dtype as the backend resolved it, the prompt) and ``generation_key`` (family,
  beam size, length rule). Not the segmenting and quality settings: the cache
  holds raw outputs of segments, checked again when read. The key strings are
  the ones existing caches were written with;
- the key of a store of translated templates (``translate.source.store_key``);
- the run records of every step whose output depends on translation: its
  ``shaped_by`` lists ``step_values`` (``common/records.py`` calls it), so
  ``python -m common status`` calls the step stale after a shaping change and
  done after a change of speed only.
"""
from __future__ import annotations

import hashlib
from typing import Any

# What changes a model's output whatever the backend (cache key, store key, run records).
GENERATION = ("beam_size", "max_new_tokens", "length_factor", "length_extra")
# How texts are cut into segments and which outputs are kept (store key, run records).
KEPT = ("max_words_per_segment", "quality")
# The config key of the model each backend that runs a local model loads; these also take dtype.
MODEL_KEY = {"hf": "model", "ctranslate2": "ct2_model"}


def shaping_settings(tcfg: dict) -> dict[str, Any]:
    """The settings of ``translation.*`` (``tcfg``) that shape a translation, by name."""
    backend = tcfg["backend"]
    out: dict[str, Any] = {"backend": backend, "model": _model(tcfg)}
    if backend in MODEL_KEY:
        out["dtype"] = tcfg.get("dtype", "auto")
    if backend == "openai":
        out["openai"] = _prompt(tcfg)
    for key in ("model_family", *GENERATION, *KEPT):
        if key in tcfg:
            out[key] = tcfg[key]
    return out


def _model(tcfg: dict) -> str | None:
    backend = tcfg["backend"]
    if backend == "openai":
        return str((tcfg.get("openai") or {}).get("model", "")).strip()
    model = tcfg.get(MODEL_KEY[backend]) if backend in MODEL_KEY else None
    return None if model is None else str(model)


def _prompt(tcfg: dict) -> dict[str, Any]:
    """The openai prompt: its version and the first 12 hex digits of its text's SHA-256."""
    from .openai_backend import OPENAI_DEFAULTS, PROMPTS   # it builds its cache key here: imported at call time
    version = {**OPENAI_DEFAULTS, **(tcfg.get("openai") or {})}["prompt"]
    text = PROMPTS.get(version)
    return {"prompt": version,
            "prompt_sha256": None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]}


def cache_model_key(tcfg: dict, dtype: str | None = None) -> str:
    """The model part of the cache key, from ``shaping_settings(tcfg)`` with
    ``dtype`` as the backend resolved it (auto -> float16, int8, ...):
    ``hf:PATH:DTYPE:beamN``, ``ct2:PATH:DTYPE:beamN``,
    ``openai:MODEL:prompt=VERSION.SHA:t0`` or ``dry-run``."""
    settings = shaping_settings(tcfg)
    backend = settings["backend"]
    if backend == "dry-run":
        return "dry-run"
    if backend == "openai":
        prompt = settings["openai"]
        return f"openai:{settings['model']}:prompt={prompt['prompt']}.{prompt['prompt_sha256']}:t0"
    prefix = {"hf": "hf", "ctranslate2": "ct2"}[backend]
    return f"{prefix}:{settings['model']}:{dtype or settings['dtype']}:beam{int(settings['beam_size'])}"


def generation_key(tcfg: dict, model_key: str, family: str = "nllb") -> str:
    """The cache key's settings besides the languages and the text: the backend's
    model identity (``cache_model_key``), the model family (named only when not
    nllb, so caches written before families existed stay valid) and ``GENERATION``.
    A change of any of these never reuses an old output."""
    beam, max_new, factor, extra = (tcfg[k] for k in GENERATION)
    return (f"{model_key}{'' if family == 'nllb' else f'|family={family}'}"
            f"|beam={int(beam)}|max_new={int(max_new)}|length={float(factor)}x+{int(extra)}")


def step_values(cfg) -> dict[str, Any]:
    """``shaping_settings`` of a step's config as {dotted key: value} (nested
    values flattened: ``translation.quality.max_repeats``), or {} for a config
    without a translation section. A step whose output depends on translation
    lists this function in its ``shaped_by``."""
    from common.records import flatten
    tcfg = cfg.get("translation")
    if not isinstance(tcfg, dict):
        return {}
    return flatten("translation", shaping_settings(tcfg))
