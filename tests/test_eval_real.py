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

REPO = Path(__file__).resolve().parents[1]
REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
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


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


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
        assert [r["image_id"] for r in rows] == [q["imageId"] + ".jpg" for q in dev.values()]
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
        assert [r["text_label"] for r in rows] == ["yes" if r["label"] else "no" for r in raw_rows]
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

def check_reference(path: Path) -> None:
    """Loads with COCO; BLEU-4 of refs against themselves is 1; CIDEr of a ref is the per-image best."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocotools.coco import COCO

    coco = COCO(str(path))
    ids = coco.getImgIds()
    assert ids, path
    gts = {i: [a["caption"] for a in coco.imgToAnns[i]] for i in ids}
    assert all(gts.values()), f"{path}: an image without references"
    own = {i: [caps[0]] for i, caps in gts.items()}
    bleu, _ = Bleu(4).compute_score(gts, own, verbose=0)
    assert abs(bleu[3] - 1.0) < 1e-6, (path, bleu)

    # CIDEr-D has no fixed maximum (n-gram orders missing from short captions, or n-grams found
    # in every reference, weigh nothing), but for one reference per image Cauchy-Schwarz makes the
    # reference itself the best candidate of all. So: each image's own caption scores at least as
    # well as another image's caption, and strictly better on average.
    cider, self_scores = Cider().compute_score(gts, own)
    order = list(ids)
    shifted = {i: own[order[(k + 1) % len(order)]] for k, i in enumerate(order)}
    cider_shifted, shifted_scores = Cider().compute_score(gts, shifted)
    if len(ids) > 1:
        assert cider > cider_shifted, path
    if all(len(c) == 1 for c in gts.values()):
        assert all(s + 1e-9 >= t for s, t in zip(self_scores, shifted_scores)), path
        assert max(self_scores) <= 10.0 + 1e-9


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
    assert [r["image_id"] for r in rows] == [q["img_id"] + ".jpg" for q in raw_rows]
