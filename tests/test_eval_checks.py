"""Checks of evaluation output files, shared by the demo tests (test_eval_units.py) and the
real-release tests (test_eval_real.py), and the tests that show each check catches what it is for.

Outputs must follow common/FORMATS.md "Evaluation files": the benchmark's row keys, one JSON type per
column (datasets.load_dataset fails on a column that is a string in one row and a list in
another), NFC single-spaced texts, and COCO caption references that name the same images as
their row files and score at the maximum against themselves with pycocoevalcap.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]



BASE_KEYS = {"context", "label", "image_id", "text_label"}
PAIR_KEYS = BASE_KEYS | {"left_image", "right_image", "concept", "language"}
# (key set, JSON type of text_label) per benchmark folder; common/FORMATS.md "Evaluation files".
ROW_SHAPES = {"xgqa": (BASE_KEYS, str), "xvnli": (BASE_KEYS | {"pair_id"}, str), "marvl": (PAIR_KEYS, str),
              "xflickrco": (BASE_KEYS, str), "xm3600": (BASE_KEYS, str), "maxm": (BASE_KEYS, list),
              "pope": (BASE_KEYS, str), "chair": (BASE_KEYS, list)}
SEGMENTED = {"zh", "ja", "th"}


def _json_type(value) -> str:
    if isinstance(value, list):
        inner = {_json_type(v) for v in value}
        return f"list[{'|'.join(sorted(inner))}]" if inner else "list"
    return type(value).__name__


def check_rows(path: Path, benchmark: str) -> list[dict]:
    """Exactly the benchmark's keys in every row, one JSON type per column, str texts NFC."""
    import unicodedata

    keys, label_type = ROW_SHAPES[benchmark]
    rows = lines(path)
    types: dict[str, set] = {}
    for i, row in enumerate(rows, 1):
        assert set(row) == keys, (path, i, sorted(row))
        assert isinstance(row["text_label"], label_type), (path, i, row["text_label"])
        for k, v in row.items():
            # An empty list types as list of anything in Arrow: it mixes with list[str].
            types.setdefault(k, set()).add(_json_type(v))
            for text in (v if isinstance(v, list) else [v]):
                if isinstance(text, str) and k not in ("image_id", "left_image", "right_image"):  # on disk
                    assert unicodedata.is_normalized("NFC", text), (path, i, k)
                    assert text == " ".join(text.split()), (path, i, k, text)
        assert (row["label"] == "") == ("_train" not in path.name), (path, i)
    for k, seen in types.items():
        assert len(seen - {"list"}) <= 1, f"{path}: column {k!r} mixes JSON types {sorted(seen)}"
    return rows


def check_loads_with_datasets(paths: list[Path], cache_dir: Path) -> dict[str, int]:
    """Load every file with datasets.load_dataset("json"), the way training code loads them, and
    check that every column comes out as strings or lists of strings.

    One call per benchmark folder, each file its own split (datasets casts every split of a call
    to the first one's features, so only files of one row shape can share a call). A column of
    mixed JSON types loads, in datasets 5, as an untyped ``Json`` column (older versions refuse
    the file), which is not what evaluation code can use: that fails here."""
    import datasets

    datasets.disable_progress_bars()
    counts: dict[str, int] = {}
    for folder in sorted({p.parent for p in paths}):
        files = {p.stem: str(p) for p in paths if p.parent == folder}
        ds = datasets.load_dataset("json", data_files=files, cache_dir=str(cache_dir))
        for name in files:
            for column, feature in ds[name].features.items():
                assert _string_feature(feature), f"{files[name]}: column {column!r} loads as {feature}"
            counts[name] = ds[name].num_rows
    assert len(counts) == len(paths), "two outputs share a file name"
    return counts


def _string_feature(feature) -> bool:
    import datasets

    if isinstance(feature, datasets.Value):
        return feature.dtype in ("string", "large_string")
    inner = getattr(feature, "feature", None)  # List / LargeList / Sequence
    return inner is not None and _string_feature(inner)


def reference_rows_file(ref: Path) -> Path:
    """xm3600_coco_test_de.json -> xm3600_test_de.jsonl; flickr30k_coco_val_en.json -> flickr30k_val_en.jsonl."""
    return ref.with_name(ref.stem.replace("_coco_", "_") + ".jsonl")


