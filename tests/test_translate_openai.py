"""The OpenAI-compatible backend (translate/openai_backend.py): against a loopback
server that injects faults (tests/tools/fake_openai.py) and against a real
``transformers serve`` running a random-weight tiny causal LM on CPU."""
import collections
import copy
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from common.errors import UserError
from common.jsonl import read_jsonl, write_jsonl
from tests.conftest import PYTHON, REPO, root_sets
from tests.tools.fake_openai import FAULTS, FakeOpenAI, corpus_text, reference
from translate.engine import TRANSLATION_DEFAULTS, Engine, check_settings
from translate.openai_backend import _retry_after, clean_reply

NAMES = {"de": "German", "fr": "French", "es": "Spanish"}


def openai_cfg(base_url, cache="", **openai):
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    cfg.update(backend="openai", cache=str(cache), progress=False, max_batch_tokens=600)
    cfg["openai"].update(base_url=base_url, model="fake", timeout=0.5, retries=3, max_retry_wait=5.0,
                         concurrency=8, api_key_env="")
    cfg["openai"].update(openai)
    return cfg


def openai_sets(base_url, **extra):
    sets = {"translation.backend": "openai", "translation.openai.base_url": base_url,
            "translation.openai.model": "fake", "translation.openai.api_key_env": "",
            "translation.openai.timeout": 0.5, "translation.openai.retries": 3,
            "translation.openai.max_retry_wait": 5.0, "translation.progress": "false",
            "translation.max_batch_tokens": 600, **extra}
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


@pytest.mark.parametrize("reply, source, expected", [
    ("Here is the translation:\n\nEin Hund.", "A dog.", "Ein Hund."),
    ("Sure! Here's the German translation: Ein Hund.", "A dog.", "Ein Hund."),
    ('Translation into French:\n"Un chien."', "A dog.", "Un chien."),
    ("«Un chien.»", "A dog.", "Un chien."),
    ('"Un chien."', '"A dog."', '"Un chien."'),             # the source had the quotes: kept
    ("```\nEin Hund.\n```", "A dog.", "Ein Hund."),
    ("<think>German, then.</think>\nEin Hund.", "A dog.", "Ein Hund."),
    ("Frage 3: Welche Farbe hat das Auto?", "Question 3: what colour is the car?",
     "Frage 3: Welche Farbe hat das Auto?"),                # a colon of the text itself stays
    ("Übersetzung: ein Wort", "Translation: a word", "Übersetzung: ein Wort"),
])
def test_clean_reply(reply, source, expected):
    assert clean_reply(reply, source) == expected


def test_retry_after_seconds_and_date():
    assert _retry_after("3") == 3.0 and _retry_after(None) is None and _retry_after("soon") is None
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < _retry_after(date) <= 31


@pytest.mark.parametrize("key, value, word", [
    ("base_url", "ftp://host/v1", "base_url"), ("concurrency", 0, "concurrency"), ("retries", -1, "retries"),
    ("timeout", 0, "timeout"), ("prompt", "v0", "prompt"), ("model", "", "model"), ("max_retry_wait", -2, "max_retry_wait"),
])
def test_bad_settings_name_the_key(key, value, word):
    cfg = openai_cfg("http://127.0.0.1:9/v1")
    cfg["openai"][key] = value
    with pytest.raises(UserError, match=rf"^translation\.openai\.{word}:"):
        check_settings(cfg)


