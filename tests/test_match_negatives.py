"""Pure functions of the matching stage: sides, negative choice, normalisation."""
from __future__ import annotations

import collections

import numpy as np

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
    assert normalise_caption("Ｄog\tRUNS.") == normalise_caption("dog runs") == "dogruns"
    assert normalise_caption("A black-and-white photo.") == normalise_caption("a black and white photo")
    assert normalise_caption("a dog's bed\u200b") == normalise_caption("A DOGS BED")
    assert normalise_caption("«Straße»") == normalise_caption("strasse")
    assert normalise_caption("a dog") != normalise_caption("a dogs")
    assert normalise_caption(" ... !") == ""


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
    # one valid caption among many of the image's own: found by the scan after the random tries
    norms = ["a dog"] * 20000 + ["a cat"] + ["a dog"] * 20000
    assert all(pick_random(rng(0, "scan", i), norms, {"a dog"}) == 20000 for i in range(5))
    assert pick_random(r, [], set()) is None


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


def test_mine_negatives_widens_a_window_full_of_duplicates():
    """The first window holds only the image's own caption and copies of one
    other caption; rank 3 is found after widening, and clipped only when the
    captions run out."""
    norms = ["own", "own", "dup", "dup", "dup", "x", "y", "z"]
    own = {"img": {"own"}}
    full = np.arange(len(norms))
    widened = []

    def neighbors_of(image_ids):
        for image_id in image_ids:
            yield image_id, full[:4]

    def deeper(image_id, have):
        widened.append(have)
        return None if have >= len(full) else full[:2 * have]

    ids = [f"r{i}" for i in range(6)]
    counts = collections.Counter()
    chosen = mine_negatives(ids, ["img"] * 6, list(range(6)), own, norms, neighbors_of, seed=0,
                            ranks=[3], random_fraction=0.0, counts=counts, deeper=deeper)
    assert set(chosen.values()) == {(6, 3)}           # dup, x, y: the 3rd valid distinct caption
    assert widened == [4]                              # widened once, then reused for the other rows
    counts = collections.Counter()
    chosen = mine_negatives(ids, ["img"] * 6, list(range(6)), own, norms, neighbors_of, seed=0,
                            ranks=[9], random_fraction=0.0, counts=counts, deeper=deeper)
    assert set(chosen.values()) == {(7, 4)} and counts["negatives_rank_clipped"] == 6  # only 4 valid exist
    # Without widening the old behaviour would have clipped rank 3 to 1 inside the window.
    chosen = mine_negatives(ids, ["img"] * 6, list(range(6)), own, norms, neighbors_of, seed=0,
                            ranks=[3], random_fraction=0.0, counts=collections.Counter())
    assert set(chosen.values()) == {(2, 1)}


def test_negatives_with_shared_images_and_duplicate_captions():
    """Several rows per image, captions repeated across images exactly and after
    normalisation: a negative never matches any caption of its own image."""
    captions = ["A dog.", "a dog", "a cat", "A CAT!", "a bird", "a fish", "a cow", "a dog"]
    images = ["i0", "i1", "i1", "i2", "i2", "i3", "i0", "i4"]
    texts = list(dict.fromkeys(captions))
    norms = [normalise_caption(t) for t in texts]
    own = collections.defaultdict(set)
    for c, im in zip(captions, images):
        own[im].add(normalise_caption(c))
    ids = [f"r{i}" for i in range(len(captions))]
    for seed in range(30):
        order = np.random.default_rng(seed).permutation(len(texts))

        def neighbors_of(image_ids):
            for image_id in image_ids:
                yield image_id, order

        chosen = mine_negatives(ids, images, list(range(len(ids))), own, norms, neighbors_of, seed=seed,
                                ranks=[1, 2, 3], random_fraction=0.3, counts=collections.Counter())
        assert set(chosen) == set(range(len(ids)))
        for row, (pos, _) in chosen.items():
            assert norms[pos] not in own[images[row]], (seed, row, texts[pos])


# -- the seeded draws' contracts, the edges and the counts ------------------------------------------------
def test_sides_are_the_first_half_of_the_seeded_hash_order():
    from common.sampling import stable_hash
    ids = [f"row{i}" for i in range(11)]
    for seed in (0, 3):
        order = sorted(range(11), key=lambda i: (stable_hash(seed, "match-side", ids[i]), i))
        assert [i for i, p in enumerate(assign_sides(ids, seed)) if p] == sorted(order[:6])
    assert assign_sides([], 0) == [] and assign_sides(["a"], 0) == [True]


