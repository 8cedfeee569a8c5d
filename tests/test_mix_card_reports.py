"""Which step report the mix card reads (pretrain/mix_card.py ``step_report``):
a step's own report, or the sum of its shards' reports, whichever was written
last; only the shards of the newest sharded run; nothing where neither exists."""
from __future__ import annotations

import json
import os

from common.config import Config
from pretrain import mix_card

STEP = "capfilt.translate"


def cfg_of(tmp_path):
    return Config({"paths": {"work_dir": str(tmp_path / "work")}})


def put(tmp_path, name: str, body, mtime: int | None = None):
    p = tmp_path / "work" / "reports" / f"{name}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def whole(tag):
    return {"fallback_to_english": {"de": {"empty": tag}}, "tag": tag}


def shard(i, n, lang_counts, mtime):
    return (f"{STEP}.shard-{i:05d}-of-{n:05d}", {"fallback_to_english": lang_counts}, mtime)


def test_the_steps_own_report_when_there_are_no_shards(tmp_path):
    put(tmp_path, STEP, whole(1))
    assert mix_card.step_report(STEP, cfg_of(tmp_path)) == (whole(1), f"{STEP}.json")


def test_the_own_report_wins_when_it_is_newer_or_as_new_as_the_shards(tmp_path):
    for name, body, t in [shard(0, 2, {"de": {"empty": 5}}, 1000), shard(1, 2, {"de": {"empty": 6}}, 2000)]:
        put(tmp_path, name, body, t)
    put(tmp_path, STEP, whole(1), 3000)
    assert mix_card.step_report(STEP, cfg_of(tmp_path))[0] == whole(1)
    put(tmp_path, STEP, whole(2), 2000)            # as new as the newest shard
    assert mix_card.step_report(STEP, cfg_of(tmp_path))[0] == whole(2)


def test_newer_shards_are_summed_per_language_and_reason(tmp_path):
    put(tmp_path, STEP, whole(1), 1000)
    for name, body, t in [shard(0, 3, {"de": {"empty": 1, "off_target": 2}, "fr": {"empty": 1}}, 2000),
                          shard(1, 3, {"de": {"empty": 4}}, 2001),
                          shard(2, 3, {}, 2002)]:
        put(tmp_path, name, body, t)
    got, where = mix_card.step_report(STEP, cfg_of(tmp_path))
    assert got == {"fallback_to_english": {"de": {"empty": 5, "off_target": 2}, "fr": {"empty": 1}}}
    assert where == f"3 shard reports of {STEP}"


def test_only_the_shards_of_the_newest_sharded_run_count(tmp_path):
    for name, body, t in [shard(0, 2, {"de": {"empty": 100}}, 1000), shard(1, 2, {"de": {"empty": 100}}, 1001),
                          shard(0, 3, {"de": {"empty": 1}}, 2000), shard(1, 3, {"de": {"empty": 2}}, 2001)]:
        put(tmp_path, name, body, t)
    put(tmp_path, f"{STEP}.shard-00002-of-00003", "not json", 2002)   # unreadable: skipped
    got, where = mix_card.step_report(STEP, cfg_of(tmp_path))
    assert got == {"fallback_to_english": {"de": {"empty": 3}}} and where == f"2 shard reports of {STEP}"
    # Another step's shards are not this step's.
    put(tmp_path, "capfilt.translatex.shard-00000-of-00001", {"fallback_to_english": {"de": {"empty": 9}}}, 3000)
    assert mix_card.step_report(STEP, cfg_of(tmp_path))[0] == got


def test_no_report_at_all(tmp_path):
    assert mix_card.step_report(STEP, cfg_of(tmp_path)) == (None, f"no report {STEP}.json")
    (tmp_path / "work" / "reports").mkdir(parents=True)
    assert mix_card.step_report(STEP, cfg_of(tmp_path)) == (None, f"no report {STEP}.json")
    assert mix_card.step_report(STEP, Config({"paths": {"work_dir": ""}})) == (None, "paths.work_dir not set")


def test_fallbacks_are_read_from_the_translate_steps_of_the_mixs_tasks(tmp_path):
    put(tmp_path, "capfilt.translate", {"fallback_to_english": {"de": {"empty": 2}}})
    put(tmp_path, "mscoco.translate", {"fallback_to_english": {"de": {"empty": 1, "copied_source": 1}}})
    put(tmp_path, "vqav2.translate", {"counts": {}})                       # an older report: no fallbacks
    put(tmp_path, "match.translate", {"fallback_to_english": {"fr": {"empty": 7}}})   # capfilt_match: not asked
    got, sources = mix_card.fallbacks(["capfilt", "mscoco", "vqav2_vqa", "aokvqa_cot"], cfg_of(tmp_path))
    assert got == {"de": {"empty": 3, "copied_source": 1}}
    assert sources == {"capfilt.translate": "capfilt.translate.json", "mscoco.translate": "mscoco.translate.json",
                       "vqav2.translate": "not recorded (vqav2.translate.json)"}


