"""Every evaluation converter in-process on a small raw tree written here, one
record per awkward case: the rows a user gets (text_label and label, the two
sides of a pair, image ids, contexts, caption references) and, for every record
that is not a row, the reason the report gives. Also the shared plumbing of
eval_data/run.py (the one-line refusals, the accounting that lets no row go
missing) on its own.

These are the focused tests of ``make mutation`` for eval_data/ (run in the
test process, where mutmut sees them; the subprocess runs of
test_eval_units.py check the command line)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import UserError
from tests.conftest import root_sets

IG = "iglue/datasets"


def write(path: Path, records: list) -> Path:
    """JSONL: dicts as JSON lines, strings as they are (a malformed line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in records), encoding="utf-8")
    return path


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def run(main, tmp_path: Path, *sets: str) -> dict:
    argv = root_sets(tmp_path, tmp_path / "raw")
    for s in sets:
        argv += ["--set", s]
    return main(argv)


def out(tmp_path: Path, bench: str) -> Path:
    return tmp_path / "out" / "eval" / bench


def skipped(report: dict) -> dict[str, int]:
    return report["skipped"]


# ---- POPE -------------------------------------------------------------------------------------------

def test_pope_rows_labels_and_every_skip_reason(tmp_path):
    from eval_data.pope.convert import main
    raw = tmp_path / "raw" / "pope" / "output" / "coco"
    write(raw / "coco_pope_adversarial.json", [
        {"question_id": 1, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a  dog\nin the image?",
         "label": " Yes "},
        {"question_id": 2, "image": "COCO_val2014_000000000002.jpg", "text": "Is there a cat?", "label": "no"},
        {"question_id": 1, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a  dog\nin the image?",
         "label": "yes"},                                                       # the same question again
        {"question_id": 2, "image": "COCO_val2014_000000000003.jpg", "text": "Is there a car?", "label": "NO"},
        {"question_id": 5, "image": "x.jpg", "text": "Q?", "label": "maybe"},
        {"question_id": 6, "image": " ", "text": "Q?", "label": "yes"},
        {"question_id": 7, "text": "Q?", "label": "yes"},
        {"question_id": 8, "image": "x.jpg", "text": "Q?", "label": 1},
        "{not json",
        [1, 2],
        {"image": "COCO_val2014_000000000009.jpg", "text": "Is there a bus?", "label": "yes"},
        {"image": "COCO_val2014_000000000009.jpg", "text": "Is there a bus?", "label": "yes"},   # no id: kept
        {"question_id": 1, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a person?", "label": "yes"},
        {"question_id": 12, "image": "x.jpg", "label": "yes"},
        {"question_id": 10, "image": "COCO_val2014_000000000010.jpg", "text": "Is there a tree?", "label": "no"},
        {"question_id": 10, "image": "COCO_val2014_000000000011.jpg", "text": "Is there a tree?", "label": "no"},
    ])
    write(raw / "coco_pope_popular.json", [
        {"question_id": 1, "image": "COCO_val2014_000000000004.jpg", "text": "Is there a kite?", "label": "yes"}])
    report = run(main, tmp_path, "pope.splits=[adversarial,popular]", "pope.context_template=Q: {question} A:")
    assert report["stage"] == "pope"
    rows = lines(out(tmp_path, "pope") / "pope_adversarial.jsonl")
    assert [(r["context"], r["image_id"], r["text_label"], r["label"]) for r in rows] == [
        ("Q: Is there a dog in the image? A:", "COCO_val2014_000000000001.jpg", "yes", ""),
        ("Q: Is there a cat? A:", "COCO_val2014_000000000002.jpg", "no", ""),
        ("Q: Is there a car? A:", "COCO_val2014_000000000003.jpg", "no", ""),
        ("Q: Is there a bus? A:", "COCO_val2014_000000000009.jpg", "yes", ""),
        ("Q: Is there a bus? A:", "COCO_val2014_000000000009.jpg", "yes", ""),
        ("Q: Is there a person? A:", "COCO_val2014_000000000001.jpg", "yes", ""),
        ("Q: Is there a tree? A:", "COCO_val2014_000000000010.jpg", "no", ""),
        ("Q: Is there a tree? A:", "COCO_val2014_000000000011.jpg", "no", ""),      # another image: kept
    ]
    assert list(rows[0]) == ["context", "label", "image_id", "text_label"]
    assert [(r["image_id"], r["text_label"]) for r in lines(out(tmp_path, "pope") / "pope_popular.jsonl")] == [
        ("COCO_val2014_000000000004.jpg", "yes")]
    assert not (out(tmp_path, "pope") / "pope_random.jsonl").exists()
    src = "pope/output/coco/coco_pope_adversarial.json"
    assert skipped(report) == {
        f"{src}: duplicate of an earlier record (same question_id, image, text, label)": 1,
        f"{src}: label 'maybe' is not yes/no": 1,
        f"{src}: empty field 'image'": 1,
        f"{src}: missing field 'image'": 1,
        f"{src}: missing field 'text'": 1,
        f"{src}: field 'label' has type int": 1,
        f"{src}: malformed JSON line": 2,          # the broken line, and the array (not an object)
    }
    assert report["skipped_examples"][f"{src}: label 'maybe' is not yes/no"] == ["question 5"]
    assert report["counts"]["question_id used by two different questions (both kept)"] == 3
    assert report["examples"]["question_id used by two different questions (both kept)"] == [
        f"{src}: question 2", f"{src}: question 1", f"{src}: question 10"]
    assert report["inputs"][src] == {"in": 16, "used": 8, "skipped": 8}
    assert report["outputs"] == {"pope_adversarial.jsonl": 8, "pope_popular.jsonl": 1}


# ---- MaRVL and NLVR2 --------------------------------------------------------------------------------

def marvl_raw(tmp_path: Path) -> Path:
    import unicodedata
    raw = tmp_path / "raw"
    ann = raw / IG / "marvl" / "zero_shot" / "annotations"
    concept = "7-Börek"
    nfd = unicodedata.normalize("NFD", concept)
    images = raw / IG / "marvl" / "images" / "tr" / "images" / nfd
    images.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (images / name).write_bytes(b"x")
    write(ann / "marvl-tr.jsonl", [
        {"id": "tr-1", "concept": concept, "language": "tr", "caption": "İki  resimde\tbörek var.",
         "left_img": "a.jpg", "right_img": "b.jpg", "label": True},
        {"id": "tr-2", "concept": nfd, "language": "tr", "caption": "Sağda çay var.",
         "left_img": "c.jpg", "right_img": "a.jpg", "label": False},
        {"id": "tr-3", "concept": concept, "language": "tr", "caption": "Resim yok.",
         "left_img": "a.jpg", "right_img": "gone.jpg", "label": True},              # right side not on disk
        {"id": "tr-4", "concept": concept, "language": "tr", "caption": "x", "left_img": "a.jpg",
         "right_img": "b.jpg", "label": "maybe"},
        {"id": "tr-5", "concept": concept, "language": "tr", "caption": "x", "left_img": "a.jpg",
         "right_img": "b.jpg", "label": "True"},                                    # MaRVL's string form too
        {"id": "tr-6", "concept": concept, "language": "tr", "left_img": "a.jpg", "right_img": "b.jpg",
         "label": True},
        {"id": "tr-7", "language": "tr", "caption": "x", "left_img": "a.jpg", "right_img": "b.jpg", "label": True},
        {"id": "tr-8", "concept": concept, "caption": "x", "left_img": "a.jpg", "right_img": "b.jpg", "label": True},
        {"id": "tr-9", "concept": concept, "language": "tr", "caption": "x", "right_img": "b.jpg", "label": True},
        {"id": "tr-10", "concept": concept, "language": "tr", "caption": "x", "left_img": "a.jpg", "label": True},
        "{broken",
        {"id": "tr-11", "concept": concept, "language": "tr", "caption": "Son.", "left_img": "b.jpg",
         "right_img": "c.jpg", "label": False},
    ])
    nl = raw / IG / "nlvr2" / "annotations"
    write(nl / "train.jsonl", [
        {"identifier": "train-10171-0-0", "sentence": "One  pencil case.", "label": "False", "synset": "pencil box",
         "directory": 73},
        {"identifier": "train-10171-0-1", "sentence": "Two dogs.", "label": "True", "directory": 0},
        {"identifier": "train-10172-0-0", "sentence": "No directory.", "label": "True"},
        {"identifier": "train-10173-0-0", "sentence": "Empty directory.", "label": "True", "directory": ""},
        {"identifier": "garbage", "sentence": "Bad id.", "label": "True", "directory": 1},
        {"identifier": "train-10174-0-0", "sentence": "Bad label.", "label": "yes", "directory": 1},
        {"identifier": "train-10175-0-0", "label": "True", "directory": 1},
        {"sentence": "No identifier.", "label": "True", "directory": 1},
        {"identifier": "train-10176-0-1", "sentence": "Last.", "label": "True", "directory": 5},
    ])
    write(nl / "dev.jsonl", [
        {"identifier": "dev-850-0-0", "sentence": "A dog.", "label": "True", "synset": "dog"},
        {"identifier": "dev-851-1-2", "sentence": "A cat.", "label": False}])
    write(nl / "test.jsonl", [{"identifier": "test1-12-3-1", "sentence": "A bird.", "label": "False"}])
    write(nl / "dev-tr_gmt.jsonl", [{"identifier": "dev-850-0-0", "sentence": "Bir köpek.", "label": "True"}])
    return raw


def test_marvl_rows_sides_truth_and_missing_images(tmp_path):
    from eval_data.marvl.convert import main, MISSING
    marvl_raw(tmp_path)
    report = run(main, tmp_path, "marvl.langs=[tr]", "marvl.nlvr2_langs=[tr]",
                 "marvl.context_template=Statement: {statement}")
    import unicodedata
    assert report["stage"] == "marvl"
    nfd = unicodedata.normalize("NFD", "7-Börek")
    rows = lines(out(tmp_path, "marvl") / "marvl_test_tr.jsonl")
    assert rows == [
        {"context": "Statement: İki resimde börek var.", "label": "", "image_id": f"tr/images/{nfd}/a.jpg",
         "text_label": "True", "left_image": f"tr/images/{nfd}/a.jpg", "right_image": f"tr/images/{nfd}/b.jpg",
         "concept": "7-Börek", "language": "tr"},
        {"context": "Statement: Sağda çay var.", "label": "", "image_id": f"tr/images/{nfd}/c.jpg",
         "text_label": "False", "left_image": f"tr/images/{nfd}/c.jpg", "right_image": f"tr/images/{nfd}/a.jpg",
         "concept": "7-Börek", "language": "tr"},
        # kept and reported; the missing side in the annotation's NFC spelling
        {"context": "Statement: Resim yok.", "label": "", "image_id": f"tr/images/{nfd}/a.jpg",
         "text_label": "True", "left_image": f"tr/images/{nfd}/a.jpg", "right_image": "tr/images/7-Börek/gone.jpg",
         "concept": "7-Börek", "language": "tr"},
        {"context": "Statement: x", "label": "", "image_id": f"tr/images/{nfd}/a.jpg",
         "text_label": "True", "left_image": f"tr/images/{nfd}/a.jpg", "right_image": f"tr/images/{nfd}/b.jpg",
         "concept": "7-Börek", "language": "tr"},
        {"context": "Statement: Son.", "label": "", "image_id": f"tr/images/{nfd}/b.jpg",
         "text_label": "False", "left_image": f"tr/images/{nfd}/b.jpg", "right_image": f"tr/images/{nfd}/c.jpg",
         "concept": "7-Börek", "language": "tr"},
    ]
    assert report["counts"][MISSING] == 1
    assert report["examples"][MISSING] == ["id tr-3: tr/images/7-Börek/gone.jpg"]
    train = lines(out(tmp_path, "marvl") / "nlvr2_train_en.jsonl")
    assert [(r["context"], r["label"], r["text_label"], r["left_image"], r["right_image"], r["image_id"],
             r["concept"], r["language"]) for r in train] == [
        ("Statement: One pencil case.", "False", "False", "train/73/train-10171-0-img0.png",
         "train/73/train-10171-0-img1.png", "train/73/train-10171-0-img0.png", "pencil box", "en"),
        ("Statement: Two dogs.", "True", "True", "train/0/train-10171-0-img0.png",
         "train/0/train-10171-0-img1.png", "train/0/train-10171-0-img0.png", "", "en"),
        ("Statement: Last.", "True", "True", "train/5/train-10176-0-img0.png",
         "train/5/train-10176-0-img1.png", "train/5/train-10176-0-img0.png", "", "en")]
    dev = lines(out(tmp_path, "marvl") / "nlvr2_dev_en.jsonl")
    assert [(r["label"], r["text_label"], r["left_image"], r["right_image"], r["concept"], r["language"])
            for r in dev] == [("", "True", "dev/dev-850-0-img0.png", "dev/dev-850-0-img1.png", "dog", "en"),
                              ("", "False", "dev/dev-851-1-img0.png", "dev/dev-851-1-img1.png", "", "en")]
    test = lines(out(tmp_path, "marvl") / "nlvr2_test_en.jsonl")
    assert [(r["label"], r["text_label"], r["left_image"], r["right_image"], r["language"]) for r in test] == [
        ("", "False", "test1/test1-12-3-img0.png", "test1/test1-12-3-img1.png", "en")]
    tr = lines(out(tmp_path, "marvl") / "nlvr2_dev_tr.jsonl")
    assert [(r["context"], r["text_label"], r["language"], r["label"]) for r in tr] == [
        ("Statement: Bir köpek.", "True", "tr", "")]
    m, n = f"{IG}/marvl/zero_shot/annotations/marvl-tr.jsonl", f"{IG}/nlvr2/annotations/train.jsonl"
    assert skipped(report) == {
        f"{m}: label 'maybe' is not true/false": 1,
        f"{m}: missing field 'caption'": 1,
        f"{m}: missing field 'concept'": 1,
        f"{m}: missing field 'language'": 1,
        f"{m}: missing field 'left_img'": 1,
        f"{m}: missing field 'right_img'": 1,
        f"{n}: cannot derive image names from identifier/directory": 3,
        f"{n}: label 'yes' is not True/False": 1,
        f"{n}: missing field 'sentence'": 1,
        f"{n}: missing field 'identifier'": 1,
        f"{m}: malformed JSON line": 1,
    }
    assert report["skipped_examples"][f"{m}: label 'maybe' is not true/false"] == ["id tr-4"]
    assert report["skipped_examples"][f"{n}: label 'yes' is not True/False"] == ["train-10174-0-0"]
    assert report["outputs"] == {"marvl_test_tr.jsonl": 5, "nlvr2_train_en.jsonl": 3, "nlvr2_dev_en.jsonl": 2,
                                 "nlvr2_test_en.jsonl": 1, "nlvr2_dev_tr.jsonl": 1}


def test_marvl_drop_missing_images_and_other_answers(tmp_path):
    from eval_data.marvl.convert import main, MISSING
    raw = marvl_raw(tmp_path)
    report = run(main, tmp_path, "marvl.langs=[tr]", "marvl.nlvr2_langs=[]", "marvl.drop_missing_images=true",
                 "marvl.true_answer=yes", "marvl.false_answer=no")
    rows = lines(out(tmp_path, "marvl") / "marvl_test_tr.jsonl")
    assert [r["text_label"] for r in rows] == ["yes", "no", "yes", "no"]           # tr-3 dropped
    assert "Resim yok." not in [r["context"] for r in rows]
    assert report["skipped"][f"{IG}/marvl/zero_shot/annotations/marvl-tr.jsonl: image not on disk"] == 1
    assert report["skipped_examples"][f"{IG}/marvl/zero_shot/annotations/marvl-tr.jsonl: image not on disk"] == [
        "id tr-3"]
    assert report["counts"][MISSING] == 1
    assert [r["label"] for r in lines(out(tmp_path, "marvl") / "nlvr2_train_en.jsonl")] == ["no", "yes", "yes"]
    # No image folder at all: every pair is kept, reported missing, in its NFC spelling.
    import shutil
    shutil.rmtree(raw / IG / "marvl" / "images")
    report = run(main, tmp_path, "marvl.langs=[tr]", "marvl.nlvr2_langs=[]")
    rows = lines(out(tmp_path, "marvl") / "marvl_test_tr.jsonl")
    assert [r["left_image"] for r in rows] == ["tr/images/7-Börek/a.jpg", "tr/images/7-Börek/c.jpg",
                                               "tr/images/7-Börek/a.jpg", "tr/images/7-Börek/a.jpg",
                                               "tr/images/7-Börek/b.jpg"]
    assert report["counts"][MISSING] == 10
    assert report["counts"]["marvl image folder not found (every pair reported missing)"] == 1
    assert report["examples"]["marvl image folder not found (every pair reported missing)"] == [
        str(raw / IG / "marvl" / "images")]


# ---- xGQA --------------------------------------------------------------------------------------------

def test_xgqa_train_best_answer_fewshot_rows_and_skips(tmp_path):
    from eval_data.xgqa.convert import main
    raw = tmp_path / "raw" / IG
    (raw / "gqa" / "annotations").mkdir(parents=True)
    (raw / "gqa" / "annotations" / "train.json").write_text(json.dumps([
        {"img_id": "n1", "sent": "What  is it?", "label": {"dog": 0.3, "cat": 1.0, "cow": 1.0}, "question_id": "q1"},
        {"img_id": "n2", "sent": "Where?", "label": {}, "question_id": "q2"},
        {"img_id": "n3", "sent": "Who?", "label": {" ": 1.0}, "question_id": "q3"},
        {"img_id": "n4", "sent": "Which?", "label": ["yes"], "question_id": "q4"},
        {"sent": "No image?", "label": {"a": 1}},
        {"img_id": "n5", "label": {"a": 1}, "question_id": "q5"},
        {"img_id": "n6", "sent": "Cafe\u0301?", "label": {"cafe\u0301": 1, "tea": "high"}, "question_id": "q6"},
    ]), encoding="utf-8")
    fs = raw / "xGQA" / "annotations" / "few_shot"
    write_json(fs / "de" / "dev.json", {
        "201": {"imageId": "n10", "question": "Was  ist das?", "answer": "Hund"},
        "202": {"imageId": "n11", "question": "Wo?"}})
    write_json(fs / "de" / "test.json", {"301": {"imageId": "n12", "question": "Wer?", "answer": "Frau"}})
    report = run(main, tmp_path, "xgqa.langs=[de]", "xgqa.image_ext=.jpg", "xgqa.context_template=Q: {question}")
    assert report["stage"] == "xgqa"
    o = out(tmp_path, "xgqa")
    assert [(r["context"], r["image_id"], r["text_label"], r["label"]) for r in lines(o / "xgqa_train.jsonl")] == [
        ("Q: What is it?", "n1.jpg", "cat", "cat"), ("Q: Café?", "n6.jpg", "café", "café")]
    assert report["skipped_examples"][f"{IG}/gqa/annotations/train.json: missing field 'sent'"] == ["record 5"]
    assert [(r["context"], r["image_id"], r["text_label"], r["label"]) for r in lines(o / "xgqa_val_de.jsonl")] == [
        ("Q: Was ist das?", "n10.jpg", "Hund", "")]
    assert [(r["image_id"], r["text_label"]) for r in lines(o / "xgqa_test_de.jsonl")] == [("n12.jpg", "Frau")]
    t, d = f"{IG}/gqa/annotations/train.json", f"{IG}/xGQA/annotations/few_shot/de/dev.json"
    assert skipped(report) == {
        f"{t}: no scored answer in 'label'": 2,
        f"{t}: missing or non-dict field 'label'": 1,
        f"{t}: missing field 'img_id'": 1,
        f"{t}: missing field 'sent'": 1,
        f"{d}: missing field 'answer'": 1,
    }
    assert report["skipped_examples"][f"{t}: no scored answer in 'label'"] == ["record 1 question q2",
                                                                               "record 2 question q3"]
    assert report["skipped_examples"][f"{t}: missing field 'img_id'"] == ["record 4"]
    assert report["skipped_examples"][f"{d}: missing field 'answer'"] == ["question 202"]


def test_xgqa_malformed_train_elements_are_counted(tmp_path):
    from eval_data.xgqa.convert import main
    raw = tmp_path / "raw" / IG
    (raw / "gqa" / "annotations").mkdir(parents=True)
    good = json.dumps({"img_id": "n1", "sent": "Q?", "label": {"a": 1}})
    (raw / "gqa" / "annotations" / "train.json").write_bytes(
        b"[" + good.encode() + b', {"img_id": "n2", "sent": "\xff", "label": {"a": 1}}, ' + good.encode() + b"]")
    fs = raw / "xGQA" / "annotations" / "few_shot"
    write_json(fs / "de" / "dev.json", {"1": {"imageId": "n", "question": "Q?", "answer": "a"}})
    write_json(fs / "de" / "test.json", {"1": {"imageId": "n", "question": "Q?", "answer": "a"}})
    report = run(main, tmp_path, "xgqa.langs=[de]")
    t = f"{IG}/gqa/annotations/train.json"
    assert skipped(report) == {f"{t}: malformed JSON element": 1}
    assert report["inputs"][t] == {"in": 3, "used": 2, "skipped": 1}
    assert len(lines(out(tmp_path, "xgqa") / "xgqa_train.jsonl")) == 2


# ---- XVNLI -------------------------------------------------------------------------------------------

def test_xvnli_labels_files_and_skips(tmp_path):
    from eval_data.xvnli.convert import main
    ann = tmp_path / "raw" / IG / "XVNLI" / "annotations"

    def pair(i, **kw):
        return {"sentence1": f"premise {i}", "sentence2": f"hypothesis  {i}", "pairID": f"p{i}",
                "Flikr30kID": f"{i}.jpg", **kw}
    write(ann / "en" / "train.jsonl", [pair(1, gold_label="entailment"), pair(2, gold_label="contradiction"),
                                       pair(3, gold_label="-", annotator_labels=["neutral", "entailment"]),
                                       pair(4, gold_label="-", annotator_labels=["other"]),
                                       pair(5, gold_label="-"), pair(6, gold_label="odd", annotator_labels=[]),
                                       pair(7, gold_label=None, annotator_labels=[3]),
                                       {"sentence2": "h", "pairID": "p20", "Flikr30kID": "20.jpg",
                                        "gold_label": "neutral"},
                                       {"sentence1": "p", "pairID": "p21", "Flikr30kID": "21.jpg",
                                        "gold_label": "neutral"},
                                       {"sentence1": "p", "sentence2": "h", "Flikr30kID": "22.jpg",
                                        "gold_label": "neutral"},
                                       pair(8, gold_label="contradiction", annotator_labels=["entailment"])])
    write(ann / "en" / "dev.jsonl", [pair(10, gold_label="neutral")])
    write(ann / "en" / "dev-fr_gmt.jsonl", [pair(11, gold_label="contradiction")])
    write(ann / "fr" / "test.jsonl", [pair(12, gold_label="entailment"),
                                      {"sentence1": "p", "sentence2": "h", "pairID": "p13"},
                                      pair(15, gold_label="contradiction")])
    write(ann / "en" / "test.jsonl", [pair(14, gold_label="entailment")])
    report = run(main, tmp_path, "xvnli.langs=[en,fr]", "xvnli.image_ext=.jpg",
                 "xvnli.context_template={premise} => {hypothesis}")
    assert report["stage"] == "xvnli"
    o = out(tmp_path, "xvnli")
    assert [(r["context"], r["label"], r["image_id"], r["text_label"], r["pair_id"])
            for r in lines(o / "xvnli_train.jsonl")] == [
        ("premise 1 => hypothesis 1", "yes", "1.jpg.jpg", "yes", "p1"),
        ("premise 2 => hypothesis 2", "no", "2.jpg.jpg", "no", "p2"),
        ("premise 3 => hypothesis 3", "maybe", "3.jpg.jpg", "maybe", "p3"),
        ("premise 8 => hypothesis 8", "no", "8.jpg.jpg", "no", "p8")]
    assert [(r["label"], r["text_label"], r["pair_id"]) for r in lines(o / "xvnli_val_en.jsonl")] == [
        ("", "maybe", "p10")]
    assert [(r["label"], r["text_label"], r["pair_id"]) for r in lines(o / "xvnli_val_fr.jsonl")] == [
        ("", "no", "p11")]
    assert [(r["label"], r["text_label"], r["pair_id"]) for r in lines(o / "xvnli_test_fr.jsonl")] == [
        ("", "yes", "p12"), ("", "no", "p15")]
    assert report["skipped_examples"][f"{IG}/XVNLI/annotations/en/train.jsonl: label 'other' is not one of "
                                      "['contradiction', 'entailment', 'neutral']"] == ["pair p4"]
    assert [(r["text_label"], r["pair_id"]) for r in lines(o / "xvnli_test_en.jsonl")] == [("yes", "p14")]
    assert sorted(p.name for p in o.iterdir()) == ["xvnli_test_en.jsonl", "xvnli_test_fr.jsonl",
                                                   "xvnli_train.jsonl", "xvnli_val_en.jsonl", "xvnli_val_fr.jsonl"]
    t, f = f"{IG}/XVNLI/annotations/en/train.jsonl", f"{IG}/XVNLI/annotations/fr/test.jsonl"
    known = "['contradiction', 'entailment', 'neutral']"
    assert skipped(report) == {
        f"{t}: label 'other' is not one of {known}": 1,
        f"{t}: label '-' is not one of {known}": 1,
        f"{t}: label 'odd' is not one of {known}": 1,
        f"{t}: label '3' is not one of {known}": 1,
        f"{f}: missing field 'Flikr30kID'": 1,
        f"{t}: missing field 'sentence1'": 1, f"{t}: missing field 'sentence2'": 1,
        f"{t}: missing field 'pairID'": 1,
    }
    assert report["skipped_examples"][f"{t}: missing field 'pairID'"] == ["pair None"]
    assert report["skipped_examples"][f"{f}: missing field 'Flikr30kID'"] == ["pair p13"]


# ---- MaXM --------------------------------------------------------------------------------------------

def test_maxm_rows_answers_images_and_skips(tmp_path):
    from eval_data.maxm.convert import main, MISSING
    raw = tmp_path / "raw"
    (raw / "xm3600" / "images").mkdir(parents=True)
    (raw / "xm3600" / "images" / "img1.jpg").write_bytes(b"x")
    write_json(raw / "maxm" / "maxm_v1_fr.json", {"annotations": [
        {"image_id": "img1", "qa_pairs": [
            {"question_id": "a", "question": "Quelle  couleur ?", "processed_answers": ["rouge", " ", "Cafe\u0301", 3]},
            {"question_id": "b", "question": "Combien ?", "processed_answers": []},
            {"question_id": "c", "processed_answers": ["deux"]},
            {"question_id": "d", "question": "Où ?", "processed_answers": "ici"}]},
        {"image_id": "img2", "qa_pairs": [{"question_id": "e", "question": "Qui ?", "processed_answers": ["lui"]}]},
        {"qa_pairs": [{"question_id": "f", "question": "Quoi ?", "processed_answers": ["ça"]}]},
        {"image_id": "img3", "qa_pairs": "none"},
        "not an object",
        {"image_id": "img1", "qa_pairs": [{"question_id": "h", "question": "Et  après ?",
                                           "processed_answers": ["rien"]}]},
    ]})
    write_json(raw / "maxm" / "maxm_v1_iw.json", {"annotations": [
        {"image_id": "img1", "qa_pairs": [{"question_id": "g", "question": "מה?", "processed_answers": ["כלב"]}]}]})
    report = run(main, tmp_path, "maxm.langs=[fr,iw]")
    assert report["stage"] == "maxm"
    rows = lines(out(tmp_path, "maxm") / "maxm_test_fr.jsonl")
    assert rows == [
        {"context": "Question: Quelle couleur ? Short answer in French:", "label": "", "image_id": "img1.jpg",
         "text_label": ["rouge", "Café"]},
        {"context": "Question: Qui ? Short answer in French:", "label": "", "image_id": "img2.jpg",
         "text_label": ["lui"]},
        {"context": "Question: Et après ? Short answer in French:", "label": "", "image_id": "img1.jpg",
         "text_label": ["rien"]}]
    assert lines(out(tmp_path, "maxm") / "maxm_test_iw.jsonl") == [
        {"context": "Question: מה? Short answer in Hebrew:", "label": "", "image_id": "img1.jpg",
         "text_label": ["כלב"]}]
    s = "maxm/maxm_v1_fr.json"
    assert skipped(report) == {
        f"{s}: no non-empty processed answer": 1,
        f"{s}: missing field 'question'": 1,
        f"{s}: field 'processed_answers' has type str": 1,
        f"{s}: image record: missing field 'image_id'": 1,
        f"{s}: image record: missing 'qa_pairs' list": 1,
        f"{s}: image record: record is a str, not an object": 1,
    }
    assert report["skipped_examples"][f"{s}: no non-empty processed answer"] == [
        "annotation 0 image img1 question b"]
    assert report["skipped_examples"][f"{s}: image record: missing 'qa_pairs' list"] == ["annotation 3 image img3"]
    assert report["skipped_examples"][f"{s}: image record: record is a str, not an object"] == [
        "annotation 4 image ?"]
    assert report["inputs"][s] == {"in": 9, "used": 3, "skipped": 6}
    assert report["counts"][MISSING] == 1          # img2 is not on disk: kept, reported
    report = run(main, tmp_path, "maxm.langs=[fr]", "maxm.drop_missing_images=true")
    assert [r["image_id"] for r in lines(out(tmp_path, "maxm") / "maxm_test_fr.jsonl")] == ["img1.jpg", "img1.jpg"]
    assert report["skipped"][f"{s}: image not on disk"] == 1
    assert report["skipped_examples"][f"{s}: image not on disk"] == ["annotation 1 image img2 question e"]
    report = run(main, tmp_path, "maxm.langs=[fr]", "maxm.image_ext=.png")
    assert [r["image_id"] for r in lines(out(tmp_path, "maxm") / "maxm_test_fr.jsonl")] == [
        "img1.png", "img2.png", "img1.png"]
    assert report["counts"][MISSING] == 3 and report["examples"][MISSING] == [
        "annotation 0 image img1 question a: img1.png", "annotation 1 image img2 question e: img2.png",
        "annotation 5 image img1 question h: img1.png"]


def test_maxm_without_image_folder_or_annotations_list(tmp_path, capsys):
    from eval_data.maxm.convert import main, MISSING
    write_json(tmp_path / "raw" / "maxm" / "maxm_v1_fr.json", {"annotations": [
        {"image_id": "img1", "qa_pairs": [{"question_id": "a", "question": "Q?", "processed_answers": ["a"]}]}]})
    report = run(main, tmp_path, "maxm.langs=[fr]")
    assert report["counts"]["maxm image folder not found (every question reported missing)"] == 1
    assert report["counts"][MISSING] == 1
    assert [r["image_id"] for r in lines(out(tmp_path, "maxm") / "maxm_test_fr.jsonl")] == ["img1.jpg"]
    capsys.readouterr()
    write_json(tmp_path / "raw" / "maxm" / "maxm_v1_ro.json", {"annotations": {"not": "a list"}})
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path, "maxm.langs=[fr,ro]")
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "maxm/maxm_v1_ro.json: no 'annotations' list: 1 (e.g. maxm/maxm_v1_ro.json)" in err
    assert err.strip().splitlines()[-1] == (
        "error: maxm/maxm_v1_ro.json: none of its 1 records could be used (see the skipped rows above): "
        "check the file and the config section")


