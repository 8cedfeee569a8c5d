"""The one translated-source workflow (translate/source.py): which run of a
two-run generate script this is, the fingerprinted store of translated
templates, the per-row instruction picker, and the one language-list check."""
from __future__ import annotations

import functools
import http.server
import json
import random
import shutil
import threading
from pathlib import Path

import pytest

from common.errors import UserError
from common.languages import check_language_codes, language_list, load_languages
from common.report import Report
from tests.conftest import FIXTURES_RAW, REPO, translation_sets
from translate import source
from translate.engine import Result

SPACY_MODEL = "en_core_web_sm"


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the two-run decision, end to end on CapFilt ---------------------------------------------------
@pytest.fixture()
def web(tmp_path):
    """<raw>/web served on a free loopback port; a raw root whose CapFilt file points there."""
    from tests.tools.serve_web import QuietHandler
    handler = functools.partial(QuietHandler, directory=str(FIXTURES_RAW / "web"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    raw = tmp_path / "raw"
    (raw / "blip").mkdir(parents=True)
    name = "blip/ccs_synthetic_filtered_large.json"
    text = (FIXTURES_RAW / name).read_text(encoding="utf-8")
    (raw / name).write_text(text.replace("127.0.0.1:18080", f"127.0.0.1:{server.server_port}"), encoding="utf-8")
    # The evaluation files whose images the final step keeps out of training (eval_data/decontam.py).
    shutil.copytree(FIXTURES_RAW / "iglue", raw / "iglue")
    try:
        yield raw
    finally:
        server.shutdown()
        server.server_close()


def capfilt(tmp_path: Path, raw: Path, *extra: str) -> list[str]:
    return ["--set", f"paths.raw_root={raw}", "--set", f"paths.work_dir={tmp_path}/work",
            "--set", f"paths.out_root={tmp_path}/out", "--set", f"paths.spacy_model={SPACY_MODEL}",
            "--set", "filter.max_captions=2", "--set", "filter.n_process=1", "--set", "download.threads=4",
            "--set", "download.progress=false", "--set", "download.backoff=0.05",
            "--set", "download.allow_hosts=[127.0.0.1]",
            *translation_sets("dry-run", tmp_path / "cache.sqlite"), *extra]


def test_auto_goes_back_to_the_english_run_when_the_input_changed(tmp_path, web, capsys):
    """filter (min 3) -> download -> generate -> translate -> generate; filter
    (min 2) -> download -> generate: the last run writes the English
    intermediate again, never a final file from the old translations."""
    from pretrain import download_images, filter as capfilt_filter, generate_train, translate_train
    english = tmp_path / "work" / "capfilt" / "capfilt_en.jsonl"
    final = tmp_path / "out" / "train" / "capfilt.jsonl"

    def upstream(min_captions: int) -> int:
        sets = capfilt(tmp_path, web, "--set", f"filter.min_captions={min_captions}")
        capfilt_filter.main(sets)
        download_images.main(sets)
        return len(rows(tmp_path / "work" / "capfilt" / "capfilt_downloaded.jsonl"))

    n3 = upstream(3)
    sets3 = capfilt(tmp_path, web, "--set", "filter.min_captions=3")
    generate_train.main(sets3)
    assert len(rows(english)) == n3 and not final.exists()
    translate_train.main(sets3)
    generate_train.main(sets3)
    first = final.read_bytes()
    assert len(rows(final)) == n3

    n2 = upstream(2)
    assert n2 != n3, "the thresholds should select different captions"
    sets2 = capfilt(tmp_path, web, "--set", "filter.min_captions=2")
    capsys.readouterr()
    generate_train.main(sets2)                       # auto
    err = capsys.readouterr().err
    assert "next: python pretrain/translate_train.py" in err
    assert len(rows(english)) == n2 and final.read_bytes() == first
    # Asking for the final run now is refused, naming the step to rerun.
    with pytest.raises(SystemExit) as e:
        generate_train.main(sets2 + ["--set", "generate.step=final"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "(capfilt.translate) is stale" in err and "python pretrain/translate_train.py" in err
    translate_train.main(sets2)
    generate_train.main(sets2)
    assert len(rows(final)) == n2


# -- the store of translated templates -------------------------------------------------------------
class TagEngine:
    """Tags a translation with its target; counts the texts it was given."""

    def __init__(self):
        self.texts = 0

    def translate(self, texts, tgts, src="en"):
        self.texts += len(texts)
        return [Result(f"<{t}> {x}", None) for x, t in zip(texts, tgts)]


TCFG = {"backend": "hf", "model": "m", "ct2_model": "c", "beam_size": 1, "device": "auto", "cache": "x.sqlite",
        "max_new_tokens": 256, "progress": True}


def test_store_reused_rebuilt_when_stale_and_refused_by_the_final_run(tmp_path):
    path, sets, langs = tmp_path / "store.json", {"ask": ["Caption it.", "Describe {}."]}, ["en", "de", "fr"]
    engine = TagEngine()
    got = source.build_store(engine, path, sets, TCFG, langs)
    assert got["ask"]["de"] == ["<de> Caption it.", "<de> Describe {}."] and engine.texts == 4
    assert source.load_store(path, sets, TCFG, langs, "mscoco.translate", []) == got
    source.build_store(engine, path, sets, {**TCFG, "device": "cuda", "cache": ""}, langs)  # speed only: reused
    assert engine.texts == 4
    for changed_sets, tcfg, ls, what in [
            ({"ask": ["Caption this."]}, TCFG, langs, "templates"),
            (sets, {**TCFG, "beam_size": 4}, langs, "translation.beam_size"),
            (sets, {**TCFG, "model": "other"}, langs, "translation.model"),
            (sets, TCFG, ["en", "de"], "languages")]:
        with pytest.raises(UserError) as e:
            source.load_store(path, changed_sets, tcfg, ls, "mscoco.translate", [])
        msg = str(e.value)
        assert "stale translated templates" in msg and what in msg and "\n" not in msg
        assert "(mscoco.translate): python tasks/mscoco/translate_train.py" in msg
    # The translate step rebuilds a stale store; then the final run accepts it.
    source.build_store(engine, path, sets, {**TCFG, "beam_size": 4}, langs)
    assert engine.texts == 8
    source.load_store(path, sets, {**TCFG, "beam_size": 4}, langs, "mscoco.translate", [])
    path.write_text("{}")
    with pytest.raises(UserError, match="not a translated-templates file"):
        source.load_store(path, sets, TCFG, langs, "mscoco.translate", [])
    with pytest.raises(UserError, match="translated templates not found"):
        source.load_store(tmp_path / "none.json", sets, TCFG, langs, "mscoco.translate", [])


def test_match_final_run_refuses_a_stale_store(tmp_path, capsys):
    """Matching translates its templates in its translate step; the final run
    refuses them once the translation settings changed, until that step reruns."""
    from match import generate_match_train as gen, translate_match_train as tr
    src = tmp_path / "work" / "match" / "capfilt_match_en.jsonl"
    src.parent.mkdir(parents=True)
    src.write_text("".join(json.dumps({"id": f"r{i}", "image_id": f"{i}.jpg", "caption": f"a house {i}",
                                       "match": "yes" if i % 2 else "no"}) + "\n" for i in range(40)))
    sets = ["--set", f"paths.work_dir={tmp_path / 'work'}", "--set", f"paths.out_root={tmp_path / 'out'}",
            "--set", f"paths.raw_root={FIXTURES_RAW}", *translation_sets("dry-run", "")]   # evaluation files
    tr.main(sets)
    gen.main(sets)
    out = tmp_path / "out" / "train" / "capfilt_match.jsonl"
    first = out.read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        gen.main(sets + ["--set", "translation.beam_size=2"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "translation.beam_size" in err and "(match.translate): python match/translate_match_train.py" in err
    tr.main(sets + ["--set", "translation.beam_size=2"])
    assert "is stale (translation.beam_size changed): translating again" in capsys.readouterr().err
    gen.main(sets + ["--set", "translation.beam_size=2"])
    assert out.read_bytes() == first  # dry-run: the same words


def _match_translated(tmp_path, backend_sets: list[str]) -> list[str]:
    """match.translate then match.final on 12 captions into en and de: the --set list used."""
    from match import generate_match_train as gen, translate_match_train as tr
    src = tmp_path / "work" / "match" / "capfilt_match_en.jsonl"
    src.parent.mkdir(parents=True)
    src.write_text("".join(json.dumps({"id": f"r{i}", "image_id": f"{i}.jpg", "caption": f"A house on a hill {i}.",
                                       "match": "yes" if i % 2 else "no"}) + "\n" for i in range(12)))
    sets = ["--set", f"paths.work_dir={tmp_path / 'work'}", "--set", f"paths.out_root={tmp_path / 'out'}",
            "--set", f"paths.raw_root={FIXTURES_RAW}", "--set", "translate.languages=[en, de]", *backend_sets]
    tr.main(sets)
    gen.main(sets)
    return sets


def _status_of(capsys, sets: list[str], *change: str) -> dict[str, str]:
    """{step id: what python -m common status says} for the two matching steps, after a --set change."""
    from common import status
    capsys.readouterr()
    status.main(sets + [a for c in change for a in ("--set", c)])
    lines = capsys.readouterr().out.splitlines()
    return {sid: next(" ".join(line.split()[2:]) for line in lines if f" {sid} " in line)
            for sid in ("match.translate", "match.final")}


def _final_refuses(capsys, sets: list[str], change: str, named: str) -> None:
    """The final run under ``change`` stops (exit 2, one line) naming the setting and the step to rerun."""
    from match import generate_match_train as gen
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        gen.main(sets + ["--set", change])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert named in err and "rerun step 3.2 (match.translate): python match/translate_match_train.py" in err


def test_speed_settings_keep_the_translation_done_shaping_ones_make_it_stale(tmp_path, capsys, tiny_nllb):
    """The hf backend (the tiny model): a change of speed only keeps both matching steps done in
    python -m common status and the final run reuses the store; dtype or the model makes the translate
    step (and the final file built on it) stale, and the final run refuses the store."""
    from match import generate_match_train as gen
    sets = _match_translated(tmp_path, translation_sets("hf", tmp_path / "cache.sqlite", tiny_nllb))
    out = tmp_path / "out" / "train" / "capfilt_match.jsonl"
    first = out.read_bytes()
    assert _status_of(capsys, sets) == {"match.translate": "done", "match.final": "done"}
    speed = ["translation.max_batch_tokens=64", "translation.threads=2", "translation.device=cpu",
             "translation.flush_segments=1", "translation.progress=true", "translation.max_reject_rate=0.9"]
    assert _status_of(capsys, sets, *speed) == {"match.translate": "done", "match.final": "done"}
    gen.main(sets + [a for c in speed for a in ("--set", c)])
    assert out.read_bytes() == first
    for change, named in [("translation.dtype=bfloat16", "translation.dtype"),
                          (f"translation.model={tmp_path / 'other-nllb'}", "translation.model")]:
        got = _status_of(capsys, sets, change)
        assert got == {sid: f"STALE (config changed: {named})" for sid in got}, got
        _final_refuses(capsys, sets, change, f"({named} changed since they were translated)")


def test_openai_speed_settings_keep_the_translation_done_the_prompt_makes_it_stale(tmp_path, capsys, monkeypatch):
    """The openai backend (a loopback server): concurrency, timeouts, retries and the server's
    address are speed; another served model, prompt version or prompt text makes the step stale."""
    from tests.test_translate_openai import openai_sets
    from tests.tools.fake_openai import FakeOpenAI
    from translate.openai_backend import PROMPTS
    with FakeOpenAI(fault_rate=0.0) as fake:   # it echoes what is not in its corpus: checks relaxed
        sets = _match_translated(tmp_path, openai_sets(fake.base_url, **{
            "translation.cache": "", "translation.quality.langid": "false",
            "translation.quality.min_words_for_copy": 1000}))
    assert _status_of(capsys, sets) == {"match.translate": "done", "match.final": "done"}
    speed = ["translation.openai.concurrency=2", "translation.openai.timeout=9.5", "translation.openai.retries=0",
             "translation.openai.max_retry_wait=1.0", "translation.openai.base_url=http://10.1.2.3:9000/v1",
             "translation.openai.api_key_env=OTHER_KEY", "translation.max_batch_tokens=64"]
    assert _status_of(capsys, sets, *speed) == {"match.translate": "done", "match.final": "done"}
    monkeypatch.setitem(PROMPTS, "v2", PROMPTS["v1"] + " Keep it short.")
    for change, named in [("translation.openai.model=other-llm", "translation.model"),
                          ("translation.openai.prompt=v2",
                           "translation.openai.prompt, translation.openai.prompt_sha256")]:
        assert _status_of(capsys, sets, change)["match.translate"] == f"STALE (config changed: {named})"
        _final_refuses(capsys, sets, change, "translation.")
    monkeypatch.setitem(PROMPTS, "v1", PROMPTS["v1"] + " Keep it short.")   # the text edited, the same version
    assert _status_of(capsys, sets)["match.translate"] == "STALE (config changed: translation.openai.prompt_sha256)"


# -- the instruction picker -------------------------------------------------------------------------
def test_picker_choice_depends_only_on_the_row():
    picker = lambda: source.InstructionPicker(7, "t", ["E1", "E2", "E3"], ["N1 {lang}", "N2 {lang}"],  # noqa: E731
                                              {"de": ["D1", "D2"], "fr": ["F1"]}, 0.5)
    ids = [f"row-{i}" for i in range(300)]
    langs = {rid: random.Random(rid).choice(["en", "de", "fr", "es"]) for rid in ids}
    whole = picker()
    expected = {rid: whole.pick(rid, langs[rid]) for rid in ids}
    shuffled = list(ids)
    random.Random(1).shuffle(shuffled)
    again = picker()
    assert {rid: again.pick(rid, langs[rid]) for rid in shuffled} == expected
    for n in (2, 3):                                     # any sharding: each shard its own picker
        for k in range(n):
            p = picker()
            assert all(p.pick(rid, langs[rid]) == expected[rid] for rid in ids[k::n])
    counts = whole.counts
    assert counts["translated_template"] and counts["english_naming_language"] and counts["english"]
    assert set(expected.values()) >= {"E1", "E2", "E3", "D1", "D2", "F1", "N1 Spanish", "N2 Spanish"}


def test_capfilt_final_rows_do_not_depend_on_order():
    from pretrain import generate_train as gen
    from pretrain.capfilt_config import DEFAULTS
    gc = dict(DEFAULTS["generate"], caption_templates=["A", "B", "C"], language_templates=["A in {}", "B in {}"])
    data = [{"id": f"{i:04x}", "image_id": f"{i}.jpg", "caption": f"c {i}", "lang": ["en", "de", "fr"][i % 3]}
            for i in range(90)]
    templates = {"de": ["DA", "DB"], "fr": ["FA"]}
    straight = {r["image_id"]: r["context"] for r in gen.final_examples(data, templates, gc, Report("t"))}
    back = {r["image_id"]: r["context"] for r in gen.final_examples(data[::-1], templates, gc, Report("t"))}
    assert straight == back and len(set(straight.values())) > 4


# -- one language-list check -----------------------------------------------------------------------
def test_language_list_check():
    assert language_list([], "x.languages") == list(load_languages())
    assert language_list(["de", "en", "de"], "x.languages") == ["de", "en"]
    with pytest.raises(UserError, match=r"^x\.languages: unknown language code 'xx' \(and 1 more\)"):
        check_language_codes(["de", "xx", "yy"], "x.languages")


LANGUAGE_KEYS = [
    ("pretrain/translate_train.py", "translate.languages"),
    ("match/translate_match_train.py", "translate.languages"),
    ("tasks/mscoco/translate_train.py", "mscoco.languages"),
    ("tasks/vqa/translate_train.py", "vqav2.languages"),
    ("tasks/llava/translate_train.py", "llava.languages"),
    ("tasks/imagenet/translate_train.py", "imagenet.languages"),
    ("tasks/imagenet/generate_train.py", "imagenet.languages"),
]


@pytest.mark.parametrize("script,key", LANGUAGE_KEYS)
def test_every_source_checks_its_language_list_the_same_way(tmp_path, capsys, script, key):
    import importlib
    module = importlib.import_module(script[:-3].replace("/", "."))
    argv = ["--set", f"paths.raw_root={FIXTURES_RAW}", "--set", f"paths.work_dir={tmp_path}/work",
            "--set", f"paths.out_root={tmp_path}/out", *translation_sets("dry-run", ""),
            "--set", f"{key}=[en, xx]"]
    with pytest.raises(SystemExit) as e:
        module.main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2
    assert err == f"error: {key}: unknown language code 'xx' (see {REPO / 'common' / 'languages.tsv'})"


def test_no_other_language_list_check():
    """The old per-stage checks are gone: only common/languages.py checks a code list."""
    defs = []
    for d in ("common", "pretrain", "match", "tasks", "eval_data", "translate"):
        for p in (REPO / d).rglob("*.py"):
            text = p.read_text(encoding="utf-8")
            if any(f"def {name}(" in text for name in ("language_list", "check_languages", "check_language_codes")):
                defs.append(p.relative_to(REPO).as_posix())
    assert defs == ["common/languages.py"]
    assert not (REPO / "tasks" / "workflow.py").exists() and not (REPO / "tasks" / "translate_source.py").exists()


def _contexts(pairs) -> dict:
    return {row["image_id"] + "|" + row["task"] + "|" + row["label"]: row["context"] for row in pairs}


def _orders(items: list) -> list[list[list]]:
    """The rows as one run, reversed, and as 2 and 3 round-robin shards."""
    return [[items], [items[::-1]], [items[k::2] for k in range(2)], [items[k::3] for k in range(3)]]


def test_tasks_instructions_do_not_depend_on_row_order_or_shards():
    """MSCOCO, VQAv2 and LLaVA choose each row's instruction (and VQAv2 its
    answer's language) from the row id: reordering or sharding the rows
    changes no row's output."""
    from common.config import build_config
    from tasks.llava import generate_train as llava
    from tasks.llava.settings import CONFIG as LLAVA, DEFAULTS as LLAVA_DEFAULTS
    from tasks.mscoco import generate_train as mscoco
    from tasks.mscoco.settings import CONFIG as MSCOCO, DEFAULTS as MSCOCO_DEFAULTS
    from tasks.vqa import generate_train as vqa
    from tasks.vqa.settings import CONFIG as VQA, DEFAULTS as VQA_DEFAULTS
    langs = ["en", "de", "fr", "zh"]
    caps = [{"id": i, "image_id": f"{i}.jpg", "caption": f"c{i}", "lang": langs[i % 4]} for i in range(120)]
    qs = [{"id": f"{i}-{t}", "task": t, "image_id": f"{i}.jpg", "question": f"q{i}?", "answer": "yes",
           "lang": langs[i % 4]} for i in range(60) for t in ("vqav2_vqa", "vqav2_vqg")]
    turns = [{"id": f"{i}-llava_detail-0", "task": "llava_detail", "image_id": f"{i}.jpg", "question": f"q{i}",
              "question_en": f"q{i}", "answer": f"a{i}", "lang": langs[i % 4]} for i in range(80)]
    store = {"english": {"de": ["DE"], "fr": ["FR"]}}
    roots = [f"paths.raw_root={FIXTURES_RAW}", "paths.work_dir=unused", "paths.out_root=unused"]
    mc = build_config(MSCOCO_DEFAULTS, MSCOCO, roots)
    vc = build_config(VQA_DEFAULTS, VQA, roots)
    kept = {"de": {"yes": "ja"}, "fr": {"yes": "oui"}}
    templates = {"vqa_english": {"de": ["DE {}"]}, "vqg_english": {"fr": ["FR {}"]}}
    lc = build_config(LLAVA_DEFAULTS, LLAVA, roots)

    def mscoco_rows(part):
        picker = source.InstructionPicker(0, "mscoco", mc.at("mscoco.templates.english"),
                                          mc.at("mscoco.templates.naming"), store["english"], 0.5)
        return list(mscoco.final_rows(part, picker, Report("t")))

    def vqa_rows(part):
        return [row for _, row in vqa.final_rows(part, vc, templates, kept, Report("t"))]

    def llava_rows(part):
        picker = source.InstructionPicker(0, "llava", lc.at("llava.templates.naming"),
                                          lc.at("llava.templates.naming"), None, 0.0)
        return [row for _, row in llava.final_rows(part, picker, 0.5, Report("t"))]

    for make, items in ((mscoco_rows, caps), (vqa_rows, qs), (llava_rows, turns)):
        results = [_contexts(row for part in parts for row in make(part)) for parts in _orders(items)]
        assert len(results[0]) == len(items) and all(r == results[0] for r in results[1:])
        assert len(set(results[0].values())) > 4
