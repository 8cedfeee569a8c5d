"""The keys of translate/source.py a user relies on without seeing them: the
template store's key (every setting that shapes a translation refuses an old
store, settings of speed do not) and the picker's draws (each stage and each
purpose draws on its own, so two stages with one seed do not pick in lockstep)."""
from __future__ import annotations

import collections
import json

import pytest

from common.errors import UserError
from translate import source
from tests.test_translated_source import TagEngine
from translate.engine import TRANSLATION_DEFAULTS

TCFG = {**json.loads(json.dumps(TRANSLATION_DEFAULTS)), "backend": "hf", "model": "m", "ct2_model": "c",
        "cache": "x.sqlite"}
SETS, LANGS = {"ask": ["Caption it.", "Describe {}."]}, ["en", "de", "fr"]

# A changed value for every setting that shapes what the model writes (the hf backend).
SHAPING = {"beam_size": 4, "max_words_per_segment": 50, "max_new_tokens": 128, "length_factor": 3.0,
           "length_extra": 20, "quality": {**TCFG["quality"], "max_repeats": 3}, "dtype": "float16",
           "backend": "ctranslate2", "model": "other", "model_family": "nllb"}
# Settings of speed and bookkeeping (openai's settings: of another backend).
SPEED = {"device": "cuda", "threads": 8, "max_batch_tokens": 32768, "cache": "", "flush_segments": 10, "flush_seconds": 5,
         "progress": False, "max_reject_rate": 0.5, "openai": {**TCFG["openai"], "model": "llm", "prompt": "v2"}}
# The openai backend's own settings: the served model and the prompt shape, the rest is speed.
OPENAI = {**TCFG, "backend": "openai", "openai": {**TCFG["openai"], "model": "served-llm"}}
OPENAI_SHAPING = {"model": "other-llm", "prompt": "v2"}
OPENAI_SPEED = {"base_url": "http://10.0.0.2:9000/v1", "api_key_env": "OTHER_KEY", "concurrency": 64,
                "timeout": 5.0, "retries": 0, "max_retry_wait": 1.0}


@pytest.fixture
def prompt_v2(monkeypatch):
    from translate.openai_backend import PROMPTS
    monkeypatch.setitem(PROMPTS, "v2", PROMPTS["v1"] + " Keep it short.")


def test_every_shaping_setting_is_listed_here():
    assert set(TCFG) - {"ct2_model"} == set(SHAPING) | set(SPEED)
    assert set(TCFG["openai"]) == set(OPENAI_SHAPING) | set(OPENAI_SPEED)


@pytest.mark.parametrize("key", sorted(SHAPING))
def test_a_store_made_with_another_shaping_setting_is_refused_and_rebuilt(tmp_path, key):
    path, engine = tmp_path / "store.json", TagEngine()
    source.build_store(engine, path, SETS, TCFG, LANGS)
    changed = {**TCFG, key: SHAPING[key]}
    assert source.store_key(SETS, changed, LANGS) != source.store_key(SETS, TCFG, LANGS)
    with pytest.raises(UserError, match=f"translation.{key}"):
        source.load_store(path, SETS, changed, LANGS, "mscoco.translate", [])
    source.build_store(engine, path, SETS, changed, LANGS)
    assert engine.texts == 8
    source.load_store(path, SETS, changed, LANGS, "mscoco.translate", [])


@pytest.mark.parametrize("key", sorted(SPEED))
def test_a_speed_setting_reuses_the_store(tmp_path, key, capsys):
    path, engine = tmp_path / "store.json", TagEngine()
    source.build_store(engine, path, SETS, TCFG, LANGS)
    changed = {**TCFG, key: SPEED[key]}
    assert source.store_key(SETS, changed, LANGS) == source.store_key(SETS, TCFG, LANGS)
    capsys.readouterr()
    source.build_store(engine, path, SETS, changed, LANGS)
    assert engine.texts == 4 and f"templates: up to date in {path}" in capsys.readouterr().err


def openai_with(**kw):
    return {**OPENAI, "openai": {**OPENAI["openai"], **kw}}