def test_bad_setting_exits_2_with_one_line(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"text": "A dog.", "lang": "de"}])
    p = subprocess.run([PYTHON, "translate/translate_file.py", *root_sets(tmp_path),
                        *openai_sets("http://127.0.0.1:9/v1", **{"translation.openai.concurrency": 0}),
                        "--set", f"file.input={tmp_path / 'in.jsonl'}", "--set", f"file.output={tmp_path / 'o.jsonl'}"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["error: translation.openai.concurrency: must be an integer >= 1, got 0"]


def test_every_fault_kind_is_handled():
    """One text per fault kind (found through the server's own choice), plus the
    marked texts: each comes back right, or flagged with the reason it deserves."""
    with FakeOpenAI(fault_rate=0.5, retry_after="1") as fake:
        by_kind: dict = {}
        for i in range(400):
            text, _ = corpus_text(i)
            by_kind.setdefault(fake.fault(text, 0), text)
            if len(by_kind) == len(FAULTS) + 1:
                break
        assert set(by_kind) == set(FAULTS) | {None}
        extra = ["ALWAYS500 " + corpus_text(1)[0], corpus_text(4)[0].replace("Describe", "NOPLACE Describe"),
                 "LONGCUT " + corpus_text(3)[0]]
        texts = list(by_kind.values()) + extra
        eng = Engine(openai_cfg(fake.base_url))
        res = eng.translate(texts, ["de"] * len(texts))
        got = dict(zip(list(by_kind) + ["always500", "noplace", "longcut"], res))
        for kind in (None, "429", "500", "slow", "cut", "preamble"):
            assert got[kind] == (reference(by_kind[kind], "German"), None), kind
        assert got["wrong"] == (None, "off_target")
        assert got["always500"] == (None, "request_failed")
        assert got["noplace"] == (None, "placeholders")
        assert got["longcut"] == (None, "truncated")
        s = eng.summary()
        assert s["failed"] == 2 and s["rejected"] == 4
        served = collections.Counter(k for _, _, k in fake.log)   # what the server did, try by try
        assert served["429"] >= 1 and served["slow"] >= 1 and served["cut"] >= 1
        assert (s["backend"]["http_429"], s["backend"]["timeouts"], s["backend"]["cut_off"]) == \
            (served["429"], served["slow"], served["cut"])
        assert s["backend"]["http_500"] == served["500"] and served["500"] >= 1 + 4  # ALWAYS500: 4 tries
        assert s["backend"]["requests"] == len(fake.log)
        assert fake.requests["ALWAYS500 " + corpus_text(1)[0]] == 4
        # Retry-After: 1 was honoured: the retry of the 429 came at least a second later.
        times = [t for t, text, _ in fake.log if text == by_kind["429"]]
        assert len(times) == 2 and times[1] - times[0] >= 0.95
        eng.close()


def _rows(n):
    langs = ["de", "fr", "es", "en"]
    rows = [{"id": i, "text": corpus_text(i)[0], "lang": langs[i % 4]} for i in range(n)]
    rows[6]["text"] = "ALWAYS500 " + rows[6]["text"]      # never answered: counted, not cached
    rows[8]["text"] = rows[9]["text"]                       # a duplicate, asked once per language
    rows[8]["lang"] = rows[9]["lang"]
    return rows


def _check_output(rows, out_rows, rejects):
    """Every row is there, in order, translated to its reference or back in English
    with the reason in the rejects file."""
    assert [r["id"] for r in out_rows] == [r["id"] for r in rows]
    reasons = collections.Counter()
    for row, out in zip(rows, out_rows):
        if row["lang"] == "en":
            assert out == row
        elif out["lang"] == row["lang"]:
            assert out["text"] == reference(row["text"], NAMES[row["lang"]])
        else:
            assert out == {**row, "lang": "en"}
            reasons[next(r["reason"] for r in rejects if r["source"] == row["text"])] += 1
    return reasons


def test_translate_file_with_faults_loses_nothing_and_resumes(tmp_path, capsys):
    """translate_file through the fault server (10% of first tries fail): every
    row is translated or counted; a rerun asks only for what was not cached."""
    from translate import translate_file
    rows = _rows(240)
    write_jsonl(tmp_path / "in.jsonl", rows)
    cache = tmp_path / "cache.sqlite"
    argv = [*root_sets(tmp_path), *openai_sets("PLACEHOLDER"), "--set", f"translation.cache={cache}",
            "--set", f"file.input={tmp_path / 'in.jsonl'}", "--set", f"file.output={tmp_path / 'out.jsonl'}"]
    with FakeOpenAI(fault_rate=0.1, retry_after="1") as fake:
        argv[argv.index("translation.openai.base_url=PLACEHOLDER")] = f"translation.openai.base_url={fake.base_url}"
        translate_file.main(argv)
        first = sum(fake.requests.values())
        faults = collections.Counter(k for _, _, k in fake.log if k)
        out1 = list(read_jsonl(tmp_path / "out.jsonl"))
        rejects = list(read_jsonl(tmp_path / "out.jsonl.rejects.jsonl"))
        reasons = _check_output(rows, out1, rejects)
        assert set(faults) == set(FAULTS) and 10 <= sum(faults.values()) - fake.requests[rows[6]["text"]] <= 40
        assert reasons["request_failed"] == 1 and reasons["off_target"] == faults["wrong"]
        assert sum(reasons.values()) == faults["wrong"] + 1
        report = json.loads(open(re.search(r"report: (\S+)", capsys.readouterr().err).group(1)).read())
        assert report["counts"]["rows"] == 240 and report["counts"]["rows_fallback_to_english"] == sum(reasons.values())
        # The rerun: only the segment that was never answered is asked for again.
        before = collections.Counter(fake.requests)
        translate_file.main(argv)
        new = fake.requests - before
        assert set(new) == {rows[6]["text"]} and first > 150
        assert list(read_jsonl(tmp_path / "out.jsonl")) == out1


def test_killed_run_resumes_from_the_cache(tmp_path):
    """translate_file killed (SIGKILL) part way: the rerun asks for none of the
    segments the killed run committed, and its output is complete."""
    rows = [r for r in _rows(400) if "ALWAYS500" not in r["text"]]  # every segment gets cached
    write_jsonl(tmp_path / "in.jsonl", rows)
    cache = tmp_path / "cache.sqlite"
    with FakeOpenAI(fault_rate=0.1, retry_after="1", delay=0.01) as fake:
        cmd = [PYTHON, "translate/translate_file.py", *root_sets(tmp_path), *openai_sets(fake.base_url),
               "--set", f"translation.cache={cache}", "--set", "translation.flush_segments=16",
               "--set", "translation.openai.concurrency=2",
               "--set", f"file.input={tmp_path / 'in.jsonl'}", "--set", f"file.output={tmp_path / 'out.jsonl'}"]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while sum(fake.requests.values()) < 120 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, "the run ended before it could be killed"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(30)
        with sqlite3.connect(cache) as db:
            committed = {s for (s,) in db.execute("SELECT source FROM segments")}
        assert 16 <= len(committed) < 300 and not (tmp_path / "out.jsonl").exists()
        before = collections.Counter(fake.requests)
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        new = fake.requests - before
        assert not committed & set(new)
        assert len(new) > 0
        out = list(read_jsonl(tmp_path / "out.jsonl"))
        _check_output(rows, out, list(read_jsonl(tmp_path / "out.jsonl.rejects.jsonl")))


# -- a real server: transformers serve -------------------------------------------

def _serve_unavailable() -> str | None:
    exe = shutil.which("transformers", path=os.path.dirname(sys.executable))
    if exe is None:
        return "no transformers command beside the Python interpreter"
    for mod in ("fastapi", "uvicorn", "openai", "accelerate"):
        try:
            __import__(mod)
        except ImportError:
            return f"transformers serve needs {mod} (pip install -e '.[serve]')"
    return None


@pytest.fixture(scope="module")
def served_tiny_lm(tmp_path_factory):
    """`transformers serve` on a random-weight tiny Llama (tests/tools/tiny_lm.py), CPU, offline."""
    why = _serve_unavailable()
    if why:
        pytest.skip(why)
    from tests.tools.tiny_lm import build_tiny_lm
    model = build_tiny_lm(tmp_path_factory.mktemp("tiny_lm") / "model")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "transformers"), "serve", str(model),
                             "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        else:
            log.flush()
            pytest.fail(f"transformers serve did not come up: {open(log.name).read()[-2000:]}")
        yield f"http://127.0.0.1:{port}/v1", str(model)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def test_translate_file_through_transformers_serve(served_tiny_lm, tmp_path, capsys):
    """The real server's model replies " the" to everything (tests/tools/tiny_lm.py):
    no translation, so the length and language checks are relaxed; what is tested
    is the way there and back. Every row comes back translated, the rerun is all
    cache (no request), and a reply cut by the length cap is counted, not used."""
    from translate import translate_file
    url, model = served_tiny_lm
    rows = [{"id": i, "text": corpus_text(i)[0], "lang": ["de", "fr", "zh", "en"][i % 4]} for i in range(16)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    relaxed = {"translation.quality.langid": "false", "translation.quality.min_ratio": 0.001,
               "translation.openai.model": model, "translation.openai.timeout": 60,
               "translation.openai.concurrency": 2}
    argv = [*root_sets(tmp_path), *openai_sets(url, **relaxed), "--set", f"translation.cache={tmp_path / 'c.sqlite'}",
            "--set", f"file.input={tmp_path / 'in.jsonl'}", "--set", f"file.output={tmp_path / 'out.jsonl'}"]
    reports = []
    for _ in range(2):
        translate_file.main(argv)
        reports.append(json.loads(open(re.search(r"report: (\S+)", capsys.readouterr().err).group(1)).read()))
        out = list(read_jsonl(tmp_path / "out.jsonl"))
        # "the" lost the {} of two texts: those are rejected (placeholders) and stay English.
        assert out == [{**r, "text": "the"} if r["lang"] != "en" and "{}" not in r["text"]
                       else {**r, "lang": "en"} for r in rows]
    first, second = reports[0]["translation"], reports[1]["translation"]
    assert first["translated"] == 12 and first["backend"] == {"requests": 12}
    assert first["rejected"] == first["rejected:placeholders"] == 2 == second["rejected:placeholders"]
    assert second["cached"] == 12 and "backend" not in second and second["model_calls"] == 0
    # A cap of one token: the server stops at the limit and says so; nothing is used or cached.
    cfg = openai_cfg(url, model=model, timeout=60)
    cfg.update(length_factor=0.01, length_extra=1, quality={**cfg["quality"], "langid": False, "min_ratio": 0.001})
    eng = Engine(cfg)
    assert eng.translate(["A dog runs on the grass."], ["de"]) == [(None, "truncated")]
    assert eng.summary()["backend"] == {"requests": 1, "truncated": 1}
    eng.close()
