import copy

import pytest

from common.jsonl import read_jsonl, write_jsonl
from translate import quality
from translate.engine import TRANSLATION_DEFAULTS, Engine
from translate.stage import combine_shards, translate_jsonl, translate_rows, translate_templates


class FakeBackend:
    """Records every batch; 'translates' by upper-casing (or a custom function)."""

    name = "fake"

    def __init__(self, fn=None, model_key="fake"):
        self.model_key = model_key
        self.calls = 0
        self.batches = []
        self.fn = fn or (lambda text, tgt: text.upper() + f" <{tgt}>")

    def count_tokens(self, texts, src=None):
        return [len(t.split()) + 2 for t in texts]

    def translate_batch(self, texts, src, tgts, max_new_tokens):
        self.calls += 1
        self.batches.append((list(texts), list(tgts), max_new_tokens))
        return [self.fn(t, g) for t, g in zip(texts, tgts)]


def make_cfg(**kw):
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    cfg.update(cache="", progress=False)
    cfg.update(kw)
    return cfg


def test_dedupes_skips_empty_and_same_language():
    be = FakeBackend()
    eng = Engine(make_cfg(), backend=be)
    res = eng.translate(["a dog", "a dog", "", "   ", "a dog", "a cat", "hello"],
                        ["de", "de", "fr", "fr", "fr", "de", "en"])
    sent = [t for b in be.batches for t in zip(b[0], b[1])]
    assert sorted(sent) == sorted({("a dog", "deu_Latn"), ("a dog", "fra_Latn"), ("a cat", "deu_Latn")})
    assert res[0].text == res[1].text == "A DOG <deu_Latn>"
    assert res[2].text == "" and res[3].text == "   " and res[6].text == "hello"
    s = eng.summary()
    assert s["unique"] == 3 and s["translated"] == 3 and s["segments_in"] == 4


def test_long_text_is_split_into_sentences_and_rejoined():
    be = FakeBackend(fn=lambda t, g: t)
    eng = Engine(make_cfg(max_words_per_segment=40,
                          quality={**TRANSLATION_DEFAULTS["quality"], "min_words_for_copy": 10**6}), backend=be)
    sentence = " ".join(["word"] * 30) + "."
    paragraph = " ".join([sentence] * 5) + "\n\n" + " ".join(["long"] * 100)
    res = eng.translate([paragraph], ["de"])
    assert res[0].text == paragraph  # identity backend: rejoined exactly
    pieces = [t for b in be.batches for t in b[0]]
    assert max(len(p.split()) for p in pieces) <= 40
    assert len(set(pieces)) == 3  # one distinct sentence; 100 words cut 40/40/20 (two equal pieces)


def test_batches_respect_token_budget_sorted_and_capped():
    be = FakeBackend()
    eng = Engine(make_cfg(max_batch_tokens=40, length_factor=2.0, length_extra=3, max_new_tokens=20), backend=be)
    texts = [" ".join(["w"] * n) + f" {i}" for i, n in enumerate([1, 9, 3, 7, 2, 12, 5, 5, 1, 30])]
    eng.translate(texts, ["de"] * len(texts))
    lengths = []
    for batch_texts, _, cap in be.batches:
        toks = [len(t.split()) + 2 for t in batch_texts]
        assert len(toks) == 1 or max(toks) * len(toks) <= 40
        assert cap == min(20, int(2.0 * max(toks) + 3))
        lengths += toks
    assert lengths == sorted(lengths, reverse=True)


def test_persistent_cache_means_no_second_translation(tmp_path):
    db = tmp_path / "c.sqlite"
    be1 = FakeBackend()
    Engine(make_cfg(cache=str(db)), backend=be1).translate(["x y", "z"], ["de", "fr"])
    be2 = FakeBackend()
    eng2 = Engine(make_cfg(cache=str(db)), backend=be2)
    res = eng2.translate(["x y", "z", "new"], ["de", "fr", "fr"])
    assert be2.calls == 1 and be2.batches[0][0] == ["new"]
    assert [r.text for r in res] == ["X Y <deu_Latn>", "Z <fra_Latn>", "NEW <fra_Latn>"]
    assert eng2.summary()["cached"] == 2
    # Another model key never reuses these entries.
    be3 = FakeBackend(model_key="other")
    Engine(make_cfg(cache=str(db)), backend=be3).translate(["x y"], ["de"])
    assert be3.calls == 1