@pytest.mark.parametrize("key", sorted(OPENAI_SHAPING))
def test_another_served_model_or_prompt_version_refuses_the_store(tmp_path, key, prompt_v2):
    path, engine = tmp_path / "store.json", TagEngine()
    source.build_store(engine, path, SETS, OPENAI, LANGS)
    changed = openai_with(**{key: OPENAI_SHAPING[key]})
    with pytest.raises(UserError, match="translation.(model|openai) changed"):
        source.load_store(path, SETS, changed, LANGS, "mscoco.translate", [])
    source.build_store(engine, path, SETS, changed, LANGS)
    assert engine.texts == 8


def test_an_edited_prompt_text_refuses_the_store_under_the_same_version(tmp_path, monkeypatch):
    from translate.openai_backend import PROMPTS
    path = tmp_path / "store.json"
    source.build_store(TagEngine(), path, SETS, OPENAI, LANGS)
    monkeypatch.setitem(PROMPTS, "v1", PROMPTS["v1"] + " Keep it short.")
    with pytest.raises(UserError, match=r"translation.openai changed.*step 4.2 \(mscoco.translate\)"):
        source.load_store(path, SETS, OPENAI, LANGS, "mscoco.translate", [])


@pytest.mark.parametrize("key", sorted(OPENAI_SPEED))
def test_an_openai_speed_setting_reuses_the_store(tmp_path, key):
    path, engine = tmp_path / "store.json", TagEngine()
    source.build_store(engine, path, SETS, OPENAI, LANGS)
    changed = openai_with(**{key: OPENAI_SPEED[key]})
    assert source.load_store(path, SETS, changed, LANGS, "mscoco.translate", []) == \
        source.build_store(engine, path, SETS, changed, LANGS)
    assert engine.texts == 4


def test_the_model_that_counts_is_the_backends():
    key = lambda **kw: source.store_key(SETS, {**TCFG, **kw}, LANGS)["translation"]   # noqa: E731
    assert key(backend="hf")["model"] == "m" and key(backend="ctranslate2")["model"] == "c"
    assert key(backend="openai", openai={**TCFG["openai"], "model": " llm "})["model"] == "llm"
    assert key(backend="dry-run")["model"] is None
    # hf: the converted model does not count; ctranslate2: the hf model does not; dry-run and
    # openai: neither (nor dtype, which only a model run here takes).
    assert key(ct2_model="x") == key()
    assert key(backend="ctranslate2", model="x") == key(backend="ctranslate2")
    assert key(backend="ctranslate2", ct2_model="x") != key(backend="ctranslate2")
    assert key(backend="dry-run", model="x", ct2_model="y", dtype="float16") == key(backend="dry-run")
    assert key(backend="openai", model="x", dtype="float16") == key(backend="openai")
    from pathlib import Path
    assert key(model=Path("/m"))["model"] == "/m"
    assert "ct2_model" not in key() and list(key())[:2] == ["backend", "model"]


def test_templates_and_languages_are_part_of_the_key_in_order(tmp_path):
    base = source.store_key(SETS, TCFG, LANGS)
    assert source.store_key({"ask": SETS["ask"][::-1]}, TCFG, LANGS) != base
    assert source.store_key({"other": SETS["ask"]}, TCFG, LANGS) != base
    assert source.store_key(SETS, TCFG, ("en", "de", "fr")) == base     # a tuple reads back as a list
    assert source.store_key(SETS, TCFG, ["de", "en", "fr"]) != base
    assert source.fingerprint(base) == source.fingerprint(json.loads(json.dumps(base)))
    assert source.fingerprint(base) != source.fingerprint(source.store_key(SETS, TCFG, ["en"]))
    assert source.fingerprint({"t": "é"}) != source.fingerprint({"t": "e"})


