"""Sentences split as a reader would, joined with the target script's separator."""
from __future__ import annotations

import copy
import json
import random
import re

import pytest

from tests.conftest import REPO
from translate import segment
from translate.engine import TRANSLATION_DEFAULTS, Engine

LABELLED = [REPO / "tests" / "fixtures" / "segment" / f"{name}.jsonl" for name in ("paragraphs", "heldout")]


@pytest.mark.parametrize("text, pieces", [
    # numbered lists: the marker starts its item, it is never a piece
    ("1. Open the box. 2. Take out the cake.", ["1. Open the box.", "2. Take out the cake."]),
    ("Steps:\n1. Preheat the oven.\n2. Mix the flour.", ["Steps:", "1. Preheat the oven.", "2. Mix the flour."]),
    ("Consider the following: 1. Pack water. 2. Bring hats.",
     ["Consider the following:", "1. Pack water.", "2. Bring hats."]),
    ("Three things. 1) A dog. 2) A cat.", ["Three things.", "1) A dog.", "2) A cat."]),
    ("There are 3 items: (1) a hat, (2) a cup. The cup is red.",
     ["There are 3 items: (1) a hat, (2) a cup.", "The cup is red."]),
    # numbers, decimals, abbreviations, initials
    ("The team won. 2020 was their year.", ["The team won.", "2020 was their year."]),
    ("It weighs approx. 2 kg. It is heavy.", ["It weighs approx. 2 kg.", "It is heavy."]),
    ("It opens at 9 a.m. 3 people wait. Yes.", ["It opens at 9 a.m. 3 people wait.", "Yes."]),
    ("The price is 3.5 dollars. Really?", ["The price is 3.5 dollars.", "Really?"]),
    ("I saw Dr. J. R. R. Tolkien. He waved.", ["I saw Dr. J. R. R. Tolkien.", "He waved."]),
    ("Apples, pears, etc. The bowl is full.", ["Apples, pears, etc.", "The bowl is full."]),
    # quotes, URLs, emoji, ellipses
    ('A sign reads: "Fresh coffee! Come in!" A dog waits.', ['A sign reads: "Fresh coffee! Come in!"', "A dog waits."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("Visit www.example.com today. It is free.", ["Visit www.example.com today.", "It is free."]),
    ("It looks delicious! 🎂 Everyone is happy.", ["It looks delicious! 🎂", "Everyone is happy."]),
    ("Great photo! 👍", ["Great photo! 👍"]),
    ("The road goes on... There is no car.", ["The road goes on...", "There is no car."]),
    # an inch mark or a stray quote is no quotation: splitting goes on after it
    ('It has a 55" wide screen. The sofa is grey. A cat sleeps.',
     ['It has a 55" wide screen.', "The sofa is grey.", "A cat sleeps."]),
    ('The board is 2\' x 3" in size. It is white. Words are on it.',
     ['The board is 2\' x 3" in size.', "It is white.", "Words are on it."]),
    ('He shouts "Run. Nobody moves. The dog barks.',
     ['He shouts "Run.', "Nobody moves.", "The dog barks."]),
    ('A 12" pizza. He said "Stop. Now." Then he left.',
     ['A 12" pizza.', 'He said "Stop. Now."', "Then he left."]),
    ('A \u201cstray quote. Then more text. The end.',
     ["A \u201cstray quote.", "Then more text.", "The end."]),
    # initialisms: "U.S. Navy" is one name; a sentence after one still splits
    ("A U.S. Navy ship is in port. Sailors wave.", ["A U.S. Navy ship is in port.", "Sailors wave."]),
    ("The U.K. Parliament meets in London. It is old.", ["The U.K. Parliament meets in London.", "It is old."]),
    ("She moved to the U.S. The weather is warm there.", ["She moved to the U.S.", "The weather is warm there."]),
    ("U.S.A. is large. It has fifty states.", ["U.S.A. is large.", "It has fifty states."]),
])
def test_reader_splits(text, pieces):
    got, seps = segment.split(text, 100)
    assert got == pieces
    assert segment.join(got, seps) == text


@pytest.mark.parametrize("path", LABELLED, ids=lambda p: p.stem)
def test_hand_labelled_answers_split_as_labelled(path):
    """The labelled LLaVA-style answers of tests/tools/compare_segmenters.py."""
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) >= 25
    for r in rows:
        got, seps = segment.split(r["text"], 10**6)
        assert got == r["sentences"], r["id"]
        assert segment.join(got, seps) == r["text"]


@pytest.mark.parametrize("pieces, seps, tgt, joined", [
    (["这是一只狗。", "它在跑！"], ["", " ", ""], "zho_Hans", "这是一只狗。它在跑！"),
    (["犬がいます。", "走っています。"], [" ", "  ", "\n"], "jpn_Jpan", " 犬がいます。走っています。\n"),
    (["这是一只狗。", "它在跑。"], ["", "\n", ""], "zho_Hans", "这是一只狗。\n它在跑。"),  # a line break stays
    (["这是 iPhone", "它很新。"], ["", " ", ""], "zho_Hans", "这是 iPhone 它很新。"),  # after Latin: the space stays
    (["สุนัขวิ่ง", "แมวนอน"], ["", " ", ""], "tha_Thai", "สุนัขวิ่ง แมวนอน"),  # Thai separates with a space
    (["Ein Hund.", "Eine Katze."], ["", " ", ""], "deu_Latn", "Ein Hund. Eine Katze."),
])
def test_join_uses_the_target_scripts_separator(pieces, seps, tgt, joined):
    assert segment.join(pieces, seps, tgt) == joined


def test_engine_joins_chinese_sentences_without_spaces():
    class Zh:
        name, model_key, calls = "fake", "fake", 0

        def count_tokens(self, texts, src=None):
            return [len(t.split()) + 2 for t in texts]

        def translate_batch(self, texts, src, tgts, max_new_tokens):
            return [{"A dog runs on the grass.": "一只狗在草地上跑。",
                     "It is happy.": "它很开心。"}[t] for t in texts]
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    cfg.update(cache="", progress=False)
    cfg["quality"]["min_chars_for_ratio"] = 10**6
    res = Engine(cfg, backend=Zh()).translate(["A dog runs on the grass. It is happy."], ["zh"])
    assert res[0].text == "一只狗在草地上跑。它很开心。"


def test_random_texts_rejoin_exactly_without_a_target_and_cjk_never_gains_spaces():
    alphabet = list("abc AB.!?…。！？\n\t \"')1x:") + ["1. ", "2) ", "Mr.", "J.", "🎂", "  ", "日本", "“", "”"]
    r = random.Random(1)
    for _ in range(20000):
        text = "".join(r.choice(alphabet) for _ in range(r.randint(0, 30)))
        pieces, seps = segment.split(text, r.randint(1, 5))
        assert segment.join(pieces, seps) == text
        assert all(p and p == p.strip() for p in pieces), (text, pieces)
        joined = segment.join(pieces, seps, "zho_Hans")
        assert len(joined) <= len(text) and _no_spaces(joined) == _no_spaces(text)


def _no_spaces(text: str) -> str:
    return re.sub(r"[ \t\u3000]", "", text)