# -- what the mix report explains, from the steps' reports ---------------------------------------------
def dec_task(dropped: dict, by_lang: dict, identical=0, kept=None):
    return {"rows_checked": 10, "rows_dropped": sum(dropped.values()), "dropped_by_eval_set": dropped,
            "kept_with_eval_image_by_eval_set": kept or {}, "dropped_by_language": by_lang,
            "rows_with_identical_text": identical, "identical_text_examples": []}


def test_decontamination_is_summed_over_the_mixs_steps(tmp_path):
    put(tmp_path, "capfilt.final", {"decontamination": {
        "eval_sets": {"pope": {"exclude": None, "images": 1, "files": ["f"], "applies": False},
                      "xm3600": {"exclude": True, "images": 5, "files": ["f"], "applies": True}},
        "exclusion_off": ["maxm"],
        "tasks": {"capfilt": dec_task({"xm3600": 2}, {"de": 2}, identical=1)}}})
    put(tmp_path, "mscoco.final", {"decontamination": {
        "eval_sets": {"pope": {"exclude": True, "images": 500, "files": ["g"], "applies": True},
                      "xm3600": {"exclude": False, "images": 9}},
        "exclusion_off": ["chair"],
        "tasks": {"mscoco": dec_task({"pope": 3, "xm3600": 1}, {"fr": 4}, identical=2),
                  "other_task": dec_task({"pope": 50}, {"fr": 50})}}})
    dec = mix_card.decontamination(["capfilt", "mscoco", "llava_detail", "imagenet_classify"], cfg_of(tmp_path))
    assert dec["tasks"] == {"capfilt": dec_task({"xm3600": 2}, {"de": 2}, identical=1),
                            "mscoco": dec_task({"pope": 3, "xm3600": 1}, {"fr": 4}, identical=2)}
    assert dec["rows_dropped"] == 6 and dec["dropped_by_eval_set"] == {"pope": 3, "xm3600": 3}
    assert dec["rows_with_identical_text"] == 3 and dec["exclusion_off"] == ["chair", "maxm"]
    # A set's summary from a step it applies to (exclude set) wins over one where it does not (None);
    # the file lists are left out.
    assert dec["eval_sets"] == {"pope": {"exclude": True, "images": 500}, "xm3600": {"exclude": True, "images": 5}}
    assert dec["not_recorded"] == ["llava_detail (no report llava.final.json)",
                                   "imagenet_classify (ImageNet train images: no evaluation set uses them)"]


def test_languages_of_the_mix_report(tmp_path):
    from common.languages import load_languages
    table = load_languages()
    report = {"mix": {"rows_per_language": {"en": 6, "de": 2}},
              "tasks": {"capfilt": {"rows_per_language": {"en": 3, "de": 1}},
                        "aokvqa_cot": {"rows_per_language": {"en": 3, "de": 1}}}}
    fell = {"fr": {"empty": 2, "off_target": 1}}
    dec = {"tasks": {"capfilt": {"dropped_by_language": {"sw": 4}}}}
    drew = {"drawn": {"en": 3, "de": 1}, "target_rows": {"en": 2, "de": 2}}
    got = mix_card.languages(report, fell, dec, drew, {"en": 5, "de": 3})
    assert list(got) == [c for c in table if c in ("en", "de", "fr", "sw")]      # the table's order
    assert got["de"] == {"name": table["de"].name, "target_share": 50.0, "drawn_rows": 1, "drawn_share": 25.0,
                         "prompt_rows": 3, "prompt_share": 37.5, "mix_rows": 2, "mix_share": 25.0,
                         "fell_back_to_english": {}, "dropped_eval_image": 0}
    assert got["fr"]["mix_rows"] == 0 and got["fr"]["mix_share"] == 0 and got["fr"]["drawn_rows"] == 0
    assert got["fr"]["fell_back_to_english"] == fell["fr"] and got["sw"]["dropped_eval_image"] == 4
    # An empty mix: shares of nothing are 0, not a division by zero.
    empty = mix_card.languages({"mix": {"rows_per_language": {}}, "tasks": {}}, fell, {"tasks": {}},
                               {"drawn": {}, "target_rows": {}}, {})
    assert list(empty) == ["fr"] and empty["fr"]["mix_share"] == 0.0 and empty["fr"]["drawn_share"] == 0.0


