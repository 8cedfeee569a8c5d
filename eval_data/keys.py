"""The keys that compare a training row's image with an evaluation set's, and
the hashes that compare texts: the one owner of these functions (the
evaluation sets' readers in ``eval_data/<bench>/``, the decontamination filter
``eval_data/decontam.py`` and the COCO task sources all use them).

Image keys name an image independently of its file name or folder:

* ``coco:<id>``: a COCO image (2014 train/val file names, 2017 ids, POPE's and
  xFlickrCO's ``COCO_val2014_*`` names all give the same id);
* ``flickr:<photo id>``: a Flickr photo. Flickr30k names its images by their
  Flickr photo id, and web-crawled URLs of Flickr's static servers carry it
  (``.../<photo id>_<secret>[_size].jpg``), so a CapFilt image downloaded from
  Flickr is recognised whatever its size suffix;
* ``url:<url>``: any other web image, by its URL (scheme, ``www.``, letter
  case of the host and the fragment ignored): NLVR2 gives its images' URLs.

Texts are compared after normalising Unicode (NFKC), case, punctuation and
whitespace; only 64-bit hashes of them are kept.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

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
