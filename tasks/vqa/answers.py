"""Answer translation with a round-trip check: a translation of a frequent
answer is kept only if translating it back to English gives the original
answer again (case-insensitive). Both directions go through the one Engine."""
from __future__ import annotations

import collections

from translate.engine import Engine


def round_trip(engine: Engine, answers: list[str], languages: list[str]) -> tuple[dict[str, dict[str, str]], dict]:
    """-> ({lang: {english answer: kept translation}}, counts)."""
    langs = [c for c in languages if c != "en"]
    counts: collections.Counter = collections.Counter()
    texts = [a for _ in langs for a in answers]
    tgts = [c for c in langs for _ in answers]
    forward = engine.translate(texts, tgts, src="en")
    by_lang: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for answer, lang, res in zip(texts, tgts, forward):
        if res.text is None or not res.text.strip():
            counts["forward_rejected"] += 1
            continue
        by_lang[lang].append((answer, res.text.strip()))
    kept: dict[str, dict[str, str]] = {}
    for lang in langs:
        pairs = by_lang.get(lang, [])
        if not pairs:
            continue
        back = engine.translate([t for _, t in pairs], ["en"] * len(pairs), src=lang)
        for (answer, translated), res in zip(pairs, back):
            if res.text is not None and res.text.strip().casefold() == answer.strip().casefold():
                kept.setdefault(lang, {})[answer] = translated
                counts["kept"] += 1
            else:
                counts["round_trip_mismatch" if res.text is not None else "back_rejected"] += 1
    counts["answers"] = len(answers)
    counts["languages"] = len(langs)
    return kept, dict(counts)
