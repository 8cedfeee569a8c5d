"""translate_match_train.py and generate_match_train.py (dry-run translation)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import UserError
from common.languages import load_languages
from tests.conftest import root_sets, translation_sets
from match import generate_match_train as gen
from match import translate_match_train as tr
from translate import source
from translate.engine import Result


def english_rows(n: int = 60) -> list[dict]:
    rows = []
    for i in range(n):
        yes = i % 2 == 0
        rows.append({"id": f"r{i}", "image_id": f"sub/{i:03d}.jpg",
                     "caption": f"a {'red' if yes else 'blue'} house number {i} {{odd braces}}",
                     "original_caption": f"a red house number {i} {{odd braces}}",
                     "match": "yes" if yes else "no", "neg_rank": None if yes else 3})
    return rows


def setup(tmp_path: Path, rows: list[dict]) -> list[str]:
    src = tmp_path / "work" / "match" / "capfilt_match_en.jsonl"
    src.parent.mkdir(parents=True)
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + ['{"id": "bad"']
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [*root_sets(tmp_path), *translation_sets("dry-run", "")]


def test_translate_then_generate(tmp_path, capsys):
    rows = english_rows()
    sets = setup(tmp_path, rows)
    tr.main(sets)
    assert "bad_rows: 1" in capsys.readouterr().err
    translated = [json.loads(x) for x in
                  (tmp_path / "work" / "match" / "capfilt_match_translated.jsonl").read_text().splitlines()]
    assert len(translated) == len(rows)
    langs = {r["lang"] for r in translated}
    assert "en" in langs and len(langs) > 3 and langs <= set(load_languages())
    for r, src in zip(translated, rows):
        assert r["caption_en"] == src["caption"] and r["match"] == src["match"]
        if r["lang"] != "en":
            nllb = load_languages()[r["lang"]].nllb
            assert r["caption"] == f"[{nllb}] {src['caption']}"  # dry-run tags the target language

    gen.main(sets)
    out = tmp_path / "out" / "train" / "capfilt_match.jsonl"
    first = out.read_bytes()
    examples = [json.loads(x) for x in first.decode().splitlines()]
    templates = json.loads((tmp_path / "work" / "match" / "capfilt_match_templates.json").read_text())
    assert len(examples) == len(rows)
    for ex, r in zip(examples, translated):
        assert set(ex) == {"context", "label", "image_id", "task", "lang"}
        assert ex["task"] == "capfilt_match" and ex["image_id"] == r["image_id"] and ex["lang"] == r["lang"]
        assert r["caption"] in ex["context"]
        used = [t for t in templates[ex["lang"]] if t["question"].replace("{caption}", r["caption"]) == ex["context"]]
        assert used, ex
        assert ex["label"] == used[0]["answer_yes" if r["match"] == "yes" else "answer_no"]
        if ex["lang"] != "en":  # the label is in lang (dry-run tags every translation with its target)
            nllb = load_languages()[ex["lang"]].nllb
            assert ex["label"].startswith(f"[{nllb}] ") and ex["context"].startswith(f"[{nllb}] ")
        else:
            assert ex["label"].split(",")[0] in ("Yes", "No")
    assert len({ex["context"].split('"')[0] for ex in examples if ex["lang"] == "en"}) > 1  # several templates
    report = json.loads((tmp_path / "work" / "reports" / "match.final.json").read_text())
    assert report["counts"]["label_yes"] == report["counts"]["label_no"] == 30

    gen.main(sets)
    assert out.read_bytes() == first  # deterministic

    with open(tmp_path / "work" / "match" / "capfilt_match_translated.jsonl", "a") as f:
        f.write(json.dumps({"id": "z", "image_id": "z.jpg", "caption": "c", "match": "maybe", "lang": "en"}) + "\n")
    (tmp_path / "work" / "pipeline" / "match.translate.json").unlink()   # a file given, not a stale step's
    gen.main(sets)
    report = json.loads((tmp_path / "work" / "reports" / "match.final.json").read_text())
    assert report["skipped"]["bad input row"] == 1 and out.read_bytes() == first

    import datasets
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert ds.num_rows == len(rows) and set(ds.column_names) == {"context", "label", "image_id", "task", "lang"}


def test_sharded_translation_matches_single(tmp_path):
    sets = setup(tmp_path, english_rows(30))
    tr.main(sets)
    out = tmp_path / "work" / "match" / "capfilt_match_translated.jsonl"
    single = out.read_bytes()
    out.unlink()
    for i in range(3):   # by hand: each shard records its completion and prints the merge command
        tr.main(sets + ["--set", "run.num_shards=3", "--set", f"run.shard_index={i}"])
    from common import executors
    executors.main(["match.translate", "--set", "launch.mode=combine", "--set", "launch.num_shards=3", "--", *sets])
    assert out.read_bytes() == single


class RejectingEngine:
    """Translates like dry-run, but German outputs lose every placeholder."""

    def translate(self, texts, tgts, src="en"):
        return [Result((t.replace("{caption}", "CAPTION") if g == "de" else f"<{g}> {t}"), None)
                for t, g in zip(texts, tgts)]


def test_language_without_templates_falls_back_to_english(tmp_path):
    raw = [{"question": 'Is "{caption}" right?', "answer_yes": "Yes", "answer_no": "No"}]
    templates = gen.parse_templates(raw)
    sets = {str(i): list(t) for i, t in enumerate(templates)}
    tcfg = {"backend": "dry-run", "beam_size": 1}
    # The translate step's store (German lost the placeholder), as the final run reads it back.
    source.build_store(RejectingEngine(), tmp_path / "store.json", sets, tcfg, ["de", "en", "fr"])
    store = source.load_store(tmp_path / "store.json", sets, tcfg, ["de", "en", "fr"], "match.translate", [])
    assert json.loads((tmp_path / "store.json").read_text())["counts"]["0"]["lost_placeholder"] == 1
    by_lang, counts = gen.localise(templates, store, ["de", "en", "fr"])
    assert set(by_lang) == {"en", "fr"} and counts["template_dropped_in_a_language"] == 1
    row = {"id": "x", "image_id": "a.jpg", "caption": "ein Haus", "caption_en": "a house", "match": "no", "lang": "de"}
    ex, fallback = gen.make_example(row, by_lang, 0)
    assert fallback and ex == {"context": 'Is "a house" right?', "label": "No", "image_id": "a.jpg",
                               "task": "capfilt_match", "lang": "en"}
    ex, fallback = gen.make_example({**row, "lang": "fr", "caption": "une maison"}, by_lang, 0)
    assert not fallback and ex["context"] == '<fr> Is "une maison" right?' and ex["label"] == "<fr> No"


def test_template_and_input_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="exactly once"):
        gen.parse_templates([{"question": "Is it right?", "answer_yes": "Yes", "answer_no": "No"}])
    with pytest.raises(UserError, match="answer_no"):
        gen.parse_templates([{"question": "{caption}?", "answer_yes": "Yes"}])
    with pytest.raises(SystemExit) as e:
        gen.main(["--set", f"paths.work_dir={tmp_path}", "--set", f"paths.out_root={tmp_path}"])
    assert e.value.code == 2 and "translate_match_train" in capsys.readouterr().err
