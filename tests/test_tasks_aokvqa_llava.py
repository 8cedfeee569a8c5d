"""A-OKVQA (English reasoning/explanation) and LLaVA (detail + single turns, translated)."""
from __future__ import annotations

import json

from common.languages import get_language
from tests.conftest import FIXTURES_RAW, translation_sets
from tasks.aokvqa import generate_train as aokvqa
from tasks.llava import generate_train as llava
from tasks.llava import translate_train as llava_translate
from tasks.llava.settings import sentence_count, strip_image_tag


def sets(tmp, *extra, translated=True):
    return ["--set", f"paths.raw_root={FIXTURES_RAW}", "--set", f"paths.work_dir={tmp}/work",
            "--set", f"paths.out_root={tmp}/out", *(translation_sets("dry-run", "") if translated else []), *extra]


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_aokvqa(tmp_path):
    aokvqa.main(sets(tmp_path, translated=False))
    cot = rows(tmp_path / "out" / "train" / "aokvqa_cot.jsonl")
    explain = rows(tmp_path / "out" / "train" / "aokvqa_explain.jsonl")
    # 3 + 2 + 1 rationales of the three usable questions (two empty rationales dropped); one per rationale and task
    assert len(cot) == len(explain) == 6
    assert {r["lang"] for r in cot + explain} == {"en"}
    assert cot[0]["image_id"] == "COCO_train2014_000000000009.jpg"
    assert cot[3]["image_id"] == "COCO_val2014_000000000042.jpg"  # 2017 id found as a val2014 file
    assert cot[0]["label"].startswith("Broccoli is a green vegetable.") and cot[0]["label"].endswith("broccoli.")
    assert "What healthy food is on the plate?" in cot[0]["context"]
    assert explain[0]["label"] == "Broccoli is a green vegetable."
    assert "broccoli" in explain[0]["context"]
    assert cot[5]["context"].count("What #1 thing is in the vase?") == 1  # '#' like any character
    assert explain[5]["label"] == "Flowers stand in the vase."
    report = json.loads((tmp_path / "work" / "reports" / "aokvqa.generate.json").read_text())
    assert report["skipped"] == {"image not in the COCO image folder": 1,
                                 "missing choices or correct_choice_idx out of range": 1,
                                 "empty rationale (the question's other rationales kept)": 2,
                                 "rationales is not a list": 1}


def test_image_tag_and_sentences():
    assert strip_image_tag("<image>\nDescribe it.") == "Describe it."
    assert strip_image_tag("What is this?\n<image>") == "What is this?"
    assert strip_image_tag("Is the <image> vase full?") == "Is the vase full?"
    assert sentence_count("One. Two! Three? Four.") == 4


def test_llava(tmp_path, capsys):
    llava.main(sets(tmp_path))
    assert "next: python tasks/llava/translate_train.py" in capsys.readouterr().err
    llava_translate.main(sets(tmp_path))
    llava.main(sets(tmp_path, "--set", "llava.translated_ratio=0.5"))
    detail = rows(tmp_path / "out" / "train" / "llava_detail.jsonl")
    conv = rows(tmp_path / "out" / "train" / "llava_conversation.jsonl")
    assert len(detail) == 2  # the third record's image is missing
    assert len(conv) == 3    # a long answer, an empty question and a dangling question dropped
    texts = [r["context"] + r["label"] for r in detail + conv]
    assert not any("<image>" in t for t in texts)
    for r in detail + conv:
        if r["lang"] != "en":
            code = get_language(r["lang"]).nllb
            # both question and answer translated; long answers sentence by sentence
            assert r["label"].startswith(f"[{code}] ")
            assert r["context"].startswith(f"[{code}] ") or get_language(r["lang"]).name in r["context"]
    long = [r for r in detail if r["image_id"] == "COCO_train2014_000000000009.jpg"][0]
    if long["lang"] != "en":
        assert long["label"].count("[") == 4


def test_llava_long_answer_limit(tmp_path):
    llava.main(sets(tmp_path, "--set", "llava.max_answer_sentences=10"))
    en = rows(tmp_path / "work" / "llava" / "turns_en.jsonl")
    # the 3 turns of image 30, + 1 (the long answer kept now); the turns on 73 (VQAv2 val) and
    # on the POPE image 310196 leave in this English run, before translation
    assert sum(r["task"] == "llava_conversation" for r in en) == 3 + 1


def test_llava_all_translated_by_default(tmp_path):
    """Default: instruction and answer both in the example's language; the long
    detail answer goes through the engine sentence by sentence."""
    extra = ["--set", "llava.languages=[de]"]
    llava.main(sets(tmp_path, *extra))
    llava_translate.main(sets(tmp_path, *extra))
    llava.main(sets(tmp_path, *extra))
    got = rows(tmp_path / "out" / "train" / "llava_detail.jsonl") + \
        rows(tmp_path / "out" / "train" / "llava_conversation.jsonl")
    assert len(got) == 5 and all(r["lang"] == "de" for r in got)
    assert all(r["context"].startswith("[deu_Latn] ") and r["label"].startswith("[deu_Latn] ") for r in got)
    long = [r for r in got if r["image_id"] == "COCO_train2014_000000000009.jpg"][0]
    assert long["label"].count("[deu_Latn] ") == 4  # four sentences, each translated
    assert long["context"] == "[deu_Latn] Describe the following image."