# ---- xFlickrCO and Flickr30k ---------------------------------------------------------------------------

def flickr_raw(tmp_path: Path, n_train: int = 12) -> None:
    ann = tmp_path / "raw" / IG
    write(ann / "flickr30k" / "annotations" / "train_ann.jsonl",
          [{"id": i, "img_path": f"{i}.jpg", "sentences": [f"Caption {i} a.", f" caption  {i} b "]}
           for i in range(n_train)] +
          [{"id": "e", "img_path": "e.jpg", "sentences": ["", " ", 4]}, {"id": "f", "sentences": ["x"]},
           {"id": "g", "img_path": "g.jpg"}, "{broken", {"id": "z", "img_path": "z.jpg", "sentences": ["Last one."]}])
    write(ann / "flickr30k" / "annotations" / "valid_ann.jsonl", [
        {"id": 1, "img_path": "v1.jpg", "sentences": ["A dog.", "", "A  brown dog."]},
        {"id": 2, "img_path": "v1.jpg", "sentences": ["Again."]},
        {"id": 3, "img_path": "v3.jpg", "sentences": [" "]},
        {"id": 4, "img_path": "v4.jpg", "sentences": "A cat."},
        {"id": 9, "img_path": "v9.jpg", "sentences": ["A  horse."]}])
    write(ann / "flickr30k" / "annotations" / "test_ann.jsonl", [
        {"id": 5, "img_path": "t5.jpg", "sentences": ["A bird."]}])
    write(ann / "xFlickrCO" / "annotations" / "de" / "test.jsonl", [
        {"id": 6, "img_path": "COCO_val2014_000000000006.jpg", "sentences": ["Ein Hund."]},
        {"id": 7, "img_path": "7.jpg", "sentences": ["Eine Katze.", "Zwei Katzen."]}])
    write(ann / "xFlickrCO" / "annotations" / "zh" / "test.jsonl", [
        {"id": 8, "img_path": "8.jpg", "sentences": ["两个人"]}])


