"""MSCOCO: the two-run workflow on the Karpathy fixture, the eval files, sharding."""
from __future__ import annotations

import json
import unicodedata

import pytest

from common.languages import get_language
from tests.conftest import FIXTURES_RAW, translation_sets
from translate.source import InstructionPicker, fill
from tasks.mscoco import generate_eval, generate_train, translate_train

KEYS = ["context", "label", "image_id", "task", "lang"]

# Restval images of the fixture that evaluation sets use: their captions never reach training.
DROPPED = {"COCO_val2014_000000000073.jpg": "vqav2", "COCO_val2014_000000310196.jpg": "pope"}


def sets(tmp, *extra):
    return ["--set", f"paths.raw_root={FIXTURES_RAW}", "--set", f"paths.work_dir={tmp}/work",
            "--set", f"paths.out_root={tmp}/out", *translation_sets("dry-run", tmp / "cache.sqlite"), *extra]


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_all(tmp, *extra, capsys=None):
    generate_train.main(sets(tmp, *extra))
    if capsys is not None:
        assert "next: python tasks/mscoco/translate_train.py" in capsys.readouterr().err
    translate_train.main(sets(tmp, *extra))
    generate_train.main(sets(tmp, *extra))
    return tmp / "out" / "train" / "mscoco.jsonl"


def test_fill_keeps_odd_characters():
    assert fill("Q: {} in {lang}?", "what is {x} # here {}", lang="German") == "Q: what is {x} # here {} in German?"


def test_train_file(tmp_path, capsys):
    out = run_all(tmp_path, "--set", "mscoco.translated_ratio=0.5", capsys=capsys)
    got = rows(out)
    # 5 train images (one without sentences, one missing file) + 3 restval; 2 empty captions dropped;
    # 2 restval images are evaluation images (73: VQAv2 val, 310196: POPE), their 4 captions dropped
    assert len(got) == 13 - 4
    assert all(list(r) == KEYS and r["task"] == "mscoco" for r in got)
    images = {r["image_id"] for r in got}
    assert "COCO_val2014_000000000042.jpg" in images  # restval is training data
    assert not images & set(DROPPED)  # ... unless an evaluation set uses the image
    assert "COCO_train2014_000000000025.jpg" not in images  # file missing: skipped
    assert not images & {"COCO_val2014_000000391895.jpg", "COCO_val2014_000000203564.jpg"}
    assert all(r["label"].strip() for r in got)
    assert any(r["label"].endswith("A zebra in a café garden.") for r in got)  # NFC
    translated = [r for r in got if r["lang"] != "en"]
    assert translated, "the mC4 assignment should translate most captions"
    for r in translated:
        lang = get_language(r["lang"])
        assert r["label"].startswith(f"[{lang.nllb}] ")  # dry-run tags the target code
        # a translated template, or an English one naming the language
        assert r["context"].startswith(f"[{lang.nllb}] ") or lang.name in r["context"]
    report = json.loads((tmp_path / "work" / "reports" / "mscoco.final.json").read_text())
    assert report["instructions"]["translated_template"] > 0 or report["instructions"]["english_naming_language"] > 0
    dec = report["decontamination"]["tasks"]["mscoco"]
    assert dec["rows_checked"] == 13 and dec["rows_dropped"] == 4
    assert dec["dropped_by_eval_set"] == {"pope": 2, "vqav2": 2}


def test_deterministic_and_sharded(tmp_path):
    a = run_all(tmp_path / "a").read_bytes()
    assert run_all(tmp_path / "b").read_bytes() == a
    # Sharded translation, merged by the launcher: byte-identical.
    tmp = tmp_path / "c"
    generate_train.main(sets(tmp))
    for i in range(2):
        translate_train.main(sets(tmp, "--set", "run.num_shards=2", "--set", f"run.shard_index={i}"))
    from common import executors
    executors.main(["mscoco.translate", "--set", "launch.mode=combine", "--set", "launch.num_shards=2", "--",
                    *sets(tmp)])
    generate_train.main(sets(tmp))
    assert (tmp / "out" / "train" / "mscoco.jsonl").read_bytes() == a


def test_instruction_picker_ratio():
    p = InstructionPicker(0, "t", ["E"], ["N {lang}"], {"de": ["T"]}, 1.0)
    assert p.pick(1, "de") == "T" and p.pick(2, "fr") == "N French" and p.pick(3, "en") == "E"
    p = InstructionPicker(0, "t", ["E"], ["N {lang}"], {"de": ["T"]}, 0.0)
    assert p.pick(1, "de") == "N German"
    p = InstructionPicker(0, "t", ["E"], ["N {lang}"], {"de": ["T1", "T2"]}, 0.5)
    got = [p.pick(i, "de") for i in range(400)]
    assert 150 < sum(g.startswith("T") for g in got) < 250 and {"T1", "T2", "N German"} <= set(got)


