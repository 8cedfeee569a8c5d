"""The on-disk embedding cache: memory-mapped .npy parts, each with a manifest.

A part is ``<kind>-<tag>-<digest>.npy`` (float16, L2-normalised rows) beside
``<kind>-<tag>-<digest>.json`` = {"model", "kind", "settings", "dim", "dtype",
"count", "keys"}. "model" is ``model_identity``: the hub name, or for a local
folder its name plus a fingerprint of its files, so a model replaced in place
(same path, other weights or preprocessing) never reuses old vectors, while a
byte-identical copy on another node (sharded embedding) does.
Keys are image ids for images and caption hashes for texts. A run looks every
key up in all parts of its model and embeds only what is missing, into a new
part; so a re-run with other sampling settings embeds nothing, a larger slice
embeds only the new rows, and shards of a sharded embedding pass each write
their own part side by side (the manifest is written last, so a part without
one is an interrupted write and is ignored).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from common.jsonl import write_json

STORE_DTYPE = np.float16  # halves disk and page cache; search upcasts to float32
_SAMPLE = 1 << 20  # bytes hashed from each end of a large model file


def model_identity(model: str) -> str:
    """The cache's name for a model: ``model`` itself for a hub name; for a local
    folder ``local-model@<fingerprint>`` over every file's name, size and
    content (files over 2 MB: their first and last MB, which covers the
    safetensors header and weights; hashing 1.7 GB of ViT-L would take seconds
    on every run). Independent of the folder's name, location and mtimes."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return model
    h = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode("utf-8"))
        with open(path, "rb") as f:
            if size <= 2 * _SAMPLE:
                h.update(f.read())
            else:
                h.update(f.read(_SAMPLE))
                f.seek(-_SAMPLE, os.SEEK_END)
                h.update(f.read(_SAMPLE))
    return f"local-model@{h.hexdigest()[:20]}"


class EmbeddingCache:
    def __init__(self, folder: str | Path, model: str, kind: str, settings: dict | None = None):
        self.folder = Path(folder)
        self.model = model
        self.kind = kind
        self.settings = settings or {}   # what else changes a vector (e.g. the text token limit)
        self.where: dict[str, tuple[int, int]] = {}   # key -> (part number, row)
        self.parts: list[np.ndarray] = []
        self.dim: int | None = None
        self._load()

    def _load(self) -> None:
        if not self.folder.is_dir():
            return
        for manifest in sorted(self.folder.glob(f"{self.kind}-*.json")):
            try:
                meta = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue  # a damaged manifest: its part is embedded again
            if (meta.get("model"), meta.get("kind"), meta.get("settings", {})) != (self.model, self.kind,
                                                                                  self.settings):
                continue
            data_path = manifest.with_suffix(".npy")
            if not data_path.is_file():
                continue
            array = np.load(data_path, mmap_mode="r")
            if array.shape != (meta["count"], meta["dim"]) or len(meta["keys"]) != meta["count"]:
                continue
            if self.dim is not None and meta["dim"] != self.dim:
                continue
            self.dim = meta["dim"]
            part = len(self.parts)
            self.parts.append(array)
            for row, key in enumerate(meta["keys"]):
                if key is not None:  # None: an input that failed (e.g. a corrupt image)
                    self.where.setdefault(key, (part, row))

    def missing(self, keys: list[str]) -> list[str]:
        """Keys not cached, in first-seen order, each once."""
        return list(dict.fromkeys(k for k in keys if k not in self.where))

    def new_part(self, keys: list[str], dim: int, tag: str) -> "PartWriter":
        """A part to fill row by row (``with cache.new_part(...) as part:``); it
        is renamed into place and registered when the block ends without error."""
        return PartWriter(self, keys, dim, tag)

    def _register(self, keys: list[str | None], data_path: Path, dim: int) -> None:
        part = len(self.parts)
        self.parts.append(np.load(data_path, mmap_mode="r"))
        self.dim = dim
        for row, key in enumerate(keys):
            if key is not None:
                self.where.setdefault(key, (part, row))

    def gather(self, keys: list[str]) -> np.ndarray:
        """float32 matrix of the cached vectors of ``keys`` (all must be cached)."""
        out = np.empty((len(keys), self.dim or 0), dtype=np.float32)
        by_part: dict[int, tuple[list[int], list[int]]] = {}
        for i, key in enumerate(keys):
            part, row = self.where[key]
            dst, src = by_part.setdefault(part, ([], []))
            dst.append(i)
            src.append(row)
        for part, (dst, src) in by_part.items():
            order = np.argsort(src, kind="stable")  # sequential reads from the memory map
            src_sorted = np.asarray(src)[order]
            out[np.asarray(dst)[order]] = self.parts[part][src_sorted]
        return out


class PartWriter:
    """Rows of a new part, written into a memory-mapped temporary file."""

    def __init__(self, cache: EmbeddingCache, keys: list[str], dim: int, tag: str):
        self.cache = cache
        self.keys: list[str | None] = list(keys)
        self.dim = dim
        cache.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1("\n".join(keys).encode("utf-8")).hexdigest()[:12]
        self.stem = cache.folder / f"{cache.kind}-{tag}-{digest}"
        self.tmp = self.stem.with_name(self.stem.name + f".tmp{os.getpid()}.npy")
        self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=STORE_DTYPE,
                                               shape=(len(keys), dim))

    def drop(self, row: int) -> None:
        """Row ``row`` has no vector (its input failed); it is never looked up."""
        self.keys[row] = None

    def __enter__(self) -> "PartWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.array.flush()
        del self.array
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        data_path = self.stem.with_suffix(".npy")
        os.replace(self.tmp, data_path)
        c = self.cache
        write_json(self.stem.with_suffix(".json"), {
            "model": c.model, "kind": c.kind, "settings": c.settings, "dim": self.dim,
            "dtype": np.dtype(STORE_DTYPE).name, "count": len(self.keys), "keys": self.keys})
        c._register(self.keys, data_path, self.dim)
