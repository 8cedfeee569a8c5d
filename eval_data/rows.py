"""The evaluation row (key names from common/FORMATS.md) and language names for prompts."""
from __future__ import annotations

import unicodedata

from common.config import Config
from common.errors import UserError
from common.languages import load_languages


def nfc(text: str) -> str:
    """NFC and collapsed whitespace: the one normalisation every output text gets."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def eval_row(context: str, image_id: str, text_label, label: str = "", **extra) -> dict:
    """One row with the keys evaluation code expects, in a fixed order.

    ``label`` is "" in val/test files and the target in ``*_train`` files;
    ``extra`` carries pair_id (XVNLI) or left_image/right_image/concept/language
    (MaRVL, NLVR2).
    """
    row = {"context": context, "label": label, "image_id": image_id, "text_label": text_label}
    row.update(extra)
    return row


def language_name(code: str, cfg: Config) -> str:
    """English name of a benchmark language code: config overrides, then the language table."""
    extra = cfg.at("language_names")
    if code in extra:
        return str(extra[code])
    table = load_languages()
    if code in table:
        return table[code].name
    raise UserError(f"language code {code!r} has no English name: add it under "
                    f"language_names in the config")
