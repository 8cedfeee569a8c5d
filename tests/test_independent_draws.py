"""Independent draws: every step that assigns languages seeds its draw with the
configured seed and its own name, so CapFilt's captions and the matching
examples of the same images (same row count, same configured seed) no longer
get the same language row for row (the demo had 13 of 13 equal)."""
from __future__ import annotations

import collections
import json
import math

from common.languages import assign_languages
from pretrain import translate_train as capfilt_translate
from match import translate_match_train as match_translate
from tests.conftest import root_sets, translation_sets


def chance_equal(codes: list[str]) -> float:
    """The share of equal languages two independent draws with these counts give (sum of p^2)."""
    n = len(codes)
    return sum((k / n) ** 2 for k in collections.Counter(codes).values())


def test_stages_draw_independently_with_the_same_seed():
    n = 4000
    a = assign_languages(n, 0, stage="capfilt.translate")
    b = assign_languages(n, 0, stage="match.translate")
    assert collections.Counter(a) == collections.Counter(b)       # the same mC4 counts ...
    equal = sum(x == y for x, y in zip(a, b))
    p = chance_equal(a)                                           # ... about 0.22 (English is 43.8%)
    sd = math.sqrt(n * p * (1 - p))
    assert abs(equal - n * p) < 5 * sd, (equal, n * p, sd)
    # the same stage and seed still give the same list; another seed another one
    assert assign_languages(n, 0, stage="capfilt.translate") == a
    assert assign_languages(n, 1, stage="capfilt.translate") != a


def test_capfilt_and_matching_translate_steps_draw_their_own_languages(tmp_path):
    """The reproduction: both translate steps over the same images' rows, configured seed 0."""
    n = 120
    work = tmp_path / "work"
    (work / "capfilt").mkdir(parents=True)
    (work / "match").mkdir(parents=True)
    capfilt = [{"id": f"{i:016x}", "image_id": f"{i:016x}.jpg", "caption": f"a photo of thing {i}",
                "context": "Describe the image in a few words.", "url": f"http://h/{i}.jpg"} for i in range(n)]
    match = [{"id": r["id"], "image_id": r["image_id"], "caption": r["caption"], "original_caption": r["caption"],
              "match": "yes", "neg_rank": None} for r in capfilt]
    (work / "capfilt" / "capfilt_en.jsonl").write_text("".join(json.dumps(r) + "\n" for r in capfilt))
    (work / "match" / "capfilt_match_en.jsonl").write_text("".join(json.dumps(r) + "\n" for r in match))
    sets = [*root_sets(tmp_path), *translation_sets("dry-run", "")]
    capfilt_translate.main(sets)
    match_translate.main(sets)
    a = [json.loads(x)["lang"] for x in (work / "capfilt" / "capfilt_translated.jsonl").read_text().splitlines()]
    b = {json.loads(x)["image_id"]: json.loads(x)["lang"]
         for x in (work / "match" / "capfilt_match_translated.jsonl").read_text().splitlines()}
    assert len(a) == len(b) == n
    equal = sum(lang == b[row["image_id"]] for row, lang in zip(capfilt, a))
    p = chance_equal(a)
    sd = math.sqrt(n * p * (1 - p))
    assert equal < n                                   # was n: every image had one language in both
    assert abs(equal - n * p) < 5 * sd, (equal, n * p, sd)