def test_what_changed_is_named_in_a_few_words():
    new = source.store_key(SETS, TCFG, LANGS)
    assert source._changed(None, new) == "the file has no key"
    assert source._changed([], new) == "the file has no key"
    assert source._changed(new, new) == "the fingerprint"
    old = source.store_key({"x": []}, {**TCFG, "beam_size": 9, "length_extra": 1}, ["en"])
    assert source._changed(old, new) == \
        "templates, languages, model_codes, translation.beam_size, translation.length_extra"
    many = {**TCFG, **{k: v for k, v in SHAPING.items() if k not in ("backend", "model")}}
    assert source._changed(source.store_key(SETS, many, LANGS), new) == \
        ", ".join(f"translation.{k}" for k in sorted(set(SHAPING) - {"backend", "model"})[:5])   # five at most
    assert source._changed({"translation": "bad"}, new).startswith("templates, languages, model_codes, "
                                                                    "translation.backend")


def test_the_store_file_holds_key_fingerprint_counts_and_translations(tmp_path):
    path = tmp_path / "store.json"
    got = source.build_store(TagEngine(), path, SETS, TCFG, LANGS)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["key"] == source.store_key(SETS, TCFG, LANGS)
    assert data["fingerprint"] == source.fingerprint(data["key"]) and data["translated"] == got
    assert set(data["counts"]) == {"ask"}
    # A store without its key (an older format): translated again, not trusted.
    path.write_text(json.dumps({"translated": got}), encoding="utf-8")
    engine = TagEngine()
    source.build_store(engine, path, SETS, TCFG, LANGS)
    assert engine.texts == 4
    path.write_text(json.dumps({"key": data["key"], "translated": []}), encoding="utf-8")
    with pytest.raises(UserError, match="not a translated-templates file"):
        source.load_store(path, SETS, TCFG, LANGS, "mscoco.translate", [])


# -- the picker's draws ---------------------------------------------------------------------------------
IDS = [f"row-{i}" for i in range(3000)]


def agree(a: list, b: list) -> float:
    return sum(x == y for x, y in zip(a, b)) / len(a)


def test_two_stages_with_one_seed_pick_independently():
    english = ["E1", "E2", "E3", "E4"]
    a = source.InstructionPicker(0, "capfilt", english, ["N {lang}"], {}, 0.5)
    b = source.InstructionPicker(0, "match", english, ["N {lang}"], {}, 0.5)
    pa, pb = [a.pick(r, "en") for r in IDS], [b.pick(r, "en") for r in IDS]
    assert 0.2 < agree(pa, pb) < 0.3                     # chance: 1/4, not lockstep
    ca, cb = [a.coin(r) < 0.5 for r in IDS], [b.coin(r) < 0.5 for r in IDS]
    assert 0.45 < agree(ca, cb) < 0.55
    # The same stage and seed: the same picks; another seed: others.
    assert [source.InstructionPicker(0, "capfilt", english, [], {}, 0.5).pick(r, "en") for r in IDS] == pa
    assert agree([source.InstructionPicker(1, "capfilt", english, [], {}, 0.5).pick(r, "en") for r in IDS], pa) < 0.3


def test_each_purpose_draws_on_its_own():
    """The translated/English coin, the English, translated and naming choices of one row are
    separate draws: knowing one tells nothing of another."""
    four = ["A", "B", "C", "D"]
    p = source.InstructionPicker(3, "s", four, [f"{x} {{lang}}" for x in four], {"de": four}, 0.5)
    en = [p.pick(r, "en") for r in IDS]
    named = [p.pick(r, "de", name_language=True).split()[0] for r in IDS]
    assert 0.2 < agree(en, named) < 0.3
    coin = [p.coin(r) for r in IDS]
    translated = [(c, p.pick(r, "de")) for r, c in zip(IDS, coin)]
    own = [t for c, t in translated if c < 0.5]
    assert set(own) == set(four)
    assert 0.2 < agree([t for c, t in translated if c < 0.5], [e for e, (c, _) in zip(en, translated) if c < 0.5]) < 0.3
    assert all(t.endswith("German") for c, t in translated if c >= 0.5)
    # The coin is uniform in [0, 1): about half the rows under 0.5, a tenth under 0.1.
    assert 0.45 < sum(c < 0.5 for c in coin) / len(coin) < 0.55
    assert 0.08 < sum(c < 0.1 for c in coin) / len(coin) < 0.12 and all(0 <= c < 1 for c in coin)