def test_xflickrco_rows_references_and_skips(tmp_path):
    from eval_data.xflickrco.convert import main
    flickr_raw(tmp_path)
    report = run(main, tmp_path, "xflickrco.langs=[de,zh]", "xflickrco.train_templates=[T1,T2,T3]")
    assert report["stage"] == "xflickrco"
    o = out(tmp_path, "xflickrco")
    val = lines(o / "flickr30k_val_en.jsonl")
    assert val == [{"context": "English", "label": "", "image_id": "v1.jpg", "text_label": "en"},
                   {"context": "English", "label": "", "image_id": "v9.jpg", "text_label": "en"}]
    assert json.loads((o / "flickr30k_coco_val_en.json").read_text()) == {
        "images": [{"id": "v1.jpg"}, {"id": "v9.jpg"}],
        "annotations": [{"id": 1, "image_id": "v1.jpg", "caption": "A dog."},
                        {"id": 2, "image_id": "v1.jpg", "caption": "A brown dog."},
                        {"id": 3, "image_id": "v9.jpg", "caption": "A horse."}]}
    assert lines(o / "flickr30k_test_en.jsonl") == [
        {"context": "English", "label": "", "image_id": "t5.jpg", "text_label": "en"}]
    assert json.loads((o / "flickr30k_coco_test_en.json").read_text())["annotations"] == [
        {"id": 1, "image_id": "t5.jpg", "caption": "A bird."}]
    assert lines(o / "xflickrco_test_de.jsonl") == [
        {"context": "German", "label": "", "image_id": "COCO_val2014_000000000006.jpg", "text_label": "de"},
        {"context": "German", "label": "", "image_id": "7.jpg", "text_label": "de"}]
    assert json.loads((o / "xflickrco_coco_test_de.json").read_text()) == {
        "images": [{"id": "COCO_val2014_000000000006.jpg"}, {"id": "7.jpg"}],
        "annotations": [{"id": 1, "image_id": "COCO_val2014_000000000006.jpg", "caption": "Ein Hund."},
                        {"id": 2, "image_id": "7.jpg", "caption": "Eine Katze."},
                        {"id": 3, "image_id": "7.jpg", "caption": "Zwei Katzen."}]}
    assert lines(o / "xflickrco_test_zh.jsonl") == [
        {"context": "Chinese", "label": "", "image_id": "8.jpg", "text_label": "zh"}]
    assert json.loads((o / "xflickrco_coco_test_zh.json").read_text())["annotations"][0]["caption"] == "两 个 人"
    train = lines(o / "flickr30k_train.jsonl")
    assert [(r["image_id"], r["label"], r["text_label"]) for r in train[:4]] == [
        ("0.jpg", "Caption 0 a.", "en"), ("0.jpg", "caption 0 b", "en"),
        ("1.jpg", "Caption 1 a.", "en"), ("1.jpg", "caption 1 b", "en")]
    assert len(train) == 25 and {r["context"] for r in train} == {"T1", "T2", "T3"}
    assert (train[-1]["image_id"], train[-1]["label"]) == ("z.jpg", "Last one.")
    v, t = f"{IG}/flickr30k/annotations/valid_ann.jsonl", f"{IG}/flickr30k/annotations/train_ann.jsonl"
    assert skipped(report) == {
        f"{v}: duplicate image id": 1, f"{v}: no non-empty caption": 1,
        f"{v}: field 'sentences' has type str": 1,
        f"{t}: no non-empty caption": 1, f"{t}: missing field 'img_path'": 1,
        f"{t}: missing field 'sentences'": 1, f"{t}: malformed JSON line": 1}
    assert report["skipped_examples"][f"{v}: duplicate image id"] == ["id 2"]
    assert report["skipped_examples"][f"{t}: no non-empty caption"] == ["id e"]
    assert report["skipped_examples"][f"{v}: no non-empty caption"] == ["id 3"]
    assert report["skipped_examples"][f"{t}: missing field 'sentences'"] == ["id g"]
    assert report["counts"]["references in flickr30k_coco_val_en.json"] == 3
    assert report["counts"]["references in xflickrco_coco_test_de.json"] == 3
    assert report["outputs"]["flickr30k_train.jsonl"] == 25