def test_eval_files(tmp_path):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocotools.coco import COCO
    generate_eval.main(sets(tmp_path))
    d = tmp_path / "out" / "eval" / "mscoco"
    val, test = rows(d / "mscoco_val.jsonl"), rows(d / "mscoco_test.jsonl")
    assert [r["image_id"] for r in val] == ["COCO_val2014_000000391895.jpg", "COCO_val2014_000000522418.jpg",
                                          "COCO_val2014_000000184613.jpg"]
    assert len(test) == 2
    assert val[0] == {"context": "English", "label": "", "image_id": "COCO_val2014_000000391895.jpg",
                      "text_label": "en"}
    everything = {r["image_id"] for r in val + test}
    assert "COCO_val2014_000000000042.jpg" not in everything  # restval never in eval
    coco = COCO(str(d / "mscoco_coco_val.json"))
    caps = [a["caption"] for a in coco.anns.values()]
    assert "Une femme coupe un gâteau." in caps and "" not in caps
    assert all(c == unicodedata.normalize("NFC", c) for c in caps)
    res = coco.loadRes([{"image_id": i, "caption": coco.imgToAnns[i][0]["caption"]} for i in coco.getImgIds()])
    gts = {i: [a["caption"] for a in coco.imgToAnns[i]] for i in coco.getImgIds()}
    score, _ = Bleu(1).compute_score(gts, {i: [res.imgToAnns[i][0]["caption"]] for i in res.getImgIds()})
    assert score[0] > 0.9


def test_restval_in_eval_refused(tmp_path):
    with pytest.raises(SystemExit) as e:
        generate_eval.main(sets(tmp_path, "--set", "mscoco.eval_splits=[val, restval]"))
    assert e.value.code == 2


def test_missing_input_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        generate_train.main(sets(tmp_path, "--set", f"mscoco.karpathy={tmp_path}/nope.json"))
    assert e.value.code == 2
    assert "nope.json" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_changed_input_goes_back_to_the_english_run(tmp_path, capsys):
    """After a final run, a changed raw input makes the next run the English one
    (recorded fingerprints, not mtimes): the final file is never written from
    translations of other input."""
    import os
    karpathy = tmp_path / "dataset_coco.json"
    karpathy.write_bytes((FIXTURES_RAW / "mscoco" / "dataset_coco.json").read_bytes())
    extra = ("--set", f"mscoco.karpathy={karpathy}")
    out = run_all(tmp_path, *extra)
    final = out.read_bytes()
    en = tmp_path / "work" / "mscoco" / "captions_en.jsonl"
    # Touching a file changes nothing: the content is what counts.
    os.utime(en, (en.stat().st_mtime + 10, en.stat().st_mtime + 10))
    capsys.readouterr()
    generate_train.main(sets(tmp_path, *extra))
    assert f"-> {out}" in capsys.readouterr().err and out.read_bytes() == final  # the final run again
    data = json.loads(karpathy.read_text(encoding="utf-8"))
    data["images"] = [img for img in data["images"] if img.get("cocoid") != 42]  # drop the restval image
    karpathy.write_text(json.dumps(data), encoding="utf-8")
    capsys.readouterr()
    generate_train.main(sets(tmp_path, *extra))
    assert "next: python tasks/mscoco/translate_train.py" in capsys.readouterr().err
    assert "COCO_val2014_000000000042.jpg" not in en.read_text(encoding="utf-8")
    assert out.read_bytes() == final  # the final file was not rewritten


