"""ImageNet classes: synsets, per-language class names, and the image pool per class."""
from __future__ import annotations

import os
from pathlib import Path

from common.errors import UserError
from common.jsonl import load_json
from common.languages import check_language_codes, nllb_code
from common.report import Report
from common.scripts import in_script, is_simplified, to_simplified
from common.sampling import rng


def read_synsets(path: Path) -> list[str]:
    """Class index order -> synset id, from imagenet_class_index.json ({"0": [synset, name]})."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected {{\"0\": [synset, name], ...}}")
    try:
        items = sorted(((int(k), v) for k, v in data.items()), key=lambda kv: kv[0])
    except ValueError:
        raise UserError(f"{path}: class keys must be integers") from None
    if [k for k, _ in items] != list(range(len(items))):
        raise UserError(f"{path}: class indices must be 0..{len(items) - 1} without gaps")
    out = []
    for k, v in items:
        if not (isinstance(v, list) and v and isinstance(v[0], str)):
            raise UserError(f"{path}: class {k}: expected [synset, name]")
        out.append(v[0])
    return out


def read_english(path: Path, n_classes: int) -> list[str]:
    names = load_json(path)
    if not isinstance(names, list) or len(names) != n_classes:
        raise UserError(f"{path}: expected a JSON array of {n_classes} class names (one per class index)")
    return [" ".join(str(n).split()) for n in names]


def babel_key(code: str, overrides: dict) -> str:
    return str(overrides.get(code, code.upper()))


def class_names(babel: dict, english: list[str], languages: list[str], overrides: dict,
                report: Report) -> dict[str, dict[int, str]]:
    """{our code: {class index: name}} for every wanted language that has names.

    English comes from the CLIP names; the others from Babel-ImageNet by key
    (upper-case code, or babel_keys overrides such as iw -> HE, fil -> TL).
    One language, one script: a name not (mostly) in the script of the
    language's NLLB code is skipped (Serbian names in Latin, Mongolian names
    in the traditional script), and Chinese names are made Simplified
    (Babel-ImageNet's ZH has 鴕鳥 beside 鲫鱼).
    """
    out: dict[str, dict[int, str]] = {}
    n = len(english)
    for code in check_language_codes(languages, "imagenet.languages"):
        if code == "en":
            out["en"] = {i: name for i, name in enumerate(english) if name}
            continue
        entry = babel.get(babel_key(code, overrides))
        if entry is None:
            report.skip("language not in Babel-ImageNet", code)
            continue
        if not (isinstance(entry, list) and len(entry) == 2 and len(entry[0]) == len(entry[1])):
            report.skip("malformed Babel-ImageNet entry", code)
            continue
        names: dict[int, str] = {}
        nllb = nllb_code(code)
        for idx, name in zip(*entry):
            name = " ".join(name.split()) if isinstance(name, str) else ""
            if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < n or not name:
                report.skip("bad Babel-ImageNet class entry", f"{code} class {idx!r}")
                continue
            if not in_script(name, nllb):
                report.skip("class name not in the language's script", f"{code} class {idx}: {name[:40]}")
                continue
            if nllb == "zho_Hans" and not is_simplified(name):
                name = to_simplified(name)
                report.count("zh_names_made_simplified")
            names.setdefault(idx, name)
        if names:
            out[code] = names
    return out


class ImagePool:
    """Hands out a fresh image of a class each time; when the class is
    exhausted it starts over on a new seeded order (counted as reuse)."""

    def __init__(self, train_dir: Path, prefix: str, synsets: list[str], extensions: list[str], seed: int,
                 report: Report):
        self.images: dict[int, list[str]] = {}
        self.pos: dict[int, int] = {}
        self.cycle: dict[int, int] = {}
        self.seed = seed
        self.report = report
        exts = tuple(extensions)
        for idx, syn in enumerate(synsets):
            folder = train_dir / syn
            if not folder.is_dir():
                report.skip("class without an image folder", str(folder), keep=3)
                continue
            with os.scandir(folder) as it:
                files = sorted(e.name for e in it if e.is_file() and e.name.endswith(exts))
            if not files:
                report.skip("class with an empty image folder", str(folder), keep=3)
                continue
            rng(seed, "imagenet-images", idx, 0).shuffle(files)
            self.images[idx] = [f"{prefix}{syn}/{f}" for f in files]
            self.pos[idx] = 0
            self.cycle[idx] = 0
            report.count("images_listed", len(files))

    def has(self, idx: int) -> bool:
        return idx in self.images

    def take(self, idx: int) -> str:
        files = self.images[idx]
        if self.pos[idx] == len(files):
            self.cycle[idx] += 1
            rng(self.seed, "imagenet-images", idx, self.cycle[idx]).shuffle(files)
            self.pos[idx] = 0
        if self.cycle[idx]:
            self.report.count("images_reused")
        self.pos[idx] += 1
        return files[self.pos[idx] - 1]
