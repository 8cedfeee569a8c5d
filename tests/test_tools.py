"""The development tools in tests/tools/ run as scripts from the repo root, and the
translation benchmark runs on the corpus shipped in tests/fixtures/bench/."""
from __future__ import annotations

import collections
import json
import os
import subprocess

import pytest

from tests.conftest import PYTHON, REPO, SHARED_REAL

TOOLS = ["tiny_nllb", "tiny_clip", "make_task_fixtures", "make_eval_fixtures", "serve_web",
         "bench_download", "bench_search", "bench_translate", "calibrate_langid", "compare_segmenters", "mutation",
         "compare_stopwords", "tiny_lm", "fake_openai", "bench_openai", "bench_export", "language_split_table",
         "module_map"]
BENCH = REPO / "tests" / "fixtures" / "bench"


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_runs_as_a_script(tool):
    p = subprocess.run([PYTHON, f"tests/tools/{tool}.py", "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "usage:" in p.stdout, p.stderr[-2000:]


def test_bench_corpus_is_shipped_with_its_sources():
    rows = [json.loads(line) for line in (BENCH / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1000
    assert collections.Counter(r["source"] for r in rows) == {"gqa": 250, "flickr30k": 250, "xflickrco": 250,
                                                              "pope": 250}
    assert all(isinstance(r["text"], str) and r["text"].strip() for r in rows)
    readme = (BENCH / "README.md").read_text(encoding="utf-8")
    for f in {r["file"] for r in rows}:
        assert f"`{f}`" in readme, f"tests/fixtures/bench/README.md does not name {f}"
    assert (BENCH / "corpus.jsonl").stat().st_size < 300_000


def test_bench_corpus_is_the_deterministic_draw(tmp_path):
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real release files not found at {SHARED_REAL}")
    from tests.tools import bench_translate
    bench_translate.main(["--write-corpus", "--real", str(SHARED_REAL), "--corpus", str(tmp_path / "c.jsonl")])
    assert (tmp_path / "c.jsonl").read_bytes() == (BENCH / "corpus.jsonl").read_bytes()


def test_bench_runs_on_the_shipped_corpus(tmp_path):
    """A tiny run of `make bench` that needs nothing beside the clone."""
    out = tmp_path / "bench.json"
    p = subprocess.run([PYTHON, str(REPO / "tests/tools/bench_translate.py"), "--per-source", "2", "--d-model", "32",
                        "--layers", "1", "--vocab-size", "600", "--json", str(out)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["texts"] == 8 and res["engine_ct2_texts_per_s"] > 0


def test_bench_nllb_shapes_are_the_real_ones():
    from tests.tools import bench_translate as bt
    args = bt.argparse.Namespace(shape="nllb-200-3.3B", layers=None, d_model=None, ffn=None, heads=None,
                                 vocab_size=None)
    assert bt.model_dims(args) == {"layers": 24, "d_model": 2048, "ffn": 8192, "heads": 16, "vocab": 256206}
    args.shape, args.layers = "nllb-200-distilled-600M", 1
    assert bt.model_dims(args) == {"layers": 1, "d_model": 1024, "ffn": 4096, "heads": 16, "vocab": 256206}


def test_bench_runs_an_nllb_shape_on_cpu(tmp_path):
    """The real-architecture benchmark, CI-sized: the distilled-600M shape with its
    real 256,206-entry vocabulary, one layer each side and narrow widths, on 4 texts;
    every side (plain loop, engine hf, engine ctranslate2) reports texts/s and
    generated tokens/s. On a GPU the same command without the overrides gives R."""
    out = tmp_path / "bench.json"
    p = subprocess.run([PYTHON, str(REPO / "tests/tools/bench_translate.py"), "--shape", "nllb-200-distilled-600M",
                        "--layers", "1", "--d-model", "64", "--ffn", "128", "--heads", "2", "--per-source", "1",
                        "--device", "cpu", "--json", str(out)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["texts"] == 4 and res["device"] == "cpu" and "vocab=256206" in res["model"]
    for side in ("plain", "engine_hf", "engine_ct2"):
        assert res[f"{side}_texts_per_s"] > 0 and res[f"{side}_tokens_per_s"] > 0, side


def test_every_mutation_module_and_its_tests_exist():
    """make mutation skips a module whose file or tests are gone: a rename must update it."""
    from tests.tools.mutation import MODULES
    for module, tests in MODULES.items():
        assert (REPO / module).is_file(), module
        assert tests and all((REPO / t).is_file() for t in tests), (module, tests)


def test_synthetic_text_is_real_style_and_repeats_like_the_web():
    from tests.tools import synthetic
    caps = synthetic.captions(20000)
    assert caps == synthetic.captions(20000)                   # seeded
    assert 8600 < len(set(caps)) < 9600                         # issue 13's real-style sample: 9,094 of 20,000
    assert all(c == c.lower() and not c.endswith(".") and len(c.split()) >= 3 for c in caps[:2000])
    assert len(set(synthetic.captions(200000))) > 85000         # 10x: still about 45% distinct


def test_bench_filter_runs_ci_sized(tmp_path):
    out = tmp_path / "bench.json"
    p = subprocess.run([PYTHON, str(REPO / "tests/tools/bench_filter.py"), "--n", "300", "--repeat", "1",
                        "--json", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["captions"] == 300 and res["captions_parsed"] == res["distinct"] < 300
    assert res["ratio_before_dedupe"] > 0 and res["dedupe_gain"] > 0 and res["machine_ceiling"] > 0


def test_compare_stopwords_runs_ci_sized(tmp_path):
    """NLTK's list keeps number words and position nouns that spaCy's drops, so
    the two filters keep other phrases and draw other samples."""
    out = tmp_path / "cmp.json"
    p = subprocess.run([PYTHON, str(REPO / "tests/tools/compare_stopwords.py"), "--n", "600", "--min-captions", "3",
                        "--json", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["captions"] == 600 and 0 < res["captions_with_other_phrases"] < 600
    assert res["kept_only_nltk"] > 0 and res["sample_only_nltk"] + res["sample_only_spacy"] > 0
    assert res["sample_both"] + res["sample_only_nltk"] == res["sample"]["nltk"]
    dropped = dict(res["spacy_only_stopwords_top"])
    assert dropped.get("two", 0) > 0
    for caption, nltk, spacy in res["examples"]:
        assert nltk != spacy


def test_bench_memory_runs_ci_sized(tmp_path):
    """Two steps on a raw root at 1% of the 1x size: a row per step and scale, exit 0."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "mem.json"
    p = subprocess.run([PYTHON, str(REPO / "tests/tools/bench_memory.py"), "--scales", "0.01,0.02", "--only",
                        "mscoco.english,eval.pope", "--out", str(tmp_path / "w"), "--port", str(port),
                        "--json", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert {(r["step"], r["scale"]) for r in rows} == {(s, x) for s in ("mscoco.english", "eval.pope")
                                                       for x in (0.01, 0.02)}
    assert all(r["rc"] == 0 and r["peak_tree_mb"] > 0 for r in rows)
    assert "| 4.1 `mscoco.english` |" in p.stdout


def test_the_synthetic_raw_root_is_the_same_in_every_process(tmp_path):
    """The 1x/10x memory benchmark compares runs on these files: two processes with
    different string hashing must write the same bytes (a tie once went by set order)."""
    import filecmp
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"raw{seed}"
        p = subprocess.run([PYTHON, str(REPO / "tests/tools/synthetic_raw.py"), "--out", str(out), "--scale", "0.02"],
                           capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONHASHSEED": seed})
        assert p.returncode == 0, p.stderr[-2000:]
        outs.append(out)
    files = sorted(f.relative_to(outs[0]) for f in outs[0].rglob("*") if f.is_file())
    assert files == sorted(f.relative_to(outs[1]) for f in outs[1].rglob("*") if f.is_file())
    _, mismatch, errors = filecmp.cmpfiles(outs[0], outs[1], [str(f) for f in files], shallow=False)
    assert not mismatch and not errors, mismatch[:5]


def test_the_mutation_table_is_the_recorded_runs():
    """docs/testing.md's mutation table is generated from docs/mutation.json (the last run of each module)."""
    from tests.tools import mutation
    text = mutation.DOC.read_text(encoding="utf-8")
    block = text.split(mutation.BEGIN, 1)[1].split(mutation.END, 1)[0].strip()
    results = mutation.load_results()
    assert block == mutation.table(results), "edit nothing by hand: run make mutation (tests/tools/mutation.py)"
    assert set(results) <= set(mutation.MODULES)


def test_a_mutation_run_replaces_its_modules_rows_only(tmp_path):
    from tests.tools import mutation
    doc, res = tmp_path / "t.md", tmp_path / "m.json"
    doc.write_text(f"a\n{mutation.BEGIN}\nold\n{mutation.END}\nb\n", encoding="utf-8")
    one = {"module": "common/cli.py", "tests": ["tests/test_cli_status.py"], "total": 10, "killed": 8, "timeout": 1,
           "survived": 1, "no_tests": 0, "score": 90.0, "seconds": 12.3, "surviving": ["x"]}
    mutation.record_results([one, {"module": "common/status.py", "error": "boom"}], res, doc)
    mutation.record_results([{**one, "module": "common/records.py", "killed": 9, "timeout": 0}], res, doc)
    got = json.loads(res.read_text(encoding="utf-8"))
    assert sorted(got) == ["common/cli.py", "common/records.py"] and got["common/cli.py"]["surviving"] == ["x"]
    body = doc.read_text(encoding="utf-8")
    assert body.startswith(f"a\n{mutation.BEGIN}\n| module |") and body.endswith(f"{mutation.END}\nb\n")
    rows = [x for x in body.splitlines() if x.startswith("| `")]
    assert [x.split("`")[1] for x in rows] == ["common/records.py", "common/cli.py"]     # MODULES order
    assert rows[1].endswith("| 10 | 9 | 1 | 90.0% | " + got["common/cli.py"]["date"] + ", 12 s |")
