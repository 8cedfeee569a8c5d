"""Shared test fixtures: the repo root, the real release files, a tiny NLLB model,
and the --set arguments that give a script its roots.

The real release files are read from ../shared/real beside the clone when it is
there (MBLIP_SHARED_REAL=DIR points elsewhere; a folder that does not exist
simulates a clone without it: those tests then skip).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = Path(os.environ.get("MBLIP_SHARED_REAL") or REPO.parent / "shared" / "real")
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
    from tests.tools.tiny_nllb import build_tiny_nllb
    out = tmp_path_factory.mktemp("tiny_nllb") / "model"
    return build_tiny_nllb(out, ct2=True)


def translation_sets(backend: str = "dry-run", cache: Path | str = "", model: Path | None = None) -> list[str]:
    """--set arguments selecting a translation backend for a script under test. The
    converted-model folder is always given (empty without a model), so a script that
    translates files it is told about needs no paths.work_dir for it."""
    sets = ["--set", f"translation.backend={backend}", "--set", f"translation.cache={cache}",
            "--set", "translation.progress=false", "--set", "translation.threads=1",
            "--set", f"translation.ct2_model={model / 'ct2' if model is not None else ''}"]
    if model is not None:
        sets += ["--set", f"translation.model={model}"]
    return sets


def root_sets(base: Path | str, raw: Path | str = FIXTURES_RAW) -> list[str]:
    """--set arguments for the three roots, which have no default: raw_root (the
    bundled fixtures unless given), work_dir=<base>/work and out_root=<base>/out."""
    return ["--set", f"paths.raw_root={raw}", "--set", f"paths.work_dir={Path(base) / 'work'}",
            "--set", f"paths.out_root={Path(base) / 'out'}"]