def test_explain_adds_the_three_parts(tmp_path):
    put(tmp_path, "capfilt.translate", {"fallback_to_english": {"de": {"empty": 2}, "fr": {"copied_source": 1}}})
    report = {"mix": {"rows_per_language": {"de": 1}},
              "tasks": {"capfilt": {"rows": 1, "rows_per_language": {"de": 1}}}}
    mix_card.explain(report, cfg_of(tmp_path), ["capfilt"])
    assert report["fallback_to_english"] == {"by_language": {"de": {"empty": 2}, "fr": {"copied_source": 1}},
                                             "recorded_in": {"capfilt.translate": "capfilt.translate.json"},
                                             "rows": 3}
    assert report["decontamination"]["not_recorded"] == ["capfilt (no report capfilt.final.json)"]
    assert set(report["languages"]) == {"de", "fr"}
    lines = mix_card.markdown_sections(report)
    assert "translation was rejected at the translate step and stayed English (3 rows in all)." in lines[2]
    de = next(x for x in lines if x.startswith("| de |"))
    assert de.endswith("| 100.000 | 1 | 2 (empty output 2) | 0 |")
    fr = next(x for x in lines if x.startswith("| fr |"))
    assert fr.endswith("| 0.000 | 0 | 1 (copied the English 1) | 0 |")
    assert mix_card._reasons({"b_new": 1, "empty": 2}) == "b_new 1, empty output 2" and mix_card._reasons({}) == ""


def test_the_decontamination_tables():
    t = {**dec_task({"pope": 1}, {}, identical=1, kept={"vqav2": 4}),
         "identical_text_examples": [{"task": "mscoco", "field": "label", "text": "A cat.", "eval_sets": ["a", "b"]}]}
    dec = {"rows_dropped": 1, "eval_sets": {"pope": {"exclude": True}, "vqav2": {"exclude": False},
                                            "xgqa": {"exclude": None, "note": "text only"}},
           "tasks": {"mscoco": t}, "exclusion_off": ["vqav2"], "not_recorded": ["x (why)", "y (why)"]}
    assert mix_card.decontamination_markdown(dec) == [
        "## Evaluation images and texts", "",
        "Rows dropped because their image is an evaluation image: **1**. A row can be counted under several "
        "sets (Karpathy test images are CHAIR's and VQAv2 val's too).", "",
        "| task | rows checked | dropped | pope | vqav2 | texts identical to an evaluation text |",
        "|---|---:|---:|---:|---:|---:|",
        "| mscoco | 10 | 1 | 1 | 0 | 1 |",
        "", "**Exclusion off** (their images stay in training, decontam.exclude.<set>=false): vqav2",
        "", "Rows kept with an evaluation image: mscoco: {'vqav2': 4}",
        "", "Not checked: x (why), y (why)",
        "", "Text-only evaluation sets (image overlap not computable):", "", "- xgqa: text only",
        "", "Training texts identical to an evaluation text (kept; examples):", "",
        '- mscoco label: "A cat." (a, b)']
    assert mix_card.decontamination_markdown({}) == [
        "## Evaluation images and texts", "",
        "Rows dropped because their image is an evaluation image: **0**. A row can be counted under several "
        "sets (Karpathy test images are CHAIR's and VQAv2 val's too).", ""]


def test_the_newest_sharded_run_may_have_fewer_shards(tmp_path):
    for name, body, t in [shard(0, 3, {"de": {"empty": 100}}, 1000), shard(1, 3, {"de": {"empty": 100}}, 1001),
                          shard(2, 3, {"de": {"empty": 100}}, 1002),
                          shard(0, 2, {"de": {"empty": 1}}, 2000), shard(1, 2, {"de": {"empty": 2}}, 2001)]:
        put(tmp_path, name, body, t)
    got, where = mix_card.step_report(STEP, cfg_of(tmp_path))
    assert got == {"fallback_to_english": {"de": {"empty": 3}}} and where == f"2 shard reports of {STEP}"


def test_a_translate_step_over_names_only_has_no_row_fallbacks(tmp_path):
    """ImageNet's translate step translates class names (it reads no rows): its report is not read."""
    put(tmp_path, "imagenet.translate", {"fallback_to_english": {"de": {"empty": 9}}})
    assert mix_card.fallbacks(["imagenet_classify", "imagenet_decide"], cfg_of(tmp_path)) == ({}, {})


def test_the_decontamination_notes_list_every_item():
    examples = [{"task": "t", "field": "label", "text": f"x{i}", "eval_sets": ["s"]} for i in range(12)]
    t = {**dec_task({}, {}, kept={"a": 1}), "identical_text_examples": examples}
    dec = {"eval_sets": {}, "tasks": {"t1": t, "t2": {**dec_task({}, {}, kept={"b": 2})}},
           "exclusion_off": ["chair", "vqav2"]}
    lines = mix_card.decontamination_markdown(dec)
    assert "**Exclusion off** (their images stay in training, decontam.exclude.<set>=false): chair, vqav2" in lines
    assert "Rows kept with an evaluation image: t1: {'a': 1}; t2: {'b': 2}" in lines
    assert [x for x in lines if x.startswith("- t label")] == [f'- t label: "x{i}" (s)' for i in range(10)]
