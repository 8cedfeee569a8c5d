"""VQAv2: join by question_id, frequent answers, round-trip answer translation
through the engine in both directions, the two tasks, the val eval file."""
from __future__ import annotations

import collections
import json

import pytest

from common.config import build_config
from common.errors import UserError
from common.languages import get_language
from common.report import Report
from tests.conftest import FIXTURES_RAW, translation_sets
from tasks.vqa import generate_eval, generate_train, translate_train
from tasks.vqa.answers import round_trip
from tasks.vqa.settings import CONFIG, DEFAULTS, frequent_answers, joined
from translate.engine import Engine, TRANSLATION_DEFAULTS

LANGS = "[de, fr, es]"  # no English: every question is translated


class RoundTripBackend:
    """Invertible fake NLLB: en->X appends '~xxx' (the NLLB code's first three
    letters); X->en strips it and upper-cases
    (the round trip must compare case-insensitively). French "no" comes back as
    "nope", so that translation must be dropped. Records every direction used."""
    name = "fake"
    model_key = "fake-roundtrip"

    def __init__(self):
        self.calls = 0
        self.directions = collections.Counter()

    def count_tokens(self, texts, src=None):
        return [len(t.split()) + 2 for t in texts]

    def translate_batch(self, texts, src, tgts, max_new_tokens):
        self.calls += 1
        out = []
        for text, tgt in zip(texts, tgts):
            self.directions[(src, tgt)] += 1
            if src == "eng_Latn":
                out.append(f"{text}~{tgt[:3]}")
            else:
                plain = text.removesuffix(f"~{src[:3]}")
                out.append("nope" if (src, plain) == ("fra_Latn", "no") else plain.upper())
        return out


def sets(tmp, *extra):
    return ["--set", f"paths.raw_root={FIXTURES_RAW}", "--set", f"paths.work_dir={tmp}/work",
            "--set", f"paths.out_root={tmp}/out", "--set", f"vqav2.languages={LANGS}",
            *translation_sets("dry-run", ""), *extra]


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def fake_engine():
    return Engine({**TRANSLATION_DEFAULTS, "cache": "", "progress": False}, backend=RoundTripBackend())


def test_frequent_answers_rule():
    counts = collections.Counter({"yes": 20, "no": 15, "2": 30, "a": 40, "red": 14, "tw0": 50, "dog": 15})
    assert list(frequent_answers(counts, 15)) == ["yes", "dog", "no"]


def test_join_by_question_id(tmp_path):
    cfg = build_config(DEFAULTS, CONFIG, sets(tmp_path)[1::2])
    report = Report("t")
    got = list(joined(cfg, "train", report))
    assert len(got) == 80
    by_q = {q["question"]: q for q in got}
    odd = by_q["What is written after the # sign {here}?"]  # '#' and braces work as any character
    assert odd["answer"] == "yes" and odd["image_id"].startswith("COCO_train2014_")
    assert report.skipped["train: question without annotation"] == 1
    assert report.skipped["train: annotation without question"] == 1
    assert report.skipped["train: empty question"] == 1


def test_round_trip_uses_engine_both_ways():
    engine = fake_engine()
    kept, counts = round_trip(engine, ["yes", "no"], ["en", "de", "fr"])
    assert kept == {"de": {"yes": "yes~deu", "no": "no~deu"}, "fr": {"yes": "yes~fra"}}
    assert counts["kept"] == 3 and counts["round_trip_mismatch"] == 1
    d = engine.backend.directions
    assert d[("eng_Latn", "deu_Latn")] == 2 and d[("deu_Latn", "eng_Latn")] == 2 and d[("fra_Latn", "eng_Latn")] == 2


