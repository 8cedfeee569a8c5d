"""Every numeric setting that decides what is kept, at its edge: the value
itself and one step past it (so a limit made one step looser or stricter fails
here). CapFilt phrases (filter.min_captions / max_captions), frequent VQAv2
answers (vqav2.answer_min_count), LLaVA answers (llava.max_answer_sentences),
the merge's weights and caps, and the download's max_bytes, max_pixels and
max_redirects. (Bad-row budgets: test_bad_row_budgets.py; the translation
quality checks: test_translate_quality.py.)"""
from __future__ import annotations

import collections
import copy
import io
import json
from array import array

import numpy as np
import pytest
from PIL import Image

from tests.conftest import root_sets, translation_sets
from tests.test_download_images import ROUTES, jpeg, server  # noqa: F401  (fixture)


# -- filter.min_captions / filter.max_captions ------------------------------------------------------
def phrase_index(sizes: dict[str, int]):
    """A phrase index where phrase p has sizes[p] captions of its own (ids in order)."""
    from pretrain import phrase_index as pix
    owner = [p for p, n in sizes.items() for _ in range(n)]

    def extract(pairs):
        for _, i in pairs:
            yield [owner[i]], i
    names, offsets, caps, _ = pix.build_index(((None, i) for i in range(len(owner))), extract, progress=False)
    ids = {p: [i for i, o in enumerate(owner) if o == p] for p in sizes}
    return pix.PhraseIndex(names, offsets, caps, {}), ids


def test_filter_keeps_phrases_from_min_captions_and_caps_at_max_captions():
    from pretrain.filter import select
    index, ids = phrase_index({"three": 3, "two": 2, "five": 5, "six": 6})
    selected, stats = select(index, 3, 5, seed=0)
    chosen = set(selected.tolist())
    assert set(ids["three"]) <= chosen and set(ids["five"]) <= chosen   # 3 >= min; 5 == max: all kept
    assert not chosen & set(ids["two"])                                 # 2 < min
    assert len(chosen & set(ids["six"])) == 5                           # 6 > max: 5 drawn
    assert stats["phrases_kept"] == 3 and stats["phrases_capped"] == 1 and stats["captions_selected"] == 13
    assert set(ids["two"]) <= set(select(index, 2, 5, seed=0)[0].tolist())
    assert not set(ids["three"]) & set(select(index, 4, 5, seed=0)[0].tolist())
    selected, stats = select(index, 3, 6, seed=0)
    assert set(ids["six"]) <= set(selected.tolist()) and stats["phrases_capped"] == 0
    # The draw is seeded: the same seed gives the same five of six, another seed (here) others.
    assert select(index, 3, 5, seed=0)[0].tolist() == select(index, 3, 5, seed=0)[0].tolist()
    assert {tuple(select(index, 3, 5, seed=s)[0].tolist()) for s in range(6)} != {tuple(selected.tolist())}


# -- vqav2.answer_min_count ---------------------------------------------------------------------------
def test_frequent_answers_from_answer_min_count():
    from tasks.vqa.settings import frequent_answers
    counts = collections.Counter({"yes": 15, "no": 14, "ok": 15, "a": 99, "2 dogs": 50, "red": 40})
    assert frequent_answers(counts, 15) == {"red": 40, "ok": 15, "yes": 15}     # most frequent first, ties by text
    assert frequent_answers(counts, 14) == {"red": 40, "ok": 15, "yes": 15, "no": 14}
    assert frequent_answers(counts, 16) == {"red": 40}                          # one character, digits: never
    assert list(frequent_answers(counts, 1)) == ["red", "ok", "yes", "no"]


def test_answer_min_count_from_the_command_line(tmp_path):
    """The fixture's answers: yes 17, no 15, white 15, zebra 3 (and one-character or digit ones)."""
    from tasks.vqa import generate_train
    from tasks.vqa.settings import DEFAULTS
    assert DEFAULTS["vqav2"]["answer_min_count"] == 15
    argv = [*root_sets(tmp_path), *translation_sets()]
    seen = {}
    for n in (3, 4, 15, 16):
        generate_train.main([*argv, "--set", f"vqav2.answer_min_count={n}"])
        got = json.loads((tmp_path / "work" / "vqav2" / "answers_frequent.json").read_text())
        assert got["min_count"] == n
        seen[n] = got["answers"]
    assert seen == {3: {"yes": 17, "no": 15, "white": 15, "zebra": 3}, 4: {"yes": 17, "no": 15, "white": 15},
                    15: {"yes": 17, "no": 15, "white": 15}, 16: {"yes": 17}}


