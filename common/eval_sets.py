"""What each evaluation set holds, read from its raw release files: the images
(as keys that a training row's image can be compared with) and the texts
(references, questions, hypotheses) a training text should not repeat.

Image keys name an image independently of its file name or folder:

* ``coco:<id>``: a COCO image (2014 train/val file names, 2017 ids, POPE's and
  xFlickrCO's ``COCO_val2014_*`` names all give the same id);
* ``flickr:<photo id>``: a Flickr photo. Flickr30k names its images by their
  Flickr photo id, and web-crawled URLs of Flickr's static servers carry it
  (``.../<photo id>_<secret>[_size].jpg``), so a CapFilt image downloaded from
  Flickr is recognised whatever its size suffix;
* ``url:<url>``: any other web image, by its URL (scheme, ``www.``, letter
  case of the host and the fragment ignored): NLVR2 gives its images' URLs.

Which evaluation sets can share images with a training collection (COCO for
MSCOCO, VQAv2, A-OKVQA and LLaVA; web URLs for CapFilt and matching;
ImageNet train for ImageNet, which no evaluation set uses) is in ``SETS``.
Sets whose raw files give nothing to compare with (GQA test-dev image ids,
Open Images keys, MaRVL's own photos) are text-only, with a note saying why.

Texts are compared after normalising Unicode (NFKC), case, punctuation and
whitespace; only 64-bit hashes of them are kept.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .config import Config
from .jsonl import BadRows, iter_json_array, load_json, read_jsonl

# -- keys ------------------------------------------------------------------------------------------
_DIGITS_STEM = re.compile(r"(?:^|_)(\d+)$")
_FLICKR_STATIC = re.compile(r"^(?:[\w-]+\.)*(?:static\.?flickr|staticflickr|flickr)\.com/"
                            r"(?:[^?#]*/)?(\d{4,})_[0-9a-f]{5,}(?:_[a-z0-9]{1,2})?\.(?:jpe?g|png|gif)",
                            re.IGNORECASE)
_FLICKR_PAGE = re.compile(r"^(?:www\.)?flickr\.com/photos/[^/]+/(\d{4,})", re.IGNORECASE)


def coco_id(name) -> int | None:
    """The COCO id of a file name ("COCO_val2014_000000391895.jpg", "000000391895.jpg",
    "train2014/COCO_train2014_...jpg"), a digit string or an int: the one parser of
    COCO ids (the task sources' image names and the evaluation sets' keys)."""
    if isinstance(name, bool):
        return None
    if isinstance(name, int):
        return name if name >= 0 else None
    if not isinstance(name, str):
        return None
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    m = _DIGITS_STEM.search(stem)
    return int(m.group(1)) if m else None


def coco_key(name) -> str | None:
    """``coco:<id>`` of what ``coco_id`` reads."""
    cid = coco_id(name)
    return None if cid is None else f"coco:{cid}"


def flickr_key(name) -> str | None:
    """``flickr:<photo id>`` of a Flickr30k file name or id ("1007129816.jpg", "1007129816")."""
    stem = str(name).rsplit("/", 1)[-1].rsplit(".", 1)[0].strip()
    return f"flickr:{int(stem)}" if stem.isdigit() else None


def normal_url(url: str) -> str:
    """A URL without scheme, ``www.``, fragment, trailing slash; host in lower case."""
    u = url.strip()
    u = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", u).split("#", 1)[0]
    host, _, rest = u.partition("/")
    host = host.lower()
    host = host[4:] if host.startswith("www.") else host
    return (host + ("/" + rest if rest else "")).rstrip("/")


def web_keys(url) -> list[str]:
    """The keys of a web image: its URL, and its Flickr photo id where the URL has one."""
    if not isinstance(url, str) or not url.strip():
        return []
    norm = normal_url(url)
    keys = [f"url:{norm}"]
    m = _FLICKR_STATIC.match(norm) or _FLICKR_PAGE.match(norm)
    if m:
        keys.append(f"flickr:{int(m.group(1))}")
    return keys


def normal_text(text) -> str:
    """NFKC, case-folded, punctuation removed, whitespace collapsed."""
    if not isinstance(text, str):
        return ""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in t)
    return " ".join(t.split())


def text_hash(text) -> int | None:
    """A 63-bit hash of the normalised text (None for a text with no words)."""
    norm = normal_text(text)
    if not norm:
        return None
    return int.from_bytes(hashlib.blake2b(norm.encode("utf-8"), digest_size=8).digest(), "big") >> 1


# -- reading the raw files -------------------------------------------------------------------------
def _lines(path: Path) -> Iterator[dict]:
    for row in read_jsonl(path, BadRows(max_bad=None, quiet=True)):
        if isinstance(row, dict):
            yield row


def _records(path: Path, member: str) -> Iterator[Any]:
    """The elements of the array ``member`` of a whole-document JSON file, streamed
    one at a time (memory does not grow with the file); a bad record is skipped,
    as the evaluation converters skip it."""
    for _, record in iter_json_array(path, BadRows(max_bad=None, quiet=True), member=member):
        yield record


def read_karpathy(paths: list[Path], params: dict) -> tuple[set, set]:
    images, texts = set(), set()
    splits = set(params["splits"])
    for path in paths:
        for img in _records(path, "images"):
            if not isinstance(img, dict) or img.get("split") not in splits:
                continue
            key = coco_key(img.get("cocoid")) or coco_key(img.get("filename"))
            if key:
                images.add(key)
            if params.get("texts"):
                texts.update(text_hash(s.get("raw")) for s in img.get("sentences") or [] if isinstance(s, dict))
    return images, texts


def read_pope(paths: list[Path], params: dict) -> tuple[set, set]:
    images, texts = set(), set()
    for path in paths:
        for row in _lines(path):
            images.add(coco_key(row.get("image")))
            texts.add(text_hash(row.get("text")))
    return images, texts


def read_vqa_questions(paths: list[Path], params: dict) -> tuple[set, set]:
    images, texts = set(), set()
    for path in paths:
        for q in _records(path, "questions"):
            if isinstance(q, dict):
                images.add(coco_key(q.get("image_id")))
                texts.add(text_hash(q.get("question")))
    return images, texts


def read_flickr_captions(paths: list[Path], params: dict) -> tuple[set, set]:
    """xFlickrCO / Flickr30k rows {img_path, sentences}: COCO names are COCO images, the rest Flickr photos."""
    images, texts = set(), set()
    for path in paths:
        for row in _lines(path):
            name = str(row.get("img_path") or row.get("id") or "")
            images.add(coco_key(name) if name.startswith("COCO_") else flickr_key(name))
            sents = row.get("sentences")
            texts.update(text_hash(s) for s in (sents if isinstance(sents, list) else []))
    return images, texts


def read_xvnli(paths: list[Path], params: dict) -> tuple[set, set]:
    images, texts = set(), set()
    for path in paths:
        for row in _lines(path):
            images.add(flickr_key(row.get("Flikr30kID", "")))
            texts.add(text_hash(row.get("sentence2")))
    return images, texts


def read_nlvr2(paths: list[Path], params: dict) -> tuple[set, set]:
    images, texts = set(), set()
    for path in paths:
        for row in _lines(path):
            for side in ("left_url", "right_url"):
                images.update(web_keys(row.get(side)))
            texts.add(text_hash(row.get("sentence")))
    return images, texts


def read_texts(field: str) -> Callable[[list[Path], dict], tuple[set, set]]:
    """A text-only reader of JSONL rows' ``field``."""
    def read(paths: list[Path], params: dict) -> tuple[set, set]:
        return set(), {text_hash(row.get(field)) for path in paths for row in _lines(path)}
    return read


