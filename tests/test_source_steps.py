"""translate/source.py as a step runs it (MSCOCO, dry-run engine, in this
process): what the translate step's report records, which shard builds the
template store, what a missing input or a bad language split says, and the
generate script's two runs."""
from __future__ import annotations

import collections
import json

import pytest

from common import cli, pipeline
from common.errors import UserError
from common.report import Report
from tasks.mscoco import generate_train, translate_train
from tests.test_tasks_mscoco import sets
from translate import source


def report_of(tmp, step_id):
    return json.loads((tmp / "work" / "reports" / f"{step_id}.json").read_text())


def test_the_translate_report_holds_the_draws_their_policy_and_the_engine(tmp_path):
    generate_train.main(sets(tmp_path))
    translate_train.main(sets(tmp_path))
    rep = report_of(tmp_path, "mscoco.translate")
    rows = (tmp_path / "work" / "mscoco" / "captions_en.jsonl").read_text().splitlines()
    assert rep["counts"]["rows"] == len(rows) == sum(rep["drawn"].values()) == 9
    translated = [json.loads(x) for x in
                  (tmp_path / "work" / "mscoco" / "captions_translated.jsonl").read_text().splitlines()]
    assert dict(sorted(collections.Counter(r["lang"] for r in translated).items())) == rep["drawn"]
    assert rep["counts"]["rows_translated"] == sum(n for c, n in rep["drawn"].items() if c != "en")
    assert rep["language_split"]["policy"] == "mc4"
    shares = rep["language_split"]["target_percent"]
    assert abs(sum(shares.values()) - 100) < 1e-6 and shares["de"] > shares["af"]
    assert rep["fallback_to_english"] == {} and rep["languages_without_a_translated_template"] == 0
    assert rep["translation"]["texts_in"] > 0
    store = json.loads((tmp_path / "work" / "mscoco" / "templates_translated.json").read_text())
    assert store["key"]["languages"] and store["translated"]


def test_only_shard_0_builds_the_template_store(tmp_path):
    generate_train.main(sets(tmp_path))
    store = tmp_path / "work" / "mscoco" / "templates_translated.json"
    translate_train.main(sets(tmp_path, "--set", "run.num_shards=2", "--set", "run.shard_index=1"))
    assert not store.exists()
    (path,) = (tmp_path / "work" / "reports").glob("mscoco.translate*1*.json")
    rep = json.loads(path.read_text())
    assert "languages_without_a_translated_template" not in rep and "translation" in rep
    translate_train.main(sets(tmp_path, "--set", "run.num_shards=2", "--set", "run.shard_index=0"))
    assert store.is_file()


def test_a_translate_step_without_its_input_names_the_step_to_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        translate_train.main(sets(tmp_path))
    assert e.value.code == 2
    err = capsys.readouterr().err
    english = pipeline.get("mscoco.english")
    assert "input not found:" in err and "captions_en.jsonl" in err
    assert f"run step {english.number} (mscoco.english): python tasks/mscoco/generate_train.py" in err
    assert f"paths.work_dir={tmp_path}/work" in err       # with the user's own options


def test_a_bad_language_split_is_refused_before_any_work_naming_its_key(tmp_path, capsys):
    generate_train.main(sets(tmp_path))
    with pytest.raises(SystemExit):
        translate_train.main(sets(tmp_path, "--set", "mscoco.language_split.policy=evenly"))
    err = capsys.readouterr().err
    assert "mscoco.language_split.policy: 'evenly' is not one of" in err
    assert not (tmp_path / "work" / "reports" / "mscoco.translate.json").exists()


def test_split_key_and_drawing_split(tmp_path):
    mscoco = cli.load_config(pipeline.get("mscoco.translate"), sets(tmp_path))
    capfilt = cli.load_config(pipeline.get("capfilt.translate"), sets(tmp_path))
    assert source.split_key("mscoco.translate", mscoco) == "mscoco.language_split"
    assert source.split_key("capfilt.translate", capfilt) == "translate.language_split"
    assert source.drawing_split("mscoco.translate", mscoco, ["en", "de"]) == {"policy": "mc4"}
    share = cli.load_config(pipeline.get("mscoco.translate"),
                            [*sets(tmp_path), "--set", "mscoco.language_split.policy=english_share",
                             "--set", "mscoco.language_split.english=0.25"])
    assert source.drawing_split("mscoco.translate", share, ["en", "de"]) == {"policy": "english_share",
                                                                            "english": 0.25}
    with pytest.raises(UserError, match="mscoco.language_split.english: an English share"):
        source.drawing_split("mscoco.translate", share, ["de", "fr"])


