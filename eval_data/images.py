"""Finding image files on disk whatever Unicode normalisation they were unpacked with.

MaRVL's concept folders have non-ASCII names. Annotations spell them one way
(mostly NFC, some NFD), while the files on disk carry whatever form the
unzip tool or file system produced (macOS gives NFD). Comparing names under
NFC finds the file that exists; the returned path uses the on-disk spelling,
so a loader can open it as is.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path


def _key(name: str) -> str:
    return unicodedata.normalize("NFC", name)


class ImageFinder:
    """Resolve relative image paths under ``root`` component by component.

    Each folder is listed once (cached), so resolving 10k paths costs one
    directory listing per folder, not one stat per normalisation variant.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root_exists = self.root.is_dir()

    @lru_cache(maxsize=None)
    def _listing(self, folder: str) -> dict[str, str]:
        path = self.root / folder if folder else self.root
        try:
            names = sorted(p.name for p in path.iterdir())
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return {}
        listing: dict[str, str] = {}
        for name in names:
            # Two on-disk names equal under NFC are ambiguous; the first (sorted) wins.
            listing.setdefault(_key(name), name)
        return listing

    def resolve(self, *parts: str) -> str | None:
        """The relative path (on-disk spelling, '/'-joined) of an existing file, or None."""
        if not self.root_exists:
            return None
        found: list[str] = []
        for i, part in enumerate(parts):
            actual = self._listing("/".join(found)).get(_key(part))
            if actual is None:
                return None
            found.append(actual)
        rel = "/".join(found)
        return rel if (self.root / rel).is_file() else None

    def exists(self, rel: str) -> bool:
        """Plain existence check for sources whose names are ASCII (XM3600/MaXM keys)."""
        return self.root_exists and (self.root / rel).is_file()
