"""The mix report's markdown and the dataset card, line by line, as a reader
(and a hub) sees them: a LLaVA mix with fallbacks in two shards, one
evaluation set excluded and one not, a text-only set and an identical text."""
from __future__ import annotations

import json

import yaml

from common.jsonl import write_jsonl
from common.languages import load_languages, target_percent
from pretrain import merge_train, mix_card
from tests.conftest import root_sets
from tests.test_mix_card import reports


def llava_mix(tmp_path, rows=30):
    train, work = tmp_path / "out" / "train", tmp_path / "work"
    write_jsonl(train / "llava_conversation.jsonl",
                [{"context": f"Q{i}?", "label": f"A{i}.", "image_id": f"COCO_train2014_{i:012d}.jpg",
                  "task": "llava_conversation", "lang": ["en", "de", "iw"][i % 3]} for i in range(rows)])
    drew = {"drawn": {"en": 14, "de": 12, "iw": 10, "fr": 4},
            "language_split": {"policy": "temperature", "alpha": 0.3,
                               "target_percent": target_percent(list(load_languages()))}}
    reports(work, "llava.translate.shard-00000-of-00002", {"fallback_to_english": {"de": {"off_target": 2}}, **drew})
    reports(work, "llava.translate.shard-00001-of-00002",
            {"fallback_to_english": {"de": {"length_ratio": 1}, "fr": {"off_target": 3}}, **drew})
    dec_task = {"rows_checked": 34, "rows_dropped": 4, "dropped_by_eval_set": {"pope": 1, "vqav2": 3},
                "kept_with_eval_image_by_eval_set": {"vqav2": 2}, "dropped_by_language": {"de": 3, "en": 1},
                "rows_with_identical_text": 1, "identical_text_by_eval_set": {"vqav2": 1},
                "identical_text_examples": [{"task": "llava_conversation", "field": "context",
                                             "text": "What is the man riding?", "eval_sets": ["vqav2", "gqa"]}]}
    reports(work, "llava.final", {"decontamination": {
        "eval_sets": {"pope": {"title": "POPE", "exclude": True, "images": 500, "texts": 9000, "files": ["x"]},
                      "vqav2": {"title": "VQAv2 val", "exclude": False, "images": 40504, "texts": 1},
                      "maxm": {"title": "MaXM", "exclude": None, "note": "texts only"}},
        "exclusion_off": ["vqav2"], "key": "k", "tasks": {"llava_conversation": dec_task}}})
    cfg = {"merge": {"inputs": [{"path": str(train / "llava_conversation.jsonl"), "source": "llava"}],
                     "licences": {"llava": "CC BY-NC 4.0"}, "licence_ids": {"llava": "cc-by-nc-4.0"},
                     "pretty_name": "Test \"mix\" ü"}}
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump(cfg))
    merge_train.main(["--config", str(tmp_path / "merge.yaml"), *root_sets(tmp_path)])
    return train, json.loads((train / "task_mix_report.json").read_text())


def test_the_languages_section_line_by_line(tmp_path):
    train, report = llava_mix(tmp_path)
    md = (train / "task_mix_report.md").read_text()
    section = md.split("## Languages\n\n", 1)[1].split("\n\n## ", 1)[0].splitlines()
    assert section[0] == (
        "Drawn: the languages the translate steps drew, one per row, by their language-split policy "
        "(llava.translate: temperature 0.3; 40 rows drawn), before any fallback to English; target: the share "
        "the policies ask for. Prompt and target: rows of the mix by the language of the prompt and of the "
        "target (the row's `lang`): a VQAv2 question in the drawn language with an English answer counts "
        "under its language as a prompt and under English as a target. A-OKVQA is English and ImageNet has "
        "every language in equal measure, so the whole mix differs from the draws. Fell back: rows whose "
        "translation was rejected at the translate step and stayed English (6 rows in all).")
    assert section[2] == ("| lang | name | target % | drawn % | drawn rows | prompt % | prompt rows | target % (mix) "
                          "| target rows | fell back to English (why) | dropped: evaluation image |")
    assert section[3] == "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    de = report["languages"]["de"]
    assert f"| de | German | {de['target_share']:.3f} | 30.000 | 12 | 33.333 | 10 | 33.333 | 10 | 3 " \
           "(length out of bounds (too long or short) 1, off-target language 2) | 3 |" in section
    fr = report["languages"]["fr"]
    assert f"| fr | French | {fr['target_share']:.3f} | 10.000 | 4 | 0.000 | 0 | 0.000 | 0 | 3 " \
           "(off-target language 3) | 0 |" in section
    en = report["languages"]["en"]
    assert f"| en | English | {en['target_share']:.3f} | 35.000 | 14 | 33.333 | 10 | 33.333 | 10 | 0 | 1 |" in section
    assert [x.split(" | ")[0] for x in section[4:]] == [f"| {c}" for c in report["languages"]]


