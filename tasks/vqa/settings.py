"""VQAv2 settings, the question/annotation join and the frequent-answer rule."""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Iterator

from common.config import REPO_ROOT
from common.languages import SPLIT_DEFAULT
from common.report import Report
from common.shards import RUN_DEFAULTS
from tasks.coco_images import list_images, pattern_name
from common.jsonl import BadRows
from eval_data.decontam import DEFAULTS as DECONTAM_DEFAULTS
from tasks.vqa import raw
from translate.engine import TRANSLATION_DEFAULTS

CONFIG = str(REPO_ROOT / "configs" / "vqav2.yaml")
DEFAULTS = {
    "vqav2": {
        "train_questions": "${paths.raw_root}/vqav2/v2_OpenEnded_mscoco_train2014_questions.json",
        "train_annotations": "${paths.raw_root}/vqav2/v2_mscoco_train2014_annotations.json",
        "train_image_pattern": "COCO_train2014_%012d.jpg",
        "val_questions": "${paths.raw_root}/vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
        "val_annotations": "${paths.raw_root}/vqav2/v2_mscoco_val2014_annotations.json",
        "val_image_pattern": "COCO_val2014_%012d.jpg",
        "image_dir": "${paths.coco_images}",
        "check_images": True,
        "seed": 0,
        "languages": [],
        "language_split": dict(SPLIT_DEFAULT),   # how rows split over the languages (common/languages.py)
        "translated_ratio": 0.5,
        "answer_min_count": 15,
        "answer_translated_ratio": 0.5,
        "work_dir": "${paths.work_dir}/vqav2",
        "vqa_file": "${paths.out_root}/train/vqav2_vqa.jsonl",
        "vqg_file": "${paths.out_root}/train/vqav2_vqg.jsonl",
        "eval_file": "${paths.out_root}/eval/vqav2/vqav2_val.jsonl",
        "max_bad_rows": 1000,
        "templates": {"vqa_english": [""], "vqa_naming": [""], "vqg_english": [""], "vqg_naming": [""]},
    },
    "translation": TRANSLATION_DEFAULTS,
    "run": RUN_DEFAULTS,
    "decontam": DECONTAM_DEFAULTS,
}
TEMPLATE_NEEDS = {"vqa_english": {""}, "vqa_naming": {"", "lang"}, "vqg_english": {""}, "vqg_naming": {"", "lang"}}
TASKS = ("vqav2_vqa", "vqav2_vqg")


def work_paths(cfg) -> dict[str, Path]:
    w = cfg.path("vqav2.work_dir")
    return {"en": w / "questions_en.jsonl", "translated": w / "questions_translated.jsonl",
            "templates": w / "templates_translated.json", "frequent": w / "answers_frequent.json",
            "answers": w / "answers_translated.json"}


def load_annotations(a_path, split: str, need: str, report: Report) -> dict[int, dict]:
    """question_id -> {answer, answers} of an annotation file; bad and duplicate records counted."""
    annotations: dict[int, dict] = {}
    for i, a in enumerate(raw.annotations(a_path, keep_answers=need == "answers")):
        qid = a.get("question_id") if isinstance(a, dict) else None
        if isinstance(qid, bool) or not isinstance(qid, int):
            report.skip(f"{split}: annotation without an integer question_id", f"{a_path}: annotations[{i}]")
            continue
        if qid in annotations:
            report.skip(f"{split}: duplicate annotation (first kept)", f"{a_path}: question_id={qid}")
            continue
        answers = a.get("answers") if isinstance(a.get("answers"), list) else []
        good = [x for x in answers if isinstance(x, str)]  # the hook made each answer its string
        if len(good) < len(answers):
            report.count(f"{split}_malformed_answers_dropped", len(answers) - len(good))
        annotations[qid] = {"answer": a.get("multiple_choice_answer"), "answers": good}
    return annotations


def joined(cfg, split: str, report: Report, need: str = "answer") -> Iterator[dict]:
    """Questions joined to their annotations by question_id (never by position):
    {question_id, image_id (file name), question, answer, answers}.

    ``need``: "answer" (training: the multiple_choice_answer; the ten answers
    are not even kept while loading) or "answers" (evaluation: the ten answers).
    """
    c = cfg.at("vqav2")
    q_path = cfg.require_file(f"vqav2.{split}_questions")
    a_path = cfg.require_file(f"vqav2.{split}_annotations")
    pattern = c[f"{split}_image_pattern"]
    existing = list_images(cfg.path("vqav2.image_dir")) if c["check_images"] else None
    annotations = load_annotations(a_path, split, need, report)
    used, first = set(), {}
    bad = BadRows(max_bad=c["max_bad_rows"], key="vqav2.max_bad_rows")
    for i, q in raw.questions(q_path, bad):
        report.count(f"{split}_questions_in")
        where = f"{q_path}: questions[{i}]"
        if not isinstance(q, dict):
            report.skip(f"{split}: question record is not an object", where)
            continue
        qid, image, text = q.get("question_id"), q.get("image_id"), q.get("question")
        where += f" question_id={qid}"
        if isinstance(qid, bool) or not isinstance(qid, int) or isinstance(image, bool) or not isinstance(image, int):
            report.skip(f"{split}: question without integer question_id/image_id", where)
            continue
        if qid in first:   # a second record with this id: the answer belongs to the first only
            same = first[qid] == (image, text)
            report.skip(f"{split}: " + ("duplicate question (first kept)" if same else
                                        "question_id of another question (first kept)"), where)
            continue
        first[qid] = (image, text)
        ann = annotations.get(qid)
        if ann is None:
            report.skip(f"{split}: question without annotation", where)
            continue
        used.add(qid)
        # Whitespace collapsed only; '#', braces and any other character stay.
        text = " ".join(text.split()) if isinstance(text, str) else ""
        if not text:
            report.skip(f"{split}: empty question", where)
            continue
        answer = " ".join(ann["answer"].split()) if isinstance(ann["answer"], str) else ""
        if need == "answer" and not answer:
            report.skip(f"{split}: annotation without multiple_choice_answer", where)
            continue
        if need == "answers" and not ann["answers"]:
            report.skip(f"{split}: annotation without answers", where)
            continue
        name = pattern_name(pattern, image)
        if existing is not None and name not in existing:
            report.skip(f"{split}: image file missing from image_dir", f"{where} {name}")
            continue
        yield {"question_id": qid, "image_id": name, "question": text, "answer": answer,
               "answers": ann["answers"]}
    _count_leftovers(split, bad, len(annotations) - len(used), a_path, report)


def _count_leftovers(split: str, bad: BadRows, orphans: int, a_path, report: Report) -> None:
    """After the join: the unreadable question records and the annotations no question used."""
    if bad.count:
        report.skip(f"{split}: question record not readable (not JSON or invalid UTF-8)", bad.examples[0],
                    n=bad.count)
    if orphans:
        report.skip(f"{split}: annotation without question", str(a_path), n=orphans)


def frequent_answers(counts: collections.Counter, min_count: int) -> dict[str, int]:
    """The answers worth translating: at least min_count occurrences, no digit,
    longer than one character; most frequent first (ties by text)."""
    keep = {a: n for a, n in counts.items()
            if n >= min_count and len(a) > 1 and not any(ch.isdigit() for ch in a)}
    return dict(sorted(keep.items(), key=lambda kv: (-kv[1], kv[0])))
