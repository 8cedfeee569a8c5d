"""Bring the embedding cache up to date for a set of captions and images.

Only keys missing from the cache are embedded (and, in a sharded run, only
those whose hash falls in this shard); the CLIP model is loaded only when
something is missing. Images that failed (missing file, corrupt) are recorded
with the file's size and mtime, so a re-run does not decode them again unless
the file changed (e.g. it was downloaded again).
"""
from __future__ import annotations

import collections
import os
from pathlib import Path

from common.jsonl import load_json, write_json
from common.shards import key_shard
from .embed_cache import EmbeddingCache, model_identity


def file_signature(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class FailedImages:
    """image_id -> (reason, file signature) from earlier runs, one file per shard tag."""

    def __init__(self, folder: Path, model: str):
        self.folder = folder
        self.model = model
        self.known: dict[str, dict] = {}
        for path in sorted(folder.glob("image-failures-*.json")) if folder.is_dir() else []:
            data = load_json(path)
            if data.get("model") == model:
                self.known.update(data.get("failed", {}))

    def still_failing(self, image_id: str, path: Path) -> str | None:
        """The recorded reason when the file is unchanged since it failed."""
        entry = self.known.get(image_id)
        if entry is not None and entry.get("signature") == file_signature(path):
            return entry["reason"]
        return None

    def save(self, tag: str, failed: dict[str, str], paths: dict[str, Path]) -> None:
        if not failed:
            return
        path = self.folder / f"image-failures-{tag}.json"
        data = load_json(path) if path.is_file() else {}
        if data.get("model") != self.model:  # another model's record: start a new one
            data = {"model": self.model, "failed": {}}
        for image_id, reason in failed.items():
            data["failed"][image_id] = {"reason": reason, "signature": file_signature(paths[image_id])}
        write_json(path, data)


def _in_shard(key: str, num_shards: int, shard_index: int) -> bool:
    return num_shards == 1 or key_shard(key, num_shards, salt="match-embed-shard") == shard_index


def update_cache(cfg, texts: dict[str, str], images: dict[str, Path],
                 num_shards: int = 1, shard_index: int = 0,
                 embedder_factory=None) -> tuple[EmbeddingCache, EmbeddingCache, dict[str, str], dict]:
    """Embed what the caches lack.

    texts: key -> caption; images: image_id -> file. Returns (text cache, image
    cache, failed images {image_id: reason}, stats).
    """
    ec = cfg["embed"]
    model = model_identity(ec["model"])
    folder = Path(ec["cache_dir"])
    text_cache = EmbeddingCache(folder, model, "text", {"max_text_tokens": ec["max_text_tokens"]})
    image_cache = EmbeddingCache(folder, model, "image")
    failures = FailedImages(folder, model)
    stats: collections.Counter = collections.Counter()
    failed: dict[str, str] = {}

    todo_texts = [k for k in text_cache.missing(list(texts)) if _in_shard(k, num_shards, shard_index)]
    todo_images = []
    for image_id in image_cache.missing(list(images)):
        reason = failures.still_failing(image_id, images[image_id])
        if reason is not None:
            failed[image_id] = reason
            stats["images_failed_before_unchanged"] += 1
        elif _in_shard(image_id, num_shards, shard_index):
            todo_images.append(image_id)
    stats["texts_cached"] = len(texts) - len(text_cache.missing(list(texts)))
    stats["images_cached"] = len(images) - len(image_cache.missing(list(images)))
    stats["embedding_passes"] = 0
    stats["model"] = model
    if not todo_texts and not todo_images:
        return text_cache, image_cache, failed, dict(stats)

    embedder = (embedder_factory or _default_embedder)(ec)
    tag = f"shard{shard_index:05d}of{num_shards:05d}" if num_shards > 1 else "run"
    if todo_texts:
        with text_cache.new_part(todo_texts, embedder.dim, tag) as part:
            embedder.embed_texts([texts[k] for k in todo_texts], part.array, ec["text_batch"])
        stats["embedding_passes"] += 1
        stats["texts_embedded"] = len(todo_texts)
    if todo_images:
        new_failed: dict[str, str] = {}
        with image_cache.new_part(todo_images, embedder.dim, tag) as part:
            def on_fail(i: int, reason: str) -> None:
                part.drop(i)
                new_failed[todo_images[i]] = reason
            embedder.embed_images([images[k] for k in todo_images], part.array, ec["image_batch"],
                                  ec["image_workers"], on_fail)
        failures.save(tag, new_failed, images)
        failed.update(new_failed)
        stats["embedding_passes"] += 1
        stats["images_embedded"] = len(todo_images) - len(new_failed)
        stats["images_failed_now"] = len(new_failed)
    stats["model_forward_batches"] = embedder.forward_batches
    return text_cache, image_cache, failed, dict(stats)


def _default_embedder(ec: dict):
    from .clip_embed import ClipEmbedder
    return ClipEmbedder(ec["model"], ec["device"], ec["dtype"], ec["max_text_tokens"], ec["progress"])

