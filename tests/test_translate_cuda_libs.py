"""translate/cuda_libs.py: CTranslate2's CUDA 12 libraries found in, and loaded from,
pip's nvidia-* packages (a CUDA-13-only machine). No GPU here: the finding, the
export line and the loading of a library file are checked; that CTranslate2 then
runs on such a GPU is not (docs/translation.md says so)."""
from __future__ import annotations

import ctypes.util
import shutil
from pathlib import Path

import pytest

from translate import cuda_libs


def _real_library() -> Path:
    for name in ("z", "m", "c"):
        found = ctypes.util.find_library(name)
        for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                  "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64"):
            if found and (Path(d) / found).is_file():
                return Path(d) / found
    pytest.skip("no system shared library to stand in for cuBLAS")


def test_found_in_pip_packages_and_exported(tmp_path):
    site = tmp_path / "site-packages"
    for pkg, name in (("cublas", "libcublas.so.12"), ("cublas", "libcublasLt.so.12"), ("cudnn", "libcudnn.so.9")):
        (site / "nvidia" / pkg / "lib").mkdir(parents=True, exist_ok=True)
        (site / "nvidia" / pkg / "lib" / name).write_bytes(b"")
    found = cuda_libs.find([site])
    assert set(found) == {"libcublas.so.12", "libcublasLt.so.12", "libcudnn.so.9"}
    line = cuda_libs.export_line([site])
    assert line.startswith(f"export LD_LIBRARY_PATH={site}/nvidia/cublas/lib:{site}/nvidia/cudnn/lib")
    assert cuda_libs.find([tmp_path / "elsewhere"]) == {} and cuda_libs.export_line([tmp_path]) == ""


def test_preload_loads_what_it_finds_and_skips_what_does_not_load(tmp_path):
    site = tmp_path / "site-packages"
    (site / "nvidia" / "cublas" / "lib").mkdir(parents=True)
    shutil.copy(_real_library(), site / "nvidia" / "cublas" / "lib" / "libcublas.so.12")
    (site / "nvidia" / "cublas" / "lib" / "libcublasLt.so.12").write_bytes(b"not a library")
    assert cuda_libs.preload([site]) == ["libcublas.so.12"]
