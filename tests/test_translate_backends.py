"""The real backends (transformers and CTranslate2) on the tiny NLLB model, whose
output can be predicted (tests/tools/tiny_nllb.py: "[deu-Latn]" then the source
tokens, "¤" swapped for a runaway repetition), and the kill-and-resume guarantee
of the cache."""
import copy
import random
import re
import signal
import subprocess
import sys

import pytest

from common.jsonl import read_jsonl, write_jsonl
from tests.conftest import REPO, root_sets
from tests.tools.tiny_nllb import ECHO, TRIGGER, marker
from translate.cache import TranslationCache
from translate.engine import TRANSLATION_DEFAULTS, Engine

BACKENDS = ["hf", "ctranslate2"]
WORDS = ("a dog runs on the green grass near lake two children playing with red ball in park is there "
         "cat sitting table {} {answer} ? . , ! 2015 New York Straße").split()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models on a busy 2-core machine: OpenMP threads spinning against each
    other make them several times slower. Restored for the other test files."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def engine_for(backend, model, quality=None, **kw):
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    # The tiny model copies English behind a marker: no language check.
    q = {**cfg["quality"], "langid": False, **(quality or {})}
    cfg.update(backend=backend, model=str(model), ct2_model=str(model / "ct2"), device="cpu",
               cache="", progress=False, quality=q, threads=1)
    cfg.update(kw)
    return Engine(cfg)