# -- llava.max_answer_sentences ------------------------------------------------------------------------
def test_llava_answers_up_to_max_answer_sentences(tmp_path):
    from tasks.llava import generate_train
    from tests.test_bad_row_budgets import raw_copy
    raw = raw_copy(tmp_path, "llava")
    three, four = "One. Two is here. Three!", "One. Two. Three? Four."
    conv = [{"id": "000000000030", "image": "000000000030.jpg", "conversations": [
        {"from": "human", "value": "<image>\nFirst?"}, {"from": "gpt", "value": three},
        {"from": "human", "value": "Second?"}, {"from": "gpt", "value": four}]}]
    (raw / "llava" / "conversation_58k.json").write_text(json.dumps(conv))
    answers = {}
    for n in (3, 4, 2):
        generate_train.main([*root_sets(tmp_path, raw), *translation_sets(), "--set", f"llava.max_answer_sentences={n}"])
        rows = [json.loads(x) for x in (tmp_path / "work" / "llava" / "turns_en.jsonl").read_text().splitlines()]
        answers[n] = [r["answer"] for r in rows if r["task"] == "llava_conversation"]
    assert answers == {3: [three], 4: [three, four], 2: []}


# -- merge weights and caps ------------------------------------------------------------------------------
def test_merge_weights_and_caps_at_their_edges():
    from pretrain.merge_train import select
    refs = array("q", range(100, 110))                     # 10 rows

    def pick(weight, cap, seed=0):
        return select(refs, weight, cap, np.random.default_rng(seed)).tolist()
    assert pick(1.0, None) == pick(1.0, 10) == list(range(100, 110))      # a cap of exactly the rows: all, in order
    assert len(pick(1.0, 9)) == 9 and len(set(pick(1.0, 9))) == 9
    assert pick(1.0, 0) == [] and pick(0.0, None) == []
    assert sorted(pick(2.0, None)) == sorted(list(range(100, 110)) * 2)
    half = pick(1.5, None)
    assert len(half) == 15 and collections.Counter(half).most_common(1)[0][1] == 2 and set(half) == set(range(100, 110))
    assert len(pick(1.5, 15)) == 15 and len(pick(1.5, 14)) == 14 and len(pick(0.25, None)) == 2   # round(2.5) == 2
    assert len(pick(0.35, None)) == 4 and len(pick(0.05, None)) == 0 and len(pick(0.06, None)) == 1


def test_merge_cap_from_the_config(tmp_path):
    from pretrain import merge_train
    from tests.test_merge_train import setup
    for cap, want in ((30, 30), (29, 29), (31, 30)):
        argv, train = setup(tmp_path / str(cap), caps={"mscoco": cap})
        merge_train.main(argv)
        mix = [json.loads(x) for x in (train / "task_mix.jsonl").read_text().splitlines()]
        assert collections.Counter(r["task"] for r in mix) == {"mscoco": want, "vqav2_vqa": 20}


# -- download.max_bytes / max_redirects / max_pixels --------------------------------------------------------
def fetch_config(**over) -> dict:
    from pretrain.capfilt_config import DEFAULTS
    dc = copy.deepcopy(DEFAULTS["download"])
    dc.update(retries=0, connect_timeout=5, read_timeout=5, allow_hosts=["127.0.0.1"], **over)
    return dc


@pytest.mark.parametrize("length_header", [True, False])
def test_max_bytes_is_the_largest_body_kept(server, monkeypatch, length_header):  # noqa: F811
    from pretrain.fetch import fetch, make_session
    body = jpeg()                # what /chunked.jpg streams without a Content-Length
    monkeypatch.setitem(ROUTES, "/exact.jpg", (200, {"Content-Type": "image/jpeg"}, body))
    dc = fetch_config(max_bytes=len(body))
    url = f"{server}/exact.jpg" if length_header else f"{server}/chunked.jpg"
    s = make_session(dc)
    got = fetch(s, url, dc)
    assert got.kind == "ok" and got.data == body
    got = fetch(s, url, dict(dc, max_bytes=len(body) - 1))
    assert got.kind == "too_large" and got.data is None


def test_max_redirects_is_the_longest_chain_followed(server, monkeypatch):  # noqa: F811
    from pretrain.fetch import fetch, make_session
    for k in range(1, 4):                            # /hop3 -> /hop2 -> /hop1 -> /photo.jpg: 3 redirects
        monkeypatch.setitem(ROUTES, f"/hop{k}", (302, {"Location": f"/hop{k - 1}" if k > 1 else "/photo.jpg"}, b""))
    dc = fetch_config(max_redirects=3)
    assert fetch(make_session(dc), f"{server}/hop3", dc).kind == "ok"
    dc = fetch_config(max_redirects=2)
    assert fetch(make_session(dc), f"{server}/hop3", dc).kind == "too_many_redirects"
    assert fetch(make_session(dc), f"{server}/hop2", dc).kind == "ok"


def test_max_pixels_is_the_largest_image_kept():
    from pretrain.image_norm import ImageError, normalise
    buf = io.BytesIO()
    Image.new("RGB", (20, 15), (10, 200, 30)).save(buf, "PNG")
    dc = fetch_config(max_pixels=300)
    _, original, _ = normalise(buf.getvalue(), dc)
    assert original == (20, 15)
    with pytest.raises(ImageError) as e:
        normalise(buf.getvalue(), dict(dc, max_pixels=299))
    assert e.value.kind == "too_many_pixels" and "20x15 over 299 pixels" in str(e.value)
