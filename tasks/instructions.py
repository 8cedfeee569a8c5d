"""Instruction templates: filling placeholders and choosing a template per example.

Templates are the config's own wording. ``{}`` is the example's text (question,
answer, class name) and ``{lang}`` the English name of the target language.
Filling replaces exactly those tokens, so a question that contains ``#``,
``{`` or ``}`` is inserted verbatim (str.format would choke on it).
"""
from __future__ import annotations

import random
import re

from common.errors import UserError
from common.languages import get_language

_SLOT = re.compile(r"\{([A-Za-z0-9_]*)\}")
FINAL_KEYS = ("context", "label", "image_id", "task", "lang")


def fill(template: str, text: str = "", **named: str) -> str:
    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key == "":
            return text
        if key in named:
            return named[key]
        return m.group(0)
    return _SLOT.sub(sub, template)


def check_templates(section: str, templates: dict[str, list], needs: dict[str, set]) -> None:
    """Every template list must be non-empty strings with exactly the placeholders it needs."""
    for name, want in needs.items():
        items = templates.get(name)
        if not isinstance(items, list) or not items:
            raise UserError(f"{section}.{name}: need a non-empty list of templates")
        for t in items:
            if not isinstance(t, str) or not t.strip():
                raise UserError(f"{section}.{name}: template {t!r} is not a non-empty string")
            got = set(_SLOT.findall(t))
            if got != want:
                raise UserError(f"{section}.{name}: template {t!r} must have the placeholders "
                                f"{sorted('{' + w + '}' for w in want)}")


def final_row(context: str, label: str, image_id: str, task: str, lang: str) -> dict:
    """A training row: exactly the keys of FORMATS.md, in a fixed order."""
    return {"context": context, "label": label, "image_id": image_id, "task": task, "lang": lang}


class InstructionPicker:
    """Chooses, per example, between a template translated into the target
    language (with probability ``translated_ratio``) and an English template
    naming the target language. English targets use the plain English templates.

    Two draws per call, whatever the branch, so one example's choice never
    shifts the next one's.
    """

    def __init__(self, r: random.Random, english: list[str], naming: list[str],
                 translated: dict[str, list[str]] | None, translated_ratio: float):
        self.r = r
        self.english = english
        self.naming = naming
        self.translated = translated or {}
        self.ratio = translated_ratio
        self.counts = {"english": 0, "translated_template": 0, "english_naming_language": 0}

    def pick(self, lang: str, text: str = "", name_language: bool = False) -> str:
        """An instruction for output in ``lang``; ``name_language`` forces a
        naming template (e.g. English output asked for after a translated question)."""
        coin, k = self.r.random(), self.r.random()
        if name_language:
            self.counts["english_naming_language"] += 1
            return fill(self.naming[int(k * len(self.naming))], text, lang=get_language(lang).name)
        if lang == "en":
            self.counts["english"] += 1
            return fill(self.english[int(k * len(self.english))], text)
        own = self.translated.get(lang) or []
        if own and coin < self.ratio:
            self.counts["translated_template"] += 1
            return fill(own[int(k * len(own))], text)
        self.counts["english_naming_language"] += 1
        return fill(self.naming[int(k * len(self.naming))], text, lang=get_language(lang).name)
