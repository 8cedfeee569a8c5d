"""MADLAD-400 as a model family (translation.model_family): the codes of every
language, the target tag the backends put first, outputs on both backends (a
tiny random-weight T5 built on the fly, tests/tools/tiny_madlad.py), cache and
store keys that never mix families, a language without a code refused, and the
family checks."""
import copy
import re

import pytest

from common.config import Config
from common.errors import UserError
from common.languages import load_languages, madlad_code, model_code, table_inputs
from translate.cache import TranslationCache
from translate.engine import TRANSLATION_DEFAULTS, Engine, check_settings
from translate.families import check_model_codes, resolve_family

TEXTS = ["A dog runs on the green grass.", "Is there a cat?", "Two children are playing in the park today.",
         "Describe the image."]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_madlad(tmp_path_factory):
    from tests.tools.tiny_madlad import build_tiny_madlad
    return build_tiny_madlad(tmp_path_factory.mktemp("tiny_madlad") / "model", ct2=True)


def tcfg(**kw):
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    cfg.update(device="cpu", cache="", progress=False, threads=1,
               quality={**cfg["quality"], "langid": False, "max_repeats": 10_000, "max_ratio": 1000.0})
    cfg.update(kw)
    return cfg


def madlad_cfg(backend, model, **kw):
    return tcfg(backend=backend, model=str(model), ct2_model=str(model / "ct2"), dtype="float32", **kw)


# -- the codes ----------------------------------------------------------------------------------
def test_every_language_has_its_madlad_code():
    table = load_languages()
    codes = {c: madlad_code(c) for c in table}
    assert len(codes) == len(table) == 96        # English and the 95 targets
    assert all(re.fullmatch(r"[a-z]{2,3}", m) for m in codes.values())
    assert {c: m for c, m in codes.items() if c != m} == {"iw": "he"}     # the one exception
    assert [model_code(c, "madlad") for c in ("de", "zh", "fil", "iw", "ku", "no", "jv")] == \
        ["<2de>", "<2zh>", "<2fil>", "<2he>", "<2ku>", "<2no>", "<2jv>"]
    assert model_code("ku", "nllb") == "kmr_Latn"                          # nllb unchanged


def without(tmp_path, monkeypatch, code):
    """An edited copy of the MADLAD code table where ``code`` has no code."""
    import common.languages as languages
    src = languages.MADLAD_CODES_TSV.read_text(encoding="utf-8")
    edited = tmp_path / "madlad_codes.tsv"
    edited.write_text(re.sub(rf"(?m)^{code}\t\S+$", f"{code}\t", src), encoding="utf-8")
    monkeypatch.setattr(languages, "MADLAD_CODES_TSV", edited)
    return edited


def test_a_language_without_a_madlad_code_is_refused_in_one_line(tmp_path, monkeypatch):
    without(tmp_path, monkeypatch, "yo")
    with pytest.raises(UserError, match=r"^language 'yo' \(Yoruba\) has no MADLAD-400 code") as e:
        madlad_code("yo")
    assert "\n" not in str(e.value) and "model_family=nllb" in str(e.value)
    cfg = tcfg(backend="dry-run", model_family="madlad")
    with pytest.raises(UserError, match="'yo'"):
        check_model_codes(cfg, ["de", "yo"])           # the translate step's check before work
    check_model_codes(cfg, ["de", "fr"])
    check_model_codes(tcfg(backend="dry-run"), ["yo"])   # nllb has it
    eng = Engine(cfg)
    with pytest.raises(UserError, match="'yo'"):      # before any model call
        eng.translate(["A dog.", "A cat."], ["de", "yo"])
    assert eng.backend.calls == 0


