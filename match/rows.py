"""Reading the English CapFilt intermediate (a slice of it) and comparing captions."""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from common.jsonl import BadRows, read_jsonl


@dataclass(frozen=True)
class Pair:
    """One image-caption row of the intermediate."""
    id: str
    image_id: str
    caption: str


def validate_row(row: dict) -> str | None:
    for key in ("id", "image_id", "caption"):
        value = row.get(key)
        if not isinstance(value, str):
            return f"field {key!r} missing or not a string"
        if not value.strip():
            return f"field {key!r} is empty"
    image = PurePosixPath(row["image_id"].replace("\\", "/"))
    if image.is_absolute() or ".." in image.parts:
        return f"image_id {row['image_id']!r} must be a path inside paths.image_root"
    return None


def read_pairs(path: str | Path, bad: BadRows, start: int = 0, max_rows: int = 0) -> list[Pair]:
    """The good rows ``start .. start+max_rows`` of the intermediate (max_rows 0: all).

    A row id seen before is reported and skipped: ids key the output rows.
    """
    pairs: list[Pair] = []
    seen: set[str] = set()
    good = 0
    for row in read_jsonl(path, bad, validate=validate_row):
        if row["id"] in seen:
            bad.add(f"{path}: id {row['id']}", "duplicate row id")
            continue
        seen.add(row["id"])
        good += 1
        if good <= start:
            continue
        pairs.append(Pair(row["id"], row["image_id"], row["caption"].strip()))
        if max_rows and len(pairs) >= max_rows:
            break
    return pairs


def normalise_caption(text: str) -> str:
    """The comparison key of a caption: two captions with the same key are the
    same caption for the purpose of a negative. NFKC, case-folded, with every
    punctuation mark, symbol, space and control character removed, so
    "A black-and-white photo." == "a black and white photo" and
    "a dog's bed" == "a dogs bed". Removing the spaces (rather than collapsing
    them) over-excludes at worst a caption that differs only in word breaks,
    which is no real negative anyway."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith(_DROP))


_DROP = ("P", "S", "Z", "C")  # punctuation, symbols, separators (spaces), control/format


def text_key(caption: str) -> str:
    """The cache key of a caption's embedding: its text, hashed (so identical
    captions are embedded once and an edited caption never reuses a stale vector)."""
    return hashlib.blake2b(caption.encode("utf-8"), digest_size=12).hexdigest()
