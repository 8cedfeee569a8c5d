import collections

from common.languages import assign_languages, language_counts, load_languages
from tests.conftest import REPO

SHARED_TSV = REPO.parent / "shared" / "data" / "languages.tsv"


def test_table_has_96_languages_with_nllb_codes():
    table = load_languages()
    assert len(table) == 96
    assert table["iw"].nllb == "heb_Hebr" and table["zh"].nllb == "zho_Hans" and table["en"].nllb == "eng_Latn"
    assert abs(sum(lang.mc4_percent for lang in table.values()) - 100) < 1e-6
    if SHARED_TSV.is_file():  # the bundled copy is the shared table
        assert (REPO / "common" / "languages.tsv").read_text() == SHARED_TSV.read_text()


def test_assignment_counts_follow_largest_remainder_on_10000_rows():
    table = load_languages()
    n = 10_000
    codes = assign_languages(n, seed=7)
    assert len(codes) == n
    counts = collections.Counter(codes)
    # Exactly the largest-remainder counts, computed independently here.
    exact = {c: n * lang.mc4_percent / 100 for c, lang in table.items()}
    floors = {c: int(v) for c, v in exact.items()}
    left = n - sum(floors.values())
    top = sorted(exact, key=lambda c: exact[c] - floors[c], reverse=True)[:left]
    expected = {c: floors[c] + (c in top) for c in table}
    assert {c: counts.get(c, 0) for c in table} == expected
    for c, v in exact.items():
        assert abs(counts.get(c, 0) - v) < 1


def test_assignment_deterministic_and_seed_dependent():
    assert assign_languages(500, 1) == assign_languages(500, 1)
    assert assign_languages(500, 1) != assign_languages(500, 2)


def test_assignment_subset_and_exclude():
    codes = assign_languages(1000, 0, exclude=["en"])
    assert "en" not in codes and len(codes) == 1000
    sub = assign_languages(10, 0, codes=["de", "fr"])
    assert len(sub) == 10 and set(sub) == {"de", "fr"}  # exact counts: see the subset test below


def test_language_counts_small_n_sum():
    for n in range(0, 50):
        assert sum(language_counts(n, {"a": 1, "b": 1, "c": 1}).values()) == n


def test_subset_counts_are_the_largest_remainder_of_the_subset_shares():
    table = load_languages()
    codes = ["de", "fr", "sw", "zh", "iw"]
    n = 1001
    got = collections.Counter(assign_languages(n, 3, codes=codes + ["de"]))  # a repeat counts once
    shares = {c: table[c].mc4_percent for c in codes}
    exact = {c: n * s / sum(shares.values()) for c, s in shares.items()}
    floors = {c: int(v) for c, v in exact.items()}
    top = sorted(codes, key=lambda c: exact[c] - floors[c], reverse=True)[:n - sum(floors.values())]
    assert dict(got) == {c: floors[c] + (c in top) for c in codes}
    got = collections.Counter(assign_languages(n, 3, codes=codes, exclude=["zh"]))
    assert "zh" not in got and sum(got.values()) == n


def test_assignment_errors_are_user_errors():
    import pytest
    from common.errors import UserError
    with pytest.raises(UserError, match="unknown language code 'xx'"):
        assign_languages(5, 0, codes=["de", "xx"])
    with pytest.raises(UserError, match="no language left"):
        assign_languages(5, 0, codes=["de"], exclude=["de"])


# -- the lookups and their messages (each one a user sees) ---------------------------------------------
def test_get_language_and_nllb_code():
    import pytest
    from common.errors import UserError
    from common.languages import LANGUAGES_TSV, get_language, nllb_code
    de = get_language("de")
    assert (de.code, de.name, de.nllb) == ("de", "German", "deu_Latn") and de.mc4_percent > 0
    assert nllb_code("iw") == "heb_Hebr" and nllb_code("fil") == get_language("fil").nllb
    with pytest.raises(UserError) as e:
        get_language("xx")
    assert str(e.value) == f"unknown language code 'xx' (see {LANGUAGES_TSV})"
    with pytest.raises(UserError, match="unknown language code 'yy'"):
        nllb_code("yy")


def test_check_language_codes_names_the_key_and_counts_the_rest():
    import pytest
    from common.errors import UserError
    from common.languages import LANGUAGES_TSV, check_language_codes, language_list
    assert check_language_codes(["de", "fr", "de", "zh"], "k") == ["de", "fr", "zh"]   # a repeat once, in order
    assert language_list([], "k") == list(load_languages()) and language_list(["sw"], "k") == ["sw"]
    for codes, more in ((["de", "xx"], ""), (["xx", "yy"], " (and 1 more)"), (["xx", "de", "yy", "zz"], " (and 2 more)")):
        with pytest.raises(UserError) as e:
            check_language_codes(codes, "mscoco.languages")
        assert str(e.value) == f"mscoco.languages: unknown language code 'xx'{more} (see {LANGUAGES_TSV})"
    with pytest.raises(UserError, match=r"^vqav2\.languages: unknown language code 'xx'"):
        language_list(["xx"], "vqav2.languages")