def test_xflickrco_names_and_segmentation_by_config(tmp_path):
    from eval_data.xflickrco.convert import main
    flickr_raw(tmp_path)
    write(tmp_path / "raw" / IG / "xFlickrCO" / "annotations" / "hr" / "test.jsonl",
          [{"id": 1, "img_path": "1.jpg", "sentences": ["Pas trči."]}])
    write(tmp_path / "raw" / IG / "xFlickrCO" / "annotations" / "ja" / "test.jsonl",
          [{"id": 2, "img_path": "2.jpg", "sentences": ["国家公務員が走る"]}])
    run(main, tmp_path, "xflickrco.langs=[hr,ja]", "captions.segmentation=words")
    o = out(tmp_path, "xflickrco")
    assert [r["context"] for r in lines(o / "xflickrco_test_hr.jsonl")] == ["Croatian"]   # from language_names
    assert [r["context"] for r in lines(o / "xflickrco_test_ja.jsonl")] == ["Japanese"]
    assert json.loads((o / "xflickrco_coco_test_ja.json").read_text())["annotations"][0]["caption"] == "国家公務員 が 走る"
    run(main, tmp_path, "xflickrco.langs=[ja]")
    assert json.loads((o / "xflickrco_coco_test_ja.json").read_text())["annotations"][0]["caption"] == \
        "国家 公務 員 が 走る"


def test_xflickrco_train_prompts_follow_the_seed(tmp_path):
    from common.sampling import rng
    from eval_data.xflickrco.convert import main
    flickr_raw(tmp_path, n_train=30)
    templates = [f"T{i}" for i in range(6)]
    contexts = {}
    for seed in (0, 1):
        run(main, tmp_path, "xflickrco.langs=[de]", f"xflickrco.train_templates=[{','.join(templates)}]",
            f"xflickrco.seed={seed}")
        contexts[seed] = [r["context"] for r in lines(out(tmp_path, "xflickrco") / "flickr30k_train.jsonl")]
    draw = rng(0, "flickr30k_train")       # the stream the released files were drawn from
    assert contexts[0] == [draw.choice(templates) for _ in range(61)]
    assert contexts[1] != contexts[0] and set(contexts[1]) == set(templates)


def test_xflickrco_needs_a_train_template(tmp_path, capsys):
    from eval_data.xflickrco.convert import main
    flickr_raw(tmp_path)
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path, "xflickrco.langs=[de]", "xflickrco.train_templates=[]")
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == "error: xflickrco.train_templates: needs at least one prompt"
    assert not out(tmp_path, "xflickrco").exists()


# ---- XM3600 ------------------------------------------------------------------------------------------

