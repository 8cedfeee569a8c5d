"""The one translation engine every translate_*.py calls.

    engine = Engine(cfg["translation"])
    results = engine.translate(texts, tgt_codes)       # [(output | None, reason | None)]

What it does for throughput: skips empty strings and same-language pairs,
splits texts into sentences (a paragraph is never truncated by the model's
window), never translates the same (segment, source, target) twice (in memory
and through the SQLite cache across runs), sorts by length and batches by a
token budget (padding included), and caps the generated length relative to the
input. Every output is quality-checked; a text with a flagged segment comes
back as (None, reason) and is listed in ``engine.rejects``. A segment longer
(in tokens) than ``max_new_tokens`` could not come back whole and is flagged
``too_long`` without a model call.

Finished batches reach the SQLite cache at least every ``flush_segments``
segments and whenever translate() ends, also by an exception (a backend error
then carries a note saying how much was kept). A SIGKILL loses at most the
segments not yet flushed; a rerun translates just those.
"""
from __future__ import annotations

import collections
import sys
import time
from typing import NamedTuple

from tqdm import tqdm

from common.languages import nllb_code
from . import quality, segment
from .backends import make_backend
from .cache import TranslationCache, cache_key

# The schema every stage embeds as its ``translation`` section (the values
# themselves come from configs/translation.yaml, shared by all stages).
TRANSLATION_DEFAULTS: dict = {
    "backend": "dry-run",            # hf | ctranslate2 | dry-run
    "model": "${paths.nllb_model}",  # hf: hub name or local folder
    "ct2_model": "${paths.ct2_model}",  # ctranslate2: converted folder
    "device": "auto",                # auto | cpu | cuda | cuda:N
    "dtype": "auto",                 # hf: float32|float16|bfloat16; ct2: int8|float16|int8_float16|...
    "beam_size": 1,
    "threads": 0,                    # CPU threads (0: all cores)
    "max_batch_tokens": 4096,        # token budget per batch, padding included
    "max_words_per_segment": 100,    # a longer sentence is cut at word boundaries
    "max_new_tokens": 256,           # hard cap on generated tokens
    "length_factor": 2.0,            # generated tokens <= factor * input tokens + extra
    "length_extra": 10,
    "cache": "${paths.work_dir}/translation_cache.sqlite",  # "" for no persistent cache
    "flush_segments": 2048,          # commit to the cache at least this often
    "progress": True,
    "quality": {
        "min_ratio": 0.25,           # output/input characters
        "max_ratio": 3.0,
        "min_chars_for_ratio": 12,
        "min_words_for_copy": 3,
        "max_repeats": 4,
    },
}


class Result(NamedTuple):
    text: str | None
    reason: str | None