def read_xgqa(paths: list[Path], params: dict) -> tuple[set, set]:
    texts = set()
    for path in paths:
        data = load_json(path)
        values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else []
        texts.update(text_hash(q.get("question") or q.get("sent")) for q in values if isinstance(q, dict))
    return set(), texts


def read_xm3600(paths: list[Path], params: dict) -> tuple[set, set]:
    texts = set()
    for path in paths:
        for row in _lines(path):
            for block in row.values():
                if isinstance(block, dict) and isinstance(block.get("caption"), list):
                    texts.update(text_hash(c) for c in block["caption"])
    return set(), texts


def read_maxm(paths: list[Path], params: dict) -> tuple[set, set]:
    texts = set()
    for path in paths:
        data = load_json(path)
        for ann in (data.get("annotations") or []) if isinstance(data, dict) else []:
            for qa in (ann.get("qa_pairs") or []) if isinstance(ann, dict) else []:
                if isinstance(qa, dict):
                    texts.add(text_hash(qa.get("question")))
    return set(), texts


# -- the sets --------------------------------------------------------------------------------------
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
            lambda c: [c.path("mscoco.karpathy")], read_karpathy,
            lambda c: {"splits": list(c.at("mscoco.eval_splits")), "texts": True}),
    EvalSet("chair", "CHAIR: Karpathy val/test images (eval/chair)", "eval_data",
            lambda c: [c.path("chair.karpathy")], read_karpathy,
            lambda c: {"splits": list(c.at("chair.splits")), "texts": False}),
    EvalSet("pope", "POPE: COCO val2014 images (eval/pope)", "eval_data",
            lambda c: _fill(str(c.at("pope.file")), "split", c.at("pope.splits")), read_pope),
    EvalSet("vqav2", "VQAv2 val: every COCO val2014 image (eval/vqav2)", "vqav2",
            lambda c: [c.path("vqav2.val_questions")], read_vqa_questions),
    EvalSet("xflickrco", "xFlickrCO test: 1,000 Flickr30k and 1,000 COCO images (eval/xflickrco)", "eval_data",
            _xflickrco_files, read_flickr_captions, required=_english(_xflickrco_files, "xflickrco.langs"),
            collections=("coco", "web")),
    EvalSet("flickr30k", "Flickr30k val/test (eval/xflickrco/flickr30k_*)", "eval_data",
            lambda c: [c.path("xflickrco.flickr_val"), c.path("xflickrco.flickr_test")], read_flickr_captions,
            collections=("web",)),
    EvalSet("xvnli", "XVNLI val/test: Flickr30k images (eval/xvnli)", "eval_data", _xvnli_files, read_xvnli,
            required=_xvnli_images, collections=("web",)),
    EvalSet("nlvr2", "NLVR2 dev/test: web images by URL (eval/marvl/nlvr2_*)", "eval_data",
            lambda c: [c.path("marvl.nlvr2_dev"), c.path("marvl.nlvr2_test")]
            + _fill(str(c.at("marvl.nlvr2_dev_translated")), "lang", c.at("marvl.nlvr2_langs")), read_nlvr2,
            required=lambda c: [c.path("marvl.nlvr2_dev"), c.path("marvl.nlvr2_test")], collections=("web",)),
    EvalSet("xgqa", "xGQA val/test questions (eval/xgqa)", "eval_data",
            lambda c: _fill(str(c.at("xgqa.val_file")), "lang", c.at("xgqa.langs"))
            + _fill(str(c.at("xgqa.test_file")), "lang", c.at("xgqa.langs")), read_xgqa, images=False,
            collections=(),
            note="GQA test-dev images are named n<digits>; the release maps them to no Visual Genome or COCO "
                 "id, so their overlap with COCO cannot be computed from the raw files"),
    EvalSet("marvl", "MaRVL test statements (eval/marvl)", "eval_data",
            lambda c: _fill(str(c.at("marvl.test_file")), "lang", c.at("marvl.langs")), read_texts("caption"),
            images=False, collections=(),
            note="MaRVL's photos were collected for it; its files give no URL or id that a training collection "
                 "shares"),
    EvalSet("xm3600", "XM3600 captions (eval/xm3600)", "eval_data",
            lambda c: [c.path("xm3600.captions")], read_xm3600, images=False, collections=(),
            note="Open Images keys; the release gives no Flickr id or URL to compare web images with"),
    EvalSet("maxm", "MaXM questions (eval/maxm)", "eval_data",
            lambda c: _fill(str(c.at("maxm.file")), "lang", c.at("maxm.langs")), read_maxm, images=False,
            collections=(),
            note="XM3600 (Open Images) images: no Flickr id or URL in the release"),
)
BY_NAME = {s.name: s for s in SETS}
IMAGE_SETS = tuple(s.name for s in SETS if s.images)