def test_xm3600_rows_and_references_per_language(tmp_path):
    from eval_data.xm3600.convert import main
    write(tmp_path / "raw" / "xm3600" / "captions.jsonl", [
        {"image/key": "k1", "de": {"caption": ["Ein  Hund.", "Zwei Hunde."]}, "he": {"caption": ["כלב"]},
         "ja": {"caption": ["国家公務員が走る"]}, "quz": {"caption": ["Allqu"]}},
        {"image/key": "k2", "de": {"caption": ["Eine Katze."]}},
        {"image/key": "k3", "de": {"caption": "Kein Liste."}, "he": {"caption": [""]}},
        {"de": {"caption": ["Kein Schlüssel."]}},
        "{broken",
        {"image/key": "k1", "de": {"caption": ["Wieder."]}},
        {"image/key": "k9", "de": {"caption": ["Ein  Pferd."]}},
    ])
    report = run(main, tmp_path, "xm3600.langs=[de,he,ja]", "xm3600.image_ext=.jpg")
    assert report["stage"] == "xm3600"
    o = out(tmp_path, "xm3600")
    assert lines(o / "xm3600_test_de.jsonl") == [
        {"context": "German", "label": "", "image_id": "k1.jpg", "text_label": "de"},
        {"context": "German", "label": "", "image_id": "k2.jpg", "text_label": "de"},
        {"context": "German", "label": "", "image_id": "k9.jpg", "text_label": "de"}]
    assert json.loads((o / "xm3600_coco_test_de.json").read_text()) == {
        "images": [{"id": "k1.jpg"}, {"id": "k2.jpg"}, {"id": "k9.jpg"}],
        "annotations": [{"id": 1, "image_id": "k1.jpg", "caption": "Ein Hund."},
                        {"id": 2, "image_id": "k1.jpg", "caption": "Zwei Hunde."},
                        {"id": 3, "image_id": "k2.jpg", "caption": "Eine Katze."},
                        {"id": 4, "image_id": "k9.jpg", "caption": "Ein Pferd."}]}
    assert lines(o / "xm3600_test_he.jsonl") == [
        {"context": "Hebrew", "label": "", "image_id": "k1.jpg", "text_label": "he"}]
    ja = json.loads((o / "xm3600_coco_test_ja.json").read_text())["annotations"]
    assert [a["caption"] for a in ja] == ["国家 公務 員 が 走る"]
    assert report["counts"]["references in xm3600_coco_test_de.json"] == 4
    assert report["skipped_examples"][f"xm3600/captions.jsonl [he]: no captions for this language"] == [
        "record 2 image k2", "record 5 image k1", "record 6 image k9"]
    s = "xm3600/captions.jsonl"
    assert skipped(report) == {
        f"{s}: malformed JSON line": 1,
        f"{s} [de]: field 'caption' has type str": 1, f"{s} [de]: missing field 'image/key'": 1,
        f"{s} [de]: duplicate image id": 1,
        f"{s} [he]: no captions for this language": 3, f"{s} [he]: no non-empty caption": 1,
        f"{s} [he]: missing field 'image/key'": 1,
        f"{s} [ja]: no captions for this language": 4, f"{s} [ja]: missing field 'image/key'": 1,
    }
    assert report["skipped_examples"][f"{s} [de]: duplicate image id"] == ["record 5 image k1"]
    assert report["inputs"][f"{s} [de]"] == {"in": 6, "used": 3, "skipped": 3}
    assert report["inputs"][s] == {"in": 1, "skipped": 1}
    run(main, tmp_path, "xm3600.langs=[ja,quz]", "captions.segmentation=words")
    assert json.loads((o / "xm3600_coco_test_ja.json").read_text())["annotations"][0]["caption"] == "国家公務員 が 走る"
    assert lines(o / "xm3600_test_quz.jsonl") == [
        {"context": "Quechua", "label": "", "image_id": "k1", "text_label": "quz"}]


# ---- CHAIR -------------------------------------------------------------------------------------------

def test_chair_rows_ground_truth_and_skips(tmp_path):
    from eval_data.chair.convert import main
    raw = tmp_path / "raw"
    write(raw / "pope" / "segmentation" / "coco_ground_truth_segmentation.json", [
        {"image": "a.jpg", "objects": ["dog", "person"]},
        {"image": "b.jpg", "objects": ["cat"]},
        {"image": "a.jpg", "objects": ["car"]},
        {"image": "c.jpg", "objects": ["bus", 3]},
        {"image": "d.jpg"},
        {"objects": ["cup"]},
        {"image": "e.jpg", "objects": ["kite"]},
        {"image": "t.jpg", "objects": ["tree"]},
    ])
    write_json(raw / "mscoco" / "dataset_coco.json", {"images": [
        {"split": "val", "filename": "a.jpg"}, {"split": "test", "filename": "b.jpg"},
        {"split": "train", "filename": "t.jpg"}, {"split": "val", "filename": "z.jpg"},
        {"split": "test"}, "junk", {"split": "restval", "filename": "e.jpg"},
        {"split": "val", "filename": "e.jpg"}]})
    report = run(main, tmp_path, "chair.context=Describe:")
    assert report["stage"] == "chair"
    o = out(tmp_path, "chair")
    assert lines(o / "chair_val.jsonl") == [
        {"context": "Describe:", "label": "", "image_id": "a.jpg", "text_label": ["dog", "person"]},
        {"context": "Describe:", "label": "", "image_id": "e.jpg", "text_label": ["kite"]}]
    assert lines(o / "chair_test.jsonl") == [
        {"context": "Describe:", "label": "", "image_id": "b.jpg", "text_label": ["cat"]}]
    g = "pope/segmentation/coco_ground_truth_segmentation.json"
    k = "mscoco/dataset_coco.json"
    assert skipped(report) == {
        f"{g}: duplicate image (first list kept)": 1, f"{g}: non-string object name": 1,
        f"{g}: missing field 'objects'": 1, f"{g}: missing field 'image'": 1,
        f"{k} [val]: no ground-truth objects": 1, f"{k} [test]: missing field 'filename'": 1}
    assert report["skipped_examples"][f"{k} [val]: no ground-truth objects"] == ["images[3] z.jpg"]
    assert report["skipped_examples"][f"{g}: missing field 'objects'"] == ["image d.jpg"]
    assert report["counts"]["ground-truth images outside the chosen splits"] == 1     # t.jpg
    assert report["inputs"][f"{k} [val]"] == {"in": 3, "used": 2, "skipped": 1}
    report = run(main, tmp_path, "chair.splits=[test]")
    assert report["counts"]["ground-truth images outside the chosen splits"] == 3     # a, e, t
    assert [r["image_id"] for r in lines(o / "chair_test.jsonl")] == ["b.jpg"]


def test_chair_counts_invalid_utf8_images(tmp_path, capsys):
    from eval_data.chair.convert import main
    raw = tmp_path / "raw"
    write(raw / "pope" / "segmentation" / "coco_ground_truth_segmentation.json",
          [{"image": "a.jpg", "objects": ["dog"]}])
    (raw / "mscoco").mkdir()
    k = raw / "mscoco" / "dataset_coco.json"
    k.write_bytes(b'{"images": [{"split": "val", "filename": "a.jpg"}'
                  + b"".join(b', {"split": "val", "filename": "%c.jpg"}' % c for c in b"\xff\xfe\xfd\xfc") + b"]}")
    report = run(main, tmp_path)
    assert report["skipped"] == {"mscoco/dataset_coco.json: invalid UTF-8": 4}
    examples = report["skipped_examples"]["mscoco/dataset_coco.json: invalid UTF-8"][0].split("; ")
    assert len(examples) == 3 and all(e.startswith(f"{k}: ") and "invalid UTF-8" in e for e in examples)
    assert report["inputs"]["mscoco/dataset_coco.json"] == {"in": 4, "skipped": 4}
    assert [r["image_id"] for r in lines(out(tmp_path, "chair") / "chair_val.jsonl")] == ["a.jpg"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path, "io.max_bad_rows=3")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and err.startswith(f"error: {k}: ")
    assert err.endswith("(more than 3 bad rows; raise io.max_bad_rows to go on)")


# ---- the shared plumbing (eval_data/run.py, rows.py, images.py, captions.py) ---------------------------

def test_accounts_balance_or_refuse():
    from eval_data.run import Accounts
    acc = Accounts("t")
    acc.seen("a.jsonl", 3)
    acc.used("a.jsonl", 2)
    acc.skip("a.jsonl", "why", "row 3")
    acc.seen("b.jsonl [de]")
    acc.skip("b.jsonl [de]", "no de")
    acc.seen("b.jsonl [fr]")
    acc.used("b.jsonl [fr]")                       # one language of a file used: the file is used
    rep = acc.close()
    assert rep["inputs"] == {"a.jsonl": {"in": 3, "used": 2, "skipped": 1}, "b.jsonl [de]": {"in": 1, "skipped": 1},
                             "b.jsonl [fr]": {"in": 1, "used": 1}}
    assert rep["counts"] == {"in a.jsonl": 3, "in b.jsonl [de]": 1, "in b.jsonl [fr]": 1}
    assert rep["skipped"] == {"a.jsonl: why": 1, "b.jsonl [de]: no de": 1}
    assert rep["skipped_examples"]["a.jsonl: why"] == ["row 3"]
    acc = Accounts("t")
    acc.seen("c.jsonl", 2)
    acc.skip("c.jsonl", "bad", n=2)
    with pytest.raises(UserError) as e:
        acc.close()
    assert str(e.value) == ("c.jsonl: none of its 2 records could be used (see the skipped rows above): check the "
                            "file and the config section")
    acc = Accounts("t")
    acc.seen("d.jsonl", 2)
    acc.used("d.jsonl")                            # a row neither written nor skipped: a converter bug
    with pytest.raises(AssertionError, match=r"rows not accounted for: \{'d.jsonl': \{'in': 2, 'used': 1\}\}"):
        acc.close()
    acc = Accounts("t")
    acc.seen("e.jsonl", 2)                         # unbalanced and unused: the bug is named, not the file
    with pytest.raises(AssertionError, match="rows not accounted for"):
        acc.close()


def test_accounts_notes_keep_five_examples_and_outputs(tmp_path, capsys):
    from eval_data.run import Accounts
    acc = Accounts("t")
    for i in range(7):
        acc.note("image not on disk", f"row {i}")
    acc.note("image not on disk")                  # counted, no example
    acc.seen("s")
    acc.used("s")
    assert acc.wrote(tmp_path / "o" / "x.jsonl", iter([{"a": 1}, {"a": 2}])) == 2
    acc.wrote_json(tmp_path / "o" / "ref.json", {"images": [], "annotations": [{"id": 1}, {"id": 2}, {"id": 3}]},
                   "references in")
    rep = acc.close()
    assert rep["counts"]["image not on disk"] == 8
    assert rep["examples"]["image not on disk"] == [f"row {i}" for i in range(5)]
    assert rep["counts"]["rows written x.jsonl"] == 2 and rep["counts"]["references in ref.json"] == 3
    assert rep["outputs"] == {"x.jsonl": 2}
    assert lines(tmp_path / "o" / "x.jsonl") == [{"a": 1}, {"a": 2}]
    assert json.loads((tmp_path / "o" / "ref.json").read_text())["annotations"][2] == {"id": 3}
    err = capsys.readouterr().err
    assert err.count("warning: image not on disk: row") == 5 and "warning: image not on disk: row 4\n" in err


