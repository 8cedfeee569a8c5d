"""A raw root (the layout of common/FORMATS.md) at any scale, for bench_memory.py (a dev tool).

Every source's files are written with the text of tests/tools/synthetic.py
(real-style captions and questions, web-like repetition), so every stage is
measured on input from one generator. At ``scale`` 1:

| source | 1x |
|---|---|
| BLIP CapFilt `ccs_synthetic_filtered_large.json` | 20,000 {url, caption} |
| MSCOCO Karpathy `dataset_coco.json` (+ an image file per image) | 5,000 images x 5 captions |
| VQAv2 train questions + annotations (val: a tenth) | 40,000 |
| A-OKVQA train (val: a tenth) | 1,700 |
| LLaVA conversation_58k / detail_23k | 5,800 / 2,300 |
| ImageNet classes x images per class (+ Babel-ImageNet names) | 100 x 10 |
| evaluation sources (IGLUE, XM3600, MaXM, POPE) | the fixture files' records x 100 |

``scale`` multiplies every count (10 gives about the real VQAv2, LLaVA and
A-OKVQA sizes, 40% of the real Karpathy file). The evaluation files are the
fixtures' records repeated, each copy with fresh ids and its texts drawn from
the generator, so their awkward rows (bad lines, missing fields) scale too.
Image files are hard links to one small JPEG (XM3600 keys get their own
link; the other evaluation copies share the fixture's images).

    python tests/tools/synthetic_raw.py --out DIR [--scale 10] [--web http://127.0.0.1:PORT]
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import os
import random
import shutil
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.tools import synthetic  # noqa: E402

FIXTURES = synthetic.FIXTURES
ANSWERS = ["yes", "no", "2", "1", "3", "white", "red", "blue", "black", "green", "dog", "cat", "pizza",
           "tennis", "man", "woman", "grass", "table", "frisbee", "kitchen", "skateboarding", "surfing",
           "baseball", "left", "right", "wood", "snow", "water", "4", "nothing"]


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)


class Images:
    """Hard links to one small JPEG (a copy where links are not possible)."""

    def __init__(self, root: Path):
        from PIL import Image
        self.src = root / ".synthetic.jpg"
        self.src.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.new("RGB", (32, 24), (120, 160, 90)).save(buf, "JPEG", quality=80)
        self.src.write_bytes(buf.getvalue())

    def link(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.src, path)
        except FileExistsError:
            pass
        except OSError:
            shutil.copyfile(self.src, path)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def write_blip(root: Path, n: int, web: str, seed: int) -> None:
    """URLs ``<web>/img/<k>/<i>.jpg`` (what bench_download.py's server answers with image k)."""
    path = root / "blip" / "ccs_synthetic_filtered_large.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("[")
        for i, c in enumerate(synthetic.captions(n, seed)):
            f.write(("," if i else "") + "\n" + json.dumps({"url": f"{web}/img/{i % 97}/{i:08d}.jpg", "caption": c}))
        f.write("\n]\n")


def coco_images(n: int) -> list[tuple[int, str, str]]:
    """(cocoid, split, file name) of ``n`` images, in the Karpathy split's proportions."""
    out = []
    for i in range(n):
        r = (i * 37) % 100   # the splits spread over every 100 images, so small scales have all of them
        split = "train" if r < 67 else "restval" if r < 92 else "val" if r < 96 else "test"
        folder = "train2014" if split == "train" else "val2014"
        cocoid = 100000 + i
        out.append((cocoid, split, f"COCO_{folder}_{cocoid:012d}.jpg"))
    return out


def write_mscoco(root: Path, n_images: int, images: Images, seed: int) -> list[tuple[int, str, str]]:
    imgs = coco_images(n_images)
    caps = iter(synthetic.captions(5 * n_images, seed))
    records, sentid = [], 0
    for imgid, (cocoid, split, name) in enumerate(imgs):
        sents = []
        for _ in range(5):
            raw = _sentence(next(caps))
            sents.append({"tokens": raw.lower().rstrip(".").split(), "raw": raw, "imgid": imgid, "sentid": sentid})
            sentid += 1
        records.append({"filepath": name.split("_")[1], "filename": name, "imgid": imgid, "split": split,
                        "cocoid": cocoid, "sentences": sents, "sentids": [s["sentid"] for s in sents]})
        images.link(root / "mscoco" / "images" / name)
    _dump(root / "mscoco" / "dataset_coco.json", {"images": records, "dataset": "coco"})
    return imgs


def write_vqav2(root: Path, n_train: int, imgs: list, seed: int) -> None:
    r = random.Random(f"{seed}-vqa")
    meta = {"info": {"description": "synthetic"}, "license": {"name": "CC BY 4.0"}, "task_type": "Open-Ended",
            "data_type": "mscoco"}
    for sub, n, pool in (("train2014", n_train, [i for i in imgs if i[1] == "train"]),
                         ("val2014", max(1, n_train // 10), [i for i in imgs if i[1] != "train"])):
        qs, anns = [], []
        for j, text in enumerate(synthetic.questions(n, seed + (sub == "val2014"))):
            cocoid = pool[j % len(pool)][0]
            qid = cocoid * 1000 + j // len(pool)
            qs.append({"image_id": cocoid, "question": text, "question_id": qid})
            answers = [r.choice(ANSWERS[:8]) if r.random() < 0.7 else r.choice(ANSWERS) for _ in range(10)]
            best = max(answers, key=answers.count)   # ties: the first given (a set would order them by hash)
            anns.append({"question_id": qid, "image_id": cocoid, "question_type": text.split()[0].lower(),
                         "answer_type": "yes/no" if best in ("yes", "no") else "other",
                         "multiple_choice_answer": best,
                         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                                     for k, a in enumerate(answers)]})
        r.shuffle(anns)   # the two files are not in the same order
        _dump(root / "vqav2" / f"v2_OpenEnded_mscoco_{sub}_questions.json", {**meta, "data_subtype": sub, "questions": qs})
        _dump(root / "vqav2" / f"v2_mscoco_{sub}_annotations.json", {**meta, "data_subtype": sub, "annotations": anns})


def write_aokvqa(root: Path, n_train: int, imgs: list, seed: int) -> None:
    r = random.Random(f"{seed}-aokvqa")
    for split, n in (("train", n_train), ("val", max(1, n_train // 10))):
        qs = synthetic.questions(n, seed + 7 + (split == "val"))
        rats = iter(synthetic.captions(3 * n, seed + 9))
        rows = []
        for j, q in enumerate(qs):
            choices = r.sample(ANSWERS, 4)
            rows.append({"split": split, "image_id": imgs[(j * 7) % len(imgs)][0], "question_id": f"{split}{j:08d}",
                         "question": q, "choices": choices, "correct_choice_idx": j % 4,
                         "direct_answers": [choices[j % 4]] * 10, "difficult_direct_answer": False,
                         "rationales": [_sentence(next(rats)) for _ in range(3)]})
        _dump(root / "aokvqa" / f"aokvqa_v1p0_{split}.json", rows)


def write_llava(root: Path, n_conv: int, n_detail: int, imgs: list, seed: int) -> None:
    qs = iter(synthetic.questions(3 * n_conv, seed + 11))
    caps = iter(synthetic.captions(3 * (n_conv + 3 * n_detail), seed + 13))
    conv = []
    for j in range(n_conv):
        key = f"{imgs[j % len(imgs)][0]:012d}"
        turns = []
        for t in range(1 + j % 3):
            q = next(qs)
            turns += [{"from": "human", "value": f"<image>\n{q}" if t == 0 else q},
                      {"from": "gpt", "value": " ".join(_sentence(next(caps)) for _ in range(1 + t % 2))}]
        conv.append({"id": key, "image": f"{key}.jpg", "conversations": turns})
    detail = []
    for j in range(n_detail):
        key = f"{imgs[(j * 3) % len(imgs)][0]:012d}"
        detail.append({"id": key, "image": f"{key}.jpg", "conversations": [
            {"from": "human", "value": "<image>\nDescribe the following image."},
            {"from": "gpt", "value": " ".join(_sentence(next(caps)) for _ in range(3))}]})
    _dump(root / "llava" / "conversation_58k.json", conv)
    _dump(root / "llava" / "detail_23k.json", detail)


def write_imagenet(root: Path, n_classes: int, per_class: int, images: Images) -> None:
    words = [c.split()[-1] for c in synthetic.source_texts("caption")]
    names = [f"{words[i % len(words)]} {i}" for i in range(n_classes)]
    synsets = [f"n{10000000 + i:08d}" for i in range(n_classes)]
    _dump(root / "imagenet" / "imagenet_class_index.json", {str(i): [s, n.replace(" ", "_")]
                                                            for i, (s, n) in enumerate(zip(synsets, names))})
    _dump(root / "imagenet" / "clip_imagenet_classnames_en.json", names)
    babel = {lang: [list(range(n_classes)), [f"({lang.lower()}) {n}" for n in names]]
             for lang in ("FR", "DE", "ES", "HE", "TL", "ZH", "JA", "SW")}
    babel["EN"] = [list(range(n_classes)), names]
    _dump(root / "babel-imagenet" / "babel_imagenet-298.json", babel)
    for s in synsets:
        for k in range(per_class):
            images.link(root / "imagenet" / "train" / s / f"{s}_{k + 1}.JPEG")


# Evaluation files: (path glob under the raw root, container, id keys, text keys).
EVAL_FILES = [
    ("iglue/datasets/gqa/annotations/*.json", "list", ["question_id"], ["sent"]),
    ("iglue/datasets/xGQA/annotations/few_shot/*/*.json", "dict", [], ["question"]),
    ("iglue/datasets/XVNLI/annotations/*/*.jsonl", "lines", ["pairID"], ["sentence1", "sentence2"]),
    ("iglue/datasets/marvl/zero_shot/annotations/*.jsonl", "lines", ["id"], ["caption"]),
    ("iglue/datasets/nlvr2/annotations/*.jsonl", "lines", ["identifier"], ["sentence"]),
    ("iglue/datasets/flickr30k/annotations/*.jsonl", "lines", ["id"], ["sentences"]),
    ("iglue/datasets/xFlickrCO/annotations/*/*.jsonl", "lines", ["id"], ["sentences"]),
    ("maxm/*.json", "maxm", [], ["question"]),
    ("pope/output/coco/*.json", "lines", ["question_id"], ["text"]),
    ("pope/segmentation/*.json", "lines", [], []),
]


class Texts:
    def __init__(self, seed: int):
        self.caps = synthetic.TextSource("caption", seed + 17)
        self.qs = synthetic.TextSource("question", seed + 19)

    def replace(self, key: str, value):
        if isinstance(value, list):
            return [self.replace(key, v) for v in value]
        if not isinstance(value, str) or not value.strip():
            return value   # empty and odd values stay as they are (the awkward cases)
        return next(self.qs) if key in ("question", "sent", "text") else _sentence(next(self.caps))


def _copy_record(rec, k: int, id_keys: list[str], text_keys: list[str], texts: Texts):
    if not isinstance(rec, dict):
        return rec
    rec = copy.deepcopy(rec)
    for key in id_keys:
        if key in rec and k:
            rec[key] = rec[key] + k * 10 ** 7 if isinstance(rec[key], int) else f"{rec[key]}-s{k}"
    for key in text_keys:
        if key in rec:
            rec[key] = texts.replace(key, rec[key])
    return rec


def write_eval(root: Path, copies: int, images: Images, seed: int) -> None:
    texts = Texts(seed)
    for pattern, container, id_keys, text_keys in EVAL_FILES:
        for src in sorted(FIXTURES.glob(pattern)):
            dst = root / src.relative_to(FIXTURES)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if container == "lines":
                _copy_lines(src, dst, copies,
                            lambda rec, k, ids=id_keys, keys=text_keys: _copy_record(rec, k, ids, keys, texts))
                continue
            data = json.loads(src.read_text(encoding="utf-8"))
            if container == "list":
                data = [_copy_record(r, k, id_keys, text_keys, texts) for k in range(copies) for r in data]
            elif container == "dict":
                data = {(key if not k else f"{key}{k:03d}"): _copy_record(r, k, [], text_keys, texts)
                        for k in range(copies) for key, r in data.items()}
            else:   # maxm: questions inside annotations
                anns = []
                for k in range(copies):
                    for a in data["annotations"]:
                        a = copy.deepcopy(a)
                        a["qa_pairs"] = [_copy_record(q, k, ["question_id"], text_keys, texts)
                                         for q in a.get("qa_pairs", [])]
                        anns.append(a)
                data = {**data, "annotations": anns}
            _dump(dst, data)
    write_xm3600(root, copies, images, texts)
    for folder in ("iglue/datasets/marvl/images", "xm3600/images"):
        for src in (FIXTURES / folder).rglob("*.jpg"):
            dst = root / src.relative_to(FIXTURES)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                shutil.copyfile(src, dst)


def _copy_lines(src: Path, dst: Path, copies: int, change) -> None:
    """``copies`` rounds of the JSON lines of ``src`` into ``dst``, each record
    passed through ``change(record, round)``; a bad line stays bad."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    lines = src.read_text(encoding="utf-8").splitlines()
    with open(dst, "w", encoding="utf-8") as out:
        for k in range(copies):
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    out.write(line + "\n")
                    continue
                out.write(json.dumps(change(rec, k), ensure_ascii=False) + "\n")


def write_xm3600(root: Path, copies: int, images: Images, texts: Texts) -> None:
    def change(rec, k: int):
        if k and isinstance(rec, dict) and isinstance(rec.get("image/key"), str):
            key = f"{rec['image/key']}s{k}"
            rec["image/key"] = key
            images.link(root / "xm3600" / "images" / f"{key}.jpg")
            for lang, v in rec.items():
                if isinstance(v, dict) and isinstance(v.get("caption"), list):
                    caps = [texts.replace("caption", c) for c in v["caption"]]
                    rec[lang] = {**v, "caption": caps, "caption/tokenized": caps,
                                 "caption/tokenized/lowercase": [c.lower() for c in caps]}
        return rec

    _copy_lines(FIXTURES / "xm3600" / "captions.jsonl", root / "xm3600" / "captions.jsonl", copies, change)


def write_raw_root(root: Path, scale: float = 1.0, web: str = "http://127.0.0.1:18080", seed: int = 0) -> Path:
    """Every raw input of common/FORMATS.md under ``root``, at ``scale`` (see the module docstring)."""
    root.mkdir(parents=True, exist_ok=True)
    images = Images(root)
    n = lambda base: max(1, int(round(base * scale)))  # noqa: E731
    write_blip(root, n(20000), web, seed)
    imgs = write_mscoco(root, n(5000), images, seed)
    write_vqav2(root, n(40000), imgs, seed)
    write_aokvqa(root, n(1700), imgs, seed)
    write_llava(root, n(5800), n(2300), imgs, seed)
    write_imagenet(root, n(100), 10, images)
    write_eval(root, n(100), images, seed)
    return root


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--web", default="http://127.0.0.1:18080", help="host of the CapFilt URLs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    write_raw_root(args.out, args.scale, args.web, args.seed)
    print(f"raw root at {args.out} (scale {args.scale})", file=sys.stderr)


if __name__ == "__main__":
    main()
