"""ImageNet: Babel-ImageNet names (bundled fixtures, and the real file when present) for our language codes, rounds, reuse, decide negatives,
instructions and yes/no in the example's language (translate step through the Engine)."""
from __future__ import annotations

import collections
import json

import pytest

from common.config import build_config
from common.languages import get_language
from common.report import Report
from tests.conftest import FIXTURES_RAW, translation_sets
from tasks.imagenet import generate_train, translate_train
from tasks.imagenet.classes import class_names, read_english, read_synsets
from tasks.imagenet.settings import CONFIG, DEFAULTS, clean_word
from translate.engine import Engine, TRANSLATION_DEFAULTS


def sets(tmp, *extra):
    return ["--set", f"paths.raw_root={FIXTURES_RAW}", "--set", f"paths.work_dir={tmp}/work",
            "--set", f"paths.out_root={tmp}/out", *translation_sets("dry-run", ""), *extra]


def both(tmp, *extra):
    """The two steps: translate (dry-run engine) then generate."""
    translate_train.main(sets(tmp, *extra))
    generate_train.main(sets(tmp, *extra))


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


@pytest.fixture(params=["fixtures", "real"])
def names_sets(request) -> list[str]:
    """--set args for the class names: the bundled fixtures (Babel-ImageNet's format and
    its names for these classes: always run) or the real release files (skip without)."""
    if request.param == "fixtures":
        return []
    return real_sets(request.getfixturevalue("real_root"))


def test_fixture_babel_names_for_our_codes():
    babel = json.loads((FIXTURES_RAW / "babel-imagenet" / "babel_imagenet-298.json").read_text(encoding="utf-8"))
    synsets = read_synsets(FIXTURES_RAW / "imagenet" / "imagenet_class_index.json")
    english = read_english(FIXTURES_RAW / "imagenet" / "clip_imagenet_classnames_en.json", len(synsets))
    names = class_names(babel, english, ["en", "de", "fr", "zh", "iw", "fil", "sw"], {"iw": "HE", "fil": "TL"},
                        Report("t"))
    assert len(synsets) == 6 and names["en"][0] == "tench"  # English from CLIP, not Babel's EN ("Tinca tinca")
    assert names["iw"][1] == "דג זהב" and names["fil"][1] == "Goldpis" and names["de"][1] == "Goldfisch"
    assert set(names) == {"en", "de", "fr", "zh", "iw", "fil"}    # no Swahili names in the file
    assert set(class_names(babel, english, ["iw", "fil", "de"], {}, Report("t"))) == {"de"}


def test_generate_names(tmp_path, names_sets):
    both(tmp_path, *names_sets, "--set", "imagenet.languages=[en, de, iw, fil]",
         "--set", "imagenet.rounds=3")
    out = tmp_path / "out" / "train"
    classify, decide = rows(out / "imagenet_classify.jsonl"), rows(out / "imagenet_decide.jsonl")
    assert len(classify) == len(decide)
    per = collections.Counter((r["lang"]) for r in classify)
    # classes with images in the fixture: 0, 1, 3, 4; TL names only 1 and 4 of them
    assert per == {"en": 3 * 4, "de": 3 * 4, "iw": 3 * 4, "fil": 3 * 2}
    assert {r["label"] for r in classify if r["lang"] == "fil"} == {"Goldpis", "Pating ng martilyo"}
    # relative to imagenet.train_dir, mBLIP's imagenet_image_root (.../imagenet/train)
    assert all(r["image_id"].startswith("n0") and r["image_id"].endswith(".JPEG") for r in classify)
    assert all((FIXTURES_RAW / "imagenet" / "train" / r["image_id"]).is_file() for r in classify)
    # question and yes/no in the example's language (dry-run tags the NLLB code)
    for c, d in zip(classify, decide):
        assert d["lang"] == c["lang"]
        if c["lang"] == "en":
            assert d["label"] in ("yes", "no") and not c["context"].startswith("[")
        else:
            code = get_language(c["lang"]).nllb
            assert d["label"] in (f"[{code}] yes", f"[{code}] no")
            assert c["context"].startswith(f"[{code}] ") and d["context"].startswith(f"[{code}] ")
    report = json.loads((tmp_path / "work" / "reports" / "imagenet.generate.json").read_text())
    # class 1 has one image: reused; class 0 has 3 images for 12 draws
    assert report["counts"]["images_reused"] > 0
    # fresh images first: the first three draws of class 0 use its three images
    c0 = [r["image_id"] for r in classify if r["image_id"].startswith("n01440764/")]
    assert len(set(c0[:3])) == 3
    # a decide row names its image's class (yes) or another class (no)
    for c, d in zip(classify, decide):
        assert d["image_id"] == c["image_id"]
        assert (c["label"] in d["context"]) == d["label"].endswith("yes")


