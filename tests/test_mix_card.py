"""A mix that explains itself (pretrain/mix_card.py): per language the target (mC4)
and actual shares, the rows that fell back to English and why, the decontamination
counts; and the dataset card beside the mix, which a hub (and datasets) reads."""
from __future__ import annotations

import json

import yaml

from common.jsonl import write_jsonl
from common.languages import load_languages, target_percent
from pretrain import merge_train, mix_card
from tests.conftest import root_sets
from tests.test_translate_engine import FakeBackend, make_cfg
from translate.engine import Engine
from translate.stage import translate_jsonl


def test_rows_that_fall_back_are_counted_by_language_and_reason(tmp_path):
    """The translate steps record why a row stayed English, per language asked for."""
    def fn(text, tgt):
        if "empty" in text:
            return ""
        if "long" in text:
            return " ".join(f"Wort{i}" for i in range(60))
        return text.upper() + " !"
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, [{"caption": "an empty answer comes back", "lang": "de"},
                      {"caption": "a long answer comes back", "lang": "fr"},
                      {"caption": "another long answer comes back", "lang": "fr"},
                      {"caption": "a good answer comes back", "lang": "es"},
                      {"caption": "stays English", "lang": "en"}])
    counts = translate_jsonl(Engine(make_cfg(), backend=FakeBackend(fn=fn)), inp, tmp_path / "out.jsonl", ["caption"])
    assert counts["fallback_to_english"] == {"de": {"empty": 1}, "fr": {"length_ratio": 2}}
    assert counts["rows_fallback_to_english"] == 3


def reports(work, name: str, body: dict) -> None:
    (work / "reports").mkdir(parents=True, exist_ok=True)
    (work / "reports" / f"{name}.json").write_text(json.dumps(body))


