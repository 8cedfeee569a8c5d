"""ImageNet: Babel-ImageNet names (real file) for our language codes, rounds, reuse, decide negatives."""
from __future__ import annotations

import collections
import json

import pytest

from common.report import Report
from conftest import FIXTURES_RAW
from tasks.imagenet import generate_train
from tasks.imagenet.classes import class_names, read_english, read_synsets


def sets(tmp, *extra):
    return ["--set", f"paths.raw_root={FIXTURES_RAW}", "--set", f"paths.work_dir={tmp}/work",
            "--set", f"paths.out_root={tmp}/out", *extra]


def real_sets(real):
    return ["--set", f"imagenet.babel={real}/babel-imagenet/babel_imagenet-298.json",
            "--set", f"imagenet.class_index={real}/imagenet/imagenet_class_index.json",
            "--set", f"imagenet.classnames_en={real}/imagenet/clip_imagenet_classnames_en.json"]


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_real_babel_covers_our_codes(real_root):
    from common.languages import load_languages
    babel = json.loads((real_root / "babel-imagenet" / "babel_imagenet-298.json").read_text(encoding="utf-8"))
    synsets = read_synsets(real_root / "imagenet" / "imagenet_class_index.json")
    english = read_english(real_root / "imagenet" / "clip_imagenet_classnames_en.json", len(synsets))
    report = Report("t")
    names = class_names(babel, english, list(load_languages()), {"iw": "HE", "fil": "TL"}, report)
    assert len(synsets) == 1000 and names["en"][0] == "tench"  # English from CLIP, not Babel's EN
    assert names["iw"][1] == "דג זהב" and names["fil"][1] == "Goldpis"
    assert set(names) == set(load_languages())
    # without the override, iw/fil are not found
    names2 = class_names(babel, english, ["iw", "fil", "de"], {}, Report("t"))
    assert set(names2) == {"de"}


def test_generate_real_names(tmp_path, real_root):
    generate_train.main(sets(tmp_path, *real_sets(real_root), "--set", "imagenet.languages=[en, de, iw, fil]",
                             "--set", "imagenet.rounds=3"))
    out = tmp_path / "out" / "train"
    classify, decide = rows(out / "imagenet_classify.jsonl"), rows(out / "imagenet_decide.jsonl")
    assert len(classify) == len(decide)
    per = collections.Counter((r["lang"]) for r in classify)
    # classes with images in the fixture: 0, 1, 3, 4; TL names only 1 and 4 of them
    assert per == {"en": 3 * 4, "de": 3 * 4, "iw": 3 * 4, "fil": 3 * 2}
    assert {r["label"] for r in classify if r["lang"] == "fil"} == {"Goldpis", "Pating ng martilyo"}
    assert all(r["image_id"].startswith("train/n0") and r["image_id"].endswith(".JPEG") for r in classify)
    assert all(r["label"] in ("yes", "no") and r["lang"] == "en" for r in decide)
    assert "German" in classify[[r["lang"] for r in classify].index("de")]["context"]
    report = json.loads((tmp_path / "work" / "imagenet" / "train.report.json").read_text())
    # class 1 has one image: reused; class 0 has 3 images for 12 draws
    assert report["counts"]["images_reused"] > 0
    # fresh images first: the first three draws of class 0 use its three images
    c0 = [r["image_id"] for r in classify if r["image_id"].startswith("train/n01440764/")]
    assert len(set(c0[:3])) == 3
    # a decide row names its image's class (yes) or another class (no)
    for c, d in zip(classify, decide):
        assert d["image_id"] == c["image_id"]
        assert (c["label"] in d["context"]) == (d["label"] == "yes")


def test_negatives_next_and_determinism(tmp_path, real_root):
    args = [*real_sets(real_root), "--set", "imagenet.languages=[de]", "--set", "imagenet.rounds=1",
            "--set", "imagenet.negatives=next", "--set", "imagenet.positive_ratio=0.0"]
    generate_train.main(sets(tmp_path / "a", *args))
    generate_train.main(sets(tmp_path / "b", *args))
    a = (tmp_path / "a" / "out" / "train" / "imagenet_decide.jsonl").read_bytes()
    assert a == (tmp_path / "b" / "out" / "train" / "imagenet_decide.jsonl").read_bytes()
    decide = [json.loads(x) for x in a.decode().splitlines()]
    shown = [d["context"] for d in decide]
    assert "Goldfisch" in shown[0]  # with "next", class 0's negative is class 1
    assert all(d["label"] == "no" for d in decide)


def test_bad_config_exits_2(tmp_path):
    with pytest.raises(SystemExit) as e:
        generate_train.main(sets(tmp_path, "--set", "imagenet.negatives=nearest"))
    assert e.value.code == 2