def test_require_inputs_and_path_for(tmp_path):
    from eval_data.run import path_for, require_inputs
    c = {"file": str(tmp_path / "{lang}" / "{split}.jsonl"), "plain": str(tmp_path / "a.json")}
    assert path_for(c, "file", "bench", lang="de", split="test") == (
        "bench.file (lang=de) (split=test)", tmp_path / "de" / "test.jsonl")
    assert path_for(c, "plain", "bench") == ("bench.plain", tmp_path / "a.json")
    (tmp_path / "a.json").write_text("{}")
    require_inputs([("bench.plain", tmp_path / "a.json")])
    with pytest.raises(UserError) as e:
        require_inputs([("bench.plain", tmp_path / "a.json"), ("k1", tmp_path / "x"), ("k2", tmp_path / "y"),
                        ("k3", tmp_path / "z")])
    assert str(e.value) == f"k1: input file not found: {tmp_path / 'x'} (and 2 more missing input files)"
    with pytest.raises(UserError) as e:
        require_inputs([("k1", tmp_path / "x")])
    assert str(e.value) == f"k1: input file not found: {tmp_path / 'x'}"
    with pytest.raises(UserError):
        require_inputs([("dir", tmp_path)])        # a folder is not an input file


def test_jsonl_records_and_json_document_refusals(tmp_path):
    from eval_data.run import Accounts, json_document, jsonl_records
    acc = Accounts("t")
    empty = write(tmp_path / "empty.jsonl", [])
    with pytest.raises(UserError) as e:
        list(jsonl_records(empty, acc, "s", 10))
    assert str(e.value) == f"{empty}: no records (an empty file? fetch it again)"
    bad = write(tmp_path / "bad.jsonl", ["{x", "{y"])
    with pytest.raises(UserError) as e:
        list(jsonl_records(bad, acc, "s", 10))
    assert str(e.value).startswith(f"{bad}: none of its 2 records could be read (e.g. {bad}:1: malformed JSON")
    with pytest.raises(UserError, match="io.max_bad_rows"):
        list(jsonl_records(bad, Accounts("t"), "s", 1))
    doc = write_json(tmp_path / "list.json", [1])
    with pytest.raises(UserError) as e:
        json_document(doc, dict, "a JSON object keyed by question id")
    assert str(e.value) == f"{doc}: expected a JSON object keyed by question id at the top level, got list"
    for obj, records in (({}, None), ({"annotations": []}, "annotations")):
        p = write_json(tmp_path / "e.json", obj)
        with pytest.raises(UserError, match="no records"):
            json_document(p, dict, "x", Accounts("t"), "s", records)
    assert json_document(write_json(tmp_path / "n.json", {}), dict, "x") == {}     # no accounting: no refusal
    p = tmp_path / "u.json"
    p.write_bytes(b'{"1": {"a": "ok"}, "2": {"a": "\xff"}}')
    acc = Accounts("t")
    assert json_document(p, dict, "x", acc, "s", max_bad=5) == {"1": {"a": "ok"}}
    assert acc.units["s"] == {"in": 1, "skipped": 1}
    assert list(acc.report.skipped) == ["s: invalid UTF-8"]
    deep = tmp_path / "deep.json"
    deep.write_text('{"1": {"a": 1}, "2": ' + "[" * 3000 + "]" * 3000 + "}")
    acc = Accounts("t")
    assert json_document(deep, dict, "x", acc, "s") == {"1": {"a": 1}}
    from common.jsonl import TOO_DEEP
    assert list(acc.report.skipped) == [f"s: {TOO_DEEP}"]


def test_need_and_source_name(tmp_path):
    from common.config import Config
    from eval_data.run import need, source_name
    assert need({"a": "x", "b": [1]}, "a") is None
    assert need({"a": "x", "b": [1]}, "b", types=(list,)) is None
    assert need(["a"], "a") == "record is a list, not an object"
    assert need({"a": None}, "a") == "missing field 'a'"
    assert need({"a": "x"}, "a", "b") == "missing field 'b'"
    assert need({"a": 3}, "a") == "field 'a' has type int"
    assert need({"a": " \t"}, "a") == "empty field 'a'"
    assert need({"a": ""}, "a", types=(str, list)) == "empty field 'a'"
    assert need({"a": []}, "a", types=(list,)) is None          # an empty list is the converter's to judge
    cfg = Config({"paths": {"raw_root": str(tmp_path / "raw")}})
    assert source_name(tmp_path / "raw" / "x" / "y.jsonl", cfg) == "x/y.jsonl"
    assert source_name(tmp_path / "elsewhere" / "y.jsonl", cfg) == (tmp_path / "elsewhere" / "y.jsonl").as_posix()
    (tmp_path / "real").mkdir()
    (tmp_path / "raw").symlink_to(tmp_path / "real")
    assert source_name(tmp_path / "raw" / "x" / "y.jsonl", cfg) == "x/y.jsonl"   # by its place under the root


def test_check_template_and_eval_step():
    from eval_data.run import check_template, eval_step
    check_template("b.context_template", "Q: {question} in {language}", "question", "language")
    with pytest.raises(UserError, match="b.context_template"):
        check_template("b.context_template", "Q: {language}", "question", "language")   # the question is required
    with pytest.raises(UserError, match="b.context_template"):
        check_template("b.context_template", "{question} {answer}", "question")
    step = eval_step("pope", "POPE", "eval_data.pope.convert", ("captions",))
    assert (step.id, step.module, step.config, step.title) == ("eval.pope", "eval_data.pope.convert", "eval_data",
                                                               "POPE")
    assert step.reads[0] == "pope.*" and step.writes == ("${pope.out_dir}",)
    assert step.shaped_by == ("pope", "language_names", "captions")
    from eval_data.settings import DEFAULTS
    assert step.defaults is DEFAULTS


def test_eval_row_and_language_names():
    from common.config import Config
    from eval_data.rows import check_language_names, eval_row, language_name, nfc
    assert list(eval_row("c", "i.jpg", "yes")) == ["context", "label", "image_id", "text_label"]
    assert eval_row("c", "i.jpg", "yes", label="yes", pair_id="p") == {
        "context": "c", "label": "yes", "image_id": "i.jpg", "text_label": "yes", "pair_id": "p"}
    assert nfc(" Cafe\u0301\n au\tlait ") == "Café au lait"
    cfg = Config({"language_names": {"quz": "Quechua"}})
    assert language_name("de", cfg) == "German" and language_name("he", cfg) == "Hebrew"
    assert language_name("quz", cfg) == "Quechua"
    with pytest.raises(UserError) as e:
        language_name("xx", cfg)
    assert str(e.value) == "language code 'xx' has no English name: add it under language_names in the config"
    check_language_names({"quz": "Quechua", "he": "Hebrew", "de": "German"})
    with pytest.raises(UserError) as e:
        check_language_names({"he": "Ivrit"})
    assert str(e.value) == ("language_names.he: 'Ivrit' differs from the training mix's name 'Hebrew' for iw "
                            "(common/languages.tsv)")


def test_image_finder_paths(tmp_path):
    from eval_data.images import ImageFinder
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c.jpg").write_bytes(b"x")
    (tmp_path / "a" / "file").write_bytes(b"x")
    f = ImageFinder(tmp_path)
    assert f.resolve("a", "b", "c.jpg") == "a/b/c.jpg"
    assert f.resolve("a", "file", "c.jpg") is None           # a file is no folder
    assert f.resolve("a", "b") is None
    assert f.exists("a/b/c.jpg") and not f.exists("a/b") and not f.exists("a/b/d.jpg")
    missing = ImageFinder(tmp_path / "nope")
    assert not missing.root_exists and not missing.exists("a/b/c.jpg")
    assert ImageFinder(tmp_path / "a" / "file").resolve("x") is None


def test_captioning_split_and_segmentation_modes():
    from eval_data.captions import _segmenter, captioning_split, segment
    from eval_data.run import Accounts
    acc = Accounts("t")
    acc.seen("s", 4)
    rows, ref = captioning_split([("r1", "a.jpg", ["Ein Hund.", 3, " "]), ("r2", "a.jpg", ["Noch einer."]),
                                  ("r3", "b.jpg", [""]), ("r4", "c.jpg", ["Eine  Katze."])], "de", "German", acc, "s")
    assert rows == [{"context": "German", "label": "", "image_id": "a.jpg", "text_label": "de"},
                    {"context": "German", "label": "", "image_id": "c.jpg", "text_label": "de"}]
    assert ref == {"images": [{"id": "a.jpg"}, {"id": "c.jpg"}],
                   "annotations": [{"id": 1, "image_id": "a.jpg", "caption": "Ein Hund."},
                                   {"id": 2, "image_id": "c.jpg", "caption": "Eine Katze."}]}
    assert dict(acc.report.skipped) == {"s: duplicate image id": 1, "s: no non-empty caption": 1}
    assert segment("两个人", "zh-Hans") == "两 个 人" and segment("两个人", "ZH_tw", "words") == "两个 人"
    assert segment("", "zh") == ""
    with pytest.raises(ValueError, match="unknown segmentation 'chars'"):
        _segmenter("zh", "chars")
    with pytest.raises(ValueError, match="no word segmenter for 'ko'"):
        _segmenter("ko", "words")
    with pytest.raises(ValueError, match="no spaCy segmenter for 'ko'"):
        _segmenter("ko", "mblip")


# ---- what stops a converter before any work: one line naming the key to fix ------------------------------

