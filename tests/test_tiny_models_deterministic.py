"""Generated test models are deterministic: two builds give the same bytes."""
from pathlib import Path

from tests.tools.tiny_clip import build_tiny_clip


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tiny_clip_builds_are_byte_identical(tmp_path):
    corpus = ["a red bus parked on the street", "two dogs play in the snow", "a bowl of soup on a table"]
    a = _files(build_tiny_clip(tmp_path / "a", corpus))
    b = _files(build_tiny_clip(tmp_path / "b", corpus))
    assert a.keys() == b.keys() and "tokenizer.json" in a or "vocab.json" in a
    assert a == b


def test_tiny_nllb_builds_are_byte_identical(tmp_path):
    """The engine demo's model (make demo builds it on the spot) is deterministic too,
    its CTranslate2 conversion included."""
    from tests.tools.tiny_nllb import build_tiny_nllb
    a = _files(build_tiny_nllb(tmp_path / "a", ct2=True))
    b = _files(build_tiny_nllb(tmp_path / "b", ct2=True))
    assert a.keys() == b.keys() and any(k.startswith("ct2/") for k in a)
    assert a == b