def test_the_ratio_and_the_counts():
    four = ["A", "B", "C", "D"]
    never = source.InstructionPicker(3, "s", four, ["N {lang}"], {"de": ["T"]}, 0.0)
    always = source.InstructionPicker(3, "s", four, ["N {lang}"], {"de": ["T"]}, 1.0)
    assert {never.pick(r, "de") for r in IDS[:200]} == {"N German"}
    assert {always.pick(r, "de") for r in IDS[:200]} == {"T"}
    assert always.pick("x", "fr") == "N French"                           # no template for fr
    assert always.counts == {"english": 0, "translated_template": 200, "english_naming_language": 1,
                             "no_translated_template_for_lang": 1}
    assert always.pick("x", "en") in four and always.counts["english"] == 1
    assert always.pick("x", "en", name_language=True) == "N English"
    p = source.InstructionPicker(3, "s", ["Say {}."], ["In {lang}: {}"], None, 1.0)
    assert p.pick("r", "en", text="hi") == "Say hi." and p.pick("r", "de", text="hi") == "In German: hi"


def test_row_draws_depend_on_seed_purpose_and_row():
    assert source.row_unit(1, "p", "r") == source.row_unit(1, "p", "r")
    draws = {source.row_unit(s, p, r) for s in (1, 2) for p in ("p", "q") for r in ("r", "t")}
    assert len(draws) == 8
    items = list(range(1000))
    picks = collections.Counter(source.row_choice(items, 0, "p", r) for r in IDS)
    assert len(picks) > 900
    assert source.row_choice(["x"], 5, "p", "r") == "x"


def test_fill_and_slots():
    from common.templates import fill, slots
    assert slots("A {} b {lang} {x_1} {bad-name} {{}}") == ["", "lang", "x_1", ""]
    assert fill("Say {} in {lang}, {other}.", "a {b} #", lang="German") == "Say a {b} # in German, {other}."
    assert fill("{}{}", "x") == "xx" and fill("plain") == "plain" and source.fill is fill


# -- pinned: the instructions a released version gives --------------------------------------------------
def test_the_picks_are_those_of_the_released_version():
    """A run with the same seed gives the rows the same instructions as before: a change of a
    purpose label, the hash or the coin would pass every determinism test (two runs of the same
    code agree) and still change every mix. Pinned values, computed once."""
    p = source.InstructionPicker(11, "mscoco", ["E1 {}", "E2 {}", "E3 {}"], ["N1 {lang} {}", "N2 {lang} {}",
                                                                            "N3 {lang} {}"],
                                 {"de": ["D1 {}", "D2 {}", "D3 {}"]}, 0.5)
    rows = [f"r{i}" for i in range(8)]
    assert [p.pick(r, "de", text="x") for r in rows] == \
        ["D2 x", "N3 German x", "N3 German x", "D1 x", "D2 x", "N2 German x", "D3 x", "D3 x"]
    assert [p.pick(r, "en", text="x") for r in rows] == ["E1 x", "E3 x", "E2 x", "E3 x", "E3 x", "E3 x", "E1 x", "E3 x"]
    assert [p.pick(r, "de", text="x", name_language=True) for r in rows] == \
        ["N2 German x", "N3 German x", "N3 German x", "N3 German x", "N2 German x", "N2 German x", "N1 German x",
         "N1 German x"]
    assert dict(p.counts) == {"english": 8, "translated_template": 5, "english_naming_language": 11}
    assert [p.coin(r) for r in rows[:4]] == [0.326873, 0.911467, 0.774003, 0.380946]
    assert [source.row_unit(3, "p", r) for r in rows[:3]] == [0.679625, 0.369084, 0.068774]
    assert p.pick("r0", "en") == "E1 " and source.fill("a{}b") == "ab"


def test_the_store_fingerprint_is_of_the_sorted_utf8_key():
    assert source.fingerprint({"b": "é", "a": 1}) == source.fingerprint({"a": 1, "b": "é"}) == \
        "72098b2a2208bcd8cda44c39c3aa422be996b505ae0f32eae54f5da06d5ecfd4"


