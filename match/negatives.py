"""Which rows are positives, and which caption each negative gets.

* Sides: the rows are ordered by a seeded hash of their id and the first half
  (rounded up) are positives, so exactly half are positives whatever the input
  order, and a row keeps its side when the rows around it change order.
* A negative draws (from its own seeded generator, so batching and sharding do
  not change the draw) either "random" (with ``random_fraction``) or one of the
  configured ranks. Rank r is the r-th nearest *valid* caption of the image,
  counting each caption once after normalisation; valid means not equal, after
  normalising case, whitespace and punctuation, to any caption of that image.
  A rank beyond the valid captions found is clipped to the last one; an image
  with no valid caption among its nearest falls back to a random caption.
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
    to the valid captions there are; None when there is none."""
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
    for _ in range(MAX_RANDOM_TRIES):
        pos = r.randrange(len(norms))
        if norms[pos] and norms[pos] not in own:
            return pos
    return None


def mine_negatives(row_ids: list[str], row_images: list[str], negative_rows: list[int],
                   own_norms: dict[str, set[str]], norms: list[str],
                   neighbors_of: Callable[[list[str]], Iterable[tuple[str, np.ndarray]]],
                   seed: int, ranks: list[int], random_fraction: float,
                   counts: collections.Counter) -> dict[int, tuple[int, int | None]]:
    """row -> (caption position, neg_rank or None) for every negative row that got one.

    ``neighbors_of(image_ids)`` yields (image_id, caption positions best first)
    for the images that need a hard negative, in any batching it likes.
    """
    chosen: dict[int, tuple[int, int | None]] = {}
    plans: dict[int, tuple[int | None, random.Random]] = {}
    hard_rows_of: dict[str, list[int]] = collections.defaultdict(list)
    for row in negative_rows:
        plans[row] = plan_negative(row_ids[row], seed, ranks, random_fraction)
        if plans[row][0] is not None:
            hard_rows_of[row_images[row]].append(row)

    def random_negative(row: int, r: random.Random) -> None:
        pos = pick_random(r, norms, own_norms[row_images[row]])
        if pos is None:
            counts["negatives_without_candidate"] += 1
        else:
            chosen[row] = (pos, None)
            counts["negatives_random"] += 1

    for image_id, neighbors in neighbors_of(list(hard_rows_of)):
        for row in hard_rows_of[image_id]:
            rank, r = plans[row]
            got = pick_ranked(neighbors, norms, own_norms[image_id], rank)
            if got is None:
                counts["negatives_hard_fell_back_to_random"] += 1
                random_negative(row, r)
                continue
            chosen[row] = got
            counts[f"negatives_rank_{got[1]}"] += 1
            if got[1] < rank:
                counts["negatives_rank_clipped"] += 1
    for row in negative_rows:
        if plans[row][0] is None:
            random_negative(row, plans[row][1])
    return chosen