@pytest.mark.parametrize("translated,template_sets,count,warning", [
    ({"ask": {"de": ["x"], "fr": ["y"]}}, {"ask": ["a"]}, 0, None),
    ({"ask": {"de": [], "fr": ["y"]}, "tell": {"de": []}}, {"ask": ["a"]}, 1, "1 of 2 languages (de)"),
    ({"ask": {}}, {"ask": ["a"]}, 2, "every language (de, fr)"),
    ({}, {}, 0, None),                      # no templates: nothing to warn about
])
def test_languages_left_without_a_translated_template(translated, template_sets, count, warning, capsys):
    report = Report("t")
    source._check_templates(translated, template_sets, ["en", "de", "fr"], report)
    assert report.extra["languages_without_a_translated_template"] == count
    err = capsys.readouterr().err
    if warning is None:
        assert "WARNING" not in err
    else:
        assert f"WARNING: no translated template for {warning}: every translation was rejected" in err


def test_more_than_twelve_languages_without_a_template_are_cut_short(capsys):
    codes = ["en"] + [f"l{i:02d}" for i in range(14)]
    source._check_templates({"ask": {}}, {"ask": ["a"]}, codes, Report("t"))
    err = capsys.readouterr().err
    assert f"({', '.join(codes[1:13])} ...)" in err and "l12" not in err


def test_write_by_key_writes_each_key_to_its_file_and_counts_prompt_and_target(tmp_path):
    paths = {"a": tmp_path / "a.jsonl", "b": tmp_path / "b.jsonl"}
    pairs = [("a", {"x": 1, "lang": "de"}), ("b", {"x": 2, "lang": "en", source.PROMPT_LANG: "fr"}),
             ("a", {"x": 3, "lang": "de", source.PROMPT_LANG: ""}), ("b", {"x": 4})]
    prompts = {}
    langs = source.write_by_key(paths, iter(pairs), prompts)
    assert [json.loads(x) for x in paths["a"].read_text().splitlines()] == [{"x": 1, "lang": "de"},
                                                                          {"x": 3, "lang": "de"}]
    assert [json.loads(x) for x in paths["b"].read_text().splitlines()] == [{"x": 2, "lang": "en"}, {"x": 4}]
    assert langs == {"a": {"de": 2}, "b": {"en": 1, None: 1}}
    assert prompts == {"a": {"de": 2}, "b": {"fr": 1, None: 1}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl"]     # no temporaries left
    assert source.write_by_key({"c": tmp_path / "c.jsonl"}, [("c", {"lang": "iw"})]) == {"c": {"iw": 1}}


def test_rerun_hint_names_the_step_and_keeps_the_users_options():
    step = pipeline.get("vqav2.translate")
    hint = source.rerun_hint("vqav2.translate", ["--set", "paths.work_dir=/w", "--set", "vqav2.seed=4"])
    assert hint.startswith(f"step {step.number} (vqav2.translate): python tasks/vqa/translate_train.py")
    assert "--set paths.work_dir=/w" in hint and "--set vqav2.seed=4" in hint


def test_generate_runs_the_part_chosen_and_fails_on_writing_nothing(tmp_path, capsys):
    argv = sets(tmp_path)
    cfg = cli.load_config(pipeline.get("mscoco.english"), argv)
    calls = []

    def part(name, rows):
        def run():
            calls.append(name)
            return source.Written(Report(f"mscoco.{name}"), {str(tmp_path / f"{name}.jsonl"): rows},
                                  empty_error=f"{name}: no rows")
        return run
    with pytest.raises(UserError, match="english: no rows"):
        source.generate("mscoco", cfg, part("english", 0), part("final", 5), wanted="english", argv=argv)
    assert calls == ["english"]
    assert source.generate("mscoco", cfg, part("english", 3), part("final", 5), "english", argv) == "english"
    err = capsys.readouterr().err
    assert f"wrote 3 rows -> {tmp_path / 'english.jsonl'}" in err
    assert report_of(tmp_path, "mscoco.english")["run"] == "english"
    # the final part only runs once the translation is done on the English file
    with pytest.raises(UserError, match=r"cannot write the final file: step \S+ \(mscoco.english\)"):
        source.generate("mscoco", cfg, part("english", 3), part("final", 5), "final", argv)
    assert calls == ["english", "english"]