@pytest.mark.parametrize("bench, first, more", [
    ("xgqa", "xgqa.gqa_train: input file not found: {raw}/iglue/datasets/gqa/annotations/train.json", 16),
    ("xvnli", "xvnli.train_file: input file not found: {raw}/iglue/datasets/XVNLI/annotations/en/train.jsonl", 10),
    ("marvl", "marvl.test_file (lang=id): input file not found: "
              "{raw}/iglue/datasets/marvl/zero_shot/annotations/marvl-id.jsonl", 12),
    ("xflickrco", "xflickrco.flickr_train: input file not found: "
                  "{raw}/iglue/datasets/flickr30k/annotations/train_ann.jsonl", 10),
    ("xm3600", "xm3600.captions: input file not found: {raw}/xm3600/captions.jsonl", 0),
    ("maxm", "maxm.file (lang=en): input file not found: {raw}/maxm/maxm_v1_en.json", 6),
    ("pope", "pope.file (split=adversarial): input file not found: {raw}/pope/output/coco/coco_pope_adversarial.json",
     2),
    ("chair", "chair.karpathy: input file not found: {raw}/mscoco/dataset_coco.json", 1),
])
def test_a_missing_input_is_named_by_its_key(bench, first, more, tmp_path, capsys):
    import importlib
    main = importlib.import_module(f"eval_data.{bench}.convert").main
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path)
    assert e.value.code == 2
    tail = f" (and {more} more missing input files)" if more else ""
    assert capsys.readouterr().err.strip() == "error: " + first.format(raw=tmp_path / "raw") + tail
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bench, template", [("xgqa", "{statement}"), ("xvnli", "{premise}"), ("marvl", "{question}"),
                                             ("maxm", "{language}"), ("pope", "{question} {answer}")])
def test_a_bad_template_is_named_by_its_key(bench, template, tmp_path, capsys):
    import importlib
    main = importlib.import_module(f"eval_data.{bench}.convert").main
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path, f"{bench}.context_template={template}")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bench}.context_template") and err.count("\n") == 0, err


@pytest.mark.parametrize("bench", ["pope", "xm3600", "chair", "xvnli", "marvl", "xflickrco"])
def test_io_max_bad_rows_reaches_every_jsonl_input(bench, tmp_path, capsys):
    """The converters' JSONL inputs each with a malformed line: allowed by default, refused (naming
    io.max_bad_rows) at io.max_bad_rows=0."""
    import importlib
    main = importlib.import_module(f"eval_data.{bench}.convert").main
    raw = tmp_path / "raw"
    if bench == "pope":
        write(raw / "pope/output/coco/coco_pope_random.json",
              [{"question_id": 1, "image": "a.jpg", "text": "Q?", "label": "yes"}, "{bad"])
        sets = ["pope.splits=[random]"]
    elif bench == "xm3600":
        write(raw / "xm3600/captions.jsonl", [{"image/key": "k", "de": {"caption": ["Hund."]}}, "{bad"])
        sets = ["xm3600.langs=[de]"]
    elif bench == "chair":
        write(raw / "pope/segmentation/coco_ground_truth_segmentation.json",
              [{"image": "a.jpg", "objects": ["dog"]}, "{bad"])
        write_json(raw / "mscoco/dataset_coco.json", {"images": [{"split": "val", "filename": "a.jpg"}]})
        sets = ["chair.splits=[val]"]
    elif bench == "xvnli":
        row = {"sentence1": "p", "sentence2": "h", "pairID": "1", "Flikr30kID": "1.jpg", "gold_label": "entailment"}
        for name in ("en/train.jsonl", "en/dev.jsonl", "en/test.jsonl"):
            write(raw / IG / "XVNLI/annotations" / name, [row, "{bad"])
        sets = ["xvnli.langs=[en]"]
    elif bench == "marvl":
        marvl_raw(tmp_path)
        with open(raw / IG / "nlvr2/annotations/test.jsonl", "a") as f:
            f.write("{bad\n")
        sets = ["marvl.langs=[tr]", "marvl.nlvr2_langs=[]"]
    else:
        flickr_raw(tmp_path)
        with open(raw / IG / "xFlickrCO/annotations/de/test.jsonl", "a") as f:
            f.write("{bad\n")
        sets = ["xflickrco.langs=[de]"]
    assert "malformed JSON line" in " ".join(run(main, tmp_path, *sets)["skipped"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path, *sets, "io.max_bad_rows=0")
    assert e.value.code == 2 and "io.max_bad_rows" in capsys.readouterr().err


def test_bad_records_are_counted_with_their_examples_up_to_io_max_bad_rows(tmp_path):
    """A user reads which lines were bad (the first three, by file and line) and how
    many; past io.max_bad_rows the run stops, naming the setting to raise."""
    from eval_data.run import Accounts, json_document, jsonl_records
    p = write(tmp_path / "b.jsonl", ["{a", "{b", {"ok": 1}, "{c", "{d"])
    acc = Accounts("t")
    assert list(jsonl_records(p, acc, "s", 10)) == [{"ok": 1}]
    assert acc.units["s"] == {"in": 4, "skipped": 4}
    msg = "malformed JSON (Expecting property name enclosed in double quotes at column 2)"
    assert acc.report.skipped == {"s: malformed JSON line": 4}
    assert acc.report.as_dict()["skipped_examples"]["s: malformed JSON line"] == [
        f"{p}:1: {msg}; {p}:2: {msg}; {p}:4: {msg}"]
    with pytest.raises(UserError) as e:
        list(jsonl_records(p, Accounts("t"), "s", 3))
    assert str(e.value) == f"{p}:5: {msg} (more than 3 bad rows; raise io.max_bad_rows to go on)"
    # A whole JSON document (xGQA few-shot, MaXM): its bad records likewise.
    u = tmp_path / "u.json"
    u.write_bytes(b'{"1": {"a": "\xff"}, "2": {"a": "\xff"}, "3": {"a": "\xff"}, "4": {"a": "\xff"}, "5": {"a": 1}}')
    acc = Accounts("t")
    assert json_document(u, dict, "x", acc, "s", max_bad=10) == {"5": {"a": 1}}
    assert acc.units["s"] == {"in": 4, "skipped": 4}
    assert acc.report.skipped == {"s: invalid UTF-8": 4}
    assert acc.report.as_dict()["skipped_examples"]["s: invalid UTF-8"] == [
        f"{u}:1: record '1' (byte offset 13): invalid UTF-8; {u}:1: record '2' (byte offset 30): invalid UTF-8; "
        f"{u}:1: record '3' (byte offset 47): invalid UTF-8"]
    with pytest.raises(UserError) as e:
        json_document(u, dict, "x", Accounts("t"), "s", max_bad=3)
    assert str(e.value) == (f"{u}:1: record '4' (byte offset 64): invalid UTF-8 (more than 3 bad rows; "
                            "raise io.max_bad_rows to go on)")
    with pytest.raises(UserError) as e:            # without accounts, a bad record stops the read
        json_document(u, dict, "x")
    assert str(e.value) == f"{u}:1: invalid UTF-8 (byte b'\\xff' at byte offset 13)"
    # With a records member (MaXM's annotations), only the bad element of it is skipped.
    m = tmp_path / "m.json"
    m.write_bytes(b'{"info": 1, "annotations": [{"image_id": "a"}, {"image_id": "\xff"}, {"image_id": "c"}]}')
    acc = Accounts("t")
    assert json_document(m, dict, "x", acc, "s", "annotations") == {
        "info": 1, "annotations": [{"image_id": "a"}, {"image_id": "c"}]}
    assert acc.units["s"] == {"in": 1, "skipped": 1}
    e_path = write_json(tmp_path / "e.json", {"annotations": []})
    with pytest.raises(UserError) as e:
        json_document(e_path, dict, "x", Accounts("t"), "s", "annotations")
    assert str(e.value) == f"{e_path}: no records (an empty file? fetch it again)"


def test_accounts_defaults_and_file_names_with_spaces():
    from eval_data.run import Accounts
    acc = Accounts("t")
    acc.seen("s", 2)
    acc.used("s")
    acc.skip("s", "no where")                      # no place given: counted, no example
    acc.note("a note")
    acc.note("three notes", n=3)
    rep = acc.close()
    assert rep["skipped"] == {"s: no where": 1} and rep["skipped_examples"].get("s: no where", []) == []
    assert rep["counts"]["a note"] == 1 and rep["counts"]["three notes"] == 3
    assert rep["examples"] == {"a note": [], "three notes": []}
    # A language's units are "<file> [<lang>]": a file is whole by its name, spaces and all.
    acc = Accounts("t")
    acc.seen("my raw/x.jsonl [de]")
    acc.skip("my raw/x.jsonl [de]", "bad")
    acc.seen("my raw/y.jsonl [de]")
    acc.used("my raw/y.jsonl [de]")
    with pytest.raises(UserError, match=r"^my raw/x.jsonl: none of its 1 records could be used"):
        acc.close()


def test_path_for_keeps_a_path_without_fields_as_written(tmp_path):
    from eval_data.run import path_for
    c = {"file": str(tmp_path / "{odd} folder" / "x.jsonl")}
    assert path_for(c, "file", "bench") == ("bench.file", tmp_path / "{odd} folder" / "x.jsonl")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_each_segmenter_as_built():
    """Built afresh (the segmenters are cached per process): mblip mode is spaCy's
    blank pipeline of each language, words mode jieba / SudachiPy C / newmm."""
    from spacy.lang.ja import Japanese
    from spacy.lang.th import Thai
    from spacy.lang.zh import Chinese
    from eval_data.captions import _segmenter, captioning_split, segment
    from eval_data.run import Accounts
    _segmenter.cache_clear()
    zh, ja, th = "两只狗在草地上跑。", "国家公務員が走っている", "สุนัขวิ่งในสวน"
    assert segment(zh, "zh") == " ".join(t.text for t in Chinese()(zh))
    assert segment(ja, "ja") == " ".join(t.text for t in Japanese()(ja))
    assert segment(th, "th") == " ".join(t.text for t in Thai()(th) if t.text.strip())
    assert segment(ja, "ja", "mblip") != segment(ja, "ja", "words")
    _segmenter.cache_clear()
    assert segment(zh, "zh", "words") == "两只 狗 在 草地 上 跑 。"
    acc = Accounts("t")
    acc.seen("s", 2)
    rows, ref = captioning_split([("r1", "a.jpg", ["两个人"]), ("r2", "b.jpg", [" "])], "zh", "Chinese", acc, "s",
                                 "words")
    assert [a["caption"] for a in ref["annotations"]] == ["两个 人"]
    assert acc.report.as_dict()["skipped_examples"] == {"s: no non-empty caption": ["r2"]}


def xgqa_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw" / IG
    write_json(raw / "gqa" / "annotations" / "train.json", [{"img_id": "n1", "sent": "Q?", "label": {"a": 1}}])
    fs = raw / "xGQA" / "annotations" / "few_shot"
    write_json(fs / "de" / "dev.json", {
        "1": {"imageId": "n2", "answer": "a"},                        # no question
        "2": {"question": "Q?", "answer": "a"},                       # no image
        "3": {"imageId": "n3", "question": "Wer?", "answer": "Frau"}})
    write_json(fs / "de" / "test.json", {"4": {"imageId": "n4", "question": "Was?", "answer": "Hund"}})
    return fs


def test_xgqa_fewshot_skips_and_what_stops_it(tmp_path, capsys):
    from eval_data.xgqa.convert import main
    fs = xgqa_raw(tmp_path)
    report = run(main, tmp_path, "xgqa.langs=[de]")
    assert [(r["image_id"], r["text_label"]) for r in lines(out(tmp_path, "xgqa") / "xgqa_val_de.jsonl")] == [
        ("n3", "Frau")]
    d = f"{IG}/xGQA/annotations/few_shot/de/dev.json"
    assert skipped(report) == {f"{d}: missing field 'question'": 1, f"{d}: missing field 'imageId'": 1}
    capsys.readouterr()
    for name, broken, error in [
            ("test.json", None, f"xgqa.test_file (lang=de): input file not found: {fs / 'de' / 'test.json'}"),
            ("dev.json", None, f"xgqa.val_file (lang=de): input file not found: {fs / 'de' / 'dev.json'}"),
            ("dev.json", [{"imageId": "n"}], f"{fs / 'de' / 'dev.json'}: expected a JSON object keyed by question id "
                                             "at the top level, got list")]:
        keep = (fs / "de" / name).read_bytes()
        if broken is None:
            (fs / "de" / name).unlink()
        else:
            write_json(fs / "de" / name, broken)
        with pytest.raises(SystemExit) as e:
            run(main, tmp_path, "xgqa.langs=[de]")
        assert e.value.code == 2 and capsys.readouterr().err.strip() == f"error: {error}"
        (fs / "de" / name).write_bytes(keep)


def test_xgqa_bad_records_and_io_max_bad_rows(tmp_path, capsys):
    from eval_data.xgqa.convert import main
    fs = xgqa_raw(tmp_path)
    train = tmp_path / "raw" / IG / "gqa" / "annotations" / "train.json"
    good = json.dumps({"img_id": "n1", "sent": "Q?", "label": {"a": 1}}).encode()
    train.write_bytes(b"[" + b", ".join([good, b'{"img_id": "\xff"}', good, b'{"img_id": "\xfe"}',
                                         b'{"img_id": "\xfd"}', b'{"img_id": "\xfc"}']) + b"]")
    (fs / "de" / "test.json").write_bytes(b'{"1": {"imageId": "\xff"}, "2": {"imageId": "n", "question": "Q?", '
                                          b'"answer": "a"}}')
    report = run(main, tmp_path, "xgqa.langs=[de]")
    t, te = f"{IG}/gqa/annotations/train.json", f"{IG}/xGQA/annotations/few_shot/de/test.json"
    assert report["skipped"][f"{t}: malformed JSON element"] == 4
    assert report["skipped"][f"{te}: invalid UTF-8"] == 1
    assert report["skipped_examples"][f"{t}: malformed JSON element"] == [
        f"{train}: array element 1 (byte offset 52): invalid UTF-8 (byte offset 64); "
        f"{train}: array element 3 (byte offset 120): invalid UTF-8 (byte offset 132); "
        f"{train}: array element 4 (byte offset 137): invalid UTF-8 (byte offset 149)"]      # the first three
    assert report["inputs"][t] == {"in": 6, "used": 2, "skipped": 4}
    assert report["inputs"][te] == {"in": 2, "used": 1, "skipped": 1}
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path, "xgqa.langs=[de]", "io.max_bad_rows=3")
    assert e.value.code == 2 and "(more than 3 bad rows; raise io.max_bad_rows to go on)" in capsys.readouterr().err
    train.write_bytes(b"[" + good + b"]")
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path, "xgqa.langs=[de]", "io.max_bad_rows=0")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and err.startswith(f"error: {fs / 'de' / 'test.json'}:1: record '1'")
    assert err.endswith("(more than 0 bad rows; raise io.max_bad_rows to go on)")


