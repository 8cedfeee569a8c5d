"""Evaluation-data converters: the awkward cases one by one, the CLI contract, and the demo."""
from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from eval_data.captions import coco_reference, reference_captions, segment
from eval_data.images import ImageFinder
from eval_data.marvl.convert import nlvr2_image
from eval_data.xgqa.convert import best_answer
from eval_data.xvnli.convert import map_label
from tests.conftest import root_sets

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "raw"
BENCHMARKS = ["xgqa", "xvnli", "marvl", "xflickrco", "xm3600", "maxm", "pope", "chair"]


# ---- segmentation and NFC -------------------------------------------------------------------------

def test_segment_chinese_with_jieba():
    out = segment("一个戴着橙色线帽的白人", "zh", "words")
    assert out.split() == ["一个", "戴着", "橙色", "线帽", "的", "白人"]


def test_segment_japanese_with_sudachi():
    out = segment("ミキサーにたくさんの緑の野菜が入っている", "ja", "words")
    assert out.split()[:4] == ["ミキサー", "に", "たくさん", "の"]
    assert "野菜" in out.split()


def test_segment_thai_with_pythainlp():
    assert segment("ผู้หญิงกำลังเดินอยู่บนถนน", "th", "words").split() == ["ผู้หญิง", "กำลัง", "เดิน", "อยู่", "บน", "ถนน"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # spaCy's Japanese() on SudachiPy
def test_segment_mblip_mode_is_what_mblips_scorer_does():
    """mBLIP's caption_evaluation splits zh/ja/th predictions with blank spaCy
    pipelines: the default mode gives references split the same way (Chinese
    into characters, Latin letters included), the words mode jieba words."""
    from spacy.lang.ja import Japanese
    from spacy.lang.th import Thai
    from spacy.lang.zh import Chinese
    zh = "一个戴着橙色 3D 线帽的white人。"
    assert segment(zh, "zh") == "一 个 戴 着 橙 色 3 D 线 帽 的 w h i t e 人 。"
    assert segment(zh, "zh", "mblip") == " ".join(t.text for t in Chinese()(zh) if t.text.strip())
    assert segment(zh, "zh", "words").split()[:3] == ["一个", "戴着", "橙色"]
    ja, th = "ミキサーにたくさんの緑の野菜が入っている", "ผู้หญิงกำลังเดินอยู่บนถนน"
    assert segment(ja, "ja", "mblip") == " ".join(t.text for t in Japanese()(ja))
    assert segment(th, "th", "mblip") == " ".join(t.text for t in Thai()(th))
    assert segment("Ein Hund rennt.", "de", "mblip") == "Ein Hund rennt."
    assert reference_captions(["两个人"], "zh", "mblip") == ["两 个 人"]
    assert reference_captions(["两个人"], "zh", "words") == ["两个 人"]


def test_segmentation_setting_reaches_the_references(tmp_path):
    """captions.segmentation picks the split of the written references; a bad value is one line, exit 2."""
    outs = {}
    for mode in ("mblip", "words"):
        r = subprocess.run([sys.executable, "eval_data/xflickrco/convert.py", *root_sets(tmp_path / mode),
                            "--set", f"captions.segmentation={mode}"], cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-1500:]
        ref = json.loads((tmp_path / mode / "out" / "eval" / "xflickrco" / "xflickrco_coco_test_zh.json").read_text())
        outs[mode] = [a["caption"] for a in ref["annotations"]]
    assert outs["mblip"] != outs["words"]
    for char_split, word_split in zip(outs["mblip"], outs["words"]):
        assert "".join(char_split.split()) == "".join(word_split.split())
        assert all(len(tok) == 1 for tok in char_split.split())      # one character a token
        assert len(char_split.split()) > len(word_split.split())
    r = subprocess.run([sys.executable, "eval_data/xm3600/convert.py", *root_sets(tmp_path / "bad"),
                        "--set", "captions.segmentation=chars"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "captions.segmentation" in r.stderr and "mblip, words" in r.stderr


def test_segmentation_keeps_every_character_and_nfc():
    text = "两个 正在练习跆拳道的人。"
    assert "".join(segment(text, "zh").split()) == "".join(text.split())
    assert "".join(segment(text, "zh", "words").split()) == "".join(text.split())
    # Latin-script languages: NFC and whitespace only, no splitting of words.
    assert segment("Une fe\u0301e  danse.", "fr") == "Une f\u00e9e danse."
    # A half-width katakana / decomposed kana caption comes out NFC.
    assert unicodedata.is_normalized("NFC", segment("か\u3099いこく", "ja"))


def test_languages_with_spaces_are_not_segmented():
    # Korean is written with spaces between words: NFC only (decomposed jamo recomposed), spaces kept.
    nfd = unicodedata.normalize("NFD", "태권도를 연습하는 두 사람")
    assert nfd != "태권도를 연습하는 두 사람"
    assert segment(nfd, "ko") == "태권도를 연습하는 두 사람"
    assert segment("잔디 위를 달리는 개", "ko") == "잔디 위를 달리는 개"
    for lang, text in [("ru", "Собака бежит по траве."), ("ar", "كلب يركض على العشب"), ("hi", "घास पर दौड़ता कुत्ता")]:
        assert segment(text, lang) == text
    # Line breaks and tabs become single spaces: a reference is one line of space-separated words.
    assert segment("Un perro corre\nsobre\t la hierba.\u2028", "es") == "Un perro corre sobre la hierba."
    assert "\n" not in segment("一只狗\n在跑", "zh")


def test_reference_format_and_empty_captions():
    caps = reference_captions(["", "  ", "A dog.", None], "en")
    assert caps == ["A dog."]
    ref = coco_reference([("a.jpg", ["x y", "z"]), ("b.jpg", ["w"])])
    assert ref["images"] == [{"id": "a.jpg"}, {"id": "b.jpg"}]
    assert [a["id"] for a in ref["annotations"]] == [1, 2, 3]


# ---- labels and image paths -----------------------------------------------------------------------

LABELS = {"entailment": "yes", "contradiction": "no", "neutral": "maybe"}


@pytest.mark.parametrize("row, expected", [
    ({"gold_label": "entailment"}, "yes"),
    ({"gold_label": "neutral", "annotator_labels": ["contradiction"]}, "maybe"),  # gold wins
    ({"gold_label": "-", "annotator_labels": ["contradiction", "neutral"]}, "no"),  # first annotator
    ({"annotator_labels": ["neutral"]}, "maybe"),
    ({"gold_label": "-"}, None),
    ({"gold_label": "-", "annotator_labels": ["-"]}, None),
    ({"gold_label": "Entailment"}, None),
    ({}, None),
])
def test_xvnli_label_mapping(row, expected):
    assert map_label(row, LABELS)[0] == expected


def test_gqa_best_answer():
    assert best_answer({"women": 0.6, "girls": 0.6, "people": 0.3}) == "women"  # tie: first listed
    assert best_answer({"a": 0.3, "b": 0.9}) == "b"
    assert best_answer({}) is None


def test_nlvr2_image_names():
    assert nlvr2_image("dev-850-0-0", None, 0) == "dev/dev-850-0-img0.png"
    assert nlvr2_image("test1-0-1-3", None, 1) == "test1/test1-0-1-img1.png"
    assert nlvr2_image("train-10171-0-0", "73", 1) == "train/73/train-10171-0-img1.png"
    assert nlvr2_image("train-10171-0-0", 73, 0) == "train/73/train-10171-0-img0.png"  # a JSON number
    assert nlvr2_image("train-10171-0-0", 0, 0) == "train/0/train-10171-0-img0.png"
    assert nlvr2_image("train-10171-0-0", None, 0) is None
    assert nlvr2_image("garbage", None, 0) is None


def test_image_finder_resolves_nfc_and_nfd(tmp_path):
    nfc, nfd = unicodedata.normalize("NFC", "7-Börek"), unicodedata.normalize("NFD", "7-Börek")
    assert nfc != nfd
    (tmp_path / "tr/images" / nfd).mkdir(parents=True)
    (tmp_path / "tr/images" / nfd / "7-0.jpg").write_bytes(b"x")
    ta_nfc = unicodedata.normalize("NFC", "26-பொங்கல்")
    (tmp_path / "ta/images" / ta_nfc).mkdir(parents=True)
    (tmp_path / "ta/images" / ta_nfc / "26-1.jpg").write_bytes(b"x")
    finder = ImageFinder(tmp_path)
    found = finder.resolve("tr", "images", nfc, "7-0.jpg")
    assert found == f"tr/images/{nfd}/7-0.jpg" and (tmp_path / found).is_file()
    assert finder.resolve("tr", "images", nfd, "7-0.jpg") == found
    ta = finder.resolve("ta", "images", unicodedata.normalize("NFD", ta_nfc), "26-1.jpg")
    assert ta == f"ta/images/{ta_nfc}/26-1.jpg"
    assert finder.resolve("tr", "images", nfc, "7-9.jpg") is None
    assert finder.resolve("tr", "images", nfc) is None  # a folder is not an image
    assert ImageFinder(tmp_path / "absent").resolve("tr", "images", nfc, "7-0.jpg") is None


# ---- input paths: the official release layout (common/FORMATS.md, the IGLUE repository) ---------------

# Paths under raw_root exactly as the releases lay them out; {lang}/{split} filled per language.
RELEASE_LAYOUT = {
    "xgqa.gqa_train": "iglue/datasets/gqa/annotations/train.json",
    "xgqa.val_file": "iglue/datasets/xGQA/annotations/few_shot/{lang}/dev.json",
    "xgqa.test_file": "iglue/datasets/xGQA/annotations/few_shot/{lang}/test.json",
    "xvnli.train_file": "iglue/datasets/XVNLI/annotations/en/train.jsonl",
    "xvnli.val_en_file": "iglue/datasets/XVNLI/annotations/en/dev.jsonl",
    "xvnli.val_file": "iglue/datasets/XVNLI/annotations/en/dev-{lang}_gmt.jsonl",
    "xvnli.test_file": "iglue/datasets/XVNLI/annotations/{lang}/test.jsonl",
    "marvl.test_file": "iglue/datasets/marvl/zero_shot/annotations/marvl-{lang}.jsonl",
    "marvl.image_root": "iglue/datasets/marvl/images",
    "marvl.nlvr2_train": "iglue/datasets/nlvr2/annotations/train.jsonl",
    "marvl.nlvr2_dev": "iglue/datasets/nlvr2/annotations/dev.jsonl",
    "marvl.nlvr2_test": "iglue/datasets/nlvr2/annotations/test.jsonl",
    "marvl.nlvr2_dev_translated": "iglue/datasets/nlvr2/annotations/dev-{lang}_gmt.jsonl",
    "xflickrco.test_file": "iglue/datasets/xFlickrCO/annotations/{lang}/test.jsonl",
    "xflickrco.flickr_train": "iglue/datasets/flickr30k/annotations/train_ann.jsonl",
    "xflickrco.flickr_val": "iglue/datasets/flickr30k/annotations/valid_ann.jsonl",
    "xflickrco.flickr_test": "iglue/datasets/flickr30k/annotations/test_ann.jsonl",
    "xm3600.captions": "xm3600/captions.jsonl",
    "maxm.file": "maxm/maxm_v1_{lang}.json",
    "maxm.image_root": "xm3600/images",
    "pope.file": "pope/output/coco/coco_pope_{split}.json",
    "chair.karpathy": "mscoco/dataset_coco.json",
    "chair.ground_truth": "pope/segmentation/coco_ground_truth_segmentation.json",
}


EVAL_LANGS = {"xgqa": "bn de en id ko pt ru zh", "xvnli": "ar en es fr ru", "marvl": "id sw ta tr zh",
              "xflickrco": "de en es id ja ru tr zh", "maxm": "en fr hi iw ro th zh"}


def test_input_paths_follow_the_release_layout(tmp_path):
    from common.config import build_config
    from eval_data import settings

    # The YAML users edit, and the DEFAULTS schema alone: both name the release files.
    for config_file in (settings.DEFAULT_CONFIG, None):
        cfg = build_config(settings.DEFAULTS, config_file, ["paths.raw_root=/R", "paths.work_dir=/W",
                                                            "paths.out_root=/O"])
        for key, rel in RELEASE_LAYOUT.items():
            assert cfg.at(key) == f"/R/{rel}", (config_file, key)
    langs = EVAL_LANGS
    cfg = settings.load("test", root_sets(tmp_path))
    for bench, codes in langs.items():
        assert cfg.at(f"{bench}.langs") == codes.split(), bench
    assert cfg.at("marvl.nlvr2_langs") == "id sw ta tr zh".split()
    assert cfg.at("pope.splits") == ["adversarial", "popular", "random"]


def test_the_real_release_files_are_where_the_layout_says(real_root):
    """Every file of the layout that the store of real releases holds."""
    langs = EVAL_LANGS
    in_store = [RELEASE_LAYOUT["xgqa.val_file"].format(lang=l) for l in langs["xgqa"].split()]
    in_store += [RELEASE_LAYOUT["xvnli.test_file"].format(lang=l) for l in langs["xvnli"].split()]
    in_store += [RELEASE_LAYOUT["marvl.test_file"].format(lang=l) for l in langs["marvl"].split()]
    in_store += [RELEASE_LAYOUT["xflickrco.test_file"].format(lang=l) for l in langs["xflickrco"].split()]
    in_store += [RELEASE_LAYOUT["pope.file"].format(split=s) for s in ("adversarial", "popular", "random")]
    in_store += [RELEASE_LAYOUT[k] for k in ("marvl.nlvr2_dev", "marvl.nlvr2_test", "xflickrco.flickr_val",
                                             "xflickrco.flickr_test")]
    in_store.append(RELEASE_LAYOUT["marvl.nlvr2_dev_translated"].format(lang="zh"))
    missing = [rel for rel in in_store if not (real_root / rel).is_file()]
    assert not missing, missing


# ---- the command line -----------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_missing_input_exits_2_naming_the_path(tmp_path):
    r = run_cli("eval_data/pope/convert.py", "--config", "configs/eval_data.yaml", *root_sets(tmp_path),
                "--set", f"paths.raw_root={tmp_path}/nothing", "--set", f"paths.out_root={tmp_path}/out")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert f"{tmp_path}/nothing/pope/output/coco/coco_pope_adversarial.json" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing written before the check


@pytest.mark.parametrize("bench", BENCHMARKS)
def test_every_converter_stops_on_a_missing_input_before_writing(bench, tmp_path, capsys):
    import importlib

    main = importlib.import_module(f"eval_data.{bench}.convert").main
    with pytest.raises(SystemExit) as e:
        main(["--set", f"paths.raw_root={tmp_path}/nothing", "--set", f"paths.out_root={tmp_path}/out",
              "--set", f"paths.work_dir={tmp_path}/work"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{tmp_path}/nothing/" in err and "input file not found" in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("bench, template", [("maxm", "Question: {question} Answer in {lang}:"),
                                             ("xvnli", "{hypothesis"), ("pope", "{} {question}")])
def test_bad_context_template_stops_before_writing(bench, template, tmp_path, capsys):
    import importlib

    main = importlib.import_module(f"eval_data.{bench}.convert").main
    with pytest.raises(SystemExit) as e:
        main(["--set", f"paths.raw_root={FIXTURES}", "--set", f"paths.out_root={tmp_path}/out",
              "--set", f"paths.work_dir={tmp_path}/work", "--set", f"{bench}.context_template={template}"])
    assert e.value.code == 2
    assert f"{bench}.context_template" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_key_exits_2(tmp_path):
    r = run_cli("eval_data/xgqa/convert.py", "--set", "xgqa.langz=[en]")
    assert r.returncode == 2 and "xgqa.langz" in r.stderr


def test_help():
    r = run_cli("eval_data/xm3600/convert.py", "--help")
    assert r.returncode == 0 and "--set" in r.stdout and "Crossmodal-3600" in r.stdout


# ---- the demo on the fixtures ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not (FIXTURES / "mscoco" / "dataset_coco.json").is_file():
        pytest.skip("the shared MSCOCO fixture (tasks stage) is not there yet")
    base = tmp_path_factory.mktemp("eval_demo")
    r = subprocess.run([sys.executable, "tests/tools/demo.py", "--raw", str(FIXTURES), "--out", str(base),
                        "--only", "eval"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    reports = {b: json.loads((base / "work/reports" / f"eval.{b}.json").read_text()) for b in BENCHMARKS}
    return base / "out" / "eval", reports, r.stderr


def test_demo_writes_every_file(demo):
    out, _, _ = demo
    expected = ["xgqa/xgqa_train.jsonl", "xvnli/xvnli_train.jsonl", "marvl/nlvr2_train_en.jsonl",
                "marvl/nlvr2_dev_en.jsonl", "marvl/nlvr2_test_en.jsonl", "xflickrco/flickr30k_train.jsonl",
                "chair/chair_val.jsonl", "chair/chair_test.jsonl"]
    expected += [f"xgqa/xgqa_{s}_{l}.jsonl" for s in ("val", "test") for l in "bn de en id ko pt ru zh".split()]
    expected += [f"xvnli/xvnli_{s}_{l}.jsonl" for s in ("val", "test") for l in "ar en es fr ru".split()]
    expected += [f"marvl/marvl_test_{l}.jsonl" for l in "id sw ta tr zh".split()]
    expected += [f"marvl/nlvr2_dev_{l}.jsonl" for l in "id sw ta tr zh".split()]
    expected += [f"xflickrco/flickr30k_{s}_en.jsonl" for s in ("val", "test")]
    expected += [f"xflickrco/flickr30k_coco_{s}_en.json" for s in ("val", "test")]
    expected += [f"xflickrco/xflickrco_{k}_{l}.json{'l' if k == 'test' else ''}"
                 for k in ("test", "coco_test") for l in "de en es id ja ru tr zh".split()]
    expected += [f"maxm/maxm_test_{l}.jsonl" for l in "en fr hi iw ro th zh".split()]
    expected += [f"pope/pope_{s}.jsonl" for s in ("adversarial", "popular", "random")]
    from eval_data.settings import XM3600_LANGS
    expected += [f"xm3600/xm3600_test_{l}.jsonl" for l in XM3600_LANGS]
    expected += [f"xm3600/xm3600_coco_test_{l}.json" for l in XM3600_LANGS]
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == set(expected)
    keys = {"context", "label", "image_id", "text_label"}
    for rel in expected:
        if rel.endswith(".jsonl"):
            for row in map(json.loads, (out / rel).read_text(encoding="utf-8").splitlines()):
                assert keys <= set(row), rel
                assert (row["label"] == "") == ("_train" not in rel), rel


def test_demo_rows_keys_types_and_datasets_load(demo, tmp_path):
    from tests.test_eval_checks import check_loads_with_datasets, check_rows

    out, _, _ = demo
    files = sorted(out.rglob("*.jsonl"))
    expected = {f.stem: len(check_rows(f, f.parent.name)) for f in files}
    assert all(expected.values()), expected  # every demo output has rows
    assert check_loads_with_datasets(files, tmp_path / "hf") == expected
    # NLVR2 train: the directory as a JSON number and as a string both name the images.
    train = [json.loads(l) for l in (out / "marvl/nlvr2_train_en.jsonl").read_text().splitlines()]
    assert [(r["left_image"], r["right_image"], r["label"]) for r in train] == [
        ("train/73/train-10171-0-img0.png", "train/73/train-10171-0-img1.png", "False"),
        ("train/73/train-10171-0-img0.png", "train/73/train-10171-0-img1.png", "True")]


def test_demo_accounts_for_every_row(demo):
    _, reports, _ = demo
    for name, report in reports.items():
        for source, c in report["inputs"].items():
            assert c.get("in", 0) == c.get("used", 0) + c.get("skipped", 0), (name, source)


def test_demo_awkward_cases(demo):
    out, reports, stderr = demo
    # MaRVL: the tr concept is NFC in the annotation, NFD on disk; ta the reverse. Both resolve.
    for lang in ("tr", "ta"):
        for row in map(json.loads, (out / f"marvl/marvl_test_{lang}.jsonl").read_text(encoding="utf-8").splitlines()):
            for side in ("left_image", "right_image"):
                assert (FIXTURES / "iglue/datasets/marvl/images" / row[side]).is_file(), row[side]
    assert reports["marvl"]["counts"]["marvl images not on disk"] == 1  # sw 81-9.jpg
    assert "81-Dawati/81-9.jpg" in stderr
    skipped = {k.split(": ", 1)[1]: v for k, v in reports["marvl"]["skipped"].items()}
    assert skipped["label 'maybe' is not true/false"] == 1
    # XVNLI: '-' with an annotator label is used; '-' without is skipped; a malformed line counted.
    train = [json.loads(l) for l in (out / "xvnli/xvnli_train.jsonl").read_text().splitlines()]
    assert [r["label"] for r in train] == ["yes", "maybe", "no"]
    assert any("malformed JSON line" in k for k in reports["xvnli"]["skipped"])
    # MaXM: the question with a missing image is kept and reported.
    assert reports["maxm"]["counts"]["maxm questions whose image is not on disk"] == 7
    # CHAIR: every Karpathy val/test image of the MSCOCO fixture is a row or skipped for lack of ground truth.
    coco = json.loads((FIXTURES / "mscoco/dataset_coco.json").read_text(encoding="utf-8"))
    gt = {json.loads(l)["image"] for l in (FIXTURES / "pope/segmentation/coco_ground_truth_segmentation.json")
          .read_text(encoding="utf-8").splitlines() if l.endswith("}")}
    for split in ("val", "test"):
        names = [i["filename"] for i in coco["images"] if i["split"] == split]
        rows = [json.loads(l) for l in (out / f"chair/chair_{split}.jsonl").read_text().splitlines()]
        assert [r["image_id"] for r in rows] == [n for n in names if n in gt]
        missing = len(names) - len(rows)
        assert reports["chair"]["skipped"].get(f"mscoco/dataset_coco.json [{split}]: no ground-truth objects", 0) \
            == missing
    assert sum(v for k, v in reports["chair"]["skipped"].items() if "no ground-truth" in k) >= 1


def test_demo_references(demo):
    from tests.test_eval_checks import check_reference, check_reference_matches_rows

    out, _, _ = demo
    refs = sorted(out.rglob("*_coco_*.json"))
    assert len(refs) == 2 + 8 + 36
    captions = {}
    for path in refs:
        check_reference(path)
        lang, caps = check_reference_matches_rows(path)
        captions[path.relative_to(out).as_posix()] = caps
    assert captions["xm3600/xm3600_coco_test_th.json"][0] == "ผู้หญิง กำลัง เดิน อยู่ บน ถนน"
    # zh split into characters, as mBLIP's scorer splits predictions (captions.segmentation: mblip)
    assert captions["xm3600/xm3600_coco_test_zh.json"][0].split() == list("一只在草地上奔跑的宠物狗")
    assert len(captions["xm3600/xm3600_coco_test_ja.json"][1].split()) > 3
    # Korean keeps its own spaces, and the NFD caption comes out NFC; French too.
    assert captions["xm3600/xm3600_coco_test_ko.json"] == ["잔디 위를 달리는 개", "태권도를 연습하는 두 사람"]
    assert captions["xm3600/xm3600_coco_test_fr.json"][1] == "Une f\u00e9e danse pr\u00e8s du lac."
    # The newline and the tab inside Spanish captions became spaces.
    assert captions["xflickrco/xflickrco_coco_test_es.json"] == ["Un perro corre sobre la hierba verde.",
                                                                 "Dos personas practican taekwondo."]
    # The image without a quz caption is not in the quz reference nor its rows.
    assert len(captions["xm3600/xm3600_coco_test_quz.json"]) == 2  # two captions of the one image


@pytest.mark.skipif(__import__("shutil").which("java") is None, reason="the PTB tokenizer of pycocoevalcap needs Java")
def test_demo_references_score_with_cocoevalcap(demo):
    from tests.test_eval_checks import check_cocoevalcap

    out, _, _ = demo
    for rel in ["xflickrco/flickr30k_coco_test_en.json", "xflickrco/xflickrco_coco_test_es.json",
                "xm3600/xm3600_coco_test_zh.json"]:
        scores = check_cocoevalcap(out / rel)["eval"]
        assert abs(scores["Bleu_4"] - 1.0) < 1e-6 and abs(scores["ROUGE_L"] - 1.0) < 1e-6, (rel, scores)


def test_drop_missing_images_option(tmp_path):
    from eval_data.marvl.convert import main as marvl

    report = marvl(["--set", f"paths.raw_root={FIXTURES}", "--set", f"paths.out_root={tmp_path}",
                    "--set", f"paths.work_dir={tmp_path / 'work'}", "--set", "marvl.drop_missing_images=true"])
    rows = (tmp_path / "eval/marvl/marvl_test_sw.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1
    assert report["skipped"]["iglue/datasets/marvl/zero_shot/annotations/marvl-sw.jsonl: image not on disk"] == 1
