"""hard_match.py end to end with a tiny random-weight CLIP, on tiny Pillow images."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from match import hard_match
from match.embed_cache import EmbeddingCache, model_identity
from match.negatives import plan_negative
from match.rows import normalise_caption, text_key
from tests.conftest import root_sets

CAPTIONS = [
    "a dog runs on the green grass", "A dog runs on the green grass!", "a cat sleeps on a sofa",
    "two children play with a red ball", "a red car parked in the street", "a plate of rice and meat",
    "a train waits at the station", "a man rides a bicycle", "a woman holds an umbrella in the rain",
    "a kitchen with white cabinets", "a boat on a calm lake", "three birds on a wire",
]


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    from tests.tools.tiny_clip import build_tiny_clip
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip") / "model", CAPTIONS)


def make_data(root: Path, n_rows: int = 48, n_images: int = 20) -> dict:
    """An intermediate with shared images, near-duplicate captions, one missing,
    one corrupt and one truncated image, and a malformed line."""
    r = random.Random(0)
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    for j in range(n_images):
        path = images / "sub" / f"{j:03d}.jpg"
        if j == 3:
            continue  # missing
        if j == 4:
            path.write_bytes(b"this is not an image")
            continue
        Image.new("RGB", (30 + j, 24), tuple(r.randrange(256) for _ in range(3))).save(path, quality=50)
        if j == 5:  # truncated JPEG
            path.write_bytes(path.read_bytes()[:60])
    rows = []
    for i in range(n_rows):
        caption = CAPTIONS[i % len(CAPTIONS)] + ("" if i < len(CAPTIONS) else f" number {i}")
        rows.append({"id": f"cap{i}", "image_id": f"sub/{i % n_images:03d}.jpg", "caption": caption,
                     "context": "Describe the image."})
    # Captions shared across images (exactly, and after normalisation) and twice on one image.
    rows += [{"id": "dupA", "image_id": "sub/007.jpg", "caption": "A DOG runs on the green-grass."},
             {"id": "dupB", "image_id": "sub/008.jpg", "caption": CAPTIONS[2]},
             {"id": "dupC", "image_id": "sub/002.jpg", "caption": CAPTIONS[2]}]
    src = root / "capfilt" / "capfilt_en.jsonl"
    src.parent.mkdir(parents=True)
    lines = [json.dumps(x) for x in rows]
    lines.insert(7, '{"id": "broken", ')
    lines.insert(9, json.dumps({"id": "nocap", "image_id": "sub/001.jpg"}))
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"rows": rows, "src": src, "images": images}


def sets(root: Path, model: Path, *extra: str) -> list[str]:
    args = [*root_sets(root), "--set", f"paths.work_dir={root / 'work'}", "--set", f"match.input={root / 'capfilt' / 'capfilt_en.jsonl'}",
            "--set", f"paths.image_root={root / 'images'}", "--set", f"paths.clip_model={model}",
            "--set", "embed.progress=false", "--set", "embed.image_workers=2", "--set", "embed.text_batch=8",
            "--set", "embed.image_batch=4", "--set", "search.top_k=40", "--set", "negatives.ranks=[1,3,10,30]"]
    for e in extra:
        args += ["--set", e]
    return args


def run(root: Path, model: Path, *extra: str) -> tuple[list[dict], dict, bytes]:
    hard_match.main(sets(root, model, *extra))
    out = root / "work" / "match" / "capfilt_match_en.jsonl"
    report = json.loads((root / "work" / "reports" / "match.mine.json").read_text())
    data = out.read_bytes()
    return [json.loads(x) for x in data.decode().splitlines()], report, data


@pytest.fixture()
def data(tmp_path):
    return make_data(tmp_path)


def check_negatives(rows, expected, root, model, ranks, random_fraction, seed=0):
    """No negative equals any caption of its image after normalisation; a hard
    negative is exactly the planned rank of the image's valid distinct captions
    (by brute force over the cached vectors), clipped only beyond their number."""
    own = {}
    for r in expected:
        own.setdefault(r["image_id"], set()).add(normalise_caption(r["caption"]))
    no = [r for r in rows if r["match"] == "no"]
    assert no and all(normalise_caption(r["caption"]) not in own[r["image_id"]] for r in no)
    assert all(r["original_caption"] in {x["caption"] for x in expected if x["image_id"] == r["image_id"]} for r in no)

    cache_dir = root / "work" / "match" / "embeddings"
    texts = list(dict.fromkeys(r["caption"] for r in expected))
    tc = EmbeddingCache(cache_dir, model_identity(str(model)), "text", {"max_text_tokens": 77})
    ic = EmbeddingCache(cache_dir, model_identity(str(model)), "image")
    tvec = tc.gather([text_key(t) for t in texts])
    ranked = [r for r in no if r["neg_rank"] is not None]
    assert ranked
    clipped = 0
    for r in ranked:
        sims = tvec @ ic.gather([r["image_id"]])[0]
        seen, valid = set(), []
        for p in np.argsort(-sims, kind="stable"):
            n = normalise_caption(texts[p])
            if n not in own[r["image_id"]] and n not in seen:
                seen.add(n)
                valid.append(p)
        planned = plan_negative(r["id"], seed, ranks, random_fraction)[0]
        assert planned is not None and r["neg_rank"] == min(planned, len(valid)), (r, planned, len(valid))
        clipped += r["neg_rank"] < planned
        # the caption at that rank (compared by score: ties may order either way)
        assert abs(sims[texts.index(r["caption"])] - sims[valid[r["neg_rank"] - 1]]) < 1e-5
    return clipped


def test_invariants_and_cache(tmp_path, data, tiny_clip):
    rows, report, first = run(tmp_path, tiny_clip)
    # Missing, corrupt and truncated images: skipped, counted, listed.
    skipped = [json.loads(x) for x in (tmp_path / "work" / "match" /
                                       "capfilt_match_en.skipped_images.jsonl").read_text().splitlines()]
    assert {s["image_id"] for s in skipped} == {"sub/003.jpg", "sub/004.jpg", "sub/005.jpg"}
    assert all(s["rows"] > 0 and s["reason"] for s in skipped)
    assert report["counts"]["images_skipped"] == 3
    per_image = {i: sum(r["image_id"] == f"sub/{i:03d}.jpg" for r in data["rows"]) for i in (3, 4, 5)}
    assert report["skipped"]["missing image file (rows)"] == per_image[3]
    assert report["skipped"]["corrupt image (rows)"] == per_image[4] + per_image[5]
    assert report["skipped"]["bad input row"] == 2
    assert report["embedding_passes"] == 2
    bad_images = {s["image_id"] for s in skipped}
    expected = [r for r in data["rows"] if r["image_id"] not in bad_images]
    assert [r["id"] for r in rows] == [r["id"] for r in expected]  # one row per usable input row, in order

    # Half positives exactly (every negative found a caption); positives carry their own caption.
    yes = [r for r in rows if r["match"] == "yes"]
    assert len(yes) == len(rows) - len(rows) // 2 and "no valid negative caption" not in report["skipped"]
    assert all(r["caption"] == r["original_caption"] and r["neg_rank"] is None for r in yes)
    assert all(list(r) == ["id", "image_id", "caption", "original_caption", "match", "neg_rank"] for r in rows)
    check_negatives(rows, expected, tmp_path, tiny_clip, ranks=[1, 3, 10, 30], random_fraction=0.2)

    # Same seed -> byte-identical; the cache serves everything (no embedding pass).
    rows2, report2, second = run(tmp_path, tiny_clip)
    assert second == first
    assert report2["embedding_passes"] == 0
    assert report2["embedding"].get("texts_embedded", 0) == 0
    assert report2["counts"]["images_skipped"] == 3  # still reported from the cache

    # Other sampling settings: different output, still no embedding.
    rows3, report3, third = run(tmp_path, tiny_clip, "match.seed=7", "negatives.random_fraction=1.0")
    assert third != first and report3["embedding_passes"] == 0
    assert all(r["neg_rank"] is None for r in rows3)

    # A cold run elsewhere (fresh cache) gives the same bytes.
    make_data(tmp_path / "cold")
    _, report4, cold = run(tmp_path / "cold", tiny_clip)
    assert cold == first and report4["embedding_passes"] == 2


def test_narrow_window_is_widened_not_clipped(tmp_path, data, tiny_clip):
    """top_k = the largest rank: the image's own and duplicate captions fill the
    window, so rank 30 needs a wider search; it is clipped only where fewer than
    30 valid distinct captions exist at all."""
    rows, report, _ = run(tmp_path, tiny_clip, "search.top_k=30", "negatives.random_fraction=0.0",
                          "negatives.ranks=[30]")
    expected = [r for r in data["rows"] if r["image_id"] not in {"sub/003.jpg", "sub/004.jpg", "sub/005.jpg"}]
    assert report["search"]["widened"] > 0
    clipped = check_negatives(rows, expected, tmp_path, tiny_clip, ranks=[30], random_fraction=0.0)
    # 40 distinct captions of usable images in 38 normalised forms; an image owns at most 4 -> >= 34 valid
    assert clipped == 0 and report["counts"]["negatives_rank_30"] == len(rows) // 2
    # ranks beyond the number of captions are clipped to the last valid one
    rows, report, _ = run(tmp_path, tiny_clip, "search.top_k=500", "negatives.random_fraction=0.0",
                          "negatives.ranks=[400]")
    assert report["embedding_passes"] == 0
    clipped = check_negatives(rows, expected, tmp_path, tiny_clip, ranks=[400], random_fraction=0.0)
    assert clipped == len(rows) // 2 == report["counts"]["negatives_rank_clipped"]


def test_cache_invalidated_by_model_or_caption_change(tmp_path, data, tiny_clip):
    import shutil
    from tests.tools.tiny_clip import build_tiny_clip
    model = tmp_path / "clip"
    shutil.copytree(tiny_clip, model)
    _, report, first = run(tmp_path, model)
    assert report["embedding_passes"] == 2
    # A byte-identical copy elsewhere (another node) reuses the cache.
    shutil.copytree(tiny_clip, tmp_path / "clip-copy")
    _, report, again = run(tmp_path, tmp_path / "clip-copy")
    assert report["embedding_passes"] == 0 and again == first
    # Other weights at the same path: everything embedded again.
    shutil.rmtree(model)
    build_tiny_clip(model, CAPTIONS, seed=1)
    _, report, _ = run(tmp_path, model)
    assert report["embedding_passes"] == 2 and report["embedding"]["texts_cached"] == 0
    assert report["embedding"]["images_cached"] == 0
    # An edited caption: only that caption is embedded.
    src = data["src"]
    src.write_text(src.read_text().replace('"a boat on a calm lake number 22"', '"a boat on a stormy sea"'))
    _, report, _ = run(tmp_path, model)
    assert report["embedding_passes"] == 1 and report["embedding"]["texts_embedded"] == 1
    assert report["embedding"].get("images_embedded", 0) == 0


def test_slice_growth_and_sharded_embedding(tmp_path, data, tiny_clip):
    _, report, _ = run(tmp_path, tiny_clip, "match.max_rows=20")
    assert report["counts"]["rows_in"] == 20
    # Two embedding shards of the whole file, then a mining run that embeds nothing.
    embedded = []
    for i in range(2):
        hard_match.main(sets(tmp_path, tiny_clip, "embed.only=true", "run.num_shards=2", f"run.shard_index={i}"))
        rep = json.loads((tmp_path / "work" / "reports" / f"match.mine.shard-0000{i}-of-00002.json").read_text())
        assert rep["embedding"]["texts_cached"] >= 20  # the earlier slice is reused
        embedded.append(rep["embedding"].get("texts_embedded", 0))
    # Rows 20..50 have 29 new distinct captions (all images were in the first slice; dupB/dupC
    # repeat an earlier caption exactly, so it is embedded once): split, none twice.
    assert sum(embedded) == 29 and min(embedded) > 0
    rows, report, _ = run(tmp_path, tiny_clip)
    assert report["embedding_passes"] == 0
    assert report["counts"]["rows_out"] == len(rows) > 20


def test_user_errors_exit_2(tmp_path, data, tiny_clip, capsys):
    with pytest.raises(SystemExit) as e:
        hard_match.main(sets(tmp_path, tiny_clip, "match.input=/nonexistent/x.jsonl"))
    assert e.value.code == 2 and "match.input" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        hard_match.main(sets(tmp_path, tiny_clip, "negatives.rankz=[1]"))
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        hard_match.main(sets(tmp_path, tiny_clip, "search.top_k=5"))  # below the largest rank
    assert e.value.code == 2 and "top_k" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        hard_match.main(sets(tmp_path, tiny_clip, "run.num_shards=2"))  # sharding needs embed.only
    assert e.value.code == 2
    assert not (tmp_path / "work" / "match" / "embeddings").exists()  # nothing done before the checks


def test_fp16_embedding_path(tmp_path, tiny_clip):
    """The GPU default dtype (float16) on the same code path, here on CPU: the
    same vectors up to half precision; auto picks float16 for cuda."""
    import torch
    from common.errors import UserError
    from match.clip_embed import ClipEmbedder, resolve_device, resolve_dtype
    assert resolve_dtype("cuda:1", "auto") == "float16" and resolve_dtype("cpu", "auto") == "float32"
    with pytest.raises(UserError):
        resolve_dtype("cpu", "int8")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            resolve_device("cuda")
    paths = []
    for j in range(5):
        paths.append(tmp_path / f"{j}.jpg")
        Image.new("RGB", (20 + j, 30), (40 * j, 200 - 30 * j, 90)).save(paths[-1])
    paths.append(tmp_path / "missing.jpg")
    vecs = {}
    for dtype in ("float32", "float16"):
        e = ClipEmbedder(str(tiny_clip), "cpu", dtype, 77, False)
        assert e.model.dtype == getattr(torch, dtype)
        t = np.zeros((4, e.dim), np.float16)
        e.embed_texts(CAPTIONS[:4], t, 3)
        im = np.zeros((len(paths), e.dim), np.float16)
        failed = []
        e.embed_images(paths, im, 2, 2, lambda i, reason: failed.append(i))
        assert failed == [5]
        vecs[dtype] = (t.astype(np.float32), im[:5].astype(np.float32))
    for a, b in zip(vecs["float32"], vecs["float16"]):
        assert np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-2)
        assert (a * b).sum(1).min() > 0.99
