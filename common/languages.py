"""The language table of the training mix and mC4-share language assignment."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .config import REPO_ROOT
from .errors import UserError
from .sampling import rng

# The table ships with the project (a copy of shared/data/languages.tsv); MBLIP_LANGUAGE_TABLE
# names another (an edited copy). Every step that uses it lists it among its inputs
# (``table_inputs``), so an edit makes those steps stale.
LANGUAGES_TSV = Path(os.environ.get("MBLIP_LANGUAGE_TABLE") or REPO_ROOT / "common" / "languages.tsv")
# Codes that releases spell otherwise -> the table's code (ISO 639-1 replaced iw by he; XM3600 writes he).
ALIASES = {"he": "iw"}
# The MADLAD-400 code of each language (a separate file: languages.tsv stays a copy of the
# shared table). Source and exceptions (iw -> he) in the file's header; MBLIP_MADLAD_CODES
# names an edited copy.
MADLAD_CODES_TSV = Path(os.environ.get("MBLIP_MADLAD_CODES") or REPO_ROOT / "common" / "madlad_codes.tsv")
# translation.model_family: how a language is named to the model. nllb: the table's NLLB code
# (deu_Latn) as source and forced target token; madlad: a target tag "<2de>" before the text.
MODEL_FAMILIES = ("nllb", "madlad")


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    nllb: str
    mc4_percent: float


@lru_cache(maxsize=4)
def load_languages(path: str | Path = LANGUAGES_TSV) -> dict[str, Language]:
    """code -> Language, in table order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"language table not found: {path}")
    table: dict[str, Language] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        for lineno, row in enumerate(reader, 2):
            try:
                lang = Language(row["code"].strip(), row["name"].strip(), row["nllb"].strip(),
                                float(row["mc4_percent"]))
            except (KeyError, ValueError, AttributeError) as e:
                raise UserError(f"{path}:{lineno}: bad language row ({e})") from None
            if lang.code in table:
                raise UserError(f"{path}:{lineno}: duplicate language code {lang.code!r}")
            table[lang.code] = lang
    return table


def table_inputs(cfg=None) -> list[Path]:
    """The language table, as an input of the steps that use it (a ``reads`` entry);
    with the MADLAD codes where the step's translation uses the madlad family."""
    out = [LANGUAGES_TSV]
    tcfg = cfg.get("translation") if cfg is not None and hasattr(cfg, "get") else None
    if isinstance(tcfg, dict) and tcfg.get("backend"):
        from translate.families import resolve_family   # the model's files decide "auto"
        if resolve_family(tcfg) == "madlad":
            out.append(MADLAD_CODES_TSV)
    return out


def get_language(code: str) -> Language:
    table = load_languages()
    if code not in table:
        raise UserError(f"unknown language code {code!r} (see {LANGUAGES_TSV})")
    return table[code]


def nllb_code(code: str) -> str:
    return get_language(code).nllb


@lru_cache(maxsize=4)
def _madlad_codes(path: Path) -> dict[str, str]:
    """code -> MADLAD code ("" where the file gives none), from the file at path."""
    if not path.is_file():
        raise UserError(f"MADLAD code table not found: {path}")
    table, out = load_languages(), {}
    with open(path, encoding="utf-8", newline="") as f:
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip() and not line.startswith("#")]
    if not lines or lines[0][1].rstrip("\r\n").split("\t") != ["code", "madlad"]:
        raise UserError(f"{path}: the first row must be the header code<TAB>madlad")
    for lineno, line in lines[1:]:
        cells = line.rstrip("\r\n").split("\t")
        code, madlad = cells[0].strip(), (cells[1].strip() if len(cells) > 1 else "")
        if code not in table or code in out or len(cells) > 2 or any(c in madlad for c in "<> "):
            raise UserError(f"{path}:{lineno}: bad row {line.strip()!r} (an unknown or repeated code, "
                            f"or a MADLAD code with <, > or a space)")
        out[code] = madlad
    return out


def madlad_code(code: str) -> str:
    """The MADLAD-400 code of a language ("he" for iw); one line naming the language
    when it has none."""
    lang = get_language(code)
    madlad = _madlad_codes(MADLAD_CODES_TSV).get(code, "")
    if not madlad:
        raise UserError(f"language {code!r} ({lang.name}) has no MADLAD-400 code in {MADLAD_CODES_TSV}: "
                        f"leave it out of the language list or use translation.model_family=nllb")
    return madlad


def model_code(code: str, family: str) -> str:
    """What the model of ``family`` receives for a language: the NLLB code
    ("deu_Latn") or the MADLAD target tag ("<2de>")."""
    if family == "nllb":
        return nllb_code(code)
    if family == "madlad":
        return f"<2{madlad_code(code)}>"
    raise UserError(f"translation.model_family: {family!r} is not one of {', '.join(MODEL_FAMILIES)}")