def test_plan_is_the_rows_own_generator_and_the_fraction_is_strict():
    for row_id, seed in (("r1", 0), ("r2", 7)):
        r = rng(seed, "match-negative", row_id)
        draw = r.random()
        want = r.choice([3, 10, 30])
        rank, gen = plan_negative(row_id, seed, [3, 10, 30], 0.0)
        assert rank == want and gen.random() == r.random()          # the generator goes on from there
        assert plan_negative(row_id, seed, [3, 10, 30], 1.0)[0] is None
        assert plan_negative(row_id, seed, [3, 10, 30], draw)[0] == want          # draw < fraction: not random
        assert plan_negative(row_id, seed, [3, 10, 30], draw + 1e-12)[0] is None


def test_pick_ranked_stops_at_the_padding_and_keeps_what_it_found():
    norms = ["own", "a", "b", "c"]
    assert pick_ranked(np.array([1, 2, -1, 3]), norms, {"own"}, 3) == (2, 2)   # clipped to what precedes -1
    assert pick_ranked(np.array([0, 0, 1]), norms, {"own"}, 1) == (1, 1)
    assert pick_ranked(np.array([], dtype=int), norms, set(), 1) is None


def test_mine_negatives_draws_and_counts():
    """Rows get the plan of their own id and seed; random ones the caption that
    their own re-created generator draws; every outcome is counted once."""
    norms = ["own0", "own1", "a", "a", "b", "c", "own2", "d"]
    own = {"i0": {"own0"}, "i1": {"own1"}, "i2": set(norms) - {""}}      # i2 owns every caption
    ids = [f"row{k}" for k in range(12)]
    images = ["i0", "i1", "i2"] * 4
    full = np.arange(len(norms))
    asked = []

    def neighbors_of(image_ids):
        for image_id in image_ids:
            yield image_id, full[:3]

    def deeper(image_id, have):
        asked.append((image_id, have))
        return None if have >= len(full) else full[:2 * have]

    seed, ranks, frac = 4, [1, 2, 9], 0.3
    counts = collections.Counter()
    chosen = mine_negatives(ids, images, list(range(12)), own, norms, neighbors_of, seed=seed, ranks=ranks,
                            random_fraction=frac, counts=counts, deeper=deeper)
    want_counts = collections.Counter()
    valid = {"i0": [1, 2, 4, 5, 6, 7], "i1": [0, 2, 4, 5, 6, 7], "i2": []}   # distinct valid captions, best first
    for row in range(12):
        rank, gen = plan_negative(ids[row], seed, ranks, frac)
        image = images[row]
        if rank is not None and valid[image]:
            used = min(rank, len(valid[image]))
            assert chosen[row] == (valid[image][used - 1], used), row
            want_counts[f"negatives_rank_{used}"] += 1
            want_counts["negatives_rank_clipped"] += used < rank
            continue
        if rank is not None:
            want_counts["negatives_hard_fell_back_to_random"] += 1
            gen = plan_negative(ids[row], seed, ranks, frac)[1]
        pos = pick_random(gen, norms, own[image])
        if pos is None:
            assert row not in chosen
            want_counts["negatives_without_candidate"] += 1
        else:
            assert chosen[row] == (pos, None)
            want_counts["negatives_random"] += 1
    assert {i for i, _ in asked} <= {"i0", "i1", "i2"} and len(asked) >= 3
    want_counts["searches_widened"] = sum(1 for i, have in asked if have < len(full))
    assert counts == +want_counts
    assert counts["negatives_without_candidate"] > 0 and counts["negatives_hard_fell_back_to_random"] > 0
    assert counts["negatives_rank_clipped"] > 0 and counts["negatives_random"] > 0


def test_every_hard_row_of_an_image_without_candidates_falls_back():
    norms = ["own", "own", "x"]
    ids = ["a", "b", "c"]
    counts = collections.Counter()

    def neighbors_of(image_ids):
        for image_id in image_ids:
            yield image_id, np.array([0, 1])
    chosen = mine_negatives(ids, ["img"] * 3, [0, 1, 2], {"img": {"own"}}, norms, neighbors_of, seed=0,
                            ranks=[1], random_fraction=0.0, counts=counts)
    assert chosen == {0: (2, None), 1: (2, None), 2: (2, None)}
    assert counts == {"negatives_hard_fell_back_to_random": 3, "negatives_random": 3}
