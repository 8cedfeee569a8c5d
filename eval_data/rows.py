"""The evaluation row (key names from common/FORMATS.md) and language names for prompts."""
from __future__ import annotations

import unicodedata

from common.config import Config
from common.errors import UserError
from common.languages import ALIASES, load_languages


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
    """English name of a benchmark language code, as the training mix names it:
    the language table (a code the release spells otherwise, e.g. XM3600's he,
    through ``common.languages.ALIASES``), then ``language_names`` for codes
    the table lacks (checked against the table by ``check_language_names``)."""
    table = load_languages()
    if ALIASES.get(code, code) in table:
        return table[ALIASES.get(code, code)].name
    extra = cfg.at("language_names")
    if code in extra:
        return str(extra[code])
    raise UserError(f"language code {code!r} has no English name: add it under "
                    f"language_names in the config")


def check_language_names(names: dict) -> None:
    """``language_names`` may only name codes the table lacks, or name them as the
    table does: a prompt names a language as the training mix does (exit 2 otherwise)."""
    table = load_languages()
    for code, name in names.items():
        known = table.get(ALIASES.get(str(code), str(code)))
        if known is not None and str(name) != known.name:
            raise UserError(f"language_names.{code}: {name!r} differs from the training mix's name "
                            f"{known.name!r} for {known.code} (common/languages.tsv)")