def test_language_counts_edges_and_ties():
    import pytest
    assert language_counts(0, {"a": 1, "b": 3}) == {"a": 0, "b": 0}
    assert language_counts(2, {"a": 0.25, "b": 0.25}) == {"a": 1, "b": 1}      # a total share under 1 is fine
    # Equal remainders (0.5 each): the larger share wins, then table order.
    assert language_counts(2, {"a": 1, "b": 3}) == {"a": 0, "b": 2}
    assert language_counts(2, {"b": 3, "a": 1}) == {"b": 2, "a": 0}
    assert language_counts(1, {"a": 1, "b": 1}) == {"a": 1, "b": 0}
    assert language_counts(1, {"b": 1, "a": 1}) == {"b": 1, "a": 0}
    # The largest remainder first, whatever the share.
    assert language_counts(3, {"a": 1, "b": 2, "c": 7}) == {"a": 0, "b": 1, "c": 2}
    for n, shares in ((-1, {"a": 1}), (5, {"a": 0}), (5, {})):
        with pytest.raises(ValueError) as e:
            language_counts(n, shares)
        assert str(e.value) == "need n >= 0 and a positive total share"


def test_assignment_is_the_counts_shuffled_by_seed_stage_and_n():
    """The draw's contract (a rerun with the same settings draws the same
    languages, across versions): the largest-remainder counts in table order,
    shuffled by common.sampling.rng(seed, "assign-languages", stage, n)."""
    from common.sampling import rng
    table = load_languages()
    for n, seed, stage in ((300, 0, ""), (301, 5, "capfilt.translate"), (40, 2, "match.translate")):
        counts = language_counts(n, {c: lang.mc4_percent for c, lang in table.items()})
        want = [c for c in table for _ in range(counts[c])]
        rng(seed, "assign-languages", stage, n).shuffle(want)
        assert assign_languages(n, seed, stage=stage) == want
    assert assign_languages(300, 0) == assign_languages(300, 0, stage="")
    assert assign_languages(300, 0, stage="a") != assign_languages(300, 0, stage="b")


def test_assignment_messages_name_the_list():
    import pytest
    from common.errors import UserError
    with pytest.raises(UserError, match=r"^language list: unknown language code 'xx'"):
        assign_languages(5, 0, codes=["de", "xx"])
    with pytest.raises(UserError, match=r"^excluded languages: unknown language code 'qq'"):
        assign_languages(5, 0, exclude=["qq"])
    with pytest.raises(UserError) as e:
        assign_languages(5, 0, codes=["de"], exclude=["de"])
    assert str(e.value) == "no language left to assign (every listed language is excluded)"


# -- the functions the translate steps use (mutation testing found them tested only from afar) --
def test_model_codes_of_each_family():
    import pytest
    from common.errors import UserError
    from common.languages import madlad_code, model_code
    assert model_code("de", "nllb") == "deu_Latn" and model_code("iw", "nllb") == "heb_Hebr"
    assert model_code("de", "madlad") == "<2de>" and model_code("iw", "madlad") == "<2he>"
    assert madlad_code("zh") == "zh"
    with pytest.raises(UserError) as e:
        model_code("de", "m2m")
    assert str(e.value) == "translation.model_family: 'm2m' is not one of nllb, madlad"
    with pytest.raises(UserError, match="unknown language code 'xx'"):
        madlad_code("xx")


def test_a_language_without_a_madlad_code_is_named(tmp_path, monkeypatch):
    import pytest
    from common import languages
    from common.errors import UserError
    lines = languages.MADLAD_CODES_TSV.read_text(encoding="utf-8").splitlines()
    edited = tmp_path / "madlad.tsv"
    edited.write_text("\n".join(x for x in lines if not x.startswith("de\t")) + "\n", encoding="utf-8")
    monkeypatch.setattr(languages, "MADLAD_CODES_TSV", edited)
    with pytest.raises(UserError) as e:
        languages.madlad_code("de")
    assert str(e.value) == (f"language 'de' (German) has no MADLAD-400 code in {edited}: leave it out of the "
                            "language list or use translation.model_family=nllb")
    assert languages.madlad_code("fr") == "fr"


