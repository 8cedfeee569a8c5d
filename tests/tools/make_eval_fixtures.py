"""Write the tiny evaluation-data demo fixtures under tests/fixtures/raw/ (a dev tool).

The files follow the raw layout of common/FORMATS.md and carry the awkward cases the
converters must handle: a malformed JSONL line, a '-' XVNLI label with and
without annotator_labels, a MaRVL concept folder stored NFD while the
annotation spells it NFC (and the reverse), a missing image, a bad label, an
empty caption, a duplicate image, a CHAIR image without ground truth.

CHAIR's ground truth is written for the images of the shared MSCOCO fixture
(tests/fixtures/raw/mscoco/dataset_coco.json, owned by the tasks stage) where
that exists, leaving one val image out; rerun this script when it changes.

  python tests/tools/make_eval_fixtures.py [--root tests/fixtures/raw]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import unicodedata
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from PIL import Image  # noqa: E402

from common.config import REPO_ROOT  # noqa: E402

IG = "iglue/datasets"
XGQA_LANGS = ["bn", "de", "en", "id", "ko", "pt", "ru", "zh"]
XVNLI_LANGS = ["ar", "en", "es", "fr", "ru"]
MARVL_LANGS = ["id", "sw", "ta", "tr", "zh"]
XFLICKR_LANGS = ["de", "en", "es", "id", "ja", "ru", "tr", "zh"]
MAXM_LANGS = ["en", "fr", "hi", "iw", "ro", "th", "zh"]
POPE_SPLITS = ["adversarial", "popular", "random"]

# Captions that exercise the segmenters (zh/ja/th) and NFC (a decomposed é in fr).
CAPTIONS = {
    "zh": ["一只在草地上奔跑的宠物狗", "两个正在练习跆拳道的人"],
    "ja": ["ミキサーにたくさんの緑の野菜が入っている", "青いフォークが入ったお弁当箱がある"],
    "th": ["ผู้หญิงกำลังเดินอยู่บนถนน", "สุนัขวิ่งอยู่บนสนามหญ้า"],
    "fr": ["Un chien court dans l'herbe verte.", "Une fe\u0301e danse pre\u0300s du lac."],
    "de": ["Ein Hund läuft auf grünem Rasen.", "Ein Mann und eine Frau machen Tae Kwon Do."],
    # Korean is written with spaces and must keep them (no segmenter); the second caption is NFD
    # (decomposed Hangul jamo), which must come out NFC.
    "ko": ["잔디 위를 달리는 개", unicodedata.normalize("NFD", "태권도를 연습하는 두 사람")],
    # A line break and a tab inside a caption: references are one line of single-spaced words
    # (the scorers split on spaces; a caption file with one caption per line stays aligned).
    "es": ["Un perro corre\nsobre la hierba verde.", "Dos personas\tpractican taekwondo."],
}


def tiny_jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256)).save(
        buf, "JPEG", quality=30, optimize=True)
    return buf.getvalue()


class Writer:
    def __init__(self, root: Path):
        self.root = root
        self.n_images = 0

    def text(self, rel: str, text: str) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")

    def json(self, rel: str, obj) -> None:
        self.text(rel, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")

    def jsonl(self, rel: str, rows: list) -> None:
        # A str row is written verbatim: that is how a malformed line gets in.
        self.text(rel, "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                               for r in rows))

    def image(self, rel: str) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        self.n_images += 1
        p.write_bytes(tiny_jpeg(self.n_images))


def xgqa(w: Writer) -> None:
    w.json(f"{IG}/gqa/annotations/train.json", [
        {"img_id": "n161313", "label": {"no": 1.0}, "question_id": "201307251", "sent": "Is it overcast?"},
        {"img_id": "n235859", "label": {"women": 0.6, "girls": 0.6, "people": 0.3}, "question_id": "201640614",
         "sent": "Who is wearing the dress?"},
        {"img_id": "n336443", "label": {}, "question_id": "202225914", "sent": "Is the utensil clean?"},
    ])
    for lang in XGQA_LANGS:
        for split in ("dev", "test"):
            rows = {
                "201640614": {"imageId": "n235859", "question": f"({lang}) Who is wearing the dress?",
                              "answer": "women", "fullAnswer": "The women are wearing a dress."},
                "2062325": {"imageId": "n402227", "question": f"({lang}) Is the surfer wearing a wetsuit?",
                            "answer": "yes", "fullAnswer": "Yes, the surfer is wearing a wetsuit."},
            }
            if lang == "de" and split == "test":
                rows["2062326"] = {"imageId": "n402227", "question": "Ist das Wasser ruhig?"}  # no answer
            w.json(f"{IG}/xGQA/annotations/few_shot/{lang}/{split}.json", rows)


def xvnli_row(lang: str, gold: str, n: int, **extra) -> dict:
    return {"gold_label": gold, "sentence1": f"({lang}) Men in hard hats work along a wall.",
            "sentence2": f"({lang}) Hypothesis number {n}.", "captionID": "2537683592.jpg#4",
            "pairID": f"2537683592.jpg#4r1{n}", "Flikr30kID": "2537683592", **extra}


def xvnli(w: Writer) -> None:
    base = f"{IG}/XVNLI/annotations"
    w.jsonl(f"{base}/en/train.jsonl", [
        xvnli_row("en", "entailment", 1, annotator_labels=["entailment"]),
        xvnli_row("en", "-", 2, annotator_labels=["neutral", "contradiction", "neutral"]),  # first annotator
        xvnli_row("en", "-", 3, annotator_labels=["-"]),                                  # skipped
        xvnli_row("en", "contradiction", 4, annotator_labels=["contradiction"]),
    ])
    w.jsonl(f"{base}/en/dev.jsonl", [xvnli_row("en", "neutral", 1), xvnli_row("en", "entailment", 2)])
    for lang in XVNLI_LANGS:
        if lang != "en":
            w.jsonl(f"{base}/en/dev-{lang}_gmt.jsonl", [xvnli_row(lang, "neutral", 1),
                                                       xvnli_row(lang, "entailment", 2)])
        rows = [xvnli_row(lang, "contradiction", 1), xvnli_row(lang, "-", 2), xvnli_row(lang, "entailment", 3)]
        if lang == "fr":
            rows.insert(1, '{"gold_label": "neutral", "sentence1": "broken')
        w.jsonl(f"{base}/{lang}/test.jsonl", rows)


def marvl(w: Writer) -> None:
    # (concept as annotated, concept folder as on disk): tr is NFC in the annotation but NFD on disk,
    # ta the reverse; the others need no normalisation.
    concepts = {
        "id": ("39-Panci", "39-Panci"),
        "sw": ("81-Dawati", "81-Dawati"),
        "ta": (unicodedata.normalize("NFD", "26-பொங்கல்"), unicodedata.normalize("NFC", "26-பொங்கல்")),
        "tr": ("7-Börek", unicodedata.normalize("NFD", "7-Börek")),
        "zh": ("82-铅笔", "82-铅笔"),
    }
    for lang, (annotated, on_disk) in concepts.items():
        num = annotated.split("-")[0]
        for k in range(3):
            w.image(f"{IG}/marvl/images/{lang}/images/{on_disk}/{num}-{k}.jpg")
        row = {"concept": annotated, "language": lang, "chapter": "Cognition",
               "annotator_info": {"annotator_id": f"{lang}_01"}}
        rows = [
            {**row, "caption": f"({lang}) Both images show the same object.", "left_img": f"{num}-0.jpg",
             "right_img": f"{num}-1.jpg", "id": f"{lang}-0", "label": True},
            {**row, "caption": f"({lang}) The left image shows more objects.", "left_img": f"{num}-2.jpg",
             "right_img": f"{num}-9.jpg" if lang == "sw" else f"{num}-0.jpg", "id": f"{lang}-1", "label": False},
        ]
        if lang == "id":
            rows.append({**row, "caption": "Label rusak.", "left_img": f"{num}-0.jpg", "right_img": f"{num}-1.jpg",
                         "id": "id-2", "label": "maybe"})
        w.jsonl(f"{IG}/marvl/zero_shot/annotations/marvl-{lang}.jsonl", rows)


def nlvr2(w: Writer) -> None:
    base = f"{IG}/nlvr2/annotations"

    def row(ident: str, sentence: str, label: str, **extra) -> dict:
        return {"identifier": ident, "sentence": sentence, "label": label, "synset": "beer bottle",
                "left_url": "http://example.invalid/l.jpg", "right_url": "http://example.invalid/r.jpg", **extra}

    w.jsonl(f"{base}/train.jsonl", [
        # The official train.json gives the directory as a number; a string must work too.
        row("train-10171-0-0", "An image shows one leather pencil case.", "False", directory=73),
        row("train-10171-0-1", "There are two pencil cases.", "True", directory="73"),
        row("train-10172-0-0", "The row has no directory.", "True"),  # cannot name its images
    ])
    # dev-850-0-1's left image is a CapFilt fixture image (the demo serves it at this URL): the
    # CapFilt and matching examples of that image must not reach training.
    w.jsonl(f"{base}/dev.jsonl", [row("dev-850-0-0", "The right image shows a curving walkway.", "False"),
                                  row("dev-850-0-1", "The left image shows a beer bottle.", "True",
                                      left_url="http://127.0.0.1:18080/img/photo_02.jpg")])
    w.jsonl(f"{base}/test.jsonl", [row("test1-0-1-0", "There is an empty glass.", "False"),
                                   row("test1-0-1-1", "There are bottles.", "maybe")])
    for lang in MARVL_LANGS:
        w.jsonl(f"{base}/dev-{lang}_gmt.jsonl", [row("dev-850-0-0", f"({lang}) The right image shows a walkway.",
                                                     "False")])


def flickr(w: Writer) -> None:
    base = f"{IG}/flickr30k/annotations"
    five = ["A man wears an orange hat.", "A man with glasses.", "A man in an orange hat.",
            "Someone wearing a hat.", "A man wears glasses and a hat."]
    w.jsonl(f"{base}/train_ann.jsonl", [
        {"sentences": five, "id": "1000092795", "img_path": "1000092795.jpg"},
        {"sentences": ["A dog runs.", "  ", "A dog on grass."], "id": "10002456", "img_path": "10002456.jpg"},
        '{"sentences": ["broken line"',
    ])
    for name in ("valid_ann", "test_ann"):
        w.jsonl(f"{base}/{name}.jsonl", [
            {"sentences": five, "id": "1007129816", "img_path": "1007129816.jpg"},
            {"sentences": ["A black and white dog is running.", "A dog runs on the grass."],
             "id": "1009434119", "img_path": "1009434119.jpg"},
        ])
    for lang in XFLICKR_LANGS:
        caps = CAPTIONS.get(lang, [f"({lang}) A dog runs on green grass.", f"({lang}) Two people do taekwondo."])
        rows = [{"sentences": [caps[0]], "id": "1009434119", "img_path": "1009434119.jpg"},
                {"sentences": [caps[1]], "id": 391895, "img_path": "COCO_val2014_000000391895.jpg"}]
        if lang == "de":
            rows.append({"sentences": [""], "id": "101362133", "img_path": "101362133.jpg"})
        if lang == "en":
            rows.append({"sentences": ["The same image again."], "id": "1009434119", "img_path": "1009434119.jpg"})
        w.jsonl(f"{IG}/xFlickrCO/annotations/{lang}/test.jsonl", rows)


def xm3600(w: Writer) -> None:
    from eval_data.settings import XM3600_LANGS

    keys = ["000411001ff7dd4f", "00080e1a5e3a6a0a"]
    lines = []
    for i, key in enumerate(keys):
        line: dict = {"image/key": key}
        for lang in XM3600_LANGS:
            if lang == "quz" and i == 1:
                continue  # an image without captions in one language
            caps = [CAPTIONS[lang][i]] if lang in CAPTIONS else [f"({lang}) caption {j} of image {i}" for j in range(2)]
            line[lang] = {"caption": caps, "caption/tokenized": caps, "caption/tokenized/lowercase": caps}
        lines.append(line)
        w.image(f"xm3600/images/{key}.jpg")
    w.jsonl("xm3600/captions.jsonl", lines)


def maxm(w: Writer) -> None:
    for lang in MAXM_LANGS:
        w.json(f"maxm/maxm_v1_{lang}.json", {"dataset": "maxm", "version": "v1", "split": lang, "annotations": [
            {"image_id": "000411001ff7dd4f", "image_url": "http://example.invalid/a.jpg", "qa_pairs": [
                {"question_id": f"{lang}-q1", "question": f"({lang}) What color is the car?", "answers": ["Red"],
                 "processed_answers": ["red"], "is_collection": False},
                {"question_id": f"{lang}-q2", "question": f"({lang}) How many people?", "answers": [],
                 "processed_answers": [], "is_collection": False}]},
            {"image_id": "ffffffffffffffff", "image_url": "http://example.invalid/b.jpg", "qa_pairs": [
                {"question_id": f"{lang}-q3", "question": f"({lang}) Is it raining?", "answers": ["No", "no"],
                 "processed_answers": ["no", "no"], "is_collection": False}]},
        ]})


def pope(w: Writer, coco_val_images: list[str]) -> None:
    images = ["COCO_val2014_000000310196.jpg", "COCO_val2014_000000210789.jpg"]
    for split in POPE_SPLITS:
        rows = [{"question_id": 1, "image": images[0], "text": "Is there a snowboard in the image?", "label": "yes"},
                {"question_id": 2, "image": images[0], "text": "Is there a dining table in the image?", "label": "no"},
                {"question_id": 3, "image": images[1], "text": "Is there a car in the image?", "label": "yes"}]
        if split == "random":
            rows.append({"question_id": 4, "image": images[1], "text": "Is there a cat in the image?",
                         "label": "unsure"})
        w.jsonl(f"pope/output/coco/coco_pope_{split}.json", rows)
    # Ground truth for every Karpathy val/test image of the MSCOCO fixture but the first,
    # so the CHAIR demo shows an image without ground truth.
    objects = [["person", "dining table"], ["dog", "frisbee"], ["car"]]
    gt = [{"image": name, "objects": objects[i % len(objects)]} for i, name in enumerate(coco_val_images[1:])]
    gt.append({"image": images[0], "objects": ["person", "snowboard"]})
    w.jsonl("pope/segmentation/coco_ground_truth_segmentation.json", gt + ['{"image": "broken'])


def coco_eval_images(root: Path) -> list[str]:
    path = root / "mscoco" / "dataset_coco.json"
    if not path.is_file():
        print(f"note: {path} not found; CHAIR ground truth covers the POPE images only")
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [img["filename"] for img in data.get("images", []) if img.get("split") in ("val", "test")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(REPO_ROOT / "tests" / "fixtures" / "raw"))
    root = Path(ap.parse_args().root)
    w = Writer(root)
    xgqa(w)
    xvnli(w)
    marvl(w)
    nlvr2(w)
    flickr(w)
    xm3600(w)
    maxm(w)
    pope(w, coco_eval_images(root))
    print(f"wrote the evaluation fixtures under {root} ({w.n_images} images)")


if __name__ == "__main__":
    main()