def check_reference_matches_rows(ref_path: Path) -> tuple[str, list[str]]:
    """The COCO reference and its row file name the same images in the same order; ids are unique;
    every image has a caption; captions are NFC, single-spaced, and the row's language code says
    whether they were segmented. Returns (lang, captions)."""
    import unicodedata

    ref = json.loads(ref_path.read_text(encoding="utf-8"))
    rows = lines(reference_rows_file(ref_path))
    image_ids = [img["id"] for img in ref["images"]]
    assert image_ids == [r["image_id"] for r in rows], ref_path
    assert len(set(image_ids)) == len(image_ids), ref_path
    ann_ids = [a["id"] for a in ref["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids) and all(isinstance(i, int) for i in ann_ids), ref_path
    assert {a["image_id"] for a in ref["annotations"]} == set(image_ids), f"{ref_path}: image without caption"
    langs = {r["text_label"] for r in rows}
    assert len(langs) == 1, ref_path
    lang = langs.pop()
    assert ref_path.stem.endswith("_" + lang), ref_path
    caps = [a["caption"] for a in ref["annotations"]]
    for cap in caps:
        assert cap and cap == " ".join(cap.split()) and unicodedata.is_normalized("NFC", cap), (ref_path, cap)
    return lang, caps


def check_cocoevalcap(path: Path) -> dict:
    """The real COCOEvalCap pipeline (PTBTokenizer in Java, BLEU, ROUGE-L, CIDEr-D) with each image's
    first reference as the candidate. METEOR (a 2 GB Java process) and SPICE (needs models from the
    network) are left out; everything else is the scorer's own code."""
    import contextlib
    import io

    import pycocoevalcap.eval as cocoeval
    from pycocotools.coco import COCO

    class Skipped:
        def method(self):
            return "skipped"

        def compute_score(self, gts, res):
            return 0.0, [0.0] * len(gts)

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
        ids = coco.getImgIds()
        results = coco.loadRes([{"image_id": i, "caption": coco.imgToAnns[i][0]["caption"]} for i in ids])
        evaluator = cocoeval.COCOEvalCap(coco, results)
        evaluator.params["image_id"] = results.getImgIds()
        saved = cocoeval.Meteor, cocoeval.Spice
        cocoeval.Meteor = cocoeval.Spice = Skipped
        try:
            evaluator.evaluate()
        finally:
            cocoeval.Meteor, cocoeval.Spice = saved
    return {"eval": evaluator.eval, "per_image": evaluator.imgToEval, "n_refs": {i: len(coco.imgToAnns[i]) for i in ids}}


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


# ---- each check fails on the fault it is there for ----------------------------------------------

def _write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _row(**kw) -> dict:
    return {"context": "Is it red?", "label": "", "image_id": "a.jpg", "text_label": "yes", **kw}


@pytest.mark.parametrize("bad", [
    _row(text_label=["yes"]),                      # a list where the other rows have a string
    {k: v for k, v in _row().items() if k != "label"},
    _row(pair_id="x"),                             # a key the benchmark does not have
    _row(context="Une fe\u0301e"),                 # NFD
    _row(context="two\nlines"),
    _row(label="yes"),                             # a target in a test file
])
def test_check_rows_catches(bad, tmp_path):
    path = _write_jsonl(tmp_path / "pope" / "pope_random.jsonl", [_row(), bad])
    with pytest.raises(AssertionError):
        check_rows(path, "pope")
    check_rows(_write_jsonl(tmp_path / "pope" / "ok.jsonl", [_row(), _row(context="Une f\u00e9e")]), "pope")


def test_check_loads_with_datasets_catches_a_column_of_mixed_types(tmp_path):
    good = _write_jsonl(tmp_path / "pope" / "pope_random.jsonl", [_row(), _row(text_label="no")])
    assert check_loads_with_datasets([good], tmp_path / "hf") == {"pope_random": 2}
    lists = _write_jsonl(tmp_path / "maxm" / "maxm_test_en.jsonl", [_row(text_label=["a", "b"]), _row(text_label=[])])
    assert check_loads_with_datasets([lists], tmp_path / "hf") == {"maxm_test_en": 2}
    mixed = _write_jsonl(tmp_path / "bad" / "mixed.jsonl", [_row(), _row(text_label=["yes", "no"])])
    # datasets 5 loads the column as untyped Json (which the check refuses); older
    # versions refuse the file themselves.
    import datasets
    refused = (AssertionError, datasets.exceptions.DatasetGenerationError)
    with pytest.raises(refused, match="text_label|generating the dataset"):
        check_loads_with_datasets([mixed], tmp_path / "hf")


def test_check_reference_matches_rows_catches(tmp_path):
    rows = [_row(image_id="a.jpg", text_label="de"), _row(image_id="b.jpg", text_label="de")]
    _write_jsonl(tmp_path / "x_test_de.jsonl", rows)
    ref_path = tmp_path / "x_coco_test_de.json"
    good = {"images": [{"id": "a.jpg"}, {"id": "b.jpg"}],
            "annotations": [{"id": 1, "image_id": "a.jpg", "caption": "Ein Hund."},
                            {"id": 2, "image_id": "b.jpg", "caption": "Eine Katze."}]}
    ref_path.write_text(json.dumps(good), encoding="utf-8")
    assert check_reference_matches_rows(ref_path) == ("de", ["Ein Hund.", "Eine Katze."])
    for bad in ({**good, "images": good["images"][::-1]},                                   # order differs
                {**good, "annotations": [{**a, "id": 1} for a in good["annotations"]]},      # repeated id
                {**good, "annotations": good["annotations"][:1]},                           # image w/o caption
                {**good, "annotations": [{**good["annotations"][0], "caption": "Ein\nHund."},
                                         good["annotations"][1]]}):
        ref_path.write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(AssertionError):
            check_reference_matches_rows(ref_path)
