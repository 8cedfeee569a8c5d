"""The evaluation sets whose images (and texts) training must not repeat: which
raw files each is read from (named by the config its converter reads) and
which reader gives its keys: ``keys`` of the benchmark's own folder
(``eval_data/<bench>/convert.py``, ``tasks/mscoco/karpathy.py``,
``tasks/vqa/raw.py``), the one place that benchmark's raw format is parsed.
Keys and text hashes: ``eval_data/keys.py``; the filter that uses the sets:
``eval_data/decontam.py``.

Which evaluation sets can share images with a training collection (COCO for
MSCOCO, VQAv2, A-OKVQA and LLaVA; web URLs for CapFilt and matching;
ImageNet train for ImageNet, which no evaluation set uses) is in ``SETS``.
Sets whose raw files give nothing to compare with (GQA test-dev image ids,
Open Images keys, MaRVL's own photos) are text-only, with a note saying why.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from common.config import Config
from eval_data.marvl import convert as marvl
from eval_data.maxm import convert as maxm
from eval_data.pope import convert as pope
from eval_data.xflickrco import convert as xflickrco
from eval_data.xgqa import convert as xgqa
from eval_data.xm3600 import convert as xm3600
from eval_data.xvnli import convert as xvnli
from tasks.mscoco import karpathy
from tasks.vqa import raw as vqa_raw


def _fill(template: str, key: str, values: Iterable[str]) -> list[Path]:
    return [Path(template.replace("{" + key + "}", str(v))) for v in values] if "{" + key + "}" in template \
        else [Path(template)]


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set: ``name`` is its switch (``decontam.exclude.<name>``)
    and its folder under ``eval/``; ``config`` the config file whose values
    name its raw files (mscoco, vqav2 or eval_data: the files the converter
    reads); ``files``/``params`` read from that config; ``read`` -> (image
    keys, text hashes) of the files that exist. ``required``: the files that
    hold every image of the set (default: all), which an exclusion needs; the
    others (translations of the same rows) only add texts. ``collections``:
    the training image collections its images can be part of (``coco``: COCO
    2014 files; ``web``: CapFilt's downloaded URLs). ``images=False``: a
    text-only set, ``note`` says why."""
    name: str
    title: str
    config: str
    files: Callable[[Config], list[Path]]
    read: Callable[[list[Path], dict], tuple[set, set]]
    params: Callable[[Config], dict] = lambda c: {}
    images: bool = True
    note: str = ""
    required: Callable[[Config], list[Path]] | None = None
    collections: tuple[str, ...] = ("coco",)

    def required_files(self, c: Config) -> list[Path]:
        return (self.required or self.files)(c)


def _xvnli_files(c: Config) -> list[Path]:
    x = c.at("xvnli")
    val = [p for p in _fill(str(x["val_file"]), "lang", [g for g in x["langs"] if g != "en"])]
    return _fill(str(x["test_file"]), "lang", x["langs"]) + [Path(str(x["val_en_file"]))] + val


def _english(files: Callable[[Config], list[Path]], lang_key: str) -> Callable[[Config], list[Path]]:
    """The files of the English rows: every language's rows are about the same images."""
    def pick(c: Config) -> list[Path]:
        return [p for p, lang in zip(files(c), c.at(lang_key)) if lang == "en"] or files(c)
    return pick


def _xflickrco_files(c: Config) -> list[Path]:
    return _fill(str(c.at("xflickrco.test_file")), "lang", c.at("xflickrco.langs"))


def _xvnli_images(c: Config) -> list[Path]:
    x = c.at("xvnli")
    return _fill(str(x["test_file"]), "lang", ["en"]) + [Path(str(x["val_en_file"]))]


SETS: tuple[EvalSet, ...] = (
    EvalSet("mscoco", "MSCOCO Karpathy val/test (eval/mscoco)", "mscoco",
            lambda c: [c.path("mscoco.karpathy")], karpathy.keys,
            lambda c: {"splits": list(c.at("mscoco.eval_splits")), "texts": True}),
    EvalSet("chair", "CHAIR: Karpathy val/test images (eval/chair)", "eval_data",
            lambda c: [c.path("chair.karpathy")], karpathy.keys,
            lambda c: {"splits": list(c.at("chair.splits")), "texts": False}),
    EvalSet("pope", "POPE: COCO val2014 images (eval/pope)", "eval_data",
            lambda c: _fill(str(c.at("pope.file")), "split", c.at("pope.splits")), pope.keys),
    EvalSet("vqav2", "VQAv2 val: every COCO val2014 image (eval/vqav2)", "vqav2",
            lambda c: [c.path("vqav2.val_questions")], vqa_raw.keys),
    EvalSet("xflickrco", "xFlickrCO test: 1,000 Flickr30k and 1,000 COCO images (eval/xflickrco)", "eval_data",
            _xflickrco_files, xflickrco.keys, required=_english(_xflickrco_files, "xflickrco.langs"),
            collections=("coco", "web")),
    EvalSet("flickr30k", "Flickr30k val/test (eval/xflickrco/flickr30k_*)", "eval_data",
            lambda c: [c.path("xflickrco.flickr_val"), c.path("xflickrco.flickr_test")], xflickrco.keys,
            collections=("web",)),
    EvalSet("xvnli", "XVNLI val/test: Flickr30k images (eval/xvnli)", "eval_data", _xvnli_files, xvnli.keys,
            required=_xvnli_images, collections=("web",)),
    EvalSet("nlvr2", "NLVR2 dev/test: web images by URL (eval/marvl/nlvr2_*)", "eval_data",
            lambda c: [c.path("marvl.nlvr2_dev"), c.path("marvl.nlvr2_test")]
            + _fill(str(c.at("marvl.nlvr2_dev_translated")), "lang", c.at("marvl.nlvr2_langs")), marvl.nlvr2_keys,
            required=lambda c: [c.path("marvl.nlvr2_dev"), c.path("marvl.nlvr2_test")], collections=("web",)),
    EvalSet("xgqa", "xGQA val/test questions (eval/xgqa)", "eval_data",
            lambda c: _fill(str(c.at("xgqa.val_file")), "lang", c.at("xgqa.langs"))
            + _fill(str(c.at("xgqa.test_file")), "lang", c.at("xgqa.langs")), xgqa.keys, images=False,
            collections=(),
            note="GQA test-dev images are named n<digits>; the release maps them to no Visual Genome or COCO "
                 "id, so their overlap with COCO cannot be computed from the raw files"),
    EvalSet("marvl", "MaRVL test statements (eval/marvl)", "eval_data",
            lambda c: _fill(str(c.at("marvl.test_file")), "lang", c.at("marvl.langs")), marvl.marvl_keys,
            images=False, collections=(),
            note="MaRVL's photos were collected for it; its files give no URL or id that a training collection "
                 "shares"),
    EvalSet("xm3600", "XM3600 captions (eval/xm3600)", "eval_data",
            lambda c: [c.path("xm3600.captions")], xm3600.keys, images=False, collections=(),
            note="Open Images keys; the release gives no Flickr id or URL to compare web images with"),
    EvalSet("maxm", "MaXM questions (eval/maxm)", "eval_data",
            lambda c: _fill(str(c.at("maxm.file")), "lang", c.at("maxm.langs")), maxm.keys, images=False,
            collections=(),
            note="XM3600 (Open Images) images: no Flickr id or URL in the release"),
)
BY_NAME = {s.name: s for s in SETS}
IMAGE_SETS = tuple(s.name for s in SETS if s.images)
