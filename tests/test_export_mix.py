"""export_mix: each format read back by its own reader (json for LLaVA, datasets'
parquet loader with Image decoding, webdataset) and every row compared with the
mix; missing images skipped and counted; same input, same bytes; stale shards
removed; a bad config value exits 2 with one line naming the key."""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from pretrain import export_mix
from tests.conftest import root_sets

# (task, collection folder under raw, image_id); the last row's image is missing.
ROWS = [("capfilt", "web", "0e59fc1f13039452.jpg"), ("capfilt_match", "web", "33484745b65a4769.jpg"),
        ("mscoco", "coco", "COCO_train2014_000000000009.jpg"),
        ("llava_conversation", "coco", "COCO_train2014_000000000030.jpg"),
        ("vqav2_vqa", "coco", "COCO_val2014_000000000042.jpg"),
        ("imagenet_classify", "imagenet", "n01440764/n01440764_1.JPEG"),
        ("imagenet_decide", "imagenet", "n01443537/n01443537_7.JPEG"),   # a PNG file, as some ImageNet files are
        ("aokvqa_cot", "coco", "COCO_train2014_000000000999.jpg")]
MISSING = "COCO_train2014_000000000999.jpg"
ROOTS = {"web": "work/images", "coco": "raw/mscoco/images", "imagenet": "raw/imagenet/train"}


def make_image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (16 + seed, 12 + seed), (seed * 20 % 256, 90, 200 - seed * 10))
    im.save(path, format="PNG" if path.name.endswith("_7.JPEG") else "JPEG", quality=90)


def setup(tmp: Path, copies: int = 3) -> tuple[list[str], list[dict]]:
    """A mix of ``copies`` x ROWS (non-ASCII text, every collection) and its images."""
    for k, (_, coll, image_id) in enumerate(ROWS):
        if image_id != MISSING:
            make_image(tmp / ROOTS[coll] / image_id, k)
    langs = ["en", "zh", "ar", "de"]
    mix = [{"context": f"Frage {i}: was zeigt das Bild?\n 图 «{i}»" + " " * (i % 2), "label": f"Antwort {i} \u00e9\u4e2d",
            "image_id": ROWS[i % len(ROWS)][2], "task": ROWS[i % len(ROWS)][0], "lang": langs[i % 4]}
           for i in range(copies * len(ROWS))]
    path = tmp / "out" / "train" / "task_mix.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in mix), encoding="utf-8")
    return root_sets(tmp, tmp / "raw"), mix


def run(args: list[str], *sets: str) -> None:
    export_mix.main([*args, *(x for s in sets for x in ("--set", s))])


def image_file(tmp: Path, row: dict) -> Path:
    coll = {t: c for t, c, _ in ROWS}[row["task"]]
    return tmp / ROOTS[coll] / row["image_id"]


def expected(mix: list[dict]) -> dict[str, dict]:
    """The rows every format must hold, by id: the mix less the missing image."""
    return {f"{i:09d}": r for i, r in enumerate(mix) if r["image_id"] != MISSING}


