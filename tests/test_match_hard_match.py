"""hard_match.py end to end with a tiny random-weight CLIP, on tiny Pillow images."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from match import hard_match
from match.embed_cache import EmbeddingCache
from match.rows import normalise_caption, text_key

CAPTIONS = [
    "a dog runs on the green grass", "A dog runs on the green grass!", "a cat sleeps on a sofa",
    "two children play with a red ball", "a red car parked in the street", "a plate of rice and meat",
    "a train waits at the station", "a man rides a bicycle", "a woman holds an umbrella in the rain",
    "a kitchen with white cabinets", "a boat on a calm lake", "three birds on a wire",
]


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    from match.tiny_clip import build_tiny_clip
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
    src = root / "capfilt" / "capfilt_en.jsonl"
    src.parent.mkdir(parents=True)
    lines = [json.dumps(x) for x in rows]
    lines.insert(7, '{"id": "broken", ')
    lines.insert(9, json.dumps({"id": "nocap", "image_id": "sub/001.jpg"}))
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"rows": rows, "src": src, "images": images}


def sets(root: Path, model: Path, *extra: str) -> list[str]:
    args = ["--set", f"paths.work_dir={root / 'work'}", "--set", f"match.input={root / 'capfilt' / 'capfilt_en.jsonl'}",
            "--set", f"paths.image_root={root / 'images'}", "--set", f"paths.clip_model={model}",
            "--set", "embed.progress=false", "--set", "embed.image_workers=2", "--set", "embed.text_batch=8",
            "--set", "embed.image_batch=4", "--set", "search.top_k=40", "--set", "negatives.ranks=[1,3,10,30]"]
    for e in extra:
        args += ["--set", e]
    return args


def run(root: Path, model: Path, *extra: str) -> tuple[list[dict], dict, bytes]:
    hard_match.main(sets(root, model, *extra))
    out = root / "work" / "match" / "capfilt_match_en.jsonl"
    report = json.loads((root / "work" / "match" / "hard_match_report.json").read_text())
    data = out.read_bytes()
    return [json.loads(x) for x in data.decode().splitlines()], report, data


@pytest.fixture()
def data(tmp_path):
    return make_data(tmp_path)


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

    # Half positives; positives carry their own caption.
    yes = [r for r in rows if r["match"] == "yes"]
    assert len(yes) == len(rows) - len(rows) // 2
    assert all(r["caption"] == r["original_caption"] and r["neg_rank"] is None for r in yes)
    assert set(rows[0]) == {"id", "image_id", "caption", "original_caption", "match", "neg_rank"}

    # No negative equals any caption of its image after normalisation.
    own = {}
    for r in expected:
        own.setdefault(r["image_id"], set()).add(normalise_caption(r["caption"]))
    no = [r for r in rows if r["match"] == "no"]
    assert no and all(normalise_caption(r["caption"]) not in own[r["image_id"]] for r in no)

    # Ranks honoured: the caption is the rank-th nearest valid distinct caption.
    cache_dir = tmp_path / "work" / "match" / "embeddings"
    texts = list(dict.fromkeys(r["caption"] for r in expected))
    tc = EmbeddingCache(cache_dir, str(tiny_clip), "text", {"max_text_tokens": 77})
    ic = EmbeddingCache(cache_dir, str(tiny_clip), "image")
    tvec = tc.gather([text_key(t) for t in texts])
    ranked = [r for r in no if r["neg_rank"] is not None]
    assert ranked
    for r in ranked:
        sims = tvec @ ic.gather([r["image_id"]])[0]
        seen, valid = set(), []
        for p in np.argsort(-sims, kind="stable"):
            n = normalise_caption(texts[p])
            if n not in own[r["image_id"]] and n not in seen:
                seen.add(n)
                valid.append(p)
        # a configured rank, or clipped to the last valid caption (top_k=40 > every caption here)
        assert r["neg_rank"] in (1, 3, 10, 30) or r["neg_rank"] == len(valid) < 30
        assert abs(sims[texts.index(r["caption"])] - sims[valid[r["neg_rank"] - 1]]) < 1e-5

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


def test_slice_growth_and_sharded_embedding(tmp_path, data, tiny_clip):
    _, report, _ = run(tmp_path, tiny_clip, "match.max_rows=20")
    assert report["counts"]["rows_in"] == 20
    # Two embedding shards of the whole file, then a mining run that embeds nothing.
    embedded = []
    for i in range(2):
        hard_match.main(sets(tmp_path, tiny_clip, "embed.only=true", "run.num_shards=2", f"run.shard_index={i}"))
        rep = json.loads((tmp_path / "work" / "match" / "hard_match_report.json").read_text())
        assert rep["embedding"]["texts_cached"] >= 20  # the earlier slice is reused
        embedded.append(rep["embedding"].get("texts_embedded", 0))
    # Rows 20..47 have 28 new distinct captions (all images were in the first slice): split, none twice.
    assert sum(embedded) == 28 and min(embedded) > 0
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
