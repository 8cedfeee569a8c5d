"""Rows on evaluation images leave before translation (MSCOCO, VQAv2, LLaVA):
the English run drops and counts them, the translate step never sees them, the
final file has none, the final step's report keeps the English run's counts,
and a row smuggled into the translated intermediate stops the final run.
(CapFilt and matching: test_decontam_english.py.)"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from common import cli, pipeline
from common.errors import UserError
from eval_data import decontam
from tasks.llava import generate_train as llava_gen
from tasks.llava import translate_train as llava_tr
from tasks.mscoco import generate_train as mscoco_gen
from tasks.mscoco import translate_train as mscoco_tr
from tasks.vqa import generate_train as vqa_gen
from tasks.vqa import translate_train as vqa_tr
from tests.conftest import FIXTURES_RAW, root_sets, translation_sets

POPE = "COCO_val2014_000000310196.jpg"          # a POPE image (restval; a LLaVA conversation)
KARPATHY_TEST = "COCO_val2014_000000203564.jpg"  # Karpathy test, so MSCOCO and CHAIR (a LLaVA description)
VQAV2_VAL = "COCO_val2014_000000000073.jpg"      # a VQAv2 val image (restval)


@dataclass
class Source:
    name: str              # the steps <name>.english, <name>.translate, <name>.final
    gen: object            # the generate_train module
    translate: object      # the translate_train module
    work: str              # its work folder under work/
    english: str           # the English intermediate, in it
    translated: str        # the translated intermediate, in it
    outs: tuple[str, ...]  # its training files, in out/train
    on_eval: set[str]      # image_ids of the fixtures' rows on evaluation images
    dropped: dict          # task -> (rows dropped, by evaluation set)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def counts(tmp: Path, step: str) -> dict:
    """The row counts of a step's decontamination report (the identical-text counts are the final run's)."""
    tasks = json.loads((tmp / "work" / "reports" / f"{step}.json").read_text())["decontamination"]["tasks"]
    return {task: {k: t[k] for k in ("rows_checked", "rows_dropped", "dropped_by_eval_set", "dropped_by_language")}
            for task, t in tasks.items()}


def vqa_with_pope_question(tmp: Path) -> list[str]:
    """VQAv2 train has no evaluation image: one of its questions is moved onto the POPE image's id."""
    questions = json.loads((FIXTURES_RAW / "vqav2" / "v2_OpenEnded_mscoco_train2014_questions.json").read_text())
    questions["questions"][0]["image_id"] = 310196
    path = tmp / "vqa_questions.json"
    path.write_text(json.dumps(questions))
    return ["--set", f"vqav2.train_questions={path}", "--set", "vqav2.check_images=false"]


SOURCES = {
    "mscoco": Source("mscoco", mscoco_gen, mscoco_tr, "mscoco", "captions_en.jsonl", "captions_translated.jsonl",
                     ("mscoco.jsonl",), {POPE, VQAV2_VAL}, {"mscoco": (4, {"pope": 2, "vqav2": 2})}),
    "vqav2": Source("vqav2", vqa_gen, vqa_tr, "vqav2", "questions_en.jsonl", "questions_translated.jsonl",
                    ("vqav2_vqa.jsonl", "vqav2_vqg.jsonl"), {"COCO_train2014_000000310196.jpg"},
                    {"vqav2_vqa": (1, {"pope": 1}), "vqav2_vqg": (1, {"pope": 1})}),
    "llava": Source("llava", llava_gen, llava_tr, "llava", "turns_en.jsonl", "turns_translated.jsonl",
                    ("llava_detail.jsonl", "llava_conversation.jsonl"), {POPE, KARPATHY_TEST},
                    {"llava_detail": (1, {"chair": 1, "mscoco": 1, "vqav2": 1}),
                     "llava_conversation": (2, {"pope": 1, "vqav2": 1})}),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_evaluation_images_never_reach_translation(tmp_path, name):
    src = SOURCES[name]
    sets = [*root_sets(tmp_path), *translation_sets("dry-run", ""),
            *(vqa_with_pope_question(tmp_path) if name == "vqav2" else [])]
    work = tmp_path / "work" / src.work
    src.gen.main(sets)
    assert not src.on_eval & {r["image_id"] for r in read(work / src.english)}
    english = counts(tmp_path, f"{name}.english")
    assert {t: (c["rows_dropped"], c["dropped_by_eval_set"]) for t, c in english.items()} == src.dropped
    assert all(c["dropped_by_language"] == {"en": c["rows_dropped"]} for c in english.values())
    src.translate.main(sets)
    translated = work / src.translated
    assert not src.on_eval & {r["image_id"] for r in read(translated)}
    src.gen.main(sets)
    final = [r for out in src.outs for r in read(tmp_path / "out" / "train" / out)]
    assert final and not src.on_eval & {r["image_id"] for r in final}
    assert counts(tmp_path, f"{name}.final") == english      # the English run's counts, adopted

    # The final assertion: a row on an evaluation image smuggled into the translated file.
    rows = read(translated)
    smuggled = sorted(src.on_eval)[0]
    rows.append({**rows[0], "id": "smuggled", "image_id": smuggled})
    translated.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = cli.load_config(pipeline.get(f"{name}.final"), sets)
    with pytest.raises(UserError) as e:
        src.gen.final_run(cfg, sets)
    assert smuggled in str(e.value) and f"{name}.english" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("step_id, collection", [
    ("capfilt.english", "web"), ("match.mine", "web"), ("mscoco.english", "coco"), ("vqav2.english", "coco"),
    ("llava.english", "coco")])
def test_every_english_step_that_drops_reads_the_evaluation_files(step_id, collection):
    """``make status`` says stale when an evaluation file or a switch changes."""
    step = pipeline.get(step_id)
    assert getattr(decontam, f"{collection}_inputs") in step.reads and "decontam" in step.shaped_by
