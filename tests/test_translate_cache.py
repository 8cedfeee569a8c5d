"""The translation cache never answers with an old verdict: it holds raw outputs
keyed by everything that changes them, and the engine checks each output
again on every read."""
from __future__ import annotations

import copy
import sqlite3

import pytest

from translate.engine import TRANSLATION_DEFAULTS, Engine
from translate.shaping import cache_model_key, generation_key


class Backend:
    """Fixed answers per (text, target); counts what it is asked."""

    name = "fake"
    model_key = "fake"

    def __init__(self, fn, writes_language: bool = False):
        self.fn = fn
        self.writes_language = writes_language
        self.calls = 0
        self.asked: list[str] = []

    def count_tokens(self, texts, src=None):
        return [len(t.split()) + 2 for t in texts]

    def translate_batch(self, texts, src, tgts, max_new_tokens):
        self.calls += 1
        self.asked += list(texts)
        return [self.fn(t, g) for t, g in zip(texts, tgts)]


def cfg(db, quality=None, **kw):
    c = copy.deepcopy(TRANSLATION_DEFAULTS)
    c.update(cache=str(db), progress=False, **kw)
    c["quality"].update(quality or {})
    return c


SHORT = lambda text, tgt: "Hund."  # noqa: E731  (short for "A big brown dog sleeps on the sofa.")
TEXT = "A big brown dog sleeps on the sofa."


def test_changed_quality_settings_change_the_verdict_of_cached_segments(tmp_path):
    db = tmp_path / "c.sqlite"
    first = Engine(cfg(db, {"min_ratio": 0.1}), backend=Backend(SHORT))
    assert first.translate([TEXT], ["de"])[0].text == "Hund."
    # Stricter length rule, same cache: rejected, without asking the model again.
    be = Backend(SHORT)
    strict = Engine(cfg(db, {"min_ratio": 0.5}), backend=be)
    assert strict.translate([TEXT], ["de"])[0] == (None, "length_ratio")
    assert be.calls == 0 and strict.summary()["cached"] == 1
    assert strict.rejects == [{"source": TEXT, "lang": "de", "output": "Hund.", "reason": "length_ratio"}]
    # And back: the cached raw output is accepted again.
    be = Backend(SHORT)
    assert Engine(cfg(db, {"min_ratio": 0.1}), backend=be).translate([TEXT], ["de"])[0].text == "Hund."
    assert be.calls == 0


def test_turning_the_language_check_on_rejects_a_cached_english_output(tmp_path):
    db = tmp_path / "c.sqlite"
    english = lambda text, tgt: "A large brown dog is sleeping on the couch."  # noqa: E731
    off = Engine(cfg(db, {"langid": False}), backend=Backend(english, writes_language=True))
    assert off.translate([TEXT], ["de"])[0].reason is None
    be = Backend(english, writes_language=True)
    assert Engine(cfg(db, {"langid": True}), backend=be).translate([TEXT], ["de"])[0] == (None, "off_target")
    assert be.calls == 0


@pytest.mark.parametrize("key, value", [("beam_size", 4), ("length_factor", 1.5), ("length_extra", 3),
                                        ("max_new_tokens", 100)])
def test_a_changed_generation_setting_misses_the_cache(tmp_path, key, value):
    db = tmp_path / "c.sqlite"
    Engine(cfg(db), backend=Backend(SHORT)).translate([TEXT], ["de"])
    same = Backend(SHORT)
    Engine(cfg(db), backend=same).translate([TEXT], ["de"])
    assert same.calls == 0
    changed = Backend(SHORT)
    Engine(cfg(db, **{key: value}), backend=changed).translate([TEXT], ["de"])
    assert changed.asked == [TEXT]


def test_the_cache_stores_raw_outputs_and_no_verdict(tmp_path):
    db = tmp_path / "c.sqlite"
    trad = lambda text, tgt: "一隻大狗在沙發上睡覺。"  # noqa: E731  Traditional characters
    res = Engine(cfg(db), backend=Backend(trad)).translate([TEXT, "", TEXT], ["zh", "zh", "de"])
    assert res[0].text == "一只大狗在沙发上睡觉。"  # zh outputs are made Simplified
    with sqlite3.connect(db) as con:
        cols = [r[1] for r in con.execute("PRAGMA table_info(segments)")]
        rows = sorted(con.execute("SELECT model, tgt, output FROM segments").fetchall())
    assert cols == ["key", "model", "src", "tgt", "source", "output"]
    key = generation_key(cfg(db), "fake")
    assert rows == [(key, "deu_Latn", "一隻大狗在沙發上睡覺。"), (key, "zho_Hans", "一隻大狗在沙發上睡覺。")]  # the model's codes
    assert key == "fake|beam=1|max_new=256|length=2.0x+10"


def test_an_old_cache_layout_is_left_alone(tmp_path):
    """A database with the old verdict-carrying table opens; its rows are never read."""
    db = tmp_path / "c.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE translations (key TEXT PRIMARY KEY, model TEXT, src TEXT, tgt TEXT,"
                    " source TEXT, output TEXT, flag TEXT)")
    be = Backend(SHORT)
    assert Engine(cfg(db, {"min_ratio": 0.1}), backend=be).translate([TEXT], ["de"])[0].text == "Hund."
    assert be.calls == 1


def test_the_cache_keys_are_those_existing_caches_were_written_with():
    """The key strings are pinned: built from translate/shaping.py now, they must
    equal what the backends wrote before, or every existing cache misses."""
    base = {**cfg("c.sqlite"), "model": "/m/nllb", "ct2_model": "/m/ct2", "beam_size": 2}
    assert cache_model_key({**base, "backend": "hf"}, "float16") == "hf:/m/nllb:float16:beam2"
    assert cache_model_key({**base, "backend": "ctranslate2"}, "int8") == "ct2:/m/ct2:int8:beam2"
    assert cache_model_key({**base, "backend": "dry-run"}) == "dry-run"
    served = {**base, "backend": "openai", "openai": {**base["openai"], "model": " served-llm "}}
    assert cache_model_key(served) == "openai:served-llm:prompt=v1.b3f4ce0fbf08:t0"
    assert generation_key(base, "hf:x", "madlad") == "hf:x|family=madlad|beam=2|max_new=256|length=2.0x+10"
    # Speed settings are no part of it; dtype is, as the backend resolved it.
    fast = {**base, "backend": "hf", "device": "cuda", "max_batch_tokens": 65536, "threads": 3}
    assert cache_model_key(fast, "float16") == cache_model_key({**base, "backend": "hf"}, "float16")
    assert cache_model_key(fast, "float32") != cache_model_key(fast, "float16")
