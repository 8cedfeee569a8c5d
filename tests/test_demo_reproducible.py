"""``make demo`` twice, into two OUT folders: byte-identical ``out/`` (the mix
report compared with the OUT path taken out), and a mix in which no training
image is an evaluation image (checked here against the raw evaluation files
directly, not through eval_data/decontam.py), explained by its report and card.

Two full runs of the demo driver (tests/tools/demo.py): about a minute and a
half each on a 2-core machine. Every generated model whose output reaches
``out/`` is built in them (the tiny CLIP that mines the matching negatives; the
pipeline translates with the dry-run backend, and the tiny NLLB of the engine
demo writes under ``work/`` only)."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES_RAW, PYTHON, REPO


@pytest.fixture(scope="module")
def demos(request, tmp_path_factory) -> tuple[Path, Path]:
    """The shared demo run (conftest.demo_out) and a second one into another folder.
    The second runs while the first is built (or awaited): two single-core chains of
    steps side by side, not one after the other (their downloads take turns at the
    fixed port, tests/tools/demo.py)."""
    out = tmp_path_factory.mktemp("demo") / "B"
    log = out.with_name("B.log")
    with open(log, "w") as f:
        proc = subprocess.Popen([PYTHON, "tests/tools/demo.py", "--out", str(out)], cwd=REPO, stdout=f,
                                stderr=subprocess.STDOUT, text=True)
    try:
        demo_out = request.getfixturevalue("demo_out")
    finally:
        proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text[-5000:]
    assert "every step is done" in text
    return demo_out, out


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_demo_runs_give_byte_identical_outputs(demos):
    a, b = demos
    fa, fb = files(a / "out"), files(b / "out")
    assert fa.keys() == fb.keys() and len(fa) > 100
    assert "train/capfilt_match.jsonl" in fa and "train/task_mix.jsonl" in fa and "train/README.md" in fa
    differ = [k for k in fa if fa[k] != fb[k]]
    assert differ == ["train/task_mix_report.json"]       # it names its own files, under OUT
    ra = fa.pop("train/task_mix_report.json").decode().replace(str(a), "OUT")
    rb = fb.pop("train/task_mix_report.json").decode().replace(str(b), "OUT")
    assert ra == rb


def evaluation_images(raw: Path) -> tuple[set[int], set[str]]:
    """COCO ids and image URLs of the evaluation sets, read straight from the raw fixture files."""
    coco: set[int] = set()
    karpathy = json.loads((raw / "mscoco" / "dataset_coco.json").read_text())
    coco |= {im["cocoid"] for im in karpathy["images"] if im["split"] in ("val", "test")}
    for f in (raw / "pope" / "output" / "coco").glob("coco_pope_*.json"):
        coco |= {int(json.loads(x)["image"].rsplit("_", 1)[1].split(".")[0]) for x in f.read_text().splitlines()}
    vq = json.loads((raw / "vqav2" / "v2_OpenEnded_mscoco_val2014_questions.json").read_text())
    coco |= {q["image_id"] for q in vq["questions"]}
    for f in (raw / "iglue" / "datasets" / "xFlickrCO" / "annotations").glob("*/test.jsonl"):
        for x in f.read_text().splitlines():
            try:
                path = json.loads(x).get("img_path", "")
            except ValueError:
                continue
            if path.startswith("COCO_"):
                coco.add(int(path.rsplit("_", 1)[1].split(".")[0]))
    urls = set()
    for f in ("dev.jsonl", "test.jsonl"):
        for x in (raw / "iglue" / "datasets" / "nlvr2" / "annotations" / f).read_text().splitlines():
            row = json.loads(x)
            urls |= {row["left_url"], row["right_url"]}
    return coco, urls


def test_no_training_image_of_the_demo_mix_is_an_evaluation_image(demos):
    out = demos[0]
    coco, urls = evaluation_images(FIXTURES_RAW)
    url_of = {json.loads(x)["image_id"]: json.loads(x)["url"]
              for x in (out / "work" / "capfilt" / "capfilt_downloaded.jsonl").read_text().splitlines()}
    # a downloaded CapFilt image is an NLVR2 image (the fixture's case; the English run drops it)
    assert set(url_of.values()) & urls
    train = out / "out" / "train"
    checked = 0
    for path in sorted(train.glob("*.jsonl")):
        for x in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(x)
            m = re.fullmatch(r"COCO_(?:train|val)2014_(\d+)\.jpg", row["image_id"])
            if m:
                assert int(m.group(1)) not in coco, (path.name, row)
            elif row["task"].startswith("capfilt"):
                assert url_of[row["image_id"]] not in urls, (path.name, row)
            checked += 1
    assert checked > 700
    mix = [json.loads(x) for x in (train / "task_mix.jsonl").read_text(encoding="utf-8").splitlines()]
    for image in ("COCO_val2014_000000203564.jpg", "COCO_val2014_000000179765.jpg", "COCO_val2014_000000310196.jpg",
                  "COCO_val2014_000000000073.jpg"):
        assert image not in {r["image_id"] for r in mix}
    report = json.loads((train / "task_mix_report.json").read_text())
    dec = report["decontamination"]
    assert dec["rows_dropped"] == 10 and dec["exclusion_off"] == []
    assert {t: d["rows_dropped"] for t, d in dec["tasks"].items()} == {
        "capfilt": 1, "capfilt_match": 0, "mscoco": 4, "vqav2_vqa": 0, "vqav2_vqg": 0, "aokvqa_cot": 1,
        "aokvqa_explain": 1, "llava_detail": 1, "llava_conversation": 2}
    assert dec["dropped_by_eval_set"]["nlvr2"] == 1 and dec["dropped_by_eval_set"]["pope"] == 3


def test_the_demo_mix_explains_itself(demos):
    train = demos[0] / "out" / "train"
    report = json.loads((train / "task_mix_report.json").read_text())
    mix_langs = report["mix"]["rows_per_language"]
    assert set(report["languages"]) >= set(mix_langs)
    assert report["languages"]["en"]["target_share"] > 40 and report["fallback_to_english"]["rows"] == 0
    front = yaml.safe_load((train / "README.md").read_text().split("---\n")[1])
    assert len(front["language"]) == len(mix_langs)
    assert front["size_categories"] == ["n<1K"] and "cc-by-nc-4.0" in front["license"]
    assert front["configs"][0]["data_files"] == [{"split": "train", "path": "task_mix.jsonl"}]
    assert len(front["configs"]) == 1 + 11    # the mix and one config per task file


def test_status_after_the_demo_says_every_step_is_done(demo_out):
    """make status OUT=DIR after make demo OUT=DIR: the demo leaves its settings in DIR/status.args."""
    r = subprocess.run([PYTHON, "-m", "common", "status", "--args-file", str(demo_out / "status.args")], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith("every step is done"), r.stdout[-1500:]