@pytest.mark.parametrize("bench, key, rel", [
    ("xgqa", "xgqa.gqa_train", "iglue/datasets/gqa/annotations/train.json"),
    ("xgqa", "xgqa.val_file (lang=ru)", "iglue/datasets/xGQA/annotations/few_shot/ru/dev.json"),
    ("xgqa", "xgqa.test_file (lang=ko)", "iglue/datasets/xGQA/annotations/few_shot/ko/test.json"),
    ("xvnli", "xvnli.train_file", "iglue/datasets/XVNLI/annotations/en/train.jsonl"),
    ("xvnli", "xvnli.val_en_file", "iglue/datasets/XVNLI/annotations/en/dev.jsonl"),
    ("xvnli", "xvnli.val_file (lang=fr)", "iglue/datasets/XVNLI/annotations/en/dev-fr_gmt.jsonl"),
    ("xvnli", "xvnli.test_file (lang=es)", "iglue/datasets/XVNLI/annotations/es/test.jsonl"),
    ("marvl", "marvl.test_file (lang=ta)", "iglue/datasets/marvl/zero_shot/annotations/marvl-ta.jsonl"),
    ("marvl", "marvl.nlvr2_train", "iglue/datasets/nlvr2/annotations/train.jsonl"),
    ("marvl", "marvl.nlvr2_dev", "iglue/datasets/nlvr2/annotations/dev.jsonl"),
    ("marvl", "marvl.nlvr2_test", "iglue/datasets/nlvr2/annotations/test.jsonl"),
    ("marvl", "marvl.nlvr2_dev_translated (lang=sw)", "iglue/datasets/nlvr2/annotations/dev-sw_gmt.jsonl"),
    ("xflickrco", "xflickrco.flickr_train", "iglue/datasets/flickr30k/annotations/train_ann.jsonl"),
    ("xflickrco", "xflickrco.flickr_val", "iglue/datasets/flickr30k/annotations/valid_ann.jsonl"),
    ("xflickrco", "xflickrco.flickr_test", "iglue/datasets/flickr30k/annotations/test_ann.jsonl"),
    ("xflickrco", "xflickrco.test_file (lang=ja)", "iglue/datasets/xFlickrCO/annotations/ja/test.jsonl"),
    ("maxm", "maxm.file (lang=th)", "maxm/maxm_v1_th.json"),
    ("pope", "pope.file (split=random)", "pope/output/coco/coco_pope_random.json"),
    ("chair", "chair.ground_truth", "pope/segmentation/coco_ground_truth_segmentation.json"),
])
def test_each_input_is_named_by_its_key_when_missing(bench, key, rel, tmp_path, capsys):
    """The bundled fixtures with one input file taken away: the one line names that file's key."""
    import importlib
    import shutil
    from tests.conftest import FIXTURES_RAW
    main = importlib.import_module(f"eval_data.{bench}.convert").main
    shutil.copytree(FIXTURES_RAW, tmp_path / "raw")
    (tmp_path / "raw" / rel).unlink()
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path)
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {key}: input file not found: {tmp_path / 'raw' / rel}"


def test_maxm_documents_bad_pairs_and_named_languages(tmp_path, capsys):
    from eval_data.maxm.convert import main
    m = tmp_path / "raw" / "maxm"
    write_json(m / "maxm_v1_quz.json", {"annotations": [
        {"image_id": "img1", "qa_pairs": ["not a pair", {"question_id": "a", "question": "Ima?",
                                                         "processed_answers": ["allqu"]}]}]})
    report = run(main, tmp_path, "maxm.langs=[quz]")
    assert [r["context"] for r in lines(out(tmp_path, "maxm") / "maxm_test_quz.jsonl")] == [
        "Question: Ima? Short answer in Quechua:"]                 # the name from language_names
    s = "maxm/maxm_v1_quz.json"
    assert report["skipped"] == {f"{s}: record is a str, not an object": 1}
    assert report["skipped_examples"][f"{s}: record is a str, not an object"] == ["annotation 0 image img1 question ?"]
    assert report["examples"]["maxm image folder not found (every question reported missing)"] == [
        str(tmp_path / "raw" / "xm3600" / "images")]
    (m / "maxm_v1_quz.json").write_bytes(b'{"annotations": [{"image_id": "\xff", "qa_pairs": []}, {"image_id": "i", '
                                         b'"qa_pairs": [{"question": "Q?", "processed_answers": ["a"]}]}]}')
    report = run(main, tmp_path, "maxm.langs=[quz]")
    assert report["skipped"] == {f"{s}: invalid UTF-8": 1}
    assert report["inputs"][s] == {"in": 2, "used": 1, "skipped": 1}
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path, "maxm.langs=[quz]", "io.max_bad_rows=0")
    assert e.value.code == 2 and "raise io.max_bad_rows to go on" in capsys.readouterr().err
    write_json(m / "maxm_v1_quz.json", [{"image_id": "i"}])
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path, "maxm.langs=[quz]")
    assert e.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {m / 'maxm_v1_quz.json'}: expected a JSON object with 'annotations' at the top level, got list")


@pytest.mark.parametrize("bench, rel", [
    ("marvl", f"{IG}/marvl/zero_shot/annotations/marvl-tr.jsonl"), ("marvl", f"{IG}/nlvr2/annotations/dev.jsonl"),
    ("xflickrco", f"{IG}/flickr30k/annotations/train_ann.jsonl"),
    ("xflickrco", f"{IG}/xFlickrCO/annotations/de/test.jsonl")])
def test_io_max_bad_rows_stops_at_the_file_with_the_bad_line(bench, rel, tmp_path, capsys):
    """Each JSONL input of a converter on its own: the one with a bad line is named."""
    import importlib
    main = importlib.import_module(f"eval_data.{bench}.convert").main
    (marvl_raw if bench == "marvl" else flickr_raw)(tmp_path)
    for p in (tmp_path / "raw").rglob("*.jsonl"):             # no bad line anywhere but in rel
        p.write_text("".join(x + "\n" for x in p.read_text().splitlines() if x != "{broken"))
    with open(tmp_path / "raw" / rel, "a") as f:
        f.write("{broken\n")
    sets = ["marvl.langs=[tr]", "marvl.nlvr2_langs=[]"] if bench == "marvl" else ["xflickrco.langs=[de]"]
    with pytest.raises(SystemExit) as e:
        run(main, tmp_path, *sets, "io.max_bad_rows=0")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and err.startswith(f"error: {tmp_path / 'raw' / rel}:")
    assert err.endswith("(more than 0 bad rows; raise io.max_bad_rows to go on)")
