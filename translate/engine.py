"""The one translation engine every translate_*.py calls.

    engine = Engine(cfg["translation"])
    results = engine.translate(texts, tgt_codes)       # [(output | None, reason | None)]

What it does for throughput: skips empty strings and same-language pairs,
splits texts into sentences (a paragraph is never truncated by the model's
window), never translates the same (segment, source, target) twice (in memory
and through the SQLite cache across runs), sorts by length and batches by a
token budget (padding included), and caps the generated length relative to the
input. Every output is quality-checked, also when it comes from the cache
(which holds raw outputs, keyed by everything that changes them: see
``translate/shaping.py``); a text with a flagged segment comes back as (None,
reason) and is listed in ``engine.rejects``. Chinese (zho_Hans) outputs are
converted to Simplified characters. A segment longer
(in tokens) than ``max_new_tokens`` could not come back whole and is flagged
``too_long`` without a model call.

Finished batches reach the SQLite cache when ``flush_segments`` segments are
waiting or ``flush_seconds`` (default 60) have passed since the last commit,
whichever comes first, and whenever translate() ends, also by an exception (a
backend error then carries a note saying how much was kept). A SIGKILL loses
at most the segments not yet committed: the batches finished in the last
``flush_seconds`` (or fewer than ``flush_segments`` segments), plus the batch
being translated; a rerun translates just those.
"""
from __future__ import annotations

import collections
import sys
import textwrap
import time
from typing import NamedTuple

from tqdm import tqdm

from common.scripts import to_simplified
from common.errors import UserError
from common.languages import model_code, nllb_code
from common.templates import placeholders
from . import quality, segment
from .backends import make_backend
from .families import check_family, resolve_family
from .openai_backend import OPENAI_DEFAULTS, Failed, check_openai_settings
from .cache import TranslationCache, cache_key
from .shaping import generation_key

# The schema every stage embeds as its ``translation`` section (the values
# themselves come from configs/translation.yaml, shared by all stages).
TRANSLATION_DEFAULTS: dict = {
    "backend": "dry-run",            # hf | ctranslate2 | openai | dry-run
    "model": "${paths.nllb_model}",  # hf: hub name or local folder
    "ct2_model": "${paths.ct2_model}",  # ctranslate2: converted folder
    "model_family": "auto",          # auto | nllb | madlad: how languages are named to the model (families.py)
    "device": "auto",                # auto | cpu | cuda | cuda:N
    "dtype": "auto",                 # hf: float32|float16|bfloat16; ct2: int8|float16|int8_float16|...
    "beam_size": 1,
    "threads": 0,                    # CPU threads (0: all cores)
    "max_batch_tokens": "auto",      # token budget per batch, padding included; auto: batch_token_budget()
    "max_words_per_segment": 100,    # a longer sentence is cut at word boundaries
    "max_new_tokens": 256,           # hard cap on generated tokens
    "length_factor": 2.0,            # generated tokens <= factor * input tokens + extra
    "length_extra": 10,
    "cache": "${paths.work_dir}/translation_cache.sqlite",  # "" for no persistent cache
    "flush_segments": 2048,          # commit to the cache at least this often (segments) ...
    "flush_seconds": 60,             # ... and at least this often (seconds): what a kill can lose
    "progress": True,
    # Stop the step (exit 2) when this share of its texts was rejected (1.0: only
    # when every text was); a language whose texts were all rejected is warned about.
    "max_reject_rate": 1.0,
    "quality": {
        "min_ratio": 0.25,           # output/input characters
        "max_ratio": 3.0,
        "min_chars_for_ratio": 12,
        "min_words_for_copy": 3,
        "max_repeats": 4,
        "langid": True,              # reject outputs in another language (fastText lid.176); never for dry-run
        "langid_threshold": 0.8,     # ... when the detector is at least this sure
        "langid_english_threshold": 0.5,  # ... of English (the usual failure: an untranslated copy)
        "langid_min_letters": 12,    # shorter outputs are too short to tell
    },
    # backend=openai: an OpenAI-compatible server (docs/translation-openai.md).
    "openai": OPENAI_DEFAULTS,
}


