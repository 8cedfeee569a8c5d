"""Every stage's own bad-row budget (``<section>.max_bad_rows``), set on the
command line: with as many malformed records in its input as the budget
allows, the run goes on (each one reported); with one more than the budget,
it stops with exit 2 and one line that names the file and the stage's own key
("raise mscoco.max_bad_rows to go on"), never another stage's.

Final runs of the two-run sources read their translate step's output, which
the pipeline refuses when it changed after the step (a stale-output error
comes first), so their budgets are reached only through the steps tested here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from common.jsonl import write_jsonl
from tests.conftest import FIXTURES_RAW, PYTHON, REPO, root_sets, translation_sets
from tests.test_capfilt_generate import downloaded  # noqa: F401  (fixture)
from tests.test_download_images import server, write_input  # noqa: F401  (fixture)
from tests.test_match_generate import english_rows, setup as match_setup
from tests.test_match_hard_match import make_data, sets as hm_sets, tiny_clip  # noqa: F401  (fixture)

BROKEN = ['{"caption": "cut here', '{not json at all']   # two malformed lines


def add_broken_lines(path: Path) -> None:
    """Two malformed lines after the first row."""
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], *BROKEN, *lines[1:]]) + "\n", encoding="utf-8")


def add_broken_elements(path: Path) -> None:
    """Two malformed elements after the first element of a JSON array file."""
    items = json.loads(path.read_text(encoding="utf-8"))
    parts = [json.dumps(items[0]), '{"id": }', '{"question_id": [1, }', *(json.dumps(x) for x in items[1:])]
    path.write_text("[\n" + ",\n".join(parts) + "\n]\n", encoding="utf-8")


def raw_copy(tmp: Path, *own: str) -> Path:
    """A raw root whose folders ``own`` are copies (to corrupt) and the rest links to the fixtures."""
    raw = tmp / "raw"
    raw.mkdir()
    for d in FIXTURES_RAW.iterdir():
        if d.name in own:
            shutil.copytree(d, raw / d.name)
        else:
            (raw / d.name).symlink_to(d, target_is_directory=True)
    return raw


# Each case: (key, prepare). prepare(tmp, request) -> (main, argv, bad rows in the input, the file).
def _translate_file(tmp, request):
    from translate import translate_file
    inp = tmp / "in.jsonl"
    write_jsonl(inp, [{"text": f"A dog number {i}.", "lang": "de"} for i in range(4)])
    add_broken_lines(inp)
    return translate_file.main, [*root_sets(tmp), *translation_sets(), "--set", f"file.input={inp}",
                                 "--set", f"file.output={tmp / 'out.jsonl'}"], 2, inp


def _task_translate(task: str, english: str):
    def prepare(tmp, request):
        import importlib
        gen = importlib.import_module(f"tasks.{task}.generate_train")
        tr = importlib.import_module(f"tasks.{task}.translate_train")
        argv = [*root_sets(tmp), *translation_sets()]
        gen.main(argv)
        add_broken_lines(tmp / "work" / english)
        # Edited after its run, the English file would make its step stale (the translate
        # step refuses: test_faults_runs.py); without a run record it is taken as given.
        for record in (tmp / "work" / "pipeline").glob("*.english.json"):
            record.unlink()
        return tr.main, argv, 2, tmp / "work" / english
    return prepare


def _raw_array(task: str, folder: str, file: str, translated: bool = True):
    def prepare(tmp, request):
        import importlib
        gen = importlib.import_module(f"tasks.{task}.generate_train")
        raw = raw_copy(tmp, folder)
        add_broken_elements(raw / folder / file)
        argv = [*root_sets(tmp, raw), *(translation_sets() if translated else [])]
        return gen.main, argv, 2, raw / folder / file
    return prepare


def _capfilt_filter(tmp, request):
    from pretrain import filter as capfilt_filter
    raw = raw_copy(tmp, "blip")
    path = raw / "blip" / "ccs_synthetic_filtered_large.json"
    add_broken_elements(path)
    return capfilt_filter.main, [*root_sets(tmp, raw), "--set", "filter.min_captions=1",
                                 "--set", f"filter.index_dir={tmp / 'index'}", "--set", "filter.n_process=1"], 2, path


def _capfilt_download(tmp, request):
    from pretrain import download_images
    url = request.getfixturevalue("server")
    inp = tmp / "in.jsonl"
    write_input(inp, [{"url": f"{url}/photo.jpg", "caption": "a photo"}, *BROKEN,
                      {"url": f"{url}/missing.jpg", "caption": "gone"}])
    sets = {"download.input": inp, "download.threads": 2, "download.retries": 0, "download.progress": "false",
            "download.allow_hosts": "[127.0.0.1]"}
    return download_images.main, [*root_sets(tmp), *(x for k, v in sets.items() for x in ("--set", f"{k}={v}"))], 2, inp


def _capfilt_english(tmp, request):
    from pretrain import generate_train
    argv = request.getfixturevalue("downloaded")           # its input has one malformed line already
    path = tmp / "work" / "capfilt" / "capfilt_downloaded.jsonl"
    path.write_text(BROKEN[0] + "\n" + path.read_text())
    return generate_train.main, [*argv, *translation_sets()], 2, path


def _capfilt_translate(tmp, request):
    from pretrain import translate_train
    en = tmp / "capfilt_en.jsonl"
    write_jsonl(en, [{"id": f"r{i}", "image_id": f"r{i}.jpg", "caption": f"a photo of thing {i}"} for i in range(5)])
    add_broken_lines(en)
    return translate_train.main, [*root_sets(tmp), "--set", f"translate.input={en}",
                                  "--set", "translate.languages=[de,fr]", *translation_sets()], 2, en


def _match_translate(tmp, request):
    from match import translate_match_train
    argv = match_setup(tmp, english_rows(6))               # one malformed line already
    path = tmp / "work" / "match" / "capfilt_match_en.jsonl"
    path.write_text(BROKEN[0] + "\n" + path.read_text())
    return translate_match_train.main, argv, 2, path


def _match_mine(tmp, request):
    from match import hard_match
    model = request.getfixturevalue("tiny_clip")
    make_data(tmp, n_rows=12, n_images=6)         # a malformed line and a row without caption already
    path = tmp / "capfilt" / "capfilt_en.jsonl"
    path.write_text(BROKEN[0] + "\n" + path.read_text())
    return hard_match.main, hm_sets(tmp, model), 3, path


def _eval_pope(tmp, request):
    from eval_data.pope import convert
    raw = raw_copy(tmp, "pope")
    path = raw / "pope" / "output" / "coco" / "coco_pope_random.json"
    add_broken_lines(path)
    return convert.main, root_sets(tmp, raw), 2, path


CASES = {
    "translate.file": ("file.max_bad_rows", _translate_file),
    "capfilt.filter": ("filter.max_bad_rows", _capfilt_filter),
    "capfilt.download": ("download.max_bad_rows", _capfilt_download),
    "capfilt.english": ("generate.max_bad_rows", _capfilt_english),
    "capfilt.translate": ("translate.max_bad_rows", _capfilt_translate),
    "match.mine": ("match.max_bad_rows", _match_mine),
    "match.translate": ("translate.max_bad_rows", _match_translate),
    "mscoco.translate": ("mscoco.max_bad_rows", _task_translate("mscoco", "mscoco/captions_en.jsonl")),
    "vqav2.translate": ("vqav2.max_bad_rows", _task_translate("vqa", "vqav2/questions_en.jsonl")),
    "llava.translate": ("llava.max_bad_rows", _task_translate("llava", "llava/turns_en.jsonl")),
    "llava.english": ("llava.max_bad_rows", _raw_array("llava", "llava", "detail_23k.json")),
    "aokvqa.generate": ("aokvqa.max_bad_rows", _raw_array("aokvqa", "aokvqa", "aokvqa_v1p0_train.json", False)),
    "eval.pope": ("io.max_bad_rows", _eval_pope),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_stage_budget_at_its_edge(case, tmp_path, capsys, request):
    key, prepare = CASES[case]
    main, argv, n_bad, path = prepare(tmp_path, request)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([*argv, "--set", f"{key}={n_bad - 1}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2, err
    assert err[-1].startswith(f"error: {path}"), err[-1]
    assert err[-1].endswith(f"(more than {n_bad - 1} bad rows; raise {key} to go on)"), err[-1]
    main([*argv, "--set", f"{key}={n_bad}"])               # exactly the budget: the run goes on
    err = capsys.readouterr().err
    assert err.count(f"warning: skipped {path}") == n_bad, err[-3000:]
    assert "bad rows; raise" not in err


def test_the_budget_key_is_the_scripts_own_on_the_command_line(tmp_path):
    """translate_file.py takes file.max_bad_rows (io.max_bad_rows is eval_data's)."""
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, [{"text": "A dog.", "lang": "de"}] * 3)
    add_broken_lines(inp)
    base = [PYTHON, "translate/translate_file.py", *root_sets(tmp_path), *translation_sets(),
            "--set", f"file.input={inp}", "--set", f"file.output={tmp_path / 'out.jsonl'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([*base, "--set", "io.max_bad_rows=5"], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr.strip() == "error: --set: unknown config key 'io'", r.stderr
    r = subprocess.run([*base, "--set", "file.max_bad_rows=1"], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith(
        "(more than 1 bad rows; raise file.max_bad_rows to go on)"), r.stderr
    r = subprocess.run([*base, "--set", "file.max_bad_rows=2"], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stderr.count("warning: skipped") == 2, r.stderr
