"""Pure functions of the matching stage: sides, negative choice, normalisation."""
from __future__ import annotations

import collections

import numpy as np
import pytest

from match.negatives import assign_sides, mine_negatives, pick_ranked, pick_random, plan_negative
from match.rows import normalise_caption, validate_row
from common.sampling import rng


def test_assign_sides_exact_half_and_order_independent():
    ids = [f"row{i}" for i in range(101)]
    sides = assign_sides(ids, seed=1)
    assert sum(sides) == 51
    again = dict(zip(ids, sides))
    shuffled = list(reversed(ids))
    assert dict(zip(shuffled, assign_sides(shuffled, seed=1))) == again
    assert assign_sides(ids, seed=2) != sides


def test_normalise_caption_folds_case_space_punctuation():
    assert normalise_caption("A  dog, running!") == normalise_caption("a dog running")
    assert normalise_caption("Ｄog\tRUNS.") == "dog runs"
    assert normalise_caption("a dog") != normalise_caption("a dogs")


def test_validate_row_rejects_escaping_image_paths():
    good = {"id": "1", "image_id": "00/1.jpg", "caption": "x"}
    assert validate_row(good) is None
    assert "inside" in validate_row({**good, "image_id": "../etc/passwd"})
    assert "inside" in validate_row({**good, "image_id": "/abs.jpg"})
    assert "empty" in validate_row({**good, "caption": "  "})
    assert "missing" in validate_row({"id": "1", "image_id": "a.jpg"})


def test_pick_ranked_skips_own_and_duplicates_and_clips():
    norms = ["a dog", "a dog", "a cat", "a cat", "a car", "a bus", ""]
    own = {"a dog"}
    neighbors = np.array([0, 1, 2, 3, 4, 5, 6])
    # valid distinct in order: a cat (2), a car (4), a bus (5)
    assert pick_ranked(neighbors, norms, own, 1) == (2, 1)
    assert pick_ranked(neighbors, norms, own, 2) == (4, 2)
    assert pick_ranked(neighbors, norms, own, 3) == (5, 3)
    assert pick_ranked(neighbors, norms, own, 300) == (5, 3)           # clipped
    assert pick_ranked(np.array([0, 1, -1, -1]), norms, own, 3) is None  # nothing valid


def test_pick_random_never_returns_own():
    norms = ["a dog"] * 50 + ["a cat"]
    r = rng(0, "t")
    for _ in range(20):
        assert pick_random(r, norms, {"a dog"}) == 50
    assert pick_random(r, ["a dog"], {"a dog"}) is None


def test_plan_negative_is_seeded_per_row():
    plans = [plan_negative(f"r{i}", 0, [3, 10], 0.3)[0] for i in range(400)]
    assert plans == [plan_negative(f"r{i}", 0, [3, 10], 0.3)[0] for i in range(400)]
    share_random = plans.count(None) / len(plans)
    assert 0.2 < share_random < 0.4
    assert set(plans) == {None, 3, 10}


def test_mine_negatives_independent_of_batching():
    n = 40
    ids = [f"r{i}" for i in range(n)]
    images = [f"img{i}" for i in range(n)]
    norms = [f"caption {i}" for i in range(n)]
    own = {f"img{i}": {norms[i]} for i in range(n)}
    order = np.random.default_rng(0).permuted(np.tile(np.arange(n), (n, 1)), axis=1)

    def neighbors_by(batch):
        def neighbors_of(image_ids):
            for s in range(0, len(image_ids), batch):
                for image_id in image_ids[s:s + batch]:
                    yield image_id, order[int(image_id[3:])]
        return neighbors_of

    negative_rows = list(range(0, n, 2))
    results = []
    for batch in (1, 7, 100):
        counts = collections.Counter()
        results.append(mine_negatives(ids, images, negative_rows, own, norms, neighbors_by(batch),
                                      seed=5, ranks=[1, 3, 10], random_fraction=0.25, counts=counts))
    assert results[0] == results[1] == results[2]
    chosen = results[0]
    assert set(chosen) == set(negative_rows)
    for row, (pos, rank) in chosen.items():
        assert norms[pos] != norms[row]
        if rank is not None:
            valid = [p for p in order[row] if p != row]
            assert valid[rank - 1] == pos