def test_the_table_inputs_of_a_step_follow_its_model_family():
    from common.languages import LANGUAGES_TSV, MADLAD_CODES_TSV, table_inputs
    assert table_inputs() == [LANGUAGES_TSV]
    assert table_inputs({"translation": {"backend": "hf", "model_family": "nllb"}}) == [LANGUAGES_TSV]
    assert table_inputs({"translation": {"backend": "hf", "model_family": "madlad"}}) == \
        [LANGUAGES_TSV, MADLAD_CODES_TSV]
    assert table_inputs({"translation": {"model_family": "madlad"}}) == [LANGUAGES_TSV]    # no backend: no model
    assert table_inputs({"translation": "madlad"}) == [LANGUAGES_TSV]
    assert table_inputs(["not a config"]) == [LANGUAGES_TSV]


def test_each_split_policy_is_checked_and_recorded():
    import pytest
    from common.errors import UserError
    from common.languages import check_split
    assert check_split({}, "k") == {"policy": "mc4"}
    assert check_split({"policy": "mc4", "alpha": 0.3}, "k") == {"policy": "mc4"}   # only what the policy uses
    assert check_split({"policy": "temperature", "alpha": 0.3}, "k") == {"policy": "temperature", "alpha": 0.3}
    assert check_split({"policy": "english_share", "english": 1}, "k", ["en", "de"]) == \
        {"policy": "english_share", "english": 1.0}
    assert check_split({"policy": "english_share", "english": 0}, "k", ["de"]) == \
        {"policy": "english_share", "english": 0.0}
    for split, message in [
            ("mc4", "k: expected a mapping {policy, english, alpha}, got 'mc4'"),
            ({"policy": "uniform"}, "k.policy: 'uniform' is not one of mc4, english_share, temperature"),
            ({"policy": "temperature", "alpha": 1.5}, "k.alpha: need a number from 0 to 1, got 1.5"),
            ({"policy": "temperature", "alpha": -0.1}, "k.alpha: need a number from 0 to 1, got -0.1"),
            ({"policy": "temperature", "alpha": True}, "k.alpha: need a number from 0 to 1, got True"),
            ({"policy": "english_share", "english": "half"}, "k.english: need a number from 0 to 1, got 'half'")]:
        with pytest.raises(UserError) as e:
            check_split(split, "k", ["en", "de"])
        assert str(e.value) == message
    with pytest.raises(UserError) as e:
        check_split({"policy": "english_share", "english": 0.5}, "k", ["de", "fr"])
    assert str(e.value) == "k.english: an English share of 0.5 but en is not among the languages drawn"


def test_shares_and_target_percent_under_each_policy():
    import pytest
    from common.languages import SPLIT_DEFAULT, split_shares, target_percent
    table = load_languages()
    assert split_shares(["de", "fr"]) == {"de": table["de"].mc4_percent, "fr": table["fr"].mc4_percent}
    assert split_shares(["de", "fr"], {"policy": "temperature", "alpha": 0.5}) == \
        {"de": table["de"].mc4_percent ** 0.5, "fr": table["fr"].mc4_percent ** 0.5}
    assert split_shares(["en", "de", "fr"], {"policy": "english_share", "english": 0.4}) == \
        pytest.approx({"en": 0.4, "de": 0.3, "fr": 0.3})
    assert split_shares(["en"], {"policy": "english_share", "english": 0.4}) == {"en": 0.4}
    assert split_shares(["de", "fr"], {"policy": "english_share", "english": 1.0}) == {"de": 1.0, "fr": 1.0}
    pct = target_percent(["en", "de"])
    total = table["en"].mc4_percent + table["de"].mc4_percent
    assert pct == pytest.approx({"en": 100 * table["en"].mc4_percent / total, "de": 100 * table["de"].mc4_percent / total})
    assert target_percent(["en", "de", "fr"], {"policy": "temperature", "alpha": 0.0}) == \
        pytest.approx({c: 100 / 3 for c in ("en", "de", "fr")})
    from common.languages import check_split      # the documented defaults of each policy's number
    assert check_split({"policy": "temperature"}, "k") == {"policy": "temperature", "alpha": 0.3}
    assert check_split({"policy": "english_share"}, "k", ["en"]) == {"policy": "english_share", "english": 0.5}
    assert SPLIT_DEFAULT["policy"] == "mc4"


def test_assignment_draws_by_the_split_and_refuses_an_empty_list():
    import pytest
    from common.errors import UserError
    out = assign_languages(1000, 1, ["en", "de"], split={"policy": "english_share", "english": 0.25})
    assert collections.Counter(out) == {"en": 250, "de": 750}
    with pytest.raises(UserError) as e:
        assign_languages(10, 1, ["de"], exclude=["de"])
    assert str(e.value) == "no language left to assign (every listed language is excluded)"
