"""The second fault run (issue 20), as a new user meets each fault: one line
and exit 2 where the README promises one, a counted bad record where one record
is bad, a count that is right, a failure remembered only when it is a fact.
The "Faults and what you see" table in docs/faults.md points here."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import UserError, entry_point
from common.jsonl import BadRows, atomic_open, iter_json_array, load_json, read_json_object, read_jsonl, write_jsonl
from common.report import Report
from tests.conftest import FIXTURES_RAW, REPO, root_sets
from tests.test_download_images import config as download_config, server, statuses, write_input  # noqa: F401
from tests.test_faults import fails, file_argv, rows, small_jsonl  # noqa: F401

DEEP = "[" * 1500 + "]" * 1500     # one 3 KB line: json's recursive parser gives up on it


# -- A. one line, or one bad record, where there was a traceback -------------------------------------
def test_deep_json_line_in_translate_file_is_counted(tmp_path, capsys, small_jsonl):
    from translate import translate_file
    with open(small_jsonl, "a") as f:
        f.write(f'{{"text": {DEEP}, "lang": "de"}}\n')
    translate_file.main(file_argv(tmp_path, small_jsonl))
    report = json.loads((tmp_path / "work" / "reports" / "translate.file.json").read_text())
    assert report["counts"]["bad_rows"] == 1 and len(rows(tmp_path / "out.jsonl")) == 4


def test_yaml_alias_bomb_is_one_line_and_fast(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    bomb.write_text("\n".join(lines + ["filter: {seed: *i}"]) + "\n")
    assert len(bomb.read_bytes()) < 500
    # Work, not time: the run may use 30 s of CPU at most (RLIMIT_CPU: SIGXCPU past it), however
    # loaded the machine; walking the expanded aliases (9**9 values) would take many minutes of it.
    proc = subprocess.Popen([sys.executable, "pretrain/filter.py", "--config", str(bomb)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with contextlib.suppress(ProcessLookupError):
        resource.prlimit(proc.pid, resource.RLIMIT_CPU, (30, 30))
    _, stderr = proc.communicate(timeout=900)       # a hang guard only
    p = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"error: {bomb}: the YAML expands to more than 100000 values (aliases of aliases?): not a config"]


def capfilt_input(tmp_path: Path) -> list[str]:
    src = tmp_path / "in.json"
    src.write_text(json.dumps([{"url": f"http://example.com/{i}.jpg", "caption": "a dog"} for i in range(3)]))
    return [*root_sets(tmp_path, tmp_path), "--set", f"filter.input={src}", "--set", f"download.input={src}"]


@pytest.mark.parametrize("setting, expected", [
    ("download.threads=null", "config key 'download.threads' must be an integer, got null"),
    ("download.max_seconds=0", "download.max_seconds must be a number of seconds > 0"),
    ("download.connect_timeout=0", "download.connect_timeout must be a number of seconds > 0, got 0.0"),
    ("download.read_timeout=-1", "download.read_timeout must be a number of seconds > 0, got -1.0"),
    ("download.max_pixels=0", "download.max_pixels must be an integer >= 1 (pixels), got 0"),
    ("download.max_bytes=0", "download.max_bytes must be an integer >= 1 (bytes), got 0"),
    ("download.max_redirects=-1", "download.max_redirects must be an integer >= 0, got -1"),
    ("download.backoff=-1", "download.backoff must be a number of seconds >= 0, got -1.0"),
    ("download.background=[a,b,c]", "download.background must be three integers 0..255"),
    ("download.background=[0,0,300]", "download.background must be three integers 0..255"),
    ("download.fanout=9", "download.fanout must be within 0..4"),
    ("download.fanout=-1", "download.fanout must be within 0..4"),
])
def test_download_values_are_checked_before_any_work(tmp_path, capsys, setting, expected):
    from pretrain import download_images
    line = fails(capsys, download_images.main, [*capfilt_input(tmp_path), "--set", setting])
    assert expected in line
    assert not (tmp_path / "work" / "capfilt" / "download_status.jsonl.journal").exists()


@pytest.mark.parametrize("setting, expected", [
    ("filter.batch_size=0", "filter.batch_size must be an integer >= 1, got 0"),
    ("filter.batch_size=-5", "filter.batch_size must be an integer >= 1, got -5"),
    ("filter.n_process=-1", "filter.n_process must be an integer >= 1, got -1"),
])
def test_filter_values_are_checked_and_no_empty_index_is_cached(tmp_path, capsys, setting, expected):
    from pretrain import filter as capfilt_filter
    line = fails(capsys, capfilt_filter.main, [*capfilt_input(tmp_path), "--set", setting])
    assert expected in line
    assert not list((tmp_path / "work" / "capfilt").glob("phrase_index/*"))


def test_an_empty_phrase_index_is_neither_saved_nor_reused(tmp_path):
    from pretrain import filter as capfilt_filter
    fc = {"input": str(tmp_path / "in.json"), "index_dir": str(tmp_path / "index"), "spacy_model": "x",
          "stopwords": "nltk", "max_bad_rows": 10}
    Path(fc["input"]).write_text(json.dumps([{"url": "http://e.com/1.jpg", "caption": "a dog"}]))
    calls = []

    def nothing(pairs):      # an extractor that finds no phrase (what batch_size=0 gave)
        for _caption, i in pairs:
            calls.append(i)
            yield [], i
    capfilt_filter.get_index(Path(fc["input"]), fc, Report("t"), nothing, progress=False)
    capfilt_filter.get_index(Path(fc["input"]), fc, Report("t"), nothing, progress=False)
    assert calls == [0, 0]     # parsed again: nothing was cached


def test_truncated_translation_cache_is_one_line(tmp_path, capsys, small_jsonl):
    from translate import translate_file
    from translate.cache import TranslationCache
    cache = TranslationCache(tmp_path / "cache.db")
    cache.put_many([(str(i), "m", "en", "de", "x" * 200, "y" * 200) for i in range(3000)])
    cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache.close()
    data = (tmp_path / "cache.db").read_bytes()
    (tmp_path / "cut.db").write_bytes(data[:len(data) // 3])
    argv = file_argv(tmp_path, small_jsonl) + ["--set", f"translation.cache={tmp_path / 'cut.db'}"]
    line = fails(capsys, translate_file.main, argv)
    assert line.startswith(f"error: translation.cache: {tmp_path / 'cut.db'} is a truncated SQLite database")


def test_translate_file_with_a_list_as_language_is_a_bad_row(tmp_path, capsys):
    from translate import translate_file
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [{"text": "a dog", "lang": ["de"]}, {"text": "a cat", "lang": "de"}])
    translate_file.main(file_argv(tmp_path, src))
    assert "lang=['de'] is not in the language table" in capsys.readouterr().err
    assert [r["text"] for r in rows(tmp_path / "out.jsonl")] == ["[deu_Latn] a cat"]


def test_disk_full_is_one_line_naming_the_file(tmp_path, capsys):
    out = tmp_path / "out.jsonl"

    @entry_point
    def step():
        with atomic_open(out) as f:      # a write that fails as on a full disk (no file name in it)
            f.write("x")
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(SystemExit) as e:
        step()
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: writing {out}: No space left on device (free some space and rerun; this run is not recorded "
        "as done)"]
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))

    @entry_point
    def real():                          # the kernel's own ENOSPC
        with open("/dev/full", "w") as f:
            f.write("x")
    if Path("/dev/full").exists():
        with pytest.raises(SystemExit):
            real()
        assert "No space left on device" in capsys.readouterr().err


# -- B. values checked before any work -----------------------------------------------------------------
@pytest.mark.parametrize("bench", ["pope", "xgqa"])
def test_empty_eval_out_dir_never_means_the_current_folder(tmp_path, capsys, monkeypatch, bench):
    import importlib
    convert = importlib.import_module(f"eval_data.{bench}.convert")
    monkeypatch.chdir(tmp_path)
    line = fails(capsys, convert.main, [*root_sets(tmp_path, FIXTURES_RAW), "--set", f"{bench}.out_dir="])
    assert line.startswith(f"error: {bench}.out_dir is not set")
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_a_special_file_is_not_replaced(tmp_path, capsys, small_jsonl):
    from translate import translate_file
    fifo = tmp_path / "out.fifo"      # /dev/null would do as well, but a test must not risk it
    os.mkfifo(fifo)
    argv = file_argv(tmp_path, small_jsonl, f"file.output={fifo}")
    line = fails(capsys, translate_file.main, argv)
    assert "is a device or other special file, not a regular file" in line
    assert not fifo.is_file() and fifo.exists()


@pytest.mark.parametrize("sets, expected", [
    (["launch.num_shards=-1"], "launch.num_shards must be >= 0 (0: one shard per device)"),
    (["launch.num_shards=0", "launch.mode=combine"], "launch.num_shards must be the number of shards"),
])
def test_launch_num_shards_is_checked(tmp_path, sets, expected):
    from common import executors
    argv = ["translate.file", *[x for s in sets for x in ("--set", s)], "--", *root_sets(tmp_path)]
    with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        executors.parse(argv)


# -- C. empty inputs and duplicate ids -----------------------------------------------------------------
def test_an_empty_pope_split_exits_2_naming_the_file(tmp_path, capsys):
    from eval_data.pope import convert
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW / "pope", raw / "pope")
    split = next((raw / "pope").rglob("*_random.json"))
    split.write_text("")
    line = fails(capsys, convert.main, root_sets(tmp_path, raw))
    assert line == f"error: {split}: no records (an empty file? fetch it again)"
    assert not (tmp_path / "out" / "eval" / "pope" / "pope_random.jsonl").exists()
    split.write_text('{"question_id": 1, "image": "a.jpg", "text": "?", "label": "maybe"}\n')
    line = fails(capsys, convert.main, root_sets(tmp_path, raw))
    assert line.startswith("error: pope/output/coco/coco_pope_random.json: none of its 1 records could be used")


def test_an_empty_xm3600_file_exits_2(tmp_path, capsys):
    from eval_data.xm3600 import convert
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW / "iglue", raw / "iglue") if (FIXTURES_RAW / "iglue").is_dir() else None
    (raw / "xm3600").mkdir(parents=True)
    (raw / "xm3600" / "captions.jsonl").write_text("")
    line = fails(capsys, convert.main, root_sets(tmp_path, raw))
    assert line == f"error: {raw / 'xm3600' / 'captions.jsonl'}: no records (an empty file? fetch it again)"


def test_a_vqav2_question_id_of_two_questions_keeps_the_first(tmp_path):
    from common.config import build_config
    from tasks.vqa.settings import joined
    from tests.test_tasks_vqav2 import CONFIG, DEFAULTS, sets
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW, raw, ignore=shutil.ignore_patterns("*.jpg", "*.png"))
    qfile = next((raw / "vqav2").glob("*train2014_questions.json"))
    data = json.loads(qfile.read_text())
    first = data["questions"][0]
    data["questions"] += [dict(first, question="A different question?"), dict(first)]
    qfile.write_text(json.dumps(data))
    args = [a.replace(str(FIXTURES_RAW), str(raw)) for a in sets(tmp_path)[1::2]] + ["vqav2.check_images=false"]
    report = Report("t")
    got = [q for q in joined(build_config(DEFAULTS, CONFIG, args), "train", report)
           if q["question_id"] == first["question_id"]]
    assert [q["question"] for q in got] == [" ".join(first["question"].split())]
    assert report.skipped["train: question_id of another question (first kept)"] == 1
    assert report.skipped["train: duplicate question (first kept)"] == 1


def test_duplicate_llava_records_are_reported(tmp_path):
    from common.config import build_config
    from tasks.llava.generate_train import DEFAULTS, english_rows
    from tests.test_tasks_aokvqa_llava import sets
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES_RAW / "llava", raw / "llava")
    detail = raw / "llava" / "detail_23k.json"
    data = json.loads(detail.read_text())
    detail.write_text(json.dumps(data + [data[0]]))
    args = [a for a in sets(tmp_path)[1::2]] + [f"llava.detail_file={detail}"]
    cfg = build_config(DEFAULTS, REPO / "configs" / "llava.yaml", args)
    report = Report("t")
    list(english_rows(cfg, report))
    assert report.skipped["duplicate record (first kept)"] == 1


# -- D. counts -------------------------------------------------------------------------------------------
def test_rows_translated_counts_rows_with_text(tmp_path, capsys):
    from translate import translate_file
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [{"text": "a dog", "lang": "de"}, {"text": "", "lang": "de"}, {"lang": "fr"},
                      {"text": "a cow", "lang": "fr"}, {"text": "x", "lang": "en"}, {"text": None, "lang": "de"},
                      {"text": [], "lang": "de"}])
    translate_file.main(file_argv(tmp_path, src))
    report = json.loads((tmp_path / "work" / "reports" / "translate.file.json").read_text())
    assert report["counts"]["rows"] == 7 and report["counts"]["rows_translated"] == 2


# -- E. failures remembered only when they are facts -----------------------------------------------------
def test_a_limit_of_the_config_is_not_a_permanent_failure(tmp_path, server):  # noqa: F811
    from pretrain import download_images as dl
    dc = download_config(tmp_path, max_bytes=500)
    write_input(Path(dc["input"]), [{"url": f"{server}/photo.jpg", "caption": "a"},
                                    {"url": f"{server}/missing.jpg", "caption": "b"}])
    dl.run(dc, Report("t"), progress=False)
    st = statuses(dc)
    assert st["photo.jpg"]["kind"] == "too_large" and st["photo.jpg"]["limit"] == 500
    dl.run(dc, Report("t"), progress=False)          # the same limit: not fetched again
    assert "not retried" in statuses(dc)["photo.jpg"]["detail"]
    dl.run(download_config(tmp_path), Report("t"), progress=False)   # the limit fixed
    st = statuses(dc)
    assert st["photo.jpg"]["kind"] == "ok" and "not retried" in st["missing.jpg"]["detail"]
