"""Evaluation-data converters on the WHOLE real release files in ../shared/real.

Files the store does not hold (GQA train, xGQA test, XVNLI train/dev, Flickr30k
train, NLVR2 train and most translated dev sets, XM3600, MaXM, POPE ground
truth) come from the demo fixtures, so every converter runs end to end; the
expected counts of the real files are counted here from the raw files, not
taken from the converters.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_REAL
from tests.test_eval_checks import (check_cocoevalcap, check_loads_with_datasets, check_reference,
                                    check_reference_matches_rows, check_rows, lines)

REPO = Path(__file__).resolve().parents[1]
REAL = SHARED_REAL
FIXTURES = REPO / "tests" / "fixtures" / "raw"
IG = "iglue/datasets"
XVNLI_LABELS = {"entailment", "contradiction", "neutral"}

pytestmark = pytest.mark.skipif(not (REAL / "iglue").is_dir(),
                                reason=f"real release files not found at {REAL} (shared/ beside the clone)")


def _link_tree(src: Path, dst: Path, exclude: str | None = None) -> None:
    for f in src.rglob("*"):
        if f.is_file() and not (exclude and f.relative_to(src).as_posix().startswith(exclude)):
            target = dst / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                target.unlink()
            target.symlink_to(f)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """Run the seven converters whose inputs are in shared/real; return (raw, out, reports)."""
    from eval_data.marvl.convert import main as marvl
    from eval_data.maxm.convert import main as maxm
    from eval_data.pope.convert import main as pope
    from eval_data.xflickrco.convert import main as xflickrco
    from eval_data.xgqa.convert import main as xgqa
    from eval_data.xm3600.convert import main as xm3600
    from eval_data.xvnli.convert import main as xvnli

    base = tmp_path_factory.mktemp("eval_real")
    raw, out = base / "raw", base / "out"
    # Fill-ins first: real files replace them where they exist. The fixture MaRVL images would
    # match real annotations by name, so they stay out: the store has no MaRVL images.
    _link_tree(FIXTURES, raw, exclude=f"{IG}/marvl/images/")
    _link_tree(REAL, raw)
    sets = ["--set", f"paths.raw_root={raw}", "--set", f"paths.out_root={out}",
            "--set", f"paths.work_dir={base / 'work'}"]
    reports = {name: fn(sets) for name, fn in [("xgqa", xgqa), ("xvnli", xvnli), ("marvl", marvl),
                                              ("xflickrco", xflickrco), ("xm3600", xm3600),
                                              ("maxm", maxm), ("pope", pope)]}
    return raw, out / "eval", reports


def out_rows(out: Path, rel: str) -> list[dict]:
    return lines(out / rel)


def balanced(report: dict) -> None:
    for source, c in report["inputs"].items():
        assert c.get("in", 0) == c.get("used", 0) + c.get("skipped", 0), source


def test_every_row_accounted_for(real_run):
    _, _, reports = real_run
    for report in reports.values():
        balanced(report)


def test_xgqa_real_counts(real_run):
    raw, out, _ = real_run
    for lang in ["bn", "de", "en", "id", "ko", "pt", "ru", "zh"]:
        dev = json.loads((REAL / IG / f"xGQA/annotations/few_shot/{lang}/dev.json").read_text(encoding="utf-8"))
        rows = out_rows(out, f"xgqa/xgqa_val_{lang}.jsonl")
        assert len(dev) == 1422 and len(rows) == len(dev)
        assert [r["text_label"] for r in rows] == [q["answer"] for q in dev.values()]
        assert [r["image_id"] for r in rows] == [q["imageId"] for q in dev.values()]
        assert all(r["label"] == "" for r in rows)


def test_xvnli_real_counts_and_labels(real_run):
    _, out, reports = real_run
    mapping = {"entailment": "yes", "contradiction": "no", "neutral": "maybe"}
    for lang in ["ar", "en", "es", "fr", "ru"]:
        raw_rows = lines(REAL / IG / f"XVNLI/annotations/{lang}/test.jsonl")
        usable = [r for r in raw_rows if r["gold_label"] in XVNLI_LABELS]
        rows = out_rows(out, f"xvnli/xvnli_test_{lang}.jsonl")
        assert len(raw_rows) == 1164 and len(usable) == 1150
        assert len(rows) == len(usable)
        assert [r["text_label"] for r in rows] == [mapping[r["gold_label"]] for r in usable]
        assert [r["pair_id"] for r in rows] == [r["pairID"] for r in usable]
        assert [r["context"] for r in rows] == [" ".join(r["sentence2"].split()) for r in usable]
        skipped = {k: v for k, v in reports["xvnli"]["skipped"].items() if f"/{lang}/test.jsonl" in k}
        assert sum(skipped.values()) == len(raw_rows) - len(usable)


def test_marvl_real_counts(real_run):
    _, out, reports = real_run
    expected = {"id": 1128, "sw": 1108, "ta": 1242, "tr": 1180, "zh": 1012}
    for lang, n in expected.items():
        raw_rows = lines(REAL / IG / f"marvl/zero_shot/annotations/marvl-{lang}.jsonl")
        rows = out_rows(out, f"marvl/marvl_test_{lang}.jsonl")
        assert len(raw_rows) == n == len(rows)
        assert [r["text_label"] for r in rows] == ["True" if r["label"] else "False" for r in raw_rows]
        assert [r["right_image"].rsplit("/", 1)[1] for r in rows] == [r["right_img"] for r in raw_rows]
        assert {r["language"] for r in rows} == {lang}
    # No MaRVL images in the store: every pair's two images are reported, none dropped.
    assert reports["marvl"]["counts"]["marvl images not on disk"] == 2 * sum(expected.values())


def test_nlvr2_real_counts(real_run):
    _, out, _ = real_run
    for name, rel in [("nlvr2_dev_en", "dev.jsonl"), ("nlvr2_test_en", "test.jsonl"),
                      ("nlvr2_dev_zh", "dev-zh_gmt.jsonl")]:
        raw_rows = lines(REAL / IG / f"nlvr2/annotations/{rel}")
        rows = out_rows(out, f"marvl/{name}.jsonl")
        assert len(rows) == len([r for r in raw_rows if r["label"] in ("True", "False")]) == len(raw_rows)
        first = raw_rows[0]["identifier"].rsplit("-", 1)[0]
        assert rows[0]["left_image"] == f"{first.split('-')[0]}/{first}-img0.png"
        assert rows[0]["right_image"].endswith("-img1.png")


def test_xflickrco_real_counts(real_run):
    from pycocotools.coco import COCO

    _, out, _ = real_run
    for lang in ["de", "en", "es", "id", "ja", "ru", "tr", "zh"]:
        raw_rows = lines(REAL / IG / f"xFlickrCO/annotations/{lang}/test.jsonl")
        # de (COCO 122239) and id (Flickr 6312211170) each have one empty caption: nothing to score.
        usable = [r for r in raw_rows if any(s.strip() for s in r["sentences"])]
        rows = out_rows(out, f"xflickrco/xflickrco_test_{lang}.jsonl")
        assert len(raw_rows) == 2000 and len(usable) == (1999 if lang in ("de", "id") else 2000)
        assert len(rows) == len(usable)
        assert [r["image_id"] for r in rows] == [r["img_path"] for r in usable]
        ref = COCO(str(out / f"xflickrco/xflickrco_coco_test_{lang}.json"))
        assert len(ref.getImgIds()) == len(usable) == len(ref.getAnnIds())
    for split, rel in [("val", "valid_ann.jsonl"), ("test", "test_ann.jsonl")]:
        raw_rows = lines(REAL / IG / f"flickr30k/annotations/{rel}")
        rows = out_rows(out, f"xflickrco/flickr30k_{split}_en.jsonl")
        assert len(rows) == len(raw_rows) == {"val": 1014, "test": 1000}[split]
        ref = json.loads((out / f"xflickrco/flickr30k_coco_{split}_en.json").read_text(encoding="utf-8"))
        assert len(ref["annotations"]) == sum(len(r["sentences"]) for r in raw_rows)


def test_pope_real_counts(real_run):
    _, out, _ = real_run
    for split in ["adversarial", "popular", "random"]:
        raw_rows = lines(REAL / f"pope/output/coco/coco_pope_{split}.json")
        rows = out_rows(out, f"pope/pope_{split}.jsonl")
        assert len(raw_rows) == 3000 == len(rows)
        assert [(r["context"], r["image_id"], r["text_label"]) for r in rows] == \
            [(r["text"], r["image"], r["label"]) for r in raw_rows]


# ---- captioning references: load with pycocotools, score against themselves ----------------------

def test_real_references_load_and_score_max(real_run):
    _, out, _ = real_run
    refs = sorted(out.rglob("*_coco_*.json"))
    assert len(refs) == 2 + 8 + 36  # flickr30k val/test, xFlickrCO, XM3600 (fixture)
    for path in refs:
        check_reference(path)


def test_real_references_are_nfc_and_segmented(real_run):
    import unicodedata

    _, out, _ = real_run
    for lang in ["ja", "zh"]:
        ref = json.loads((out / f"xflickrco/xflickrco_coco_test_{lang}.json").read_text(encoding="utf-8"))
        caps = [a["caption"] for a in ref["annotations"]]
        assert all(unicodedata.is_normalized("NFC", c) for c in caps)
        # Unsegmented, almost every zh/ja caption is one "word"; segmented, several.
        words = sum(len(c.split()) for c in caps) / len(caps)
        assert words > 5, (lang, words)
        raw = lines(REAL / IG / f"xFlickrCO/annotations/{lang}/test.jsonl")
        # Segmentation only inserts spaces.
        assert ["".join(c.split()) for c in caps] == \
            ["".join(unicodedata.normalize("NFC", r["sentences"][0]).split()) for r in raw]


def test_flickr30k_train_is_deterministic(real_run, tmp_path):
    from eval_data.xflickrco.convert import main as xflickrco

    raw, out, _ = real_run
    xflickrco(["--set", f"paths.raw_root={raw}", "--set", f"paths.out_root={tmp_path}",
               "--set", f"paths.work_dir={tmp_path / 'work'}"])
    for name in ["flickr30k_train.jsonl", "xflickrco_coco_test_ja.json", "xflickrco_test_zh.jsonl"]:
        assert (tmp_path / "eval/xflickrco" / name).read_bytes() == (out / "xflickrco" / name).read_bytes()


def test_gqa_train_reader_on_real_testdev(real_run, tmp_path):
    """GQA train.json is not in the store; testdev.json has its shape, so it stands in."""
    from eval_data.xgqa.convert import main as xgqa

    raw, _, _ = real_run
    testdev = REAL / IG / "gqa/annotations/testdev.json"
    report = xgqa(["--set", f"paths.raw_root={raw}", "--set", f"paths.out_root={tmp_path}",
                   "--set", f"paths.work_dir={tmp_path / 'work'}", "--set", f"xgqa.gqa_train={testdev}"])
    balanced(report)
    raw_rows = json.loads(testdev.read_text(encoding="utf-8"))
    rows = lines(tmp_path / "eval/xgqa/xgqa_train.jsonl")
    assert len(raw_rows) == 12578 == len(rows)
    assert [r["label"] for r in rows] == [max(q["label"], key=q["label"].get) for q in raw_rows]
    assert [r["image_id"] for r in rows] == [q["img_id"] for q in raw_rows]


# ---- every output: keys, types, NFC, datasets; references against their rows; the real scorer ----

def test_real_rows_keys_types_and_datasets_load(real_run, tmp_path):
    _, out, _ = real_run
    files = sorted(out.rglob("*.jsonl"))
    assert len(files) == 17 + 11 + 13 + 11 + 36 + 7 + 3  # xgqa xvnli marvl+nlvr2 xflickrco xm3600 maxm pope
    expected = {f.stem: len(check_rows(f, f.parent.name)) for f in files}
    assert check_loads_with_datasets(files, tmp_path / "hf") == expected


def test_real_references_match_their_rows(real_run):
    import unicodedata

    _, out, _ = real_run
    for ref in sorted(out.rglob("*_coco_*.json")):
        check_reference_matches_rows(ref)
    # Languages written with spaces are not segmented: each reference is the release's caption,
    # NFC with runs of whitespace collapsed, nothing else.
    for lang in ["de", "en", "es", "id", "ru", "tr"]:
        _, caps = check_reference_matches_rows(out / f"xflickrco/xflickrco_coco_test_{lang}.json")
        raw = lines(REAL / IG / f"xFlickrCO/annotations/{lang}/test.jsonl")
        assert caps == [" ".join(unicodedata.normalize("NFC", s).split()) for r in raw for s in r["sentences"]
                        if s.strip()], lang
    _, caps = check_reference_matches_rows(out / "xflickrco/flickr30k_coco_test_en.json")
    assert caps == [s for r in lines(REAL / IG / "flickr30k/annotations/test_ann.jsonl") for s in r["sentences"]]


@pytest.mark.skipif(__import__("shutil").which("java") is None, reason="the PTB tokenizer of pycocoevalcap needs Java")
def test_cocoevalcap_end_to_end_scores_references_at_maximum(real_run):
    """COCO(ref) -> loadRes(first reference per image) -> COCOEvalCap.evaluate(), as evaluation code does.

    A candidate equal to one of its references gets BLEU-1..4 = 1 and ROUGE-L = 1; with one
    reference per image CIDEr-D reaches its maximum of 10 for every caption whose n-grams of each
    order are not shared by all images. Unsegmented zh/ja (one "word" per caption) would not reach
    it: CIDEr needs n-grams up to 4 words long."""
    _, out, _ = real_run
    for rel in ["xflickrco/xflickrco_coco_test_zh.json", "xflickrco/xflickrco_coco_test_ja.json",
                "xflickrco/xflickrco_coco_test_de.json", "xflickrco/flickr30k_coco_val_en.json",
                "xm3600/xm3600_coco_test_th.json", "xm3600/xm3600_coco_test_ko.json"]:
        result = check_cocoevalcap(out / rel)
        scores = result["eval"]
        for m in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L"):
            assert abs(scores[m] - 1.0) < 1e-6, (rel, m, scores[m])
        cider = [v["CIDEr"] for v in result["per_image"].values()]
        if rel.startswith("xflickrco/xflickrco"):  # one reference per image, 1999-2000 images
            assert max(cider) <= 10.0 + 1e-6
            assert sorted(cider)[len(cider) // 2] > 10.0 - 1e-6, rel  # the median image is at the maximum
            assert scores["CIDEr"] > 9.5, (rel, scores["CIDEr"])
        elif rel.startswith("xflickrco/flickr30k"):  # five references: CIDEr-D averages over them
            assert scores["CIDEr"] > 1.5, (rel, scores["CIDEr"])


def test_marvl_real_annotations_find_nfd_image_folders(real_run, tmp_path):
    """The whole real MaRVL annotations against an image tree unpacked as NFD (macOS): every pair
    resolves, and the rows name the on-disk spelling."""
    import unicodedata

    from eval_data.marvl.convert import main as marvl

    raw, _, _ = real_run
    images = tmp_path / "marvl_images"
    n_nfd = 0
    for lang in ["id", "sw", "ta", "tr", "zh"]:
        for r in lines(REAL / IG / f"marvl/zero_shot/annotations/marvl-{lang}.jsonl"):
            folder = images / lang / "images" / unicodedata.normalize("NFD", r["concept"])
            n_nfd += folder.name != r["concept"]
            folder.mkdir(parents=True, exist_ok=True)
            for side in ("left_img", "right_img"):
                (folder / r[side]).touch()
    assert n_nfd > 0  # the ta and tr concepts really differ between NFC and NFD
    report = marvl(["--set", f"paths.raw_root={raw}", "--set", f"paths.out_root={tmp_path / 'out'}",
                    "--set", f"paths.work_dir={tmp_path / 'work'}", "--set", f"marvl.image_root={images}"])
    assert "marvl images not on disk" not in report["counts"]
    for lang in ["ta", "tr"]:
        rows = lines(tmp_path / f"out/eval/marvl/marvl_test_{lang}.jsonl")
        for row in rows:
            for side in ("left_image", "right_image"):
                assert (images / row[side]).is_file(), row[side]
            assert row["concept"] == unicodedata.normalize("NFC", row["concept"])
        assert any(not unicodedata.is_normalized("NFC", r["left_image"]) for r in rows), lang