def check_language_codes(codes, key: str) -> list[str]:
    """The one check of a configured list of language codes: each must be in
    the table, else one line naming the config key. Returns the codes as
    strings, a repeated one once."""
    table = load_languages()
    out = list(dict.fromkeys(str(c) for c in codes))
    unknown = [c for c in out if c not in table]
    if unknown:
        raise UserError(f"{key}: unknown language code {unknown[0]!r}"
                        f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''} (see {LANGUAGES_TSV})")
    return out


def language_list(codes, key: str) -> list[str]:
    """A configured ``languages`` list, checked; empty means every language of
    the table (in table order)."""
    return check_language_codes(codes, key) if codes else list(load_languages())


def language_counts(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Split n items by shares with the largest-remainder method: counts sum to n exactly.

    Ties in the remainder go to the larger share, then to table order, so the
    result is deterministic.
    """
    total = sum(shares.values())
    if n < 0 or total <= 0:
        raise ValueError("need n >= 0 and a positive total share")
    exact = {c: n * s / total for c, s in shares.items()}
    counts = {c: int(v) for c, v in exact.items()}
    left = n - sum(counts.values())
    order = sorted(shares, key=lambda c: (-(exact[c] - counts[c]), -shares[c], list(shares).index(c)))
    for c in order[:left]:
        counts[c] += 1
    return counts


# -- language-split policies ------------------------------------------------------------------------
# How the rows of a translated source are split over its languages (``<section>.language_split``):
#   mc4:           each language's mC4 share (mBLIP's split; English 43.8% over the whole table)
#   english_share: English ``english`` (0..1), the rest uniform over the other chosen languages
#                  (Centurio's recipe: 0.5)
#   temperature:   mC4 shares to the power ``alpha`` (0..1; 1 is mc4, 0 uniform), renormalised
SPLIT_POLICIES = ("mc4", "english_share", "temperature")
SPLIT_DEFAULT = {"policy": "mc4", "english": 0.5, "alpha": 0.3}


def check_split(split, key: str, codes: list[str] | None = None) -> dict:
    """A configured language split, checked (one line naming the key, exit 2);
    ``codes``: the chosen languages (english_share needs English among them).
    Returns the split as the reports record it (only what the policy uses)."""
    if not isinstance(split, dict):
        raise UserError(f"{key}: expected a mapping {{policy, english, alpha}}, got {split!r}")
    policy = split.get("policy", "mc4")
    if policy not in SPLIT_POLICIES:
        raise UserError(f"{key}.policy: {policy!r} is not one of {', '.join(SPLIT_POLICIES)}")
    param = {"mc4": None, "english_share": "english", "temperature": "alpha"}[policy]
    if param is None:
        return {"policy": policy}
    value = split.get(param, SPLIT_DEFAULT[param])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise UserError(f"{key}.{param}: need a number from 0 to 1, got {value!r}")
    if policy == "english_share" and codes is not None and value > 0 and "en" not in codes:
        raise UserError(f"{key}.english: an English share of {value} but en is not among the languages drawn")
    return {"policy": policy, param: float(value)}


def split_shares(codes: list[str], split: dict | None = None) -> dict[str, float]:
    """The relative share of each chosen language under a split policy (not
    normalised: ``language_counts`` divides by the total). mc4 gives the table's
    mC4 percentages themselves, so today's draws are reproduced exactly."""
    table = load_languages()
    split = split or {"policy": "mc4"}
    if split["policy"] == "temperature":
        return {c: table[c].mc4_percent ** split["alpha"] for c in codes}
    if split["policy"] == "english_share":
        others = [c for c in codes if c != "en"]
        rest = (1 - split["english"]) / len(others) if others else 0.0
        shares = {c: (split["english"] if c == "en" else rest) for c in codes}
        return shares if sum(shares.values()) > 0 else {c: 1.0 for c in codes}
    return {c: table[c].mc4_percent for c in codes}


def target_percent(codes: list[str], split: dict | None = None) -> dict[str, float]:
    """Per chosen language, its target share in percent under the policy."""
    shares = split_shares(codes, split)
    total = sum(shares.values())
    return {c: 100 * v / total for c, v in shares.items()}


def assign_languages(n: int, seed: int, codes: list[str] | None = None,
                     exclude: list[str] | None = None, stage: str = "", split: dict | None = None) -> list[str]:
    """One language per example: counts follow the shares of the ``split``
    policy (default mC4; ``check_split``) exactly (largest remainder),
    positions are a seeded shuffle. Same (n, seed, codes, stage, split) ->
    same list.

    ``stage`` names the step that draws (e.g. "capfilt.translate"): the shuffle
    is seeded by (seed, stage, n), so two steps that draw over the same number
    of rows with the same configured seed (CapFilt captions and the matching
    examples of the same images) draw independently, and the share of rows
    that get the same language in both is what chance gives.
    """
    chosen = language_list(codes, "language list")  # a repeated code counts once
    check_language_codes(exclude or [], "excluded languages")
    chosen = [c for c in chosen if c not in set(exclude or [])]
    if not chosen:
        raise UserError("no language left to assign (every listed language is excluded)")
    counts = language_counts(n, split_shares(chosen, split))
    out = [c for c in chosen for _ in range(counts[c])]
    rng(seed, "assign-languages", stage, n).shuffle(out)
    return out
