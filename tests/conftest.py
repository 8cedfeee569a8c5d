"""Shared test fixtures: the repo root, the real release files, a tiny NLLB model."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "real"
FIXTURES_RAW = REPO / "tests" / "fixtures" / "raw"
PYTHON = sys.executable

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def real_root() -> Path:
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real release files not found at {SHARED_REAL}")
    return SHARED_REAL


@pytest.fixture(scope="session")
def tiny_nllb(tmp_path_factory) -> Path:
    """A tiny NLLB-architecture model (random weights, vocabulary trained on the
    fly), saved locally and converted for CTranslate2 into <dir>/ct2."""
    from translate.tiny_model import build_tiny_nllb
    out = tmp_path_factory.mktemp("tiny_nllb") / "model"
    return build_tiny_nllb(out, ct2=True)


def translation_sets(backend: str = "dry-run", cache: Path | str = "", model: Path | None = None) -> list[str]:
    """--set arguments selecting a translation backend for a script under test."""
    sets = ["--set", f"translation.backend={backend}", "--set", f"translation.cache={cache}",
            "--set", "translation.progress=false", "--set", "translation.threads=1"]
    if model is not None:
        sets += ["--set", f"translation.model={model}", "--set", f"translation.ct2_model={model / 'ct2'}"]
    return sets