def test_negatives_next_and_determinism(tmp_path, names_sets):
    args = [*names_sets, "--set", "imagenet.languages=[de]", "--set", "imagenet.rounds=1",
            "--set", "imagenet.negatives=next", "--set", "imagenet.positive_ratio=0.0"]
    both(tmp_path / "a", *args)
    both(tmp_path / "b", *args)
    a = (tmp_path / "a" / "out" / "train" / "imagenet_decide.jsonl").read_bytes()
    assert a == (tmp_path / "b" / "out" / "train" / "imagenet_decide.jsonl").read_bytes()
    decide = [json.loads(x) for x in a.decode().splitlines()]
    shown = [d["context"] for d in decide]
    assert "Goldfisch" in shown[0]  # with "next", class 0's negative is class 1
    assert all(d["label"] == "[deu_Latn] no" and d["lang"] == "de" for d in decide)


def test_bad_config_exits_2(tmp_path):
    with pytest.raises(SystemExit) as e:
        generate_train.main(sets(tmp_path, "--set", "imagenet.negatives=nearest"))
    assert e.value.code == 2


class PickyBackend:
    """Fake NLLB: en->X appends " (xxx)". French "no" comes back empty (rejected by
    the quality check) and German loses the {} of every decide template."""
    name = "fake"
    model_key = "fake-picky"
    calls = 0

    def count_tokens(self, texts, src=None):
        return [len(t.split()) + 2 for t in texts]

    def translate_batch(self, texts, src, tgts, max_new_tokens):
        out = []
        for text, tgt in zip(texts, tgts):
            if tgt == "fra_Latn" and text == "no":
                out.append("")
            elif tgt == "deu_Latn" and "{}" in text:
                out.append(text.replace("{}", "X") + " (deu)")
            else:
                out.append(f"{text} ({tgt[:3]})")
        return out


def test_rejected_translations_fall_back_and_are_counted(tmp_path):
    args = sets(tmp_path, "--set", "imagenet.languages=[en, de, fr, zh]", "--set", "imagenet.rounds=1",
                "--set", "imagenet.yes_no={en: ['yes', 'no'], zh: ['是', '不是']}")
    cfg = build_config(DEFAULTS, CONFIG, args[1::2])
    engine = Engine({**TRANSLATION_DEFAULTS, "cache": "", "progress": False}, backend=PickyBackend())
    tr = translate_train.run(cfg, engine=engine)
    assert "de" not in tr["decide"] and "fr" not in tr["no"] and tr["yes"]["fr"] == ["yes (fra)"]
    generate_train.main(args)
    out = tmp_path / "out" / "train"
    classify, decide = rows(out / "imagenet_classify.jsonl"), rows(out / "imagenet_decide.jsonl")
    by = collections.defaultdict(list)
    for c, d in zip(classify, decide):
        by[c["lang"]].append((c, d))
    # fr: "no" rejected -> decide answered in English (lang en), question English
    assert all(d["lang"] == "en" and d["label"] in ("yes", "no") for _, d in by["fr"])
    assert all(c["context"].endswith("(fra)") for c, _ in by["fr"])  # classify still in French
    # de: decide templates lost their placeholder -> English template naming German, answer in German
    assert all(d["lang"] == "de" and "German" in d["context"] and d["label"] in ("yes (deu)", "no (deu)")
               for _, d in by["de"])
    # zh: hand-written words win over translation; the question is translated
    assert by["zh"] and all(d["label"] in ("是", "不是") and d["context"].endswith("(zho)") for _, d in by["zh"])
    report = json.loads((tmp_path / "work" / "reports" / "imagenet.generate.json").read_text())
    assert report["yes_no_source"] == {"config": ["en", "zh"], "translated": ["de"], "english_fallback": ["fr"]}
    assert report["counts"]["decide_answered_in_english"] == len(by["fr"])
    assert report["instructions"]["imagenet_decide"]["english_naming_language"] == len(by["de"])
    assert report["skipped"]["yes/no translation rejected: imagenet_decide answered in English"] == 1


