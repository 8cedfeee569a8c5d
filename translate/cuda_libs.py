"""CTranslate2 on a machine whose CUDA is newer than its wheel.

CTranslate2's Linux wheels are built against CUDA 12 and load ``libcublas.so.12``
(and cuDNN 9) when they translate on a GPU. A machine with only CUDA 13 has
neither, and the run stops with "Library libcublas.so.12 is not found or cannot
be loaded". The CUDA 12 libraries come from pip, beside the project, without
touching the system's CUDA (the GPU driver runs CUDA 12 code too):

    pip install nvidia-cublas-cu12 nvidia-cudnn-cu12

They land under ``site-packages/nvidia/<library>/lib``. The ctranslate2 backend
loads them from there before it starts (``preload``), so nothing more is
needed; ``python -m translate.cuda_libs`` lists what it finds and prints the
``LD_LIBRARY_PATH`` line for other programs (a process reads that variable
only when it starts).
"""
from __future__ import annotations

import ctypes
import site
import sys
import sysconfig
from pathlib import Path

# The CUDA 12 libraries CTranslate2 opens, by the pip package (folder under nvidia/) holding them.
LIBRARIES = {"cublas": ("libcublasLt.so.12", "libcublas.so.12"), "cudnn": ("libcudnn.so.9",),
             "cuda_runtime": ("libcudart.so.12",)}


def site_dirs() -> list[Path]:
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    user = site.getusersitepackages()
    return [Path(d) for d in dict.fromkeys([*dirs, user]) if d and Path(d).is_dir()]


def find(dirs: list[Path] | None = None) -> dict[str, Path]:
    """{library file name: path} of the CUDA 12 libraries pip installed (nvidia/<pkg>/lib)."""
    found: dict[str, Path] = {}
    for base in (site_dirs() if dirs is None else dirs):
        for pkg, names in LIBRARIES.items():
            for name in names:
                p = base / "nvidia" / pkg / "lib" / name
                if name not in found and p.is_file():
                    found[name] = p
    return found


def preload(dirs: list[Path] | None = None) -> list[str]:
    """Load the pip-installed CUDA 12 libraries (global symbols), so that CTranslate2's
    own dlopen of the same names finds them. Returns the names loaded; a library
    that is absent or does not load is left to the system's search path."""
    loaded = []
    for name, path in find(dirs).items():   # cublasLt before cublas: the order of LIBRARIES
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            loaded.append(name)
        except OSError:
            continue
    return loaded


def export_line(dirs: list[Path] | None = None) -> str:
    folders = list(dict.fromkeys(str(p.parent) for p in find(dirs).values()))
    return f"export LD_LIBRARY_PATH={':'.join(folders)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" if folders else ""


def main() -> None:
    found = find()
    for name in (n for names in LIBRARIES.values() for n in names):
        print(f"{name}: {found.get(name, 'not installed (pip install nvidia-cublas-cu12 nvidia-cudnn-cu12)')}")
    line = export_line()
    if line:
        print(line)
    sys.exit(0 if found else 1)


if __name__ == "__main__":
    main()
