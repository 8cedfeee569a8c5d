"""COCO image file names: ids -> the file names of the configured image folder.

The image id of every COCO-based example is the COCO 2014 file name
(``COCO_train2014_%012d.jpg`` / ``COCO_val2014_%012d.jpg``, patterns in config).
Sources that give only a numeric id (A-OKVQA, LLaVA: COCO 2017 ids, which are
the 2014 ids) are resolved against the files that exist in the folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from common.errors import UserError


def list_images(folder: Path) -> set[str]:
    """File names in the image folder (one scandir, not a stat per example)."""
    if not folder.is_dir():
        raise UserError(f"COCO image folder not found: {folder} (paths.coco_images)")
    with os.scandir(folder) as it:
        return {e.name for e in it}


def pattern_name(pattern: str, cid: int) -> str:
    try:
        return pattern % cid
    except (TypeError, ValueError) as e:
        raise UserError(f"image name pattern {pattern!r}: {e}") from None


class CocoResolver:
    """COCO id -> the first configured pattern whose file exists (2014 train, then val)."""

    def __init__(self, folder: Path, patterns: list[str]):
        if not patterns:
            raise UserError("coco image name patterns: need at least one pattern")
        self.existing = list_images(folder)
        self.patterns = patterns

    def __call__(self, cid: int) -> str | None:
        for p in self.patterns:
            name = pattern_name(p, cid)
            if name in self.existing:
                return name
        return None
