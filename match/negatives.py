"""Which rows are positives, and which caption each negative gets.

* Sides: the rows are ordered by a seeded hash of their id and the first half
  (rounded up) are positives, so exactly half are positives whatever the input
  order, and a row keeps its side when the rows around it change order.
* A negative draws (from its own seeded generator, so batching and sharding do
  not change the draw) either "random" (with ``random_fraction``) or one of the
  configured ranks. Rank r is the r-th nearest *valid* caption of the image,
  counting each caption once after normalisation; valid means not equal, after
  normalising case, whitespace and punctuation, to any caption of that image.
* The search keeps the top_k nearest captions per image. When duplicates and
  the image's own captions leave fewer than r valid ones in that window, the
  window is widened (``deeper``, doubling) until rank r is found or every
  caption has been seen; only then is the rank clipped to the last valid
  caption, i.e. a rank is clipped only when it is beyond the number of
  (distinct, valid) captions. An image with no valid caption at all falls back
  to a random caption.
* Memory: a plan is the rank only (a random.Random is about 3 KB, i.e. ~1 GB
  for 300k negatives); a row's generator is re-created when it is needed.
"""
from __future__ import annotations

import collections
import random
from typing import Callable, Iterable

import numpy as np

from common.sampling import rng, stable_hash

MAX_RANDOM_TRIES = 1000


def assign_sides(ids: list[str], seed: int) -> list[bool]:
    """True for the positives: exactly ceil(n/2) of them."""
    order = sorted(range(len(ids)), key=lambda i: (stable_hash(seed, "match-side", ids[i]), i))
    positive = [False] * len(ids)
    for i in order[: len(ids) - len(ids) // 2]:
        positive[i] = True
    return positive


def plan_negative(row_id: str, seed: int, ranks: list[int], random_fraction: float) -> tuple[int | None, random.Random]:
    """(rank or None for a random caption, the row's generator for any further draw)."""
    r = rng(seed, "match-negative", row_id)
    if r.random() < random_fraction:
        return None, r
    return r.choice(ranks), r


def pick_ranked(neighbors: Iterable[int], norms: list[str], own: set[str], rank: int) -> tuple[int, int] | None:
    """(caption position, rank used) of the rank-th nearest valid caption, clipped
    to the valid captions in ``neighbors``; None when there is none."""
    seen: set[str] = set()
    last = None
    for pos in neighbors:
        if pos < 0:  # faiss pads with -1 when the index holds fewer than k
            break
        norm = norms[pos]
        if norm in own or norm in seen or not norm:
            continue
        seen.add(norm)
        last = (int(pos), len(seen))
        if len(seen) == rank:
            return last
    return last


def pick_random(r: random.Random, norms: list[str], own: set[str]) -> int | None:
    """A uniformly drawn valid caption; after MAX_RANDOM_TRIES misses (an image
    owning most of the captions) a scan from a random start, so None means
    that no valid caption exists."""
    n = len(norms)
    if not n:
        return None
    for _ in range(MAX_RANDOM_TRIES):
        pos = r.randrange(n)
        if norms[pos] and norms[pos] not in own:
            return pos
    start = r.randrange(n)
    for off in range(n):
        pos = (start + off) % n
        if norms[pos] and norms[pos] not in own:
            return pos
    return None


def mine_negatives(row_ids: list[str], row_images: list[str], negative_rows: list[int],
                   own_norms: dict[str, set[str]], norms: list[str],
                   neighbors_of: Callable[[list[str]], Iterable[tuple[str, np.ndarray]]],
                   seed: int, ranks: list[int], random_fraction: float,
                   counts: collections.Counter,
                   deeper: Callable[[str, int], np.ndarray | None] | None = None,
                   ) -> dict[int, tuple[int, int | None]]:
    """row -> (caption position, neg_rank or None) for every negative row that got one.

    ``neighbors_of(image_ids)`` yields (image_id, caption positions best first)
    for the images that need a hard negative, in any batching it likes.
    ``deeper(image_id, n)`` returns a longer best-first list than the n
    positions given so far, or None when n already covers every caption.
    """
    chosen: dict[int, tuple[int, int | None]] = {}
    hard_rows_of: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)  # image -> [(row, rank)]
    random_rows: list[int] = []
    for row in negative_rows:
        rank, _ = plan_negative(row_ids[row], seed, ranks, random_fraction)
        if rank is None:
            random_rows.append(row)
        else:
            hard_rows_of[row_images[row]].append((row, rank))

    def random_negative(row: int) -> None:
        _, r = plan_negative(row_ids[row], seed, ranks, random_fraction)  # the same generator, re-created
        pos = pick_random(r, norms, own_norms[row_images[row]])
        if pos is None:
            counts["negatives_without_candidate"] += 1
        else:
            chosen[row] = (pos, None)
            counts["negatives_random"] += 1

    for image_id, neighbors in neighbors_of(list(hard_rows_of)):
        own = own_norms[image_id]
        for row, rank in hard_rows_of[image_id]:
            got = pick_ranked(neighbors, norms, own, rank)
            while deeper is not None and (got is None or got[1] < rank):
                wider = deeper(image_id, len(neighbors))
                if wider is None:
                    break
                counts["searches_widened"] += 1
                neighbors = wider  # kept for this image's other rows
                got = pick_ranked(neighbors, norms, own, rank)
            if got is None:
                counts["negatives_hard_fell_back_to_random"] += 1
                random_negative(row)
                continue
            chosen[row] = got
            counts[f"negatives_rank_{got[1]}"] += 1
            if got[1] < rank:
                counts["negatives_rank_clipped"] += 1
    for row in random_rows:
        random_negative(row)
    return chosen