def random_texts(n, seed, max_words=60):
    r = random.Random(seed)
    return [" ".join(r.choice(WORDS) for _ in range(r.randint(1, max_words))) for _ in range(n)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_output_is_the_predicted_one(tiny_nllb, tiny_expect, backend):
    """Mixed targets in one batch, duplicates, empty and same-language texts, and
    texts of up to about 200 tokens: each comes back exactly as predicted."""
    texts = random_texts(30, 1) + ["A dog runs on the grass.", "Is there a cat?", "A dog runs on the grass.", "",
                                   f"A dog {TRIGGER} runs.", "Stays English."]
    r = random.Random(2)
    tgts = [r.choice(["de", "zh", "fr", "sw", "ko", "ar"]) for _ in texts[:-1]] + ["en"]
    tgts[-4], tgts[-6] = "fr", "de"    # the same text into two languages
    eng = engine_for(backend, tiny_nllb)
    res = eng.translate(texts, tgts)
    assert res[-2] == (None, "repetition")                       # rejected on purpose: ¤ comes back as ECHO
    assert [r.text for r in res[:-2]] == [tiny_expect(t, g) for t, g in zip(texts[:-2], tgts[:-2])]
    assert res[-1].text == "Stays English." and res[-3].text == ""
    assert res[-6].text == "[deu-Latn] A dog runs on the grass." and res[-4].text == "[fra-Latn] A dog runs on the grass."
    assert eng.summary()["rejected"] == 1
    assert eng.rejects == [{"source": f"A dog {TRIGGER} runs.", "lang": tgts[-2], "reason": "repetition",
                            "output": tiny_expect(f"A dog {TRIGGER} runs.", tgts[-2])}]
    assert ECHO in eng.rejects[0]["output"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_output_equals_one_by_one_and_targets_are_forced_per_row(tiny_nllb, tiny_expect, backend):
    """Batch invariance: NLLB pads on the right and M2M100 derives positions from
    the padding mask, so a row's output does not depend on its batch mates."""
    texts = ["A dog.", "A man in a blue shirt is riding a bicycle down the street near a lake.",
             "Is there a cat?", "Two children are playing with a red ball in the park today.", "A dog."]
    tgts = ["deu_Latn", "fra_Latn", "zho_Hans", "swh_Latn", "jpn_Jpan"]
    be = engine_for(backend, tiny_nllb).backend
    together = be.translate_batch(texts, "eng_Latn", tgts, 64)
    one_by_one = [be.translate_batch([t], "eng_Latn", [g], 64)[0] for t, g in zip(texts, tgts)]
    assert together == one_by_one == [f"{marker(g)} {t}" for t, g in zip(texts, tgts)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_generation_is_capped_relative_to_input(tiny_nllb, backend):
    """length_factor 0.5: the cap (half the input tokens, 8 of 17) cuts the
    output, which keeps the marker and the first cap - 1 source tokens."""
    eng = engine_for(backend, tiny_nllb, quality={"min_ratio": 0.0}, length_factor=0.5, length_extra=0)
    text = "Two children are playing with a red ball in the park near a lake."
    tok = eng.backend._tokenizer("eng_Latn")
    ids = tok(text)["input_ids"]
    cap = int(0.5 * len(ids))
    assert cap < len(ids) - 2      # shorter than a whole output
    out = eng.translate([text], ["de"])[0].text
    assert out == tok.decode([tok.convert_tokens_to_ids("[deu-Latn]")] + ids[1:cap], skip_special_tokens=True)


def test_quality_checks_decide_what_comes_back(tiny_nllb):
    src = f"A man in a blue shirt {TRIGGER} is riding a bicycle down the street."
    raw = engine_for("hf", tiny_nllb, quality={"max_repeats": 10**6}).translate([src], ["de"])[0]
    assert raw == (f"[deu-Latn] A man in a blue shirt {ECHO} is riding a bicycle down the street.", None)
    eng = engine_for("hf", tiny_nllb)
    res = eng.translate([src, "A man in a blue shirt."], ["de", "de"])
    assert res == [(None, "repetition"), ("[deu-Latn] A man in a blue shirt.", None)]
    assert eng.summary()["rejected"] == 1
    assert eng.rejects == [{"source": src, "lang": "de", "output": raw.text, "reason": "repetition"}]
    # A length bound that the marker breaks: rejected by length_ratio instead.
    eng = engine_for("hf", tiny_nllb, quality={"max_ratio": 1.1})
    assert eng.translate(["A man in a blue shirt."], ["de"])[0] == (None, "length_ratio")


# The killed run: translate_file.main with TranslationCache.put_many wrapped so that
# the process SIGKILLs itself right after its N-th commit (argv[1]): no timing involved.
KILL_AFTER_COMMITS = r'''
import os, signal, sys
from translate import cache, translate_file
put, commits = cache.TranslationCache.put_many, [0]
def put_many(self, rows):
    put(self, rows)
    commits[0] += 1
    if commits[0] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
cache.TranslationCache.put_many = put_many
translate_file.main(sys.argv[2:])
'''


def _run(args, kill_after=None):
    cmd = ([sys.executable, "-c", KILL_AFTER_COMMITS, str(kill_after)] if kill_after
           else [sys.executable, "translate/translate_file.py"])
    return subprocess.run([*cmd, *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def _summary(stderr):
    line = next(x for x in stderr.splitlines() if x.startswith("[translate] texts_in"))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


def test_kill_and_resume_finishes_without_retranslating(tiny_nllb, tiny_expect, tmp_path):
    rows = [{"id": i, "text": f"Picture {i}: a dog with {i % 13} balls runs near the {i % 7} trees.",
             "lang": ["de", "fr", "zh", "sw"][i % 4]} for i in range(240)]
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, rows)

    def args(out, cache):
        sets = [f"file.input={inp}", f"file.output={out}", "file.fields=[text]",
                "translation.backend=hf", f"translation.model={tiny_nllb}", f"translation.cache={cache}",
                "translation.max_batch_tokens=200", "translation.flush_segments=1",
                "translation.progress=false", "translation.device=cpu",
                # One torch thread: on a busy 2-core machine OpenMP threads spin
                # against each other and make this tiny model 5x slower.
                "translation.threads=1", "translation.quality.langid=false"]
        return root_sets(tmp_path) + [a for s in sets for a in ("--set", s)]

    ref_out = tmp_path / "ref.jsonl"
    p = _run(args(ref_out, tmp_path / "ref.sqlite"))
    assert p.returncode == 0, p.stderr
    assert _summary(p.stderr)["translated"] == 240
    got = list(read_jsonl(ref_out))
    assert [r["text"] for r in got] == [tiny_expect(r["text"], r["lang"]) for r in rows]   # every row's own text

    # Killed right after its 5th committed batch.
    out, cache = tmp_path / "out.jsonl", tmp_path / "c.sqlite"
    p = _run(args(out, cache), kill_after=5)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert not out.exists()  # no half-written output
    committed = len(TranslationCache(cache))
    assert 5 <= committed < 240

    # Resume: exactly what was not committed is translated; output identical.
    p = _run(args(out, cache))
    assert p.returncode == 0, p.stderr
    s = _summary(p.stderr)
    assert s["cached"] == committed and s["translated"] == 240 - committed
    assert out.read_bytes() == ref_out.read_bytes()
