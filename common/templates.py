"""Templates, written once: the slot syntax, filling, and the one check.

A template is the config's own wording with slots: ``{}`` (the example's text:
a question, an answer, a class name) and ``{name}`` (a named value: ``{lang}``,
``{question}``, ``{language}``). ``fill`` replaces exactly the slots and
touches nothing else, so a text with ``#``, ``{`` or ``}`` goes in verbatim
(``str.format`` would choke on it). Training templates (tasks/), evaluation
prompts (eval_data/) and translated templates (translate/: a translation must
keep the slots of its source) all use this module.
"""
from __future__ import annotations

import re

from .errors import UserError

SLOT = re.compile(r"\{([A-Za-z0-9_]*)\}")


def slots(template: str) -> list[str]:
    """The slot names of a template, in order ("" for ``{}``)."""
    return SLOT.findall(template)


def placeholders(text: str) -> list[str]:
    """The slots of a template as written (``{}``, ``{lang}``), in order: what a
    translation of it must keep."""
    return [m.group(0) for m in SLOT.finditer(text)]


def fill(template: str, text: str = "", **named) -> str:
    """``{}`` -> text, ``{name}`` -> str(named[name]); a slot without a value stays as it is."""
    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key == "":
            return text
        return str(named[key]) if key in named else m.group(0)
    return SLOT.sub(sub, template)


def check(key: str, template, allowed: set[str], required: set[str] | None = None) -> None:
    """Stop before any work (one line naming the config key) unless ``template`` is a
    non-empty string whose slots are all in ``allowed`` and include ``required``
    (default: exactly ``allowed``)."""
    if not isinstance(template, str) or not template.strip():
        raise UserError(f"{key}: template {template!r} is not a non-empty string")
    got = set(slots(template))
    need = allowed if required is None else required
    if not got <= allowed or not need <= got:
        shown = ", ".join(sorted("{" + w + "}" for w in allowed))
        raise UserError(f"{key}: template {template!r} must use the placeholders {shown}"
                        + (" (each of them)" if need == allowed else f" (at least {sorted(need)})"))
