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