def test_the_decontamination_section_line_by_line(tmp_path):
    train, _ = llava_mix(tmp_path)
    md = (train / "task_mix_report.md").read_text()
    section = md.split("## Evaluation images and texts\n\n", 1)[1].splitlines()
    assert section == [
        "Rows dropped because their image is an evaluation image: **4**. A row can be counted under several "
        "sets (Karpathy test images are CHAIR's and VQAv2 val's too).",
        "",
        "| task | rows checked | dropped | pope | vqav2 | texts identical to an evaluation text |",
        "|---|---:|---:|---:|---:|---:|",
        "| llava_conversation | 34 | 4 | 1 | 3 | 1 |",
        "",
        "**Exclusion off** (their images stay in training, decontam.exclude.<set>=false): vqav2",
        "",
        "Rows kept with an evaluation image: llava_conversation: {'vqav2': 2}",
        "",
        "Not checked: " + md.split("Not checked: ", 1)[1].split("\n", 1)[0],
        "",
        "Text-only evaluation sets (image overlap not computable):",
        "",
        "- maxm: texts only",
        "",
        "Training texts identical to an evaluation text (kept; examples):",
        "",
        "- llava_conversation context: \"What is the man riding?\" (vqav2, gqa)"]
    assert "capfilt (no report capfilt.final.json)" in section[10]


def test_no_draws_and_nothing_checked_say_so():
    lines = mix_card.markdown_sections({})
    assert "(none recorded; 0 rows drawn)" in lines[2] and "(0 rows in all)." in lines[2]
    assert lines[3:6] == ["", "| lang | name | target % | drawn % | drawn rows | prompt % | prompt rows | "
                          "target % (mix) | target rows | fell back to English (why) | dropped: evaluation image |",
                          "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    assert lines[6:] == ["", "## Evaluation images and texts", "",
                         "Rows dropped because their image is an evaluation image: **0**. A row can be counted "
                         "under several sets (Karpathy test images are CHAIR's and VQAv2 val's too).", ""]
    two = mix_card.markdown_sections({"draws": {"rows": 5, "not_recorded": ["a.translate (no report)", "b"],
                                                "policies": {"a": {"policy": "mc4"},
                                                             "b": {"policy": "english_share", "english": 0.5}}}})
    assert "(a: mc4; b: english_share 0.5; 5 rows drawn)" in two[2]
    assert two[3:5] == ["", "Draws not recorded: a.translate (no report), b"]


def test_the_card_line_by_line(tmp_path):
    train, report = llava_mix(tmp_path)
    card = (train / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert front.splitlines() == [
        'pretty_name: "Test \\"mix\\" ü"', "language:", "- de", "- en", "- he", "license:", "- cc-by-nc-4.0",
        "multilinguality:", "- multilingual", "size_categories:", "- n<1K", "task_categories:",
        "- visual-question-answering", "configs:", "- config_name: default", "  default: true", "  data_files:",
        "  - split: train", "    path: task_mix.jsonl", "- config_name: llava_conversation", "  data_files:",
        "  - split: train", "    path: llava_conversation.jsonl"]
    assert yaml.safe_load(front)["pretty_name"] == 'Test "mix" ü'
    lines = body.splitlines()
    m = report["mix"]
    assert lines[:13] == [
        "", '# Test "mix" ü', "",
        f"{m['rows']} image-text training examples in 3 languages on {m['distinct_images']} distinct images: "
        "captioning, image-caption matching, visual question answering and question generation, reasoning, "
        "conversation and classification. English examples were machine-translated (NLLB-200), each into one "
        "language drawn by its mC4 share. Each row has `context` (the instruction), `label` (the target), "
        "`image_id` (the image's path under its collection's root), `task` and `lang`.",
        "",
        "Images are not included: get them from their sources (MS COCO 2014 train/val, the BLIP CapFilt web "
        "URLs, ImageNet train) and resolve `image_id` against each collection's root.",
        "", "## Tasks", "", "| task | source | rows | distinct images | languages | licence |",
        "|---|---|---:|---:|---:|---|",
        f"| llava_conversation | llava | 30 | {report['tasks']['llava_conversation']['distinct_images']} | 3 | "
        "CC BY-NC 4.0 |",
        ""]
    assert lines[13] == ("Using the mix means following the licence and terms of every source above; the "
                         "`license` list in the header names them, the most restrictive (non-commercial) included.")
    assert lines[14:16] == ["", "## Languages"]
    assert card.endswith("(vqav2, gqa)\n")
    assert body.split("## Languages", 1)[1] == \
        (train / "task_mix_report.md").read_text().split("## Languages", 1)[1]


def test_one_language_is_monolingual_and_tasks_without_rows_name_no_licence_or_category(tmp_path):
    from common import cli, pipeline
    cfg = cli.load_config(pipeline.get("merge"), root_sets(tmp_path))
    report = {"tasks": {"mscoco": {"source": "mscoco", "rows": 2000}, "capfilt": {"source": "blip", "rows": 0},
                        "imagenet_classify": {"source": "imagenet", "rows": 5}},
              "mix": {"rows": 2005, "rows_per_language": {"iw": 2005}}}
    lines = mix_card.front_matter(report, cfg, "mix.jsonl", {"mscoco": "mscoco.jsonl"})
    ids = cfg.at("merge.licence_ids")
    assert lines[2:4] == ["language:", "- he"]
    assert lines[4:5 + 2] == ["license:", *sorted(f"- {ids[s]}" for s in ("mscoco", "imagenet"))]
    assert "- monolingual" in lines and "- 1K<n<10K" in lines
    cats = lines[lines.index("task_categories:") + 1:lines.index("configs:")]
    assert cats == ["- image-classification", "- image-to-text"]
    assert lines[-5:] == ["- config_name: mscoco", "  data_files:", "  - split: train", "    path: mscoco.jsonl",
                          "---"]
    other = {**report, "tasks": {"x": {"source": "nobody", "rows": 1}}}
    assert "- other" in mix_card.front_matter(other, cfg, "mix.jsonl", {})
    assert mix_card.size_category(999_999_999) == "100M<n<1B" and mix_card.size_category(10**9) == "n>1B"
