"""Seeded randomness: every stage draws from its own named random.Random."""
import hashlib
import random


def rng(seed: int, *names: object) -> random.Random:
    """A random.Random that depends only on the seed and the names (never on hash())."""
    key = ":".join([str(seed), *map(str, names)])
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def stable_hash(*parts: object) -> int:
    """A process-independent 64-bit hash (for shard assignment and per-row draws)."""
    key = "\x1f".join(map(str, parts))
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