# -- model_family checks ------------------------------------------------------------------------
def test_model_family_is_checked_before_work(tiny_madlad, tiny_nllb, tmp_path):
    with pytest.raises(UserError, match="translation.model_family: 'marian' is not one of auto, nllb, madlad"):
        check_settings(tcfg(model_family="marian"))
    with pytest.raises(UserError, match="openai backend does not run a MADLAD model"):
        check_settings(tcfg(backend="openai", model_family="madlad", openai={"model": "m"}))
    with pytest.raises(UserError, match=r"model_family=nllb, but the model is madlad \(model_type 't5'"):
        check_settings(madlad_cfg("hf", tiny_madlad, model_family="nllb"))
    with pytest.raises(UserError, match=r"model_family=nllb, but the model is madlad \(tokenizer_class"):
        check_settings(madlad_cfg("ctranslate2", tiny_madlad, model_family="nllb"))
    with pytest.raises(UserError, match="model_family=madlad, but the model is nllb"):
        check_settings(tcfg(backend="hf", model=str(tiny_nllb), model_family="madlad"))
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(UserError, match="neither NLLB nor MADLAD"):
        check_settings(tcfg(backend="hf", model=str(other)))
    # auto: from the model's files; nllb where there are none or no model runs.
    assert resolve_family(madlad_cfg("hf", tiny_madlad)) == "madlad"
    assert resolve_family(madlad_cfg("ctranslate2", tiny_madlad)) == "madlad"
    assert resolve_family(tcfg(backend="hf", model=str(tiny_nllb))) == "nllb"
    assert resolve_family(tcfg(backend="ctranslate2", ct2_model=str(tiny_nllb / "ct2"))) == "nllb"
    assert resolve_family(tcfg(backend="hf", model=str(tmp_path / "absent"))) == "nllb"
    assert resolve_family(tcfg(backend="dry-run")) == "nllb"
    check_settings(madlad_cfg("hf", tiny_madlad, model_family="madlad"))


def test_convert_ct2_refuses_another_architecture(tmp_path):
    pytest.importorskip("ctranslate2")
    from translate.convert_ct2 import convert_ct2
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(UserError, match="neither NLLB nor MADLAD"):
        convert_ct2(tmp_path / "m", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- the backends -------------------------------------------------------------------------------
class Spy:
    """Records the calls to a backend's model (generate) or translator."""

    def __init__(self, target, method):
        self.target, self.method, self.calls = target, method, []

    def __getattr__(self, name):
        inner = getattr(self.target, name)
        if name != self.method:
            return inner

        def call(*args, **kw):
            self.calls.append((args, kw))
            return inner(*args, **kw)
        return call


@pytest.mark.parametrize("backend", ["hf", "ctranslate2"])
def test_the_backend_puts_the_target_tag_first_and_forces_nothing(tiny_madlad, backend):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(tiny_madlad))
    be = Engine(madlad_cfg(backend, tiny_madlad)).backend
    assert be.family == "madlad"
    tgts = ["<2de>", "<2he>", "<2fil>", "<2de>"]
    if backend == "hf":
        be.model = spy = Spy(be.model, "generate")
    else:
        be.translator = spy = Spy(be.translator, "translate_batch")
    outs = be.translate_batch(TEXTS, "<2en>", tgts, 5)
    assert len(outs) == 4 and all(o.strip() for o in outs)
    (args, kw), = spy.calls
    expected = [[tok.convert_tokens_to_ids(t)] + tok(x)["input_ids"] for x, t in zip(TEXTS, tgts)]
    if backend == "hf":
        ids, mask = kw["input_ids"].tolist(), kw["attention_mask"].tolist()
        rows = [[i for i, m in zip(r, mr) if m] for r, mr in zip(ids, mask)]
        assert kw["decoder_input_ids"].tolist() == [[0]] * 4          # the decoder start only
    else:
        rows = [tok.convert_tokens_to_ids(r) for r in args[0]]
        assert kw["target_prefix"] is None
    assert rows == expected
    assert [r[0] for r in rows] == tok.convert_tokens_to_ids(tgts)
    assert be.count_tokens(TEXTS[:1], "<2en>") == [len(expected[0])]   # the tag is counted