# max_batch_tokens "auto": the budget by device. A CPU gains nothing from large batches;
# on a GPU the budget grows with free memory (256 tokens per free GiB, a power of two,
# 8,192 to 65,536): 32,768 on an H200, where a hand-set 32,768 made the engine 1.21x a
# plain fp16 loop and the old default 4,096 made it 0.70x (docs/performance.md).
CPU_BATCH_TOKENS = 4096
GPU_TOKENS_PER_FREE_GIB = 256
GPU_BATCH_TOKENS = (8192, 65536)


def batch_token_budget(value, device: str, free_bytes: int | None = None) -> int:
    """The token budget per batch: ``value`` itself, or for "auto" the rule above
    (``free_bytes``: the GPU's free memory, read from torch when not given)."""
    if value != "auto":
        return int(value)
    if not str(device).startswith("cuda"):
        return CPU_BATCH_TOKENS
    if free_bytes is None:
        import torch
        free_bytes = torch.cuda.mem_get_info(torch.device(device))[0]
    wanted = max(1, int(free_bytes / 2**30 * GPU_TOKENS_PER_FREE_GIB))
    low, high = GPU_BATCH_TOKENS
    return min(high, max(low, 1 << (wanted.bit_length() - 1)))


# Range checks of the numbers in ``translation.*``: key -> (lowest allowed, strictly above it?).
_LIMITS = {"beam_size": (1, False), "threads": (0, False), "max_batch_tokens": (1, False),
           "max_words_per_segment": (1, False), "max_new_tokens": (1, False), "length_factor": (0, True),
           "length_extra": (0, False), "flush_segments": (1, False), "flush_seconds": (0, True), "max_reject_rate": (0, True)}


def check_settings(cfg: dict) -> None:
    """Refuse (UserError, one line) a ``translation.*`` number that cannot be
    right, before any model is loaded: every key of ``_LIMITS``, the quality
    thresholds (not negative, min_ratio below max_ratio), max_reject_rate <= 1."""
    budget = cfg.get("max_batch_tokens")
    if isinstance(budget, str) and budget != "auto" and not budget.strip().isdigit():
        raise UserError(f"translation.max_batch_tokens: must be auto or a whole number >= 1, got {budget!r}")
    for key, (low, strict) in _LIMITS.items():
        value = cfg.get(key)
        if key == "max_batch_tokens" and isinstance(value, str):
            value = None if value == "auto" else int(value)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (strict and value == low):
            raise UserError(f"translation.{key}: must be a number {'>' if strict else '>='} {low}, got {value!r}")
    if cfg.get("max_reject_rate", 1) > 1:
        raise UserError(f"translation.max_reject_rate: must be at most 1, got {cfg['max_reject_rate']!r}")
    q = cfg.get("quality") or {}
    for key, value in q.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise UserError(f"translation.quality.{key}: must not be negative, got {value!r}")
    if isinstance(q.get("min_ratio"), (int, float)) and isinstance(q.get("max_ratio"), (int, float)) \
            and q["min_ratio"] >= q["max_ratio"]:
        raise UserError(f"translation.quality.min_ratio ({q['min_ratio']}) must be below max_ratio ({q['max_ratio']})")
    if cfg.get("backend") == "openai" or "openai" in cfg:
        check_openai_settings({**cfg, "openai": {**OPENAI_DEFAULTS, **(cfg.get("openai") or {})}})
    check_family(cfg)


class Result(NamedTuple):
    text: str | None
    reason: str | None


class Codes(NamedTuple):
    """The languages of one translate() call: ``src`` and ``tgt`` (our code -> code) as
    the model receives them (family's codes: the backend's input and the cache key),
    ``check`` (our code -> NLLB code) for the quality checks, Chinese script and joining."""
    src: str
    tgt: dict
    check: dict


