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
