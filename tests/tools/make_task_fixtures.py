"""Write the tiny task-source fixtures under tests/fixtures/raw/ (a dev tool).

Raw layout as in common/FORMATS.md, with the awkward cases the generators must handle:
an empty / whitespace caption, an NFD caption, an image record without
sentences, a Karpathy image whose file is missing, restval images (training
only), VQAv2 annotations in another order than the questions, a question with
'#' and braces, a question without annotation, answers that are frequent /
numeric / one character, a val question without multiple_choice_answer and a
malformed answer, an A-OKVQA image missing from the COCO folder, a bad
correct_choice_idx, empty rationales and rationales given as a string, LLaVA turns with '<image>' as prefix, suffix and in
the middle, a long answer, an odd number of turns, ImageNet classes with few,
zero or no images, and a small Babel-ImageNet file (HE, TL, an unknown key).

  python tests/tools/make_task_fixtures.py [--root tests/fixtures/raw]

The ImageNet class names and the Babel-ImageNet slice are read from --real
(default ../shared/real beside the clone).
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

TRAIN = "COCO_train2014_%012d.jpg"
VAL = "COCO_val2014_%012d.jpg"


def tiny_jpeg(seed: int) -> bytes:
    img = Image.new("RGB", (8, 8), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=50)
    return buf.getvalue()


def dump(path: Path, obj, indent=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")


def coco(root: Path) -> None:
    caps = {
        9: ["A plate of food with broccoli and rice.", "Some vegetables on a white plate.", "",
            "A meal of meat, rice and broccoli.", "   "],
        25: ["A giraffe eating leaves from a tree.", "A tall giraffe next to a tree."],
        30: ["A vase with flowers on a table.", "White flowers in a small vase."],
        34: ["A zebra grazing on grass.", unicodedata.normalize("NFD", "A zebra in a café garden.")],
        36: None,  # record without "sentences"
        42: ["A dog lying on a red blanket.", "A brown dog sleeping."],
        73: ["A motorcycle parked on a street.", "A red motorbike by the kerb."],
        391895: ["A man riding a bike on a dirt road.", "A person on a bicycle near mountains."],
        522418: ["A woman cutting a large cake.", unicodedata.normalize("NFD", "Une femme coupe un gâteau.  ")],
        184613: ["A child holding an umbrella.", ""],
        203564: ["A bicycle parked next to a clock.", "A clock above a parked bike."],
        179765: ["A black motorcycle in a garage.", "A motorbike parked indoors."],
        # A restval image that POPE asks about (pope/output/coco): its training captions must go.
        310196: ["A snowboarder jumping over a snowy hill.", "A person in the air on a snowboard."],
    }
    split = {9: "train", 25: "train", 30: "train", 34: "train", 36: "train", 42: "restval", 73: "restval",
             391895: "val", 522418: "val", 184613: "val", 203564: "test", 179765: "test", 310196: "restval"}
    images, sentid = [], 0
    for imgid, (cocoid, sents) in enumerate(caps.items()):
        folder = "train2014" if split[cocoid] == "train" else "val2014"
        name = (TRAIN if folder == "train2014" else VAL) % cocoid
        rec = {"filepath": folder, "filename": name, "imgid": imgid, "split": split[cocoid], "cocoid": cocoid}
        if sents is not None:
            rec["sentences"] = []
            for s in sents:
                rec["sentences"].append({"tokens": s.lower().strip(".").split(), "raw": s,
                                         "imgid": imgid, "sentid": sentid})
                sentid += 1
            rec["sentids"] = [s["sentid"] for s in rec["sentences"]]
        images.append(rec)
        if cocoid != 25:  # 25's file is missing on purpose
            p = root / "mscoco" / "images" / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(tiny_jpeg(cocoid))
    dump(root / "mscoco" / "dataset_coco.json", {"images": images, "dataset": "coco"})


def vqav2(root: Path) -> None:
    meta = {"info": {"description": "fixture"}, "license": {"name": "CC BY 4.0"}, "task_type": "Open-Ended",
            "data_type": "mscoco"}
    qs, anns = [], []
    qid = 1000
    plan = ([("Is there food on the plate?", "yes")] * 16 + [("Is the plate empty?", "no")] * 15
            + [("How many flowers are there?", "2")] * 15 + [("What letter is on the sign?", "a")] * 15
            + [("What color is the vase?", "white")] * 15 + [("What is the animal?", "zebra")] * 3)
    plan += [("What is written after the # sign {here}?", "yes"), ("", "no")]
    for i, (q, a) in enumerate(plan):
        image = [9, 30, 34][i % 3]
        qs.append({"image_id": image, "question": q, "question_id": qid})
        anns.append({"question_id": qid, "image_id": image, "question_type": "what",
                     "answer_type": "other", "multiple_choice_answer": a,
                     "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k in range(10)]})
        qid += 1
    qs.append({"image_id": 9, "question": "A question nobody annotated?", "question_id": 5555})
    anns.append({"question_id": 6666, "image_id": 9, "question_type": "what", "answer_type": "other",
                 "answers": []})  # no multiple_choice_answer and no question
    anns.reverse()  # join by question_id, never by position
    dump(root / "vqav2" / "v2_OpenEnded_mscoco_train2014_questions.json",
         {**meta, "data_subtype": "train2014", "questions": qs})
    dump(root / "vqav2" / "v2_mscoco_train2014_annotations.json", {**meta, "data_subtype": "train2014",
                                                                  "annotations": anns})
    vq = [{"image_id": 391895, "question": "What is the man riding?", "question_id": 391895000},
          {"image_id": 522418, "question": "Is the cake #1 in the contest?", "question_id": 522418001},
          {"image_id": 184613, "question": "What is the child holding?", "question_id": 184613002}]
    va = [{"question_id": 391895000, "image_id": 391895, "question_type": "what", "answer_type": "other",
           "multiple_choice_answer": "bike",
           "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                       for k, a in enumerate(["bike", "bicycle"] * 5)]},
          {"question_id": 522418001, "image_id": 522418, "question_type": "is", "answer_type": "yes/no",
           "multiple_choice_answer": "yes",
           "answers": [{"answer": a, "answer_confidence": "maybe", "answer_id": k + 1}
                       for k, a in enumerate(["yes"] * 7 + ["no"] * 3)]}]
    # No multiple_choice_answer, but ten answers (one of them malformed): still an eval row.
    vq.append({"image_id": 203564, "question": "What time does the clock show?", "question_id": 203564003})
    va.append({"question_id": 203564003, "image_id": 203564, "question_type": "what", "answer_type": "other",
               "answers": [{"answer": "noon", "answer_confidence": "yes", "answer_id": k + 1} for k in range(9)]
               + [{"answer_confidence": "no", "answer_id": 10}]})
    # 184613002 has no annotation: skipped and counted.
    # VQAv2 val asks about every val2014 image, Karpathy restval ones too (73).
    vq.append({"image_id": 73, "question": "What color is the motorcycle?", "question_id": 73004})
    va.append({"question_id": 73004, "image_id": 73, "question_type": "what color", "answer_type": "other",
               "multiple_choice_answer": "red",
               "answers": [{"answer": "red", "answer_confidence": "yes", "answer_id": k + 1} for k in range(10)]})
    dump(root / "vqav2" / "v2_OpenEnded_mscoco_val2014_questions.json",
         {**meta, "data_subtype": "val2014", "questions": vq})
    dump(root / "vqav2" / "v2_mscoco_val2014_annotations.json", {**meta, "data_subtype": "val2014",
                                                                "annotations": va})


def aokvqa(root: Path) -> None:
    def row(qid, image_id, q, choices, idx, rationales):
        return {"split": "train", "image_id": image_id, "question_id": qid, "question": q, "choices": choices,
                "correct_choice_idx": idx, "direct_answers": [choices[0]] * 10 if choices else [],
                "difficult_direct_answer": False, "rationales": rationales}
    rows = [
        row("22MexNkBPpdZGX6sxbxVBH", 9, "What healthy food is on the plate?", ["cake", "broccoli", "fries", "pizza"],
            1, ["Broccoli is a green vegetable.", "The green florets are broccoli.", "It is broccoli, which is healthy."]),
        row("2Aq8kR5tv5gQvRyc4Q7f9A", 42, "Why is the dog lying down?", ["hungry", "running", "resting", "swimming"],
            2, ["Dogs lie down to rest.", "The dog looks sleepy."]),
        row("3Bz9mLJ8Hx0Kq2PcWQ1uYt", 999999, "What is on the table?", ["a", "b", "c", "d"], 0, ["Missing image."]),
        row("4Cw0nMK9Iy1Lr3QdXR2vZu", 30, "Which object holds the flowers?", ["vase", "cup", "box", "shoe"],
            7, ["Bad index."]),
        row("5Ey2pON1Ka3Nt5SfZT4xBw", 30, "What #1 thing is in the vase?", ["flowers", "water", "sand", "rocks"],
            0, ["Flowers stand in the vase.", "", "   "]),
        row("6Fz3qPO2Lb4Ou6TgAU5yCx", 30, "Is the vase on a table?", ["yes", "no", "maybe", "never"],
            0, "The vase stands on a table."),
        # A COCO 2017 train image that is a Karpathy test image: must not reach training.
        row("7Ga4rQP3Mc5Pv7UhBV6zDy", 179765, "Where is the motorcycle kept?", ["garage", "beach", "roof", "lake"],
            0, ["The motorcycle stands indoors in a garage."]),
    ]
    dump(root / "aokvqa" / "aokvqa_v1p0_train.json", rows, indent=1)
    val = [dict(rows[0], split="val", question_id="5Dx1oNL0Jz2Ms4ReYS3wAv", image_id=391895)]
    dump(root / "aokvqa" / "aokvqa_v1p0_val.json", val, indent=1)


def llava(root: Path) -> None:
    detail = [
        {"id": "000000000009", "image": "000000000009.jpg", "conversations": [
            {"from": "human", "value": "<image>\nDescribe the following image."},
            {"from": "gpt", "value": "The image shows a plate with broccoli and rice. The food looks fresh. "
                                     "A fork lies next to it. The table is wooden."}]},
        {"id": "000000000042", "image": "000000000042.jpg", "conversations": [
            {"from": "human", "value": "What do you see happening in this image?\n<image>"},
            {"from": "gpt", "value": "A dog sleeps on a red blanket."}]},
        {"id": "000000555555", "image": "000000555555.jpg", "conversations": [
            {"from": "human", "value": "<image>\nDescribe the image."}, {"from": "gpt", "value": "No such image."}]},
        # A Karpathy test image (COCO 2017 train holds most of val2014): must not reach training.
        {"id": "000000203564", "image": "000000203564.jpg", "conversations": [
            {"from": "human", "value": "<image>\nDescribe the scene in detail."},
            {"from": "gpt", "value": "A bicycle is parked below a large clock on a wall."}]},
    ]
    conv = [
        {"id": "000000000030", "image": "000000000030.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat is in the vase?"},
            {"from": "gpt", "value": "White flowers are in the vase."},
            {"from": "human", "value": "Where is the vase placed?"},
            {"from": "gpt", "value": "It is on a table. The table is wooden. It stands by a window. "
                                     "Light comes in. The room is bright."},
            {"from": "human", "value": "Is the <image> vase full?"},
            {"from": "gpt", "value": "Yes, it is full of flowers."},
            # The question of a VQAv2 val example, word for word: reported, not dropped.
            {"from": "human", "value": "What is the man riding?"},
            {"from": "gpt", "value": "There is no man here, only a vase of flowers."},
            {"from": "human", "value": "A dangling question without answer?"}]},
        {"id": "000000000073", "image": "000000000073.jpg", "conversations": [
            {"from": "human", "value": "What color is the motorcycle?\n<image>"},
            {"from": "gpt", "value": "The motorcycle is red."},
            {"from": "human", "value": ""},
            {"from": "gpt", "value": "An answer to an empty question."}]},
        {"id": "000000000034", "image": "000000000034.jpg"},  # no conversations
        # A POPE image (a Karpathy restval image too): must not reach training.
        {"id": "000000310196", "image": "000000310196.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat is the person doing?"},
            {"from": "gpt", "value": "The person is jumping on a snowboard."}]},
    ]
    dump(root / "llava" / "detail_23k.json", detail, indent=1)
    dump(root / "llava" / "conversation_58k.json", conv, indent=1)


def imagenet(root: Path, real: Path) -> None:
    n_classes = 6
    index = json.loads((real / "imagenet" / "imagenet_class_index.json").read_text(encoding="utf-8"))
    names = json.loads((real / "imagenet" / "clip_imagenet_classnames_en.json").read_text(encoding="utf-8"))
    index = {str(i): index[str(i)] for i in range(n_classes)}
    dump(root / "imagenet" / "imagenet_class_index.json", index, indent=1)
    dump(root / "imagenet" / "clip_imagenet_classnames_en.json", names[:n_classes], indent=1)
    # class 0: 3 images, 1: 1 image (reused), 2: an empty folder, 3: 2 images, 4: 2 images, 5: no folder
    for cls, n in [(0, 3), (1, 1), (2, 0), (3, 2), (4, 2)]:
        syn = index[str(cls)][0]
        folder = root / "imagenet" / "train" / syn
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n):
            (folder / f"{syn}_{k + 1}.JPEG").write_bytes(tiny_jpeg(cls * 10 + k))
    babel = json.loads((real / "babel-imagenet" / "babel_imagenet-298.json").read_text(encoding="utf-8"))
    small = {}
    for key in ["FR", "EN", "DE", "HE", "TL", "ZH", "WAR"]:
        idx, nm = babel[key]
        keep = [(i, n) for i, n in zip(idx, nm) if i < n_classes]
        small[key] = [[i for i, _ in keep], [n for _, n in keep]]
    dump(root / "babel-imagenet" / "babel_imagenet-298.json", small)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(REPO_ROOT / "tests" / "fixtures" / "raw"))
    ap.add_argument("--real", default=str(REPO_ROOT.parent / "shared" / "real"))
    args = ap.parse_args()
    root, real = Path(args.root), Path(args.real)
    if not real.is_dir():
        sys.exit(f"error: real release files not found at {real} (needed for the ImageNet names): pass --real DIR")
    coco(root)
    vqav2(root)
    aokvqa(root)
    llava(root)
    imagenet(root, real)
    print(f"wrote the task fixtures under {root}")


if __name__ == "__main__":
    main()
