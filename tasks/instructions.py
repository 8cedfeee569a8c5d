"""Instruction templates of the task sources: their checks and the final row.

Templates are the config's own wording. ``{}`` is the example's text (question,
answer, class name) and ``{lang}`` the English name of the target language;
``fill`` and the slot check are common/templates.py; the per-row
``InstructionPicker`` lives in translate/source.py (the one translated-source workflow).
"""
from __future__ import annotations

from common.errors import UserError
from common.templates import check

FINAL_KEYS = ("context", "label", "image_id", "task", "lang")


def check_templates(section: str, templates: dict[str, list], needs: dict[str, set]) -> None:
    """Every template list must be non-empty strings with exactly the placeholders it needs."""
    for name, want in needs.items():
        items = templates.get(name)
        if not isinstance(items, list) or not items:
            raise UserError(f"{section}.{name}: need a non-empty list of templates")
        for t in items:
            check(f"{section}.{name}", t, want)


def final_row(context: str, label: str, image_id: str, task: str, lang: str) -> dict:
    """A training row: exactly the keys of common/FORMATS.md, in a fixed order."""
    return {"context": context, "label": label, "image_id": image_id, "task": task, "lang": lang}
