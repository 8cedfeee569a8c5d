"""Caption references in COCO caption format, written once for every captioning benchmark.

The standard scorers (pycocoevalcap BLEU/CIDEr, also after the PTB tokenizer)
split on spaces, so Chinese, Japanese and Thai references are split into
tokens with spaces between them, in one of two ways
(``captions.segmentation`` in configs/eval_data.yaml):

* ``mblip`` (the default): what mBLIP's evaluation code does to the model's
  captions before scoring them (``caption_evaluation`` in its
  ``src/tasks/vllm/evaluation.py``): spaCy's Chinese tokenizer with its default
  character segmenter (every character a token), spaCy's Japanese tokenizer
  (SudachiPy, split mode A) and spaCy's Thai tokenizer (PyThaiNLP newmm).
* ``words``: word segmentation with jieba, SudachiPy (mode C) and PyThaiNLP
  (newmm): for a scorer that segments its predictions into words the same
  way (``segment(prediction, lang, "words")``).

References and predictions must be split the same way: a character-split
prediction scored against word-split references (or the reverse) shares
almost no n-grams with them. All text is NFC first, so the same caption
always gives the same tokens.
"""
from __future__ import annotations

import logging
import warnings
from functools import lru_cache
from typing import Callable, Iterable

from .rows import nfc

SEGMENTED_LANGS = ("zh", "ja", "th")
SEGMENTATIONS = ("mblip", "words")
DEFAULT_SEGMENTATION = "mblip"


@lru_cache(maxsize=None)
def _segmenter(lang: str, mode: str = "words") -> Callable[[str], list[str]]:
    # Imported lazily: each segmenter loads a dictionary that costs a second or so.
    if mode == "mblip":
        return _spacy_segmenter(lang)
    if mode != "words":
        raise ValueError(f"unknown segmentation {mode!r} (one of {', '.join(SEGMENTATIONS)})")
    if lang == "zh":
        import jieba

        jieba.setLogLevel(logging.WARNING)
        tok = jieba.Tokenizer()
        return lambda text: tok.lcut(text, HMM=True)
    if lang == "ja":
        from sudachipy import Dictionary, SplitMode

        tok = Dictionary().tokenizer(mode=SplitMode.C)
        return lambda text: [m.surface() for m in tok.tokenize(text)]
    if lang == "th":
        from pythainlp.tokenize import word_tokenize

        return lambda text: word_tokenize(text, engine="newmm", keep_whitespace=False)
    raise ValueError(f"no word segmenter for {lang!r}")


def _spacy_segmenter(lang: str) -> Callable[[str], list[str]]:
    """The blank spaCy pipelines mBLIP's evaluation code builds (``Chinese()``,
    ``Japanese()``, ``Thai()``): tokenizers only, nothing downloaded."""
    if lang == "zh":
        from spacy.lang.zh import Chinese as Lang
    elif lang == "ja":
        from spacy.lang.ja import Japanese as Lang
    elif lang == "th":
        from spacy.lang.th import Thai as Lang
    else:
        raise ValueError(f"no spaCy segmenter for {lang!r}")
    with warnings.catch_warnings():   # spaCy's Japanese calls a SudachiPy API it deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        nlp = Lang()
    return lambda text: [t.text for t in nlp(text)]


def segment(text: str, lang: str, mode: str = DEFAULT_SEGMENTATION) -> str:
    """NFC text; for zh/ja/th its tokens (``mode``: mblip | words) joined by
    single spaces. Whitespace-only tokens are dropped (the scorers split on
    whitespace, so this changes no score)."""
    text = nfc(text)
    base = lang.split("-")[0].split("_")[0].lower()
    if base not in SEGMENTED_LANGS or not text:
        return text
    words: list[str] = []
    # words: each space-separated chunk alone, so existing spaces stay word breaks;
    # mblip: the whole caption, as mBLIP's code does (spaCy makes spaces tokens of their own).
    for chunk in ([text] if mode == "mblip" else text.split(" ")):
        words.extend(w for w in _segmenter(base, mode)(chunk) if w.strip())
    return " ".join(w.strip() for w in words)


def reference_captions(captions: list, lang: str, mode: str = DEFAULT_SEGMENTATION) -> list[str]:
    """The non-empty, normalised (and for zh/ja/th segmented) captions of one image."""
    out = [segment(c, lang, mode) for c in captions if isinstance(c, str)]
    return [c for c in out if c]


def coco_reference(items: Iterable[tuple[str, list[str]]]) -> dict:
    """COCO caption format from (image_id, reference captions), in the given order.

    Callers leave out images without any caption: the scorers assert at least
    one reference per image.
    """
    images: list[dict] = []
    annotations: list[dict] = []
    for image_id, caps in items:
        images.append({"id": image_id})
        for cap in caps:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "caption": cap})
    return {"images": images, "annotations": annotations}


def captioning_split(items: Iterable[tuple[str, str, list]], lang: str, context: str,
                     acc, source: str, mode: str = DEFAULT_SEGMENTATION) -> tuple[list[dict], dict]:
    """Test rows and their COCO reference for one captioning split.

    ``items`` are (where, image_id, captions) of records already counted as
    seen; each is used, or skipped when it repeats an image id or has no
    non-empty caption. Rows: context = the language's English name,
    text_label = the language code, label = "". ``mode``: how zh/ja/th
    references are split (``segment``).
    """
    from .rows import eval_row

    rows: list[dict] = []
    refs: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for where, image_id, captions in items:
        if image_id in seen:
            acc.skip(source, "duplicate image id", where)
            continue
        caps = reference_captions(captions, lang, mode)
        if not caps:
            acc.skip(source, "no non-empty caption", where)
            continue
        seen.add(image_id)
        acc.used(source)
        rows.append(eval_row(context, image_id, lang))
        refs.append((image_id, caps))
    return rows, coco_reference(refs)