def test_both_backends_write_the_same_outputs_and_the_tag_matters(tiny_madlad):
    """float32 on both: the same input ids give the same greedy output, so the
    CTranslate2 path hands the model exactly what transformers does."""
    tgts = ["de", "iw", "fil", "zh", "sw"]
    pairs = [(t, g) for t in TEXTS for g in tgts]
    outs = {}
    for backend in ("hf", "ctranslate2"):
        eng = Engine(madlad_cfg(backend, tiny_madlad))
        res = eng.translate([p[0] for p in pairs], [p[1] for p in pairs])
        assert all(r.reason is None and r.text for r in res), res
        outs[backend] = [r.text for r in res]
        assert eng.summary()["translated"] == len(pairs)
    assert outs["hf"] == outs["ctranslate2"]
    by_text = [set(outs["hf"][i * len(tgts):(i + 1) * len(tgts)]) for i in range(len(TEXTS))]
    assert any(len(s) > 1 for s in by_text)          # another tag, another output


def test_a_vocabulary_without_the_tag_is_refused(tiny_madlad, tmp_path):
    from tests.tools.tiny_madlad import build_tiny_madlad
    model = build_tiny_madlad(tmp_path / "no-sw", exclude=("sw",))
    be = Engine(madlad_cfg("hf", model)).backend
    with pytest.raises(UserError, match="its vocabulary has no target tag <2sw>"):
        be.translate_batch(["A dog."], "<2en>", ["<2sw>"], 4)


# -- keys ---------------------------------------------------------------------------------------
def test_a_madlad_run_never_reuses_an_nllb_translation(tmp_path):
    """Same cache, same backend identity (dry-run): only the family differs. Each
    family reuses its own translations and never the other's."""
    cache = tmp_path / "cache.sqlite"
    counts = {}
    for family in ("nllb", "madlad", "nllb", "madlad"):
        eng = Engine(tcfg(backend="dry-run", model_family=family, cache=str(cache)))
        res = eng.translate(["A dog runs.", "A cat sits."], ["de", "iw"])
        s = eng.summary()
        eng.close()
        counts.setdefault(family, []).append((s.get("cached", 0), s.get("translated", 0)))
        tag = {"nllb": "[deu_Latn]", "madlad": "[<2de>]"}[family]
        assert res[0].text == f"{tag} A dog runs."
    assert counts == {"nllb": [(0, 2), (2, 0)], "madlad": [(0, 2), (2, 0)]}
    db = TranslationCache(cache)
    tgts = sorted(t for (t,) in db.db.execute("SELECT tgt FROM segments"))
    db.close()
    assert tgts == ["<2de>", "<2he>", "deu_Latn", "heb_Hebr"]
    nllb = Engine(tcfg(backend="dry-run", model_family="nllb")).gen_key
    madlad = Engine(tcfg(backend="dry-run", model_family="madlad")).gen_key
    assert "family" not in nllb and madlad == nllb.replace("dry-run", "dry-run|family=madlad")


def test_the_template_store_key_follows_the_family():
    from translate.source import store_key
    sets = {"caption": ["Describe the image."]}
    nllb = store_key(sets, tcfg(backend="dry-run", model_family="nllb"), ["de", "iw"])
    madlad = store_key(sets, tcfg(backend="dry-run", model_family="madlad"), ["de", "iw"])
    assert nllb["model_codes"] == {"de": "deu_Latn", "iw": "heb_Hebr"}
    assert madlad["model_codes"] == {"de": "<2de>", "iw": "<2he>"}


def test_the_madlad_table_is_an_input_of_steps_that_translate_with_madlad(tiny_madlad):
    import common.languages as languages
    assert table_inputs(Config({"translation": tcfg(backend="dry-run")})) == [languages.LANGUAGES_TSV]
    assert table_inputs(Config({"translation": madlad_cfg("hf", tiny_madlad)})) == \
        [languages.LANGUAGES_TSV, languages.MADLAD_CODES_TSV]
    assert table_inputs(None) == [languages.LANGUAGES_TSV]
