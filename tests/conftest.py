"""Shared test fixtures: the repo root, the real release files, a tiny NLLB model,
and the --set arguments that give a script its roots.

The real release files are read from ../shared/real beside the clone when it is
there (MBLIP_SHARED_REAL=DIR points elsewhere; a folder that does not exist
simulates a clone without it: those tests then skip).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = Path(os.environ.get("MBLIP_SHARED_REAL") or REPO.parent / "shared" / "real")
FIXTURES_RAW = REPO / "tests" / "fixtures" / "raw"
PYTHON = sys.executable

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def environment_unchanged():
    """Tests change the environment through monkeypatch only (undone after each
    test): a variable set before a test (CUDA_VISIBLE_DEVICES, say) is still
    set, to the same value, after it."""
    before = dict(os.environ)
    yield
    changed = sorted(k for k, v in before.items() if os.environ.get(k) != v and k != "PYTEST_CURRENT_TEST")
    assert not changed, f"the test changed or removed environment variables: {changed}"


@pytest.fixture(scope="session")
def real_root() -> Path:
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real release files not found at {SHARED_REAL}")
    return SHARED_REAL


@pytest.fixture(scope="session")
def tiny_nllb(tmp_path_factory) -> Path:
    """The tiny NLLB-architecture model of tests/tools/tiny_nllb.py (built once per
    session, about two seconds), converted for CTranslate2 into <dir>/ct2. It
    translates "A dog." into German as "[deu-Latn] A dog." (see tiny_expect)."""
    from tests.tools.tiny_nllb import build_tiny_nllb
    out = tmp_path_factory.mktemp("tiny_nllb") / "model"
    return build_tiny_nllb(out, ct2=True)


@pytest.fixture(scope="session")
def tiny_expect(tiny_nllb):
    """expect(text, lang, src="en") -> the text the tiny model's translation of
    text into lang (codes of the language table) comes back as: each sentence
    translated (tiny_nllb.expected_translation) and rejoined, as the engine
    does. Whether a quality check rejects it is for the test to say (a text
    with tiny_nllb.TRIGGER in it comes back with a runaway repetition)."""
    from transformers import AutoTokenizer

    from common.languages import nllb_code
    from tests.tools.tiny_nllb import expected_translation
    from translate import segment
    tok = AutoTokenizer.from_pretrained(str(tiny_nllb))

    def expect(text: str, lang: str, src: str = "en", max_words: int = 100) -> str:
        if lang == src or not text.strip():
            return text
        pieces, seps = segment.split(text, max_words)
        outs = [expected_translation(tok, p, nllb_code(lang), nllb_code(src)) for p in pieces]
        return segment.join(outs, seps, nllb_code(lang))
    return expect


def dry_run_expect(text: str, lang: str, src: str = "en", max_words: int = 100) -> str:
    """What the dry-run backend's translation of text into lang comes back as:
    each sentence tagged with the target's NLLB code ("[deu_Latn] A dog.")."""
    from common.languages import nllb_code
    from translate import segment
    if lang == src or not text.strip():
        return text
    pieces, seps = segment.split(text, max_words)
    return segment.join([f"[{nllb_code(lang)}] {p}" for p in pieces], seps, nllb_code(lang))


def translation_sets(backend: str = "dry-run", cache: Path | str = "", model: Path | None = None) -> list[str]:
    """--set arguments selecting a translation backend for a script under test. The
    converted-model folder is always given (empty without a model), so a script that
    translates files it is told about needs no paths.work_dir for it."""
    sets = ["--set", f"translation.backend={backend}", "--set", f"translation.cache={cache}",
            "--set", "translation.progress=false", "--set", "translation.threads=1",
            "--set", f"translation.ct2_model={model / 'ct2' if model is not None else ''}"]
    if model is not None:
        sets += ["--set", f"translation.model={model}"]
    if backend != "dry-run":
        # The tiny model copies the English behind a language marker: the language
        # check (translation.quality.langid) would reject every output.
        sets += ["--set", "translation.quality.langid=false"]
    return sets


def root_sets(base: Path | str, raw: Path | str = FIXTURES_RAW) -> list[str]:
    """--set arguments for the three roots, which have no default: raw_root (the
    bundled fixtures unless given), work_dir=<base>/work and out_root=<base>/out."""
    return ["--set", f"paths.raw_root={raw}", "--set", f"paths.work_dir={Path(base) / 'work'}",
            "--set", f"paths.out_root={Path(base) / 'out'}"]


def session_dir(tmp_path_factory) -> Path:
    """A folder shared by the whole test session: under pytest-xdist (``make test``
    runs two workers), the parent of the workers' own temporary roots."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory) -> Path:
    """One run of the demo driver (tests/tools/demo.py) on the bundled fixtures,
    shared by every test that reads the demo's outputs: <dir>/out and <dir>/work.
    Under pytest-xdist it runs once for all workers: the first to need it builds it
    (holding a lock), the others wait for it and read the same folder."""
    import fcntl
    import subprocess
    shared = session_dir(tmp_path_factory)
    out = shared / "demo" / "A"
    with open(shared / "demo.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "demo" / "A.ok").is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([PYTHON, "tests/tools/demo.py", "--out", str(out)], cwd=REPO, capture_output=True,
                               text=True)
            assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
            assert "every step is done" in r.stdout
            (shared / "demo" / "A.ok").write_text("")
    return out


# The longest test files first (measured; `pytest --durations`): with `make test`'s workers
# each taking the next file as it finishes one (in this order: --no-loadscope-reorder), the
# long ones start at once and the short ones fill in around them, instead of one long file
# running alone at the end. The demo comparison (the shared demo run and a second one, side
# by side) starts first of all; the other reader of the shared demo comes last, when it is
# built, rather than waiting for it.
LONG_FIRST = ("test_demo_reproducible.py", "test_tools.py", "test_pipeline.py", "test_translate_backends.py",
              "test_config.py", "test_launch_ray.py", "test_faults.py", "test_launch_local.py",
              "test_translate_openai.py", "test_launch_steps.py", "test_launch_slurm.py")
LAST = ("test_mblip_loader.py",)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    rank.update((name, len(LONG_FIRST) + 1) for name in LAST)
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))   # stable: file order kept otherwise