class Engine:
    def __init__(self, cfg: dict, backend=None):
        self.cfg = cfg
        self.backend = backend if backend is not None else make_backend(cfg)
        self.cache = TranslationCache(cfg["cache"] or None)
        self.qcfg = dict(cfg["quality"])
        self.stats: collections.Counter = collections.Counter()
        self.by_lang: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.rejects: list[dict] = []
        self.seconds = 0.0

    # -- public -------------------------------------------------------------
    def translate(self, texts: list[str], tgts: list[str], src: str = "en") -> list[Result]:
        """Translate texts[i] into language tgts[i] (codes of the language table)."""
        if len(texts) != len(tgts):
            raise ValueError("texts and tgts differ in length")
        src_nllb = nllb_code(src)
        # Every target code checked before any model call (UserError names it).
        tgt_nllb = {t: nllb_code(t) for t in dict.fromkeys(tgts) if t != src}
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
            for p in pieces:
                self.stats["segments_in"] += 1
                self.by_lang[tgt]["segments"] += 1
                wanted.setdefault((p, tgt), None)
        done = self._translate_unique(list(wanted), src, src_nllb, tgt_nllb)
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
                results.append(Result(segment.join(outs, seps), None))
        return results

    def summary(self) -> dict:
        s = dict(self.stats)
        s["model_calls"] = self.backend.calls
        s["seconds_translating"] = round(self.seconds, 2)
        if self.seconds > 0:
            s["segments_per_second"] = round(self.stats["translated"] / self.seconds, 1)
        s["by_language"] = {k: dict(v) for k, v in sorted(self.by_lang.items())}
        return s

    def print_summary(self, file=sys.stderr) -> None:
        s = self.summary()
        keys = ["texts_in", "passed_through", "segments_in", "unique", "cached", "translated",
                "rejected", "texts_rejected", "model_calls", "segments_per_second"]
        print("[translate] " + ", ".join(f"{k}={s.get(k, 0)}" for k in keys), file=file)
        flags = {k[len("rejected:"):]: v for k, v in s.items() if k.startswith("rejected:")}
        if flags:
            print("[translate] rejected by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(flags.items())), file=file)
        langs = ", ".join(f"{k}={v.get('segments', 0)}/{v.get('rejected', 0)}" for k, v in s["by_language"].items())
        if langs:
            print(f"[translate] segments/rejected by language: {langs}", file=file)

    def close(self) -> None:
        self.cache.close()

    # -- internals ----------------------------------------------------------
    def _translate_unique(self, pairs: list[tuple[str, str]], src: str, src_nllb: str,
                          tgt_nllb: dict[str, str]) -> dict:
        """Batches are formed over all unique pairs, cached or not, so their
        composition does not depend on how far an earlier run got: a resumed run
        translates exactly the batches the killed one had not committed, with the
        same inputs, and its output equals an uninterrupted run's."""
        self.stats["unique"] += len(pairs)
        model_key = self.backend.model_key
        keys = [cache_key(model_key, src, tgt, text) for text, tgt in pairs]
        cached = self.cache.get_many(keys)
        done: dict[tuple[str, str], tuple[str, str | None]] = {}
        for pair, key in zip(pairs, keys):
            hit = cached.get(key)
            if hit is not None:
                done[pair] = hit
        self.stats["cached"] += len(done)
        if len(done) < len(pairs):
            self._translate_missing(pairs, keys, src, src_nllb, tgt_nllb, done)
        # Counted in input order, cached or not, so the rejects list (and file) of
        # a resumed run equals an uninterrupted run's.
        for pair in pairs:
            self._count_flag(pair, *done[pair])
        return done

    def _translate_missing(self, pairs, keys, src, src_nllb, tgt_nllb, done) -> None:
        lengths = self.backend.count_tokens([p[0] for p in pairs], src_nllb)
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
        budget = int(self.cfg["max_batch_tokens"])
        bar = tqdm(total=len(pairs) - len(done), unit="seg", desc="translate",
                   disable=not self.cfg["progress"], file=sys.stderr, mininterval=1.0)
        pending: list = []
        batch: list[int] = []
        committed = 0

        def flush_batch():
            nonlocal pending, committed
            todo = [j for j in batch if pairs[j] not in done]
            if todo:
                longest = max(lengths[j] for j in todo)
                try:
                    pending += self._run_batch(todo, pairs, keys, longest, src, src_nllb, tgt_nllb, done)
                except Exception as e:
                    e.add_note(f"translation backend {self.backend.model_key!r} failed on a batch of "
                               f"{len(todo)} segments (longest {longest} tokens); the "
                               f"{committed + len(pending)} segments translated before it are kept in "
                               f"the cache, so a rerun resumes there")
                    raise
                bar.update(len(todo))
            if len(pending) >= self.cfg["flush_segments"]:
                self.cache.put_many(pending)
                committed += len(pending)
                pending = []

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

    def _run_batch(self, todo, pairs, keys, longest, src, src_nllb, tgt_nllb, done) -> list:
        cap = min(int(self.cfg["max_new_tokens"]),
                  int(self.cfg["length_factor"] * longest + self.cfg["length_extra"]))
        texts = [pairs[j][0] for j in todo]
        tgts = [tgt_nllb[pairs[j][1]] for j in todo]
        t0 = time.perf_counter()
        outs = self.backend.translate_batch(texts, src_nllb, tgts, cap)
        self.seconds += time.perf_counter() - t0
        if len(outs) != len(todo):
            raise RuntimeError(f"backend returned {len(outs)} outputs for {len(todo)} inputs")
        model_key = self.backend.model_key
        rows = []
        for j, text, tgt_code, out in zip(todo, texts, tgts, outs):
            flag = quality.check(text, out, tgt_code, **self.qcfg)
            pair = pairs[j]
            done[pair] = (out, flag)
            rows.append((keys[j], model_key, src, pair[1], text, out, flag))
        self.stats["translated"] += len(rows)
        return rows

    def _count_flag(self, pair, output, flag) -> None:
        if not flag:
            return
        self.stats["rejected"] += 1
        self.stats[f"rejected:{flag}"] += 1
        self.by_lang[pair[1]]["rejected"] += 1
        self.rejects.append({"source": pair[0], "lang": pair[1], "output": output, "reason": flag})