def test_the_store_says_what_it_does(tmp_path, capsys):
    path = tmp_path / "store.json"
    source.build_store(TagEngine(), path, SETS, TCFG, LANGS)
    assert capsys.readouterr().err.strip() == \
        f"templates: translated into 3 languages -> {path} ({{'ask': {json.loads(path.read_text())['counts']['ask']}}})"
    source.build_store(TagEngine(), path, SETS, {**TCFG, "beam_size": 2}, LANGS)
    assert capsys.readouterr().err.splitlines()[0] == \
        f"templates: {path} is stale (translation.beam_size changed): translating again"


def test_a_refused_store_names_the_command_with_the_users_options(tmp_path):
    argv = ["--set", "paths.raw_root=/r", "--set", "mscoco.seed=3"]
    for path, setup in [(tmp_path / "none.json", None), (tmp_path / "bad.json", "{}"), (tmp_path / "old.json", "old")]:
        if setup == "{}":
            path.write_text("{}", encoding="utf-8")
        elif setup == "old":
            source.build_store(TagEngine(), path, SETS, TCFG, LANGS)
        with pytest.raises(UserError) as e:
            source.load_store(path, SETS, {**TCFG, "beam_size": 5}, LANGS, "mscoco.translate", argv)
        assert str(e.value).endswith("step 4.2 (mscoco.translate): python tasks/mscoco/translate_train.py "
                                     "--set paths.raw_root=/r --set mscoco.seed=3"), str(e.value)


def test_the_ratio_is_a_strict_bound_and_rows_without_a_template_are_counted():
    edge = source.InstructionPicker(11, "mscoco", ["E"], ["N {lang}"], {"de": ["D"]}, 0.326873)
    assert edge.coin("r0") == 0.326873 and edge.pick("r0", "de") == "N German"    # coin == ratio: not under it
    p = source.InstructionPicker(11, "mscoco", ["E"], ["N {lang}"], {"de": ["D"]}, 1.0)
    p.pick("a", "fr")
    p.pick("b", "sw")
    assert p.counts["no_translated_template_for_lang"] == 2 and p.counts["english_naming_language"] == 2


def test_a_steps_record_holds_the_shaping_settings_flattened_and_no_speed_setting():
    """What `python -m common status` compares for a step that translates
    (translate.shaping.step_values in its shaped_by): every shaping setting
    under its dotted key, nested ones flattened; no speed setting; nothing for
    a config without a translation section."""
    from translate.shaping import step_values
    tcfg = {**TCFG, "backend": "hf", "model": "/m/nllb", "dtype": "float16", "max_batch_tokens": 999,
            "quality": {"max_repeats": 4, "check_language": True}}
    values = step_values({"translation": tcfg, "other": {"x": 1}})
    assert values["translation.backend"] == "hf" and values["translation.model"] == "/m/nllb"
    assert values["translation.dtype"] == "float16"
    assert values["translation.quality.max_repeats"] == 4 and values["translation.quality.check_language"] is True
    assert "translation.quality" not in values and "translation.max_batch_tokens" not in values
    assert all(k.startswith("translation.") for k in values)
    assert step_values({"other": {"x": 1}}) == {} and step_values({"translation": "hf"}) == {}


def test_an_unset_dtype_is_auto_and_an_unset_served_model_is_empty_in_the_cache_key():
    from translate.shaping import cache_model_key, shaping_settings
    hf = {"backend": "hf", "model": "/m", "beam_size": 2}
    assert shaping_settings(hf)["dtype"] == "auto"
    assert cache_model_key(hf) == "hf:/m:auto:beam2"
    assert cache_model_key(hf, "float16") == "hf:/m:float16:beam2"   # as the backend resolved it
    served = cache_model_key({"backend": "openai", "openai": {"prompt": "v1"}})
    assert served.startswith("openai::prompt=v1.") and served.endswith(":t0")


def test_an_unknown_prompt_version_has_no_text_hash():
    from translate.shaping import shaping_settings
    got = shaping_settings({"backend": "openai", "openai": {"model": "m", "prompt": "no-such-version"}})
    assert got["openai"] == {"prompt": "no-such-version", "prompt_sha256": None}
