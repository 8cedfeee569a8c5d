import copy

import pytest

from common.jsonl import read_jsonl, write_jsonl
from translate import quality
from translate.engine import TRANSLATION_DEFAULTS, Engine
from common.shards import interleave
from translate.stage import translate_jsonl, translate_rows, translate_templates


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
    sentence = "Word " + " ".join(["word"] * 29) + "."
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
        assert interleave(out, num_shards) == 40
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
        interleave(out, 3)
    assert not out.exists()


# -- sentence splitting -------------------------------------------------------

@pytest.mark.parametrize("text, pieces", [
    ("Mr. Smith went to Washington. He saw a dog.", ["Mr. Smith went to Washington.", "He saw a dog."]),
    ("The price is 3.5 dollars. Really?", ["The price is 3.5 dollars.", "Really?"]),
    ("Wait... what is that? A dog!", ["Wait... what is that?", "A dog!"]),  # no split before lowercase
    ("U.S.A. is big. See Fig. 3 now. Yes.", ["U.S.A. is big.", "See Fig. 3 now.", "Yes."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("Visit http://example.com/a.b. Then go home.", ["Visit http://example.com/a.b.", "Then go home."]),
    ("这是一只狗。它在跑！真的吗？是的", ["这是一只狗。", "它在跑！", "真的吗？", "是的"]),
    ("日本語の文です。次の文です。", ["日本語の文です。", "次の文です。"]),
    ("Line one\r\n\r\nline two\n  \nLine three.", ["Line one", "line two", "Line three."]),
    ("  padded  ", ["padded"]),
    ("\n \n", []),
    ("x" * 5000, ["x" * 5000]),  # one huge word stays one piece (the engine flags it if too long)
])
def test_split_cases_and_exact_rejoin(text, pieces):
    from translate import segment
    got, seps = segment.split(text, 100)
    assert got == pieces
    assert segment.join(got, seps) == text


def test_split_random_texts_rejoin_exactly_with_clean_bounded_pieces():
    import random
    from translate import segment
    alphabet = list("abc AB.!?…。！？\n\r\t \"')]»1x") + ["Mr.", "e.g.", "  ", "日本"]
    r = random.Random(0)
    for _ in range(20000):
        text = "".join(r.choice(alphabet) for _ in range(r.randint(0, 30)))
        max_words = r.randint(1, 5)
        pieces, seps = segment.split(text, max_words)
        assert segment.join(pieces, seps) == text
        assert len(seps) == len(pieces) + 1
        assert all(p and p == p.strip() and len(p.split()) <= max_words for p in pieces), (text, pieces)


# -- quality checks: legitimate short or dense translations pass --------------

@pytest.mark.parametrize("src, out, tgt", [
    ("yes", "ja", "deu_Latn"), ("2", "2", "deu_Latn"), ("OK", "OK", "fra_Latn"),
    ("New York City", "New York City", "deu_Latn"),          # a name may come back unchanged
    ("Toyota Corolla 2015", "Toyota Corolla 2015", "deu_Latn"),
    ("How many people are standing next to the red bus?", "빨간 버스 옆에 몇 명?", "kor_Hang"),
    ("A photograph of a cat sitting on the couch.", "沙发上的猫。", "zho_Hans"),
    ("What is the man holding in his right hand?", "男人は右手に何を持っていますか？", "jpn_Jpan"),
    ("A dog is running on the beach near the water.", "สุนัขกำลังวิ่งอยู่บนชายหาดใกล้น้ำ", "tha_Thai"),
    ("A dog is running on the beach near the water.", "ឆ្កែកំពុងរត់នៅលើឆ្នេរក្បែរទឹក", "khm_Khmr"),
    ("A dog is running on the beach near the water.", "ໝາກຳລັງແລ່ນຢູ່ເທິງຫາດຊາຍໃກ້ກັບນ້ຳ", "lao_Laoo"),
    ("A dog is running on the beach near the water.", "ခွေးသည် ရေအနီးရှိ ကမ်းခြေပေါ်တွင် ပြေးနေသည်။", "mya_Mymr"),
    ("A very very very very long road.", "Eine sehr sehr sehr sehr lange Straße.", "deu_Latn"),
    ("The sign says STOP STOP STOP STOP STOP STOP.", "Das Schild sagt STOP STOP STOP STOP STOP STOP.", "deu_Latn"),
])
def test_quality_passes_legitimate_translations(src, out, tgt):
    assert quality.check(src, out, tgt) is None


# -- engine robustness --------------------------------------------------------

def test_backend_error_keeps_finished_batches_and_rerun_resumes(tmp_path):
    import sqlite3

    class Failing(FakeBackend):
        def translate_batch(self, texts, src, tgts, max_new_tokens):
            if self.calls == 3:
                self.calls += 1
                raise RuntimeError("CUDA out of memory")
            return super().translate_batch(texts, src, tgts, max_new_tokens)

    db = tmp_path / "c.sqlite"
    texts = [f"text number {i}" for i in range(20)]
    # Default flush_segments (2048): nothing would reach the cache without the flush on error.
    eng = Engine(make_cfg(cache=str(db), max_batch_tokens=25), backend=Failing())
    with pytest.raises(RuntimeError, match="CUDA out of memory") as e:
        eng.translate(texts, ["de"] * 20)
    assert any("15 segments translated before it are kept" in n for n in e.value.__notes__)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM segments").fetchone()[0] == 15
    be = FakeBackend()
    res = Engine(make_cfg(cache=str(db), max_batch_tokens=25), backend=be).translate(texts, ["de"] * 20)
    assert sum(len(b[0]) for b in be.batches) == 5
    assert [r.text for r in res] == [t.upper() + " <deu_Latn>" for t in texts]


def test_unknown_target_code_fails_before_any_model_call():
    from common.errors import UserError
    be = FakeBackend()
    with pytest.raises(UserError, match="unknown language code 'xx'"):
        Engine(make_cfg(), backend=be).translate(["a", "b"], ["de", "xx"])
    assert be.calls == 0


def test_segment_longer_than_generation_cap_is_flagged_without_model_call():
    be = FakeBackend()
    eng = Engine(make_cfg(max_new_tokens=20), backend=be)
    long_text = " ".join(["w"] * 19)  # 21 "tokens" with the fake count
    res = eng.translate([long_text, "short one"], ["de", "de"])
    assert res[0] == (None, "too_long") and res[1].text == "SHORT ONE <deu_Latn>"
    assert [b[0] for b in be.batches] == [["short one"]]
    assert eng.rejects == [{"source": long_text, "lang": "de", "output": "", "reason": "too_long"}]


def test_rejects_list_is_the_same_after_a_partial_cache(tmp_path):
    """A resumed run (half the segments cached) lists rejects in the same order
    as an uninterrupted one, so the rejects file is byte-identical too."""
    def fn(text, tgt):
        return "" if text.endswith(("1", "4", "7")) else text.upper() + "!"
    texts = [f"segment {i}" for i in range(30)]
    tgts = ["de", "fr", "zh"] * 10
    whole = Engine(make_cfg(), backend=FakeBackend(fn=fn))
    whole.translate(texts, tgts)
    db = tmp_path / "c.sqlite"
    Engine(make_cfg(cache=str(db)), backend=FakeBackend(fn=fn)).translate(texts[::2], tgts[::2])
    resumed = Engine(make_cfg(cache=str(db)), backend=FakeBackend(fn=fn))
    resumed.translate(texts, tgts)
    assert resumed.summary()["cached"] == 15
    assert resumed.rejects == whole.rejects and len(whole.rejects) == 9


def test_one_engine_for_two_files_writes_each_files_own_rejects(tmp_path):
    eng = Engine(make_cfg(), backend=FakeBackend(fn=lambda t, g: "" if "bad" in t else t.upper()))
    for name, caption in [("a", "bad one here"), ("b", "worse thing bad")]:
        write_jsonl(tmp_path / f"{name}.jsonl", [{"caption": caption, "lang": "de"}, {"caption": "fine", "lang": "de"}])
        translate_jsonl(eng, tmp_path / f"{name}.jsonl", tmp_path / f"{name}.out.jsonl", ["caption"])
    assert [r["source"] for r in read_jsonl(tmp_path / "b.out.jsonl.rejects.jsonl")] == ["worse thing bad"]


# -- segment edges (make mutation runs these with test_translate_segment.py) -----------------------------
def test_join_drops_spaces_between_cjk_sentences_inside_the_text_only():
    from translate import segment
    for tgt in ("zho_Hans", "zho_Hant", "yue_Hant", "jpn_Jpan"):
        assert segment.join(["一。", "二。"], ["", " ", "  "], tgt) == "一。二。  "     # the trailing space stays
    assert segment.join(["一。", "二。"], ["", " ", ""], "deu_Latn") == "一。 二。"
    assert segment.join(["一。", "二。"], ["", " ", ""], None) == "一。 二。"
    assert segment.join(["一。", "二。"], ["", "\n", ""], "zho_Hans") == "一。\n二。"   # a line break stays
    assert segment.join(["A.", "二。"], ["", " ", ""], "zho_Hans") == "A. 二。"        # after Latin text too


def test_split_defaults_and_quotes():
    from translate import segment
    assert len(segment.split(" ".join(["w"] * 120))[0]) == 1
    assert len(segment.split(" ".join(["w"] * 121))[0]) == 2
    for text, pieces in [
        ("She said \u201cWait. Stop.\u201d Then she left.", ["She said \u201cWait. Stop.\u201d", "Then she left."]),
        ("He said \u201cStop and wait. Now.\u201d", ["He said \u201cStop and wait. Now.\u201d"]),
        ("(\u201ce.g. this.\u201d) Next one.", ["(\u201ce.g. this.\u201d)", "Next one."]),
        ("It is (approx. 5) now. Yes.", ["It is (approx. 5) now.", "Yes."]),
    ]:
        got, seps = segment.split(text, 100)
        assert got == pieces and segment.join(got, seps) == text


def test_the_batch_token_budget_follows_the_device():
    """max_batch_tokens: auto (the default) is 4096 on a CPU and grows with a GPU's free
    memory: 32768 on an H200 (where the old 4096 made the engine slower than a plain loop)."""
    from common.errors import UserError
    from translate.engine import TRANSLATION_DEFAULTS, batch_token_budget, check_settings
    assert TRANSLATION_DEFAULTS["max_batch_tokens"] == "auto"
    gib = 2 ** 30
    assert batch_token_budget("auto", "cpu") == 4096
    assert batch_token_budget("auto", "cuda", free_bytes=139 * gib) == 32768
    assert batch_token_budget("auto", "cuda:1", free_bytes=78 * gib) == 16384
    assert batch_token_budget("auto", "cuda", free_bytes=6 * gib) == 8192        # never below 8192
    assert batch_token_budget("auto", "cuda", free_bytes=1000 * gib) == 65536    # nor above 65536
    assert batch_token_budget("12000", "cuda") == batch_token_budget(12000, "cpu") == 12000
    base = {**TRANSLATION_DEFAULTS, "cache": ""}
    for ok in ("auto", "8192", 8192):
        check_settings({**base, "max_batch_tokens": ok})
    for bad, says in (("fast", "must be auto or a whole number"), (0, "must be a number >= 1"),
                      ("0", "must be a number >= 1")):
        with pytest.raises(UserError) as e:
            check_settings({**base, "max_batch_tokens": bad})
        assert str(e.value).startswith("translation.max_batch_tokens: " + says), e.value