def test_tiny_model_backend(tmp_path, tiny_nllb, tiny_expect):
    """The real engine path (hf backend, the tiny model): each caption and each
    translated template ends up as the tiny model translates it, on its own row,
    in its row's language."""
    extra = [*translation_sets("hf", tmp_path / "cache.sqlite", tiny_nllb), "--set", "mscoco.languages=[en, de, fr]",
             "--set", "mscoco.translated_ratio=1.0"]
    generate_train.main(sets(tmp_path, *extra))
    translate_train.main(sets(tmp_path, *extra))
    generate_train.main(sets(tmp_path, *extra))
    english = rows(tmp_path / "work" / "mscoco" / "captions_en.jsonl")
    translated = rows(tmp_path / "work" / "mscoco" / "captions_translated.jsonl")
    assert [r["id"] for r in translated] == [r["id"] for r in english]
    assert [r["caption"] for r in translated] == [tiny_expect(en["caption"], r["lang"])
                                                  for en, r in zip(english, translated)]
    got = rows(tmp_path / "out" / "train" / "mscoco.jsonl")
    assert len(got) == 9 and all(list(r) == KEYS and r["label"] for r in got)
    kept = [r for r in translated if r["image_id"] not in DROPPED]   # evaluation images dropped
    assert [(r["label"], r["lang"]) for r in got] == [(r["caption"], r["lang"]) for r in kept]
    assert {"de", "fr"} <= {r["lang"] for r in got} <= {"en", "de", "fr"}
    store = json.loads((tmp_path / "work" / "mscoco" / "templates_translated.json").read_text())
    english_templates = store["key"]["templates"]["english"]
    for lang in ("de", "fr"):
        assert store["translated"]["english"][lang] == [tiny_expect(t, lang) for t in english_templates]
    for r in got:   # translated_ratio=1: every non-English row has a translated instruction
        assert r["context"] in (english_templates if r["lang"] == "en" else store["translated"]["english"][r["lang"]])


def test_karpathy_images_are_streamed_one_record_at_a_time(tmp_path):
    """common.jsonl.iter_json_array(member="images") yields the same records as
    json.load, for any window size, and holds one window and one record, not the
    file (the Karpathy file is 142 MB; mscoco.english, mscoco.eval, eval.chair
    and the decontamination sets read it this way). A file without the array
    is one UserError naming it."""
    import tracemalloc

    from common.errors import UserError
    from common.jsonl import BadRows, iter_json_array
    images = [{"filepath": "val2014", "cocoid": i, "split": "val", "x": -1.5e-3,
               "sentences": [{"raw": f"A caption number {i} {j}.", "tokens": ["a"] * 12, "sentid": 5 * i + j}
                             for j in range(5)]} for i in range(15000)]
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"dataset": "coco", "info": {"n": [1, 2.5e3]}, "images": images}), encoding="utf-8")
    for chunk in (7, 4096, 1 << 20):
        assert [img for _, img in iter_json_array(path, member="images", chunk_size=chunk)] == images
    tracemalloc.start()
    n = sum(1 for _ in iter_json_array(path, member="images", chunk_size=1 << 16))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 15000 and peak < path.stat().st_size / 10
    for text in ('{"dataset": "coco"}', '{"images": 3}', "[1, 2]", '{"dataset": '):
        path.write_text(text)
        with pytest.raises(UserError, match="dataset_coco.json"):
            list(iter_json_array(path, member="images"))
    path.write_text('{"images": [{"a": 1}, ')
    bad = BadRows(max_bad=None, quiet=True)
    assert [img for _, img in iter_json_array(path, bad, member="images")] == [{"a": 1}]
    assert bad.examples == [f"{path}: images[1]: file ends inside the 'images' array (truncated file?)"]


def test_an_edited_language_table_makes_the_translate_step_stale_and_retranslates(tmp_path):
    """ku's model code edited in the language table: status calls mscoco.translate
    stale (the table is one of its inputs) and the rerun translates for the new
    code (the cache is keyed by the code the model receives, not by ours)."""
    import os
    import subprocess

    from tests.conftest import PYTHON, REPO
    table = tmp_path / "languages.tsv"
    table.write_text((REPO / "common" / "languages.tsv").read_text(encoding="utf-8"), encoding="utf-8")
    env = {**os.environ, "MBLIP_LANGUAGE_TABLE": str(table)}
    args = sets(tmp_path, "--set", "mscoco.languages=[ku]")

    def run(*cmd):
        r = subprocess.run([PYTHON, *cmd, *args], cwd=REPO, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout + r.stderr

    def status_of(step_id):
        out = run("-m", "common", "status")
        return next(line.split()[2] for line in out.splitlines() if f" {step_id} " in f"{line} ")

    run("tasks/mscoco/generate_train.py")
    run("tasks/mscoco/translate_train.py")
    translated = tmp_path / "work" / "mscoco" / "captions_translated.jsonl"
    assert any("[kmr_Latn]" in line for line in translated.read_text(encoding="utf-8").splitlines())
    assert status_of("mscoco.translate") == "done"
    table.write_text(table.read_text(encoding="utf-8").replace("kmr_Latn", "ckb_Arab"), encoding="utf-8")
    assert status_of("mscoco.translate") == "STALE"
    run("tasks/mscoco/translate_train.py")
    text = translated.read_text(encoding="utf-8")
    assert "[ckb_Arab]" in text and "[kmr_Latn]" not in text
    assert status_of("mscoco.translate") == "done"
