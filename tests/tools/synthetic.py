"""Real-style synthetic text at any size, for the benchmarks (a dev tool).

One generator for every benchmark that needs more text than the fixtures
hold (bench_filter.py, bench_memory.py, bench_download.py): it starts from
the real English texts shipped with the repository (the translation-bench
corpus: Flickr30k and xFlickrCO captions, GQA and POPE questions; the
CapFilt and MSCOCO fixture captions) and makes new ones by splicing the head
of one text onto the tail of another at a preposition ("a brown dog sleeping"
+ "on the beach at sunset"). Rows repeat the way web captions do: row i is a
new text with probability ``new_rate``, else a copy of a uniformly chosen
earlier row (a Simon process: a few texts are very frequent, most appear
once). With the default rate, 20,000 captions hold about 9,100 distinct
ones, as the real-style measurement in issue 13 did (9,094). Everything is
seeded: the same arguments give the same texts. The splices reuse the source
texts' words, so the vocabulary does not grow with the size: about 1,200
distinct noun phrases whether 20,000 or 200,000 captions (real CapFilt text
has millions); parsing costs what real captions cost, phrase counts do not.
"""
from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fixtures" / "bench" / "corpus.jsonl"
FIXTURES = REPO / "tests" / "fixtures" / "raw"
NEW_RATE = 0.4547

_SPLIT = re.compile(r"\s(?=(?:on|in|at|with|near|next to|under|by|behind|while|holding|wearing|during|"
                    r"inside|outside|over|from|across|along|beside|through|into)\s)")
_SPACES = re.compile(r"\s+")


def _blip_style(text: str) -> str:
    """Lower case, no final period, single spaces: how BLIP's synthetic captions look."""
    return _SPACES.sub(" ", text).strip().rstrip(".").strip().lower()


@lru_cache(maxsize=None)
def source_texts(kind: str = "caption") -> tuple[str, ...]:
    """The real texts of one kind ("caption" or "question"), in a fixed order."""
    sources = {"caption": ("flickr30k", "xflickrco"), "question": ("gqa", "pope")}[kind]
    out = []
    with open(CORPUS, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["source"] in sources:
                out.append(row["text"])
    if kind == "caption":
        blip = json.loads((FIXTURES / "blip" / "ccs_synthetic_filtered_large.json").read_text(encoding="utf-8"))
        out += [r["caption"] for r in blip if isinstance(r, dict) and isinstance(r.get("caption"), str)]
        coco = json.loads((FIXTURES / "mscoco" / "dataset_coco.json").read_text(encoding="utf-8"))
        out += [s["raw"] for im in coco["images"] for s in im.get("sentences") or []]
    cleaned = [_blip_style(t) if kind == "caption" else _SPACES.sub(" ", t).strip() for t in out]
    return tuple(dict.fromkeys(t for t in cleaned if len(t.split()) >= 3))


@lru_cache(maxsize=None)
def _parts(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    heads, tails = [], []
    for t in source_texts(kind):
        m = _SPLIT.search(t)
        if m:
            heads.append(t[:m.start()])
            tails.append(t[m.end():])
    return tuple(dict.fromkeys(heads)), tuple(dict.fromkeys(tails))


class TextSource:
    """Distinct real-style texts in a fixed pseudo-random order: first the real
    ones, then head/tail splices (about 250,000 distinct captions), then the
    splices again with a numbered suffix, so there is no end."""

    def __init__(self, kind: str = "caption", seed: int = 0):
        self.kind = kind
        self.real = list(source_texts(kind))
        random.Random(f"{seed}-real").shuffle(self.real)
        self.heads, self.tails = _parts(kind)
        self.r = random.Random(f"{seed}-splice")
        self.n = 0
        self.seen: set[str] = set(self.real)
        self.round = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.n < len(self.real):
            self.n += 1
            return self.real[self.n - 1]
        for _ in range(1000):
            head, tail = self.r.choice(self.heads), self.r.choice(self.tails)
            text = f"{head} {tail}"
            if self.round:
                text = f"{text} {self.round}"
            if text not in self.seen:
                self.seen.add(text)
                self.n += 1
                return text
        self.round += 1      # this round's splices are (nearly) used up
        return next(self)


def texts(n: int, seed: int = 0, kind: str = "caption", new_rate: float = NEW_RATE) -> list[str]:
    """``n`` texts with web-like repetition (see the module docstring)."""
    fresh = TextSource(kind, seed)
    r = random.Random(f"{seed}-rows")
    out: list[str] = []
    for _ in range(n):
        if not out or r.random() < new_rate:
            out.append(next(fresh))
        else:
            out.append(out[r.randrange(len(out))])
    return out


def captions(n: int, seed: int = 0, new_rate: float = NEW_RATE) -> list[str]:
    return texts(n, seed, "caption", new_rate)


def questions(n: int, seed: int = 0, new_rate: float = NEW_RATE) -> list[str]:
    return texts(n, seed, "question", new_rate)


def capfilt_rows(n: int, seed: int = 0, host: str = "http://127.0.0.1:18080") -> list[dict]:
    """``n`` {url, caption} rows as in blip/ccs_synthetic_filtered_large.json (distinct URLs)."""
    return [{"url": f"{host}/img/{i:08d}.jpg", "caption": c} for i, c in enumerate(captions(n, seed))]


def write_capfilt_array(path: Path, n: int, seed: int = 0) -> Path:
    """A JSON array file of ``capfilt_rows`` (the raw BLIP file's shape)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("[")
        for i, row in enumerate(capfilt_rows(n, seed)):
            f.write(("," if i else "") + "\n" + json.dumps(row, ensure_ascii=False))
        f.write("\n]\n")
    return path


if __name__ == "__main__":
    import sys
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    caps = captions(n)
    print(f"{n} captions, {len(set(caps))} distinct; e.g. {caps[:3]} ... {caps[-3:]}")
