"""The real backends (transformers and CTranslate2) on a tiny NLLB model, and
the kill-and-resume guarantee of the cache."""
import copy
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from common.jsonl import read_jsonl, write_jsonl
from tests.conftest import REPO, root_sets
from translate.engine import TRANSLATION_DEFAULTS, Engine

# A random-weight model babbles; these bounds keep its outputs so they can be compared.
PERMISSIVE = {"min_ratio": 0.0, "max_ratio": 1e9, "min_chars_for_ratio": 10**6,
              "min_words_for_copy": 10**6, "max_repeats": 10**6}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models on a busy 2-core machine: OpenMP threads spinning against each
    other make them several times slower. Restored for the other test files."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def engine_for(backend, model, **kw):
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    cfg.update(backend=backend, model=str(model), ct2_model=str(model / "ct2"), device="cpu",
               cache="", progress=False, quality=PERMISSIVE)
    cfg.update(kw)
    return Engine(cfg)


@pytest.mark.parametrize("backend", ["hf", "ctranslate2"])
def test_backend_translates_mixed_targets_in_one_batch(tiny_nllb, backend):
    eng = engine_for(backend, tiny_nllb)
    texts = ["A dog runs on the grass.", "Is there a cat?", "A dog runs on the grass.", ""]
    res = eng.translate(texts, ["de", "zh", "fr", "de"])
    assert all(isinstance(r.text, str) for r in res)
    assert res[3].text == ""
    assert eng.summary()["model_calls"] == 1  # three segments, two targets, one batch
    # Deterministic: a second engine gives the same strings.
    assert [r.text for r in engine_for(backend, tiny_nllb).translate(texts, ["de", "zh", "fr", "de"])] == \
        [r.text for r in res]


@pytest.fixture(scope="module")
def sensitive_nllb(tiny_nllb, tmp_path_factory):
    """The tiny model with large random weights: its (still meaningless) output
    depends on the input and on the target code, unlike the default tiny model's,
    so mixed-up rows or a target not forced per row would show."""
    import shutil

    import torch
    from transformers import M2M100ForConditionalGeneration

    from translate.convert_ct2 import convert_ct2
    out = tmp_path_factory.mktemp("sensitive") / "model"
    shutil.copytree(tiny_nllb, out, ignore=shutil.ignore_patterns("ct2"))
    model = M2M100ForConditionalGeneration.from_pretrained(tiny_nllb)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 1.0)
    model.save_pretrained(out)
    convert_ct2(out, out / "ct2", quantization="int8")
    return out


@pytest.mark.parametrize("backend", ["hf", "ctranslate2"])
def test_batch_output_equals_one_by_one_and_targets_are_forced_per_row(sensitive_nllb, backend):
    """Batch invariance: NLLB pads on the right and M2M100 derives positions from
    the padding mask, so a row's output does not depend on its batch mates."""
    texts = ["A dog.", "A man in a blue shirt is riding a bicycle down the street near a lake.",
             "Is there a cat?", "Two children are playing with a red ball in the park today.", "A dog."]
    tgts = ["deu_Latn", "fra_Latn", "zho_Hans", "swh_Latn", "jpn_Jpan"]
    be = engine_for(backend, sensitive_nllb).backend
    # A fixed cap: the engine's cap follows the longest input of a batch, which
    # would make the lengths differ for outputs that never stop (random weights).
    together = be.translate_batch(texts, "eng_Latn", tgts, 24)
    one_by_one = [be.translate_batch([t], "eng_Latn", [g], 24)[0] for t, g in zip(texts, tgts)]
    assert together == one_by_one
    assert len(set(together)) == len(texts)  # input- and target-dependent outputs
    assert together[0] != together[4]  # same text, other target


def test_generation_is_capped_relative_to_input(tiny_nllb):
    eng = engine_for("hf", tiny_nllb, length_factor=1.0, length_extra=2, max_new_tokens=50)
    text = "A dog."
    out = eng.translate([text], ["de"])[0].text
    n_in = eng.backend.count_tokens([text], "eng_Latn")[0]
    n_out = len(eng.backend._tokenizer("eng_Latn")(out, add_special_tokens=False)["input_ids"])
    assert n_out <= n_in + 2 + 1


def test_quality_checks_decide_what_comes_back(tiny_nllb):
    from translate import quality
    src = "A man in a blue shirt is riding a bicycle down the street."
    raw = engine_for("hf", tiny_nllb).translate([src], ["de"])[0].text  # checks off: the model's output
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    cfg.update(backend="hf", model=str(tiny_nllb), device="cpu", cache="", progress=False)
    eng = Engine(cfg)
    res = eng.translate([src], ["de"])[0]
    expected = quality.check(src, raw, "deu_Latn", **TRANSLATION_DEFAULTS["quality"])
    assert res.reason == expected
    assert res.text == (None if expected else raw)
    assert eng.summary().get("rejected", 0) == (1 if expected else 0)
    assert [r["reason"] for r in eng.rejects] == ([expected] if expected else [])


def _run_translate(args, **kw):
    return subprocess.Popen([sys.executable, "translate/translate_file.py", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _summary(stderr):
    line = next(x for x in stderr.splitlines() if x.startswith("[translate] texts_in"))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


def test_kill_and_resume_finishes_without_retranslating(tiny_nllb, tmp_path):
    rows = [{"id": i, "text": f"Picture {i}: a dog with {i % 13} balls runs near the {i % 7} trees.",
             "lang": ["de", "fr", "zh", "sw"][i % 4]} for i in range(600)]
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, rows)

    def args(out, cache):
        sets = [f"file.input={inp}", f"file.output={out}", "file.fields=[text]",
                "translation.backend=hf", f"translation.model={tiny_nllb}", f"translation.cache={cache}",
                "translation.max_batch_tokens=200", "translation.flush_segments=1",
                "translation.progress=false", "translation.device=cpu",
                # One torch thread: on a busy 2-core machine OpenMP threads spin
                # against each other and make this tiny model 5x slower.
                "translation.threads=1",
                "translation.quality.min_ratio=0", "translation.quality.max_ratio=1000000000",
                "translation.quality.min_words_for_copy=1000000", "translation.quality.max_repeats=1000000"]
        return root_sets(tmp_path) + [a for s in sets for a in ("--set", s)]

    # Reference: one uninterrupted run.
    ref_out = tmp_path / "ref.jsonl"
    p = _run_translate(args(ref_out, tmp_path / "ref.sqlite"))
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    total = _summary(err)["translated"]
    assert total == 600

    # Killed run: SIGKILL once some batches are committed.
    out, cache = tmp_path / "out.jsonl", tmp_path / "c.sqlite"
    p = _run_translate(args(out, cache))
    done = 0
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
        if cache.exists():
            try:
                with sqlite3.connect(cache, timeout=1) as db:
                    done = db.execute("SELECT COUNT(*) FROM translations").fetchone()[0]
            except sqlite3.Error:
                continue
            if done >= 60:
                break
    p.send_signal(signal.SIGKILL)
    p.communicate()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists()  # no half-written output

    # Resume: only what was not committed is translated; output identical.
    p = _run_translate(args(out, cache))
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    s = _summary(err)
    assert s["cached"] >= 60
    assert s["translated"] == total - s["cached"] and s["translated"] < total
    assert out.read_bytes() == ref_out.read_bytes()