def test_train_files(tmp_path, capsys):
    generate_train.main(sets(tmp_path))
    assert "next: python tasks/vqa/translate_train.py" in capsys.readouterr().err
    work = tmp_path / "work" / "vqav2"
    assert json.loads((work / "answers_frequent.json").read_text())["answers"] == {"yes": 17, "no": 15, "white": 15}
    cfg = build_config(DEFAULTS, CONFIG, sets(tmp_path)[1::2])
    translate_train.run(cfg, engine=fake_engine())
    kept = json.loads((work / "answers_translated.json").read_text())["kept"]
    assert kept["fr"] == {"yes": "yes~fra", "white": "white~fra"}
    generate_train.main(sets(tmp_path))
    vqa = rows(tmp_path / "out" / "train" / "vqav2_vqa.jsonl")
    vqg = rows(tmp_path / "out" / "train" / "vqav2_vqg.jsonl")
    assert len(vqa) == len(vqg) == 80
    assert all(list(r) == ["context", "label", "image_id", "task", "lang"] for r in vqa + vqg)
    # Questions were translated; with a kept answer translation about half use it.
    used = [r for r in vqa if r["lang"] != "en"]
    assert used and all(r["label"].endswith("~" + get_language(r["lang"]).nllb[:3]) for r in used)
    counts = json.loads((work.parent / "reports" / "vqav2.final.json").read_text())["counts"]
    assert counts["vqav2_vqa_answer_translated"] == len(used)
    eligible = len(used) + counts["vqav2_vqa_answer_kept_english"]
    assert 0.3 < len(used) / eligible < 0.7, (len(used), eligible)
    english_after_translated_q = [r for r in vqa if r["lang"] == "en" and "~" in r["context"]]
    assert english_after_translated_q and all("English" in r["context"] for r in english_after_translated_q)
    # vqg: the label is the (translated) question in the row's language
    assert any(r["lang"] != "en" and r["label"].endswith("~" + get_language(r["lang"]).nllb[:3]) for r in vqg)
    # the two tasks draw languages independently
    assert [r["lang"] for r in vqg] != [r["lang"] for r in vqa]


def test_eval_file(tmp_path):
    generate_eval.main(sets(tmp_path))
    got = rows(tmp_path / "out" / "eval" / "vqav2" / "vqav2_val.jsonl")
    assert [r["context"] for r in got] == ["What is the man riding?", "Is the cake #1 in the contest?",
                                          "What time does the clock show?", "What color is the motorcycle?"]
    assert got[1]["text_label"] == ["yes"] * 7 + ["no"] * 3 and got[1]["label"] == ""
    assert got[0]["image_id"] == "COCO_val2014_000000391895.jpg"
    # no multiple_choice_answer is no reason to drop an eval question; a malformed answer is counted
    assert got[2]["text_label"] == ["noon"] * 9
    counts = json.loads((tmp_path / "work" / "reports" / "vqav2.eval.json").read_text())["counts"]
    assert counts["val_malformed_answers_dropped"] == 1 and counts["questions_without_ten_answers"] == 1


def test_lean_loading_shrinks_records(tmp_path):
    from common.lean_json import load_json_lean, vqa_annotation_hook
    ann = {"question_id": 7, "image_id": 1, "question_type": "what", "answer_type": "other",
           "multiple_choice_answer": "yes",
           "answers": [{"answer": "yes", "answer_confidence": "yes", "answer_id": 1}, {"answer_id": 2}]}
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"info": {"description": "x"}, "annotations": [ann]}))
    got = load_json_lean(p, vqa_annotation_hook(keep_answers=True))
    assert got["annotations"] == [{"question_id": 7, "multiple_choice_answer": "yes",
                                   "answers": ["yes", {"answer_id": 2}]}]  # malformed left for the caller
    assert got["info"] == {"description": "x"}
    got = load_json_lean(p, vqa_annotation_hook(keep_answers=False))
    assert got["annotations"] == [{"question_id": 7, "multiple_choice_answer": "yes"}]
    p.write_text('{"annotations": [\n{"a": }]}')
    with pytest.raises(UserError) as e:
        load_json_lean(p, vqa_annotation_hook(keep_answers=True))
    assert f"{p}:2:" in str(e.value)


def test_second_run_without_answers_goes_back_to_english(tmp_path, capsys):
    """The translate step's output is gone: it is not done, so the run is the
    English one again (never a final file without the answers)."""
    generate_train.main(sets(tmp_path))
    translate_train.main(sets(tmp_path))
    (tmp_path / "work" / "vqav2" / "answers_translated.json").unlink()
    capsys.readouterr()
    generate_train.main(sets(tmp_path))
    assert "next: python tasks/vqa/translate_train.py" in capsys.readouterr().err
    assert not (tmp_path / "out" / "train" / "vqav2_vqa.jsonl").exists()