def test_mix_report_languages_fallbacks_decontamination_and_card(tmp_path):
    import datasets
    train, work = tmp_path / "out" / "train", tmp_path / "work"
    rows = [{"context": f"Q{i}?", "label": f"A{i}.", "image_id": f"COCO_train2014_{i:012d}.jpg",
             "task": "llava_conversation", "lang": ["en", "de", "iw"][i % 3]} for i in range(30)]
    write_jsonl(train / "llava_conversation.jsonl", rows)
    # What the LLaVA steps recorded: fallbacks (two shards of the translate step) and decontamination.
    # Every shard records the draws over the whole file (the same in each): counted once.
    drew = {"drawn": {"en": 14, "de": 12, "iw": 10, "fr": 4},
            "language_split": {"policy": "mc4", "target_percent": target_percent(list(load_languages()))}}
    reports(work, "llava.translate.shard-00000-of-00002", {"fallback_to_english": {"de": {"off_target": 2}}, **drew})
    reports(work, "llava.translate.shard-00001-of-00002",
            {"fallback_to_english": {"de": {"length_ratio": 1}, "fr": {"off_target": 3}}, **drew})
    dec_task = {"rows_checked": 34, "rows_dropped": 4, "dropped_by_eval_set": {"pope": 1, "vqav2": 3},
                "kept_with_eval_image_by_eval_set": {}, "dropped_by_language": {"de": 3, "en": 1},
                "rows_with_identical_text": 1, "identical_text_by_eval_set": {"vqav2": 1},
                "identical_text_examples": [{"task": "llava_conversation", "field": "context",
                                             "text": "What is the man riding?", "eval_sets": ["vqav2"]}]}
    reports(work, "llava.final", {"decontamination": {
        "eval_sets": {"pope": {"title": "POPE", "exclude": True, "images": 500, "texts": 9000, "files": ["x"]},
                      "vqav2": {"title": "VQAv2 val", "exclude": False, "images": 40504, "texts": 1}},
        "exclusion_off": ["vqav2"], "key": "k", "tasks": {"llava_conversation": dec_task}}})
    cfg = {"merge": {"inputs": [{"path": str(train / "llava_conversation.jsonl"), "source": "llava"}],
                     "licences": {"llava": "CC BY-NC 4.0"}, "licence_ids": {"llava": "cc-by-nc-4.0"},
                     "pretty_name": "Test mix"}}
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump(cfg))
    merge_train.main(["--config", str(tmp_path / "merge.yaml"), *root_sets(tmp_path)])

    report = json.loads((train / "task_mix_report.json").read_text())
    langs = report["languages"]
    table = load_languages()
    total = sum(lang.mc4_percent for lang in table.values())
    assert langs["de"]["target_share"] == round(100 * table["de"].mc4_percent / total, 3)
    assert langs["de"]["mix_rows"] == 10 and langs["de"]["mix_share"] == round(100 / 3, 3)
    assert langs["de"]["drawn_rows"] == 12 and langs["de"]["drawn_share"] == round(100 * 12 / 40, 3)  # the draws
    assert langs["fr"]["drawn_rows"] == 4 and report["draws"] == {"rows": 40, "policies": {"llava.translate":
                                                                  {"policy": "mc4"}}, "not_recorded": []}
    assert langs["de"]["prompt_rows"] == langs["de"]["mix_rows"]      # llava: the prompt is in the row's language
    assert langs["de"]["fell_back_to_english"] == {"off_target": 2, "length_ratio": 1}   # both shards
    assert langs["fr"]["mix_rows"] == 0 and langs["fr"]["fell_back_to_english"] == {"off_target": 3}
    assert langs["de"]["dropped_eval_image"] == 3
    assert report["fallback_to_english"]["rows"] == 6
    dec = report["decontamination"]
    assert dec["rows_dropped"] == 4 and dec["dropped_by_eval_set"] == {"pope": 1, "vqav2": 3}
    assert dec["exclusion_off"] == ["vqav2"] and dec["rows_with_identical_text"] == 1
    md = (train / "task_mix_report.md").read_text()
    assert "| de | German |" in md and "off-target language 2" in md and "**Exclusion off**" in md
    assert "What is the man riding?" in md

    card = (train / "README.md").read_text()
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["pretty_name"] == "Test mix" and front["license"] == ["cc-by-nc-4.0"]
    assert front["language"] == ["de", "en", "he"]              # iw is he on the hubs
    assert front["size_categories"] == ["n<1K"] and front["task_categories"] == ["visual-question-answering"]
    assert front["configs"][0] == {"config_name": "default", "default": True,
                                   "data_files": [{"split": "train", "path": "task_mix.jsonl"}]}
    assert {"config_name": "llava_conversation",
            "data_files": [{"split": "train", "path": "llava_conversation.jsonl"}]} in front["configs"]
    assert "off-target language 2" in card
    # datasets reads the card's configs: the default is the mix
    ds = datasets.load_dataset(str(train), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 30 and sorted(ds.column_names) == ["context", "image_id", "label", "lang", "task"]


def test_size_categories():
    assert mix_card.size_category(999) == "n<1K" and mix_card.size_category(1000) == "1K<n<10K"
    assert mix_card.size_category(2_500_000) == "1M<n<10M"


def test_prompt_and_target_languages_and_drawn_from_the_draws(tmp_path):
    """Issue 18 item 5: a VQAv2 question translated into German with an English answer
    counts as German for the prompt and English for the target; drawn vs target comes
    from the translate step's draws, not from the rows' lang."""
    train, work = tmp_path / "out" / "train", tmp_path / "work"
    langs = ["en"] * 10 + ["de"] * 5
    write_jsonl(train / "vqav2_vqa.jsonl", [{"context": f"Q{i}?", "label": f"A{i}", "task": "vqav2_vqa", "lang": lang,
                                              "image_id": f"COCO_train2014_{i:012d}.jpg"} for i, lang in enumerate(langs)])
    split = {"policy": "english_share", "english": 0.5}
    reports(work, "vqav2.translate", {"drawn": {"de": 11, "en": 4}, "fallback_to_english": {},
                                      "language_split": {**split, "target_percent": target_percent(["en", "de"], split)}})
    reports(work, "vqav2.final", {"vqav2_vqa_languages": {"en": 10, "de": 5},
                                  "vqav2_vqa_prompt_languages": {"de": 11, "en": 4}})
    cfg = {"merge": {"inputs": [{"path": str(train / "vqav2_vqa.jsonl"), "source": "vqav2"}]}}
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump(cfg))
    merge_train.main(["--config", str(tmp_path / "merge.yaml"), *root_sets(tmp_path)])
    report = json.loads((train / "task_mix_report.json").read_text())
    de, en = report["languages"]["de"], report["languages"]["en"]
    assert (de["prompt_rows"], de["mix_rows"], en["prompt_rows"], en["mix_rows"]) == (11, 5, 4, 10)
    assert report["mix"]["prompt_rows_per_language"] == {"de": 11, "en": 4}
    assert (de["drawn_rows"], en["drawn_rows"]) == (11, 4)                    # the draws, not the rows' lang
    assert de["target_share"] == en["target_share"] == 50.0
    assert report["draws"]["policies"] == {"vqav2.translate": split}
    md = (train / "task_mix_report.md").read_text()
    assert "vqav2.translate: english_share 0.5" in md
    assert "| de | German | 50.000 | 73.333 | 11 | 73.333 | 11 | 33.333 | 5 |" in md


def test_prompt_language_is_counted_and_never_written(tmp_path):
    from translate import source
    rows = [("a", {"context": "c", "label": "l", "image_id": "i", "task": "a", "lang": "en", source.PROMPT_LANG: "de"}),
            ("a", {"context": "c", "label": "l", "image_id": "i", "task": "a", "lang": "fr"})]
    prompts: dict = {}
    langs = source.write_by_key({"a": tmp_path / "a.jsonl"}, rows, prompts)
    assert langs["a"] == {"en": 1, "fr": 1} and prompts["a"] == {"de": 1, "fr": 1}
    written = [json.loads(l) for l in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert all(set(r) == {"context", "label", "image_id", "task", "lang"} for r in written)