def test_translation_required_and_not_stale(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # non-English languages need the translate step
        generate_train.main(sets(tmp_path, "--set", "imagenet.languages=[en, de]"))
    assert e.value.code == 2 and "translate_train.py" in capsys.readouterr().err
    generate_train.main(sets(tmp_path, "--set", "imagenet.languages=[en]"))  # English only: no step needed
    translate_train.main(sets(tmp_path, "--set", "imagenet.languages=[en, de]"))
    for extra in (["--set", 'imagenet.templates.decide=["Is a {} there?"]'], ["--set", "imagenet.languages=[en, fr]"]):
        with pytest.raises(SystemExit) as e:
            generate_train.main(sets(tmp_path, *extra))
        err = capsys.readouterr().err
        assert e.value.code == 2 and "stale translated templates" in err
        assert "(imagenet.translate): python tasks/imagenet/translate_train.py" in err


def test_negative_never_shares_the_name():
    import random
    by_class = {0: "sunglasses", 1: "Sunglasses", 2: "tench", 3: "sunglasses"}
    classes = [0, 1, 2, 3]
    r = random.Random(0)
    assert {generate_train.negative_name(0, classes, by_class, "random", r) for _ in range(50)} == {"tench"}
    assert generate_train.negative_name(0, classes, by_class, "next", r) == "tench"
    assert generate_train.negative_name(3, classes, by_class, "next", r) == "tench"
    assert generate_train.negative_name(0, [0, 1], by_class, "random", r) is None


def test_clean_word():
    assert clean_word(" Ja. ") == "Ja" and clean_word("«Oui»") == "Oui" and clean_word("是的。") == "是的"
    assert clean_word("Yes, there is a fish in the image.") == "" and clean_word(None) == ""


def test_language_with_too_few_classes_is_skipped_and_counted(tmp_path):
    """Babel-ImageNet names only a dozen classes in some languages (ig: 12); one
    that names a single class with images cannot have a negative: skipped, counted."""
    babel = tmp_path / "babel.json"
    babel.write_text(json.dumps({"TL": [[1, 2], ["Goldpis", "Pating"]],  # class 2 has no images
                                 "DE": [[0, 1, 3], ["Schleie", "Goldfisch", "Hammerhai"]]}), encoding="utf-8")
    args = ["--set", f"imagenet.babel={babel}", "--set", "imagenet.languages=[de, fil]", "--set", "imagenet.rounds=2"]
    both(tmp_path, *args)
    classify = rows(tmp_path / "out" / "train" / "imagenet_classify.jsonl")
    assert collections.Counter(r["lang"] for r in classify) == {"de": 6}
    report = json.loads((tmp_path / "work" / "reports" / "imagenet.generate.json").read_text())
    assert report["skipped"]["language with fewer than two classes with images"] == 1
    assert report["counts"]["classes_without_images_skipped"] == 1