class Engine:
    def __init__(self, cfg: dict, backend=None):
        check_settings(cfg)
        self.cfg = cfg
        self.family = resolve_family(cfg)
        self.backend = backend if backend is not None else make_backend({**cfg, "model_family": self.family})
        self.cache = TranslationCache(cfg["cache"] or None)
        self.qcfg = dict(cfg["quality"])
        # The language check needs real language: off for dry-run (it tags the
        # English) and for any backend that does not declare writes_language.
        if not getattr(self.backend, "writes_language", False):
            self.qcfg["langid"] = False
        self.gen_key = generation_key(cfg, self.backend.model_key, self.family)
        self.batch_tokens = batch_token_budget(cfg["max_batch_tokens"], getattr(self.backend, "device", "cpu"))
        self.stats: collections.Counter = collections.Counter()
        self.by_lang: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.rejects: list[dict] = []
        self.seconds = 0.0

    # -- public -------------------------------------------------------------
    def translate(self, texts: list[str], tgts: list[str], src: str = "en") -> list[Result]:
        """Translate texts[i] into language tgts[i] (codes of the language table)."""
        if len(texts) != len(tgts):
            raise ValueError("texts and tgts differ in length")
        # Every target code checked before any model call (UserError names it).
        wanted_tgts = [t for t in dict.fromkeys(tgts) if t != src]
        codes = Codes(model_code(src, self.family), {t: model_code(t, self.family) for t in wanted_tgts},
                      {t: nllb_code(t) for t in wanted_tgts})
        plans = []          # per text: None (pass through) or (pieces, seps, tgt)
        wanted: dict[tuple[str, str], None] = {}
        for text, tgt in zip(texts, tgts):
            if tgt == src or not text or not text.strip():
                self.stats["passed_through"] += 1
                plans.append(None)
                continue
            pieces, seps = segment.split(text, self.cfg["max_words_per_segment"])
            plans.append((pieces, seps, tgt))
            self.stats["texts_in"] += 1
            self.by_lang[tgt]["texts"] += 1
            for p in pieces:
                self.stats["segments_in"] += 1
                self.by_lang[tgt]["segments"] += 1
                wanted.setdefault((p, tgt), None)
        done = self._translate_unique(list(wanted), codes)
        results = []
        for text, plan in zip(texts, plans):
            if plan is None:
                results.append(Result(text, None))
                continue
            pieces, seps, tgt = plan
            outs, reason = [], None
            for p in pieces:
                out, flag = done[(p, tgt)]
                if flag and reason is None:
                    reason = flag
                outs.append(out)
            if reason:
                self.stats["texts_rejected"] += 1
                self.by_lang[tgt]["texts_rejected"] += 1
                results.append(Result(None, reason))
            else:
                results.append(Result(segment.join(outs, seps, codes.check[tgt]), None))
        return results

    def summary(self) -> dict:
        s = dict(self.stats)
        s["model_calls"] = self.backend.calls
        if getattr(self.backend, "stats", None):   # requests, retries, failures by kind (openai)
            s["backend"] = dict(sorted(self.backend.stats.items()))
        s["seconds_translating"] = round(self.seconds, 2)
        # A rate only where a model translated: dry-run or an all-cached run would
        # divide a few segments by microseconds.
        if self.seconds > 0 and self.stats["translated"] and getattr(self.backend, "name", "") != "dry-run":
            s["segments_per_second"] = round(self.stats["translated"] / self.seconds, 1)
        s["by_language"] = {k: dict(v) for k, v in sorted(self.by_lang.items())}
        return s

    def print_summary(self, file=None) -> None:
        file = file or sys.stderr
        s = self.summary()
        keys = ["texts_in", "passed_through", "segments_in", "unique", "cached", "translated",
                "rejected", "texts_rejected", "failed", "model_calls"]
        rate = s.get("segments_per_second", "n/a (dry-run)" if getattr(self.backend, "name", "") == "dry-run"
                     else "n/a (nothing translated by the model)")
        print("[translate] " + ", ".join(f"{k}={s.get(k, 0)}" for k in keys) + f", segments_per_second={rate}",
              file=file)
        if s.get("backend"):
            print("[translate] backend: " + ", ".join(f"{k}={v}" for k, v in s["backend"].items()), file=file)
        flags = {k[len("rejected:"):]: v for k, v in s.items() if k.startswith("rejected:")}
        if flags:
            print("[translate] rejected by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(flags.items())), file=file)
        langs = ", ".join(f"{k}={v.get('segments', 0)}/{v.get('rejected', 0)}" for k, v in s["by_language"].items())
        if langs:   # 96 languages: wrapped, not one line of 2,000 characters
            print("[translate] segments/rejected by language:", file=file)
            print(textwrap.fill(langs, width=100, initial_indent="    ", subsequent_indent="    "), file=file)

    def check_rejections(self, what: str = "translation") -> None:
        """After a step's translations: a loud warning for every language whose
        texts were all rejected (its rows stay English), and a UserError when the
        rejected share of all texts reaches ``translation.max_reject_rate``
        (default 1.0: when nothing at all was translated)."""
        dead = {k: v["texts"] for k, v in sorted(self.by_lang.items())
                if v.get("texts") and v.get("texts_rejected", 0) >= v["texts"]}
        if dead:
            shown = ", ".join(f"{k} ({n})" for k, n in list(dead.items())[:12]) + (" ..." if len(dead) > 12 else "")
            print(f"WARNING: {what}: every text into {len(dead)} language(s) was rejected by the quality checks, "
                  f"so those rows stay English: {shown}", file=sys.stderr)
        texts, rejected = self.stats["texts_in"], self.stats["texts_rejected"]
        limit = float(self.cfg.get("max_reject_rate", 1.0))
        if texts and rejected / texts >= limit:
            reasons = ", ".join(f"{k[len('rejected:'):]}={v}" for k, v in sorted(self.stats.items())
                                if k.startswith("rejected:"))
            raise UserError(f"{what}: {rejected} of {texts} texts rejected ({rejected / texts:.0%}, "
                            f"translation.max_reject_rate={limit:g}; reasons: {reasons}): check the model "
                            f"{self.backend.model_key!r} and translation.quality.*")

    def close(self) -> None:
        self.cache.close()
        if hasattr(self.backend, "close"):
            self.backend.close()

    # -- internals ----------------------------------------------------------
    def _translate_unique(self, pairs: list[tuple[str, str]], codes: Codes) -> dict:
        """Batches are formed over all unique pairs, cached or not, so their
        composition does not depend on how far an earlier run got: a resumed run
        translates exactly the batches the killed one had not committed, with the
        same inputs, and its output equals an uninterrupted run's."""
        self.stats["unique"] += len(pairs)
        # Keyed by the codes the model receives (kmr_Latn or <2ku>, not ku): a change of a
        # language's model code (or of the family) never reuses a translation made for the old one.
        keys = [cache_key(self.gen_key, codes.src, codes.tgt[tgt], text) for text, tgt in pairs]
        cached = self.cache.get_many(keys)
        done: dict[tuple[str, str], tuple[str, str | None]] = {}
        for pair, key in zip(pairs, keys):
            raw = cached.get(key)
            if raw is not None:  # the verdict is made now, with today's settings
                done[pair] = self._verdict(pair[0], raw, codes.check[pair[1]])
        self.stats["cached"] += len(done)
        if len(done) < len(pairs):
            self._translate_missing(pairs, keys, codes, done)
        # Counted in input order, cached or not, so the rejects list (and file) of
        # a resumed run equals an uninterrupted run's.
        for pair in pairs:
            self._count_flag(pair, *done[pair])
        return done

    def _translate_missing(self, pairs, keys, codes: Codes, done) -> None:
        lengths = self.backend.count_tokens([p[0] for p in pairs], codes.src)
        # A segment longer than the generation cap cannot come back whole (one huge
        # "word", e.g. a URL): flagged without a model call, and not cached, so a
        # run with a larger max_new_tokens translates it.
        max_new = int(self.cfg["max_new_tokens"])
        for i, pair in enumerate(pairs):
            if lengths[i] > max_new and pair not in done:
                done[pair] = ("", "too_long")
                self.stats["too_long"] += 1
        # Longest first: the largest memory need shows at once, padding stays small.
        order = sorted((i for i in range(len(pairs)) if lengths[i] <= max_new),
                       key=lambda i: (-lengths[i], pairs[i][1], pairs[i][0]))
        budget = self.batch_tokens
        bar = tqdm(total=len(pairs) - len(done), unit="seg", desc="translate",
                   disable=not self.cfg["progress"], file=sys.stderr, mininterval=1.0)
        pending: list = []
        batch: list[int] = []
        committed, last_commit = 0, time.monotonic()

        def flush_batch():
            nonlocal pending, committed, last_commit
            todo = [j for j in batch if pairs[j] not in done]
            if todo:
                longest = max(lengths[j] for j in todo)
                try:
                    pending += self._run_batch(todo, pairs, keys, longest, codes, done)
                except Exception as e:
                    e.add_note(f"translation backend {self.backend.model_key!r} failed on a batch of "
                               f"{len(todo)} segments (longest {longest} tokens); the "
                               f"{committed + len(pending)} segments translated before it are kept in "
                               f"the cache, so a rerun resumes there")
                    raise
                bar.update(len(todo))
            due = time.monotonic() - last_commit >= self.cfg.get("flush_seconds", 60)
            if len(pending) >= self.cfg["flush_segments"] or (pending and due):
                self.cache.put_many(pending)
                committed += len(pending)
                pending, last_commit = [], time.monotonic()

        try:
            for i in order:
                longest = lengths[batch[0]] if batch else lengths[i]
                if batch and longest * (len(batch) + 1) > budget:
                    flush_batch()
                    batch = []
                batch.append(i)
            if batch:
                flush_batch()
        finally:
            # Also on an exception (a backend error, Ctrl-C): finished batches are kept.
            if pending:
                self.cache.put_many(pending)
            bar.close()

    def _run_batch(self, todo, pairs, keys, longest, codes: Codes, done) -> list:
        cap = min(int(self.cfg["max_new_tokens"]),
                  int(self.cfg["length_factor"] * longest + self.cfg["length_extra"]))
        texts = [pairs[j][0] for j in todo]
        tgts = [codes.tgt[pairs[j][1]] for j in todo]
        t0 = time.perf_counter()
        outs = self.backend.translate_batch(texts, codes.src, tgts, cap)
        self.seconds += time.perf_counter() - t0
        if len(outs) != len(todo):
            raise RuntimeError(f"backend returned {len(outs)} outputs for {len(todo)} inputs")
        rows = []
        for j, text, tgt_code, out in zip(todo, texts, tgts, outs):
            pair = pairs[j]
            if isinstance(out, Failed):   # no usable reply (openai): counted, not cached, a rerun asks again
                done[pair] = ("", out.reason)
                self.stats["failed"] += 1
                continue
            done[pair] = self._verdict(text, out, codes.check[pair[1]])
            rows.append((keys[j], self.gen_key, codes.src, tgt_code, text, out))  # the raw output, no verdict
        self.stats["translated"] += len(rows)
        return rows

    def _verdict(self, text: str, raw: str, tgt_code: str) -> tuple[str, str | None]:
        """(output, reason or None) of a raw model output: Chinese made Simplified, then checked."""
        out = to_simplified(raw) if tgt_code == "zho_Hans" else raw
        flag = quality.check(text, out, tgt_code, **self.qcfg)
        if flag is None and getattr(self.backend, "keeps_placeholders", False) and \
                collections.Counter(placeholders(out)) != collections.Counter(placeholders(text)):
            flag = "placeholders"
        return out, flag

    def _count_flag(self, pair, output, flag) -> None:
        if not flag:
            return
        self.stats["rejected"] += 1
        self.stats[f"rejected:{flag}"] += 1
        self.by_lang[pair[1]]["rejected"] += 1
        self.rejects.append({"source": pair[0], "lang": pair[1], "output": output, "reason": flag})
