"""common/templates.py: the one slot syntax, fill and check of every template."""
from __future__ import annotations

import pytest

from common.errors import UserError
from common.templates import check, fill, placeholders, slots


def test_fill_replaces_slots_only():
    assert fill("Q: {} in {lang}?", "what is {x} # here {}", lang="German") == "Q: what is {x} # here {} in German?"
    assert fill("Ask: {question} Reply in {language}.", question="Is it 5{}?", language="Hindi") \
        == "Ask: Is it 5{}? Reply in Hindi."
    assert fill("{a} and {b}", a=1) == "1 and {b}"          # a slot without a value stays
    assert slots("x {} {lang} {}") == ["", "lang", ""] and placeholders("x {} {lang}") == ["{}", "{lang}"]


def test_check_names_the_key_and_the_slots():
    check("k", "Caption {} in {lang}", {"", "lang"})
    check("maxm.context_template", "Q: {question}", {"question", "language"}, required={"question"})
    for bad in ("Caption {}", "Caption {} {lang} {x}", "", None):
        with pytest.raises(UserError) as e:
            check("mscoco.templates.naming", bad, {"", "lang"})
        assert str(e.value).startswith("mscoco.templates.naming: template ")
    with pytest.raises(UserError) as e:
        check("maxm.context_template", "Reply in {language}.", {"question", "language"}, required={"question"})
    assert "at least ['question']" in str(e.value)