def report(tmp: Path) -> dict:
    return json.loads((tmp / "work" / "reports" / "export.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("image_root", ["", "raw"])
def test_llava_json_holds_every_row_as_a_conversation(tmp_path, image_root):
    args, mix = setup(tmp_path)
    run(args, f"export.llava.image_root={tmp_path / image_root if image_root else ''}", "export.formats=[llava]")
    items = json.loads((tmp_path / "out" / "export" / "llava" / "train.json").read_text(encoding="utf-8"))
    want = expected(mix)
    assert [it["id"] for it in items] == list(want)
    folder = tmp_path / "llava_images"   # the image folder a LLaVA user makes: one link per collection
    folder.mkdir()
    for coll, root in ROOTS.items():
        (folder / coll).symlink_to(tmp_path / root)
    for it in items:
        row = want[it["id"]]
        assert set(it) == {"id", "image", "conversations"}
        assert not os.path.isabs(it["image"])
        base = tmp_path / image_root if image_root else folder
        assert os.path.samefile(os.path.join(base, it["image"]), image_file(tmp_path, row))
        assert it["conversations"] == [{"from": "human", "value": "<image>\n" + row["context"]},
                                       {"from": "gpt", "value": row["label"]}]
    assert not (tmp_path / "out" / "export" / "parquet").exists()


@pytest.mark.parametrize("embed", [True, False])
def test_parquet_loads_with_datasets_and_decodes_every_image(tmp_path, embed):
    datasets = pytest.importorskip("datasets")
    args, mix = setup(tmp_path)
    run(args, "export.formats=[parquet]", "export.parquet.rows_per_shard=5", "export.parquet.rows_per_group=2",
        f"export.parquet.embed_images={str(embed).lower()}")
    folder = tmp_path / "out" / "export" / "parquet"
    shards = sorted(folder.glob("*.parquet"))
    assert [p.name for p in shards] == [f"train-{i:05d}.parquet" for i in range(5)]   # 21 rows, 5 a shard
    ds = datasets.load_dataset("parquet", data_files=[str(p) for p in shards], split="train",
                               cache_dir=str(tmp_path / "hf_cache"))
    assert isinstance(ds.features["image"], datasets.Image)
    want = expected(mix)
    assert ds["id"] == list(want)
    for got in ds:
        row = want[got["id"]]
        assert {k: got[k] for k in export_mix.KEYS} == row
        with Image.open(image_file(tmp_path, row)) as im:
            assert got["image"].size == im.size and got["image"].tobytes() == im.convert(got["image"].mode).tobytes()
    raw = ds.cast_column("image", datasets.Image(decode=False))
    for got in raw:
        path = image_file(tmp_path, want[got["id"]])
        if embed:
            assert got["image"]["bytes"] == path.read_bytes()
        else:
            assert got["image"]["bytes"] is None and Path(got["image"]["path"]) == path.absolute()


def test_webdataset_iterates_every_row_in_bounded_shards(tmp_path):
    wds = pytest.importorskip("webdataset")
    args, mix = setup(tmp_path, copies=6)
    bound = 30 * 1024
    run(args, "export.formats=[webdataset]", f"export.webdataset.max_shard_bytes={bound}")
    shards = sorted((tmp_path / "out" / "export" / "webdataset").glob("*.tar"))
    assert len(shards) > 1 and all(p.stat().st_size <= bound for p in shards)
    samples = list(wds.WebDataset([str(p) for p in shards], shardshuffle=False))
    want = expected(mix)
    assert [s["__key__"] for s in samples] == list(want)
    for s in samples:
        meta = json.loads(s["json"])
        row = want[s["__key__"]]
        assert meta == {"id": s["__key__"], **row}
        path = image_file(tmp_path, row)
        with Image.open(io.BytesIO(s["jpg"])) as got, Image.open(path) as im:
            assert got.format == "JPEG" and got.size == im.size
        if path.read_bytes()[:3] == b"\xff\xd8\xff":
            assert s["jpg"] == path.read_bytes()
    assert report(tmp_path)["formats"]["webdataset"]["reencoded_to_jpeg"] == 6   # the PNG, 6 times


def test_missing_image_is_skipped_counted_and_reported(tmp_path):
    args, mix = setup(tmp_path)
    run(args)
    rep = report(tmp_path)
    assert rep["counts"]["rows_in"] == len(mix) and rep["counts"]["rows_out"] == len(mix) - 3
    assert rep["counts"]["missing_images_coco"] == 3
    assert rep["skipped"] == {"image not found under export.image_roots.coco": 3}
    assert MISSING in rep["skipped_examples"]["image not found under export.image_roots.coco"][0]
    assert {f["rows"] for f in rep["formats"].values()} == {len(mix) - 3}


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_input_gives_the_same_bytes_and_stale_shards_go(tmp_path):
    args, _ = setup(tmp_path, copies=6)
    small = ("export.parquet.rows_per_shard=4", "export.webdataset.max_shard_rows=4")
    out = tmp_path / "out" / "export"
    run(args, *small)
    first = digest(out)
    assert len([k for k in first if k.startswith("parquet/")]) == 11   # 42 rows, 4 a shard
    import shutil
    shutil.rmtree(out)
    run(args, *small)
    assert digest(out) == first
    run(args)   # default shard sizes: one shard each; the earlier run's other shards are removed
    assert sorted(digest(out)) == ["llava/train.json", "parquet/train-00000.parquet", "webdataset/train-00000.tar"]


@pytest.mark.parametrize("setting, key", [
    ("export.formats=[llava,zip]", "export.formats"),
    ("export.formats=[]", "export.formats"),
    ("export.webdataset.max_shard_bytes=0", "export.webdataset.max_shard_bytes"),
    ("export.parquet.rows_per_shard=-3", "export.parquet.rows_per_shard"),
    ("export.parquet.embed_images=maybe", "export.parquet.embed_images"),
    ("export.task_images.mscoco=flickr", "export.task_images.mscoco"),
    ("export.image_roots.coco=/nonexistent/coco", "export.image_roots.coco"),
    ("export.webdataset.jpeg_quality=101", "export.webdataset.jpeg_quality"),
])
def test_bad_config_value_exits_2_naming_the_key(tmp_path, capsys, setting, key):
    args, _ = setup(tmp_path)
    with pytest.raises(SystemExit) as e:
        run(args, setting)
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error:") and key in err[0], err
    assert not [p for p in (tmp_path / "out" / "export").rglob("*") if p.is_file()]   # no file, no temporary