@pytest.mark.parametrize("src, out, tgt, reason", [
    ("A dog on the grass.", "", "deu_Latn", "empty"),
    ("A dog on the grass.", "a dog on the grass.", "deu_Latn", "copied_source"),
    ("A dog on the grass.", "Hund Hund Hund Hund Hund Hund", "deu_Latn", "repetition"),
    ("A dog on the grass.", "der der der der der der der der Hund", "deu_Latn", "repetition"),
    ("A dog on the grass.", "一只狗" + "哈哈" * 10, "zho_Hans", "repetition"),
    ("A dog sitting on the green grass.", "Hund", "deu_Latn", "length_ratio"),
    ("A dog.", "Ein Hund der sehr lange auf dem Gras liegt und schläft und träumt", "deu_Latn", None),
    ("A small dog sits on the grass.", "Ein kleiner Hund sitzt auf dem Gras.", "deu_Latn", None),
    ("A small dog sits on the grass.", "一只小狗坐在草地上。", "zho_Hans", None),
    ("pizza", "pizza", "ita_Latn", None),  # short: a copy can be right
])
def test_quality_checks(src, out, tgt, reason):
    assert quality.check(src, out, tgt) == reason


def test_rejected_rows_fall_back_to_english_and_are_listed(tmp_path):
    def fn(text, tgt):
        return "" if "bad" in text else text.upper() + " !"
    eng = Engine(make_cfg(), backend=FakeBackend(fn=fn))
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, [{"caption": "a good dog", "lang": "de"},
                      {"caption": "a bad dog. A good cat.", "lang": "fr"},
                      {"caption": ["good one", "bad two"], "lang": "es"},
                      {"caption": "stays", "lang": "en"}])
    out = tmp_path / "out.jsonl"
    counts = translate_jsonl(eng, inp, out, ["caption"])
    rows = list(read_jsonl(out))
    assert rows == [{"caption": "A GOOD DOG !", "lang": "de"},
                    {"caption": "a bad dog. A good cat.", "lang": "en"},
                    {"caption": ["good one", "bad two"], "lang": "en"},
                    {"caption": "stays", "lang": "en"}]
    assert counts["rows_fallback_to_english"] == 2 and counts["rows_translated"] == 1
    rejects = list(read_jsonl(tmp_path / "out.jsonl.rejects.jsonl"))
    assert {r["source"] for r in rejects} == {"a bad dog.", "bad two"}
    assert all(r["reason"] == "empty" for r in rejects)


def test_templates_keep_placeholders_or_are_dropped():
    def fn(text, tgt):
        return text.replace("{}", "") + " (fr)" if tgt == "fra_Latn" else f"{text} ({tgt})"
    eng = Engine(make_cfg(), backend=FakeBackend(fn=fn))
    templates = ["Describe the image in {}.", "Write a short caption in {}. Answer: {answer}", "No slot here."]
    out, counts = translate_templates(eng, templates, ["de", "fr", "en"])
    assert out["en"] == templates
    assert out["de"] == ["Describe the image in {}. (deu_Latn)",
                         "Write a short caption in {}. (deu_Latn) Answer: {answer} (deu_Latn)",
                         "No slot here. (deu_Latn)"]
    assert out["fr"] == ["No slot here. (fr)"]
    assert counts == {"kept": 4, "lost_placeholder": 2}


def test_translate_rows_in_memory_keeps_other_fields():
    eng = Engine(make_cfg(), backend=FakeBackend())
    rows = [{"id": 1, "q": "what is it", "a": "cat", "lang": "de"}]
    out = translate_rows(eng, rows, ["q"])
    assert out == [{"id": 1, "q": "WHAT IS IT <deu_Latn>", "a": "cat", "lang": "de"}]
    assert rows[0]["q"] == "what is it"  # input not mutated


@pytest.mark.parametrize("num_shards", [1, 3])
def test_shards_combine_to_the_single_run(tmp_path, num_shards):
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, [{"id": i, "caption": f"caption number {i % 7}"} for i in range(40)])
    single = tmp_path / "single.jsonl"
    translate_jsonl(Engine(make_cfg(), backend=FakeBackend()), inp, single, ["caption"], assign_seed=3)
    out = tmp_path / "sharded.jsonl"
    for i in range(num_shards):
        translate_jsonl(Engine(make_cfg(), backend=FakeBackend()), inp, out, ["caption"], assign_seed=3,
                        run={"num_shards": num_shards, "shard_index": i})
    if num_shards > 1:
        assert combine_shards(out, num_shards) == 40
    assert out.read_bytes() == single.read_bytes()


def test_missing_shard_is_named(tmp_path):
    from common.errors import UserError
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, [{"caption": "x", "lang": "de"}] * 5)
    out = tmp_path / "o.jsonl"
    for i in (0, 2):
        translate_jsonl(Engine(make_cfg(), backend=FakeBackend()), inp, out, ["caption"],
                        run={"num_shards": 3, "shard_index": i})
    with pytest.raises(UserError, match=r"missing shard file\(s\): .*o.jsonl.shard-00001-of-00003"):
        combine_shards(out, 3)
    assert not out.exists()
