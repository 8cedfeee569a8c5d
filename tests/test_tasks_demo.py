"""The demo driver over the task sources, then the merge, on the fixtures: every
source end to end, and the merged mix loads with datasets."""
from __future__ import annotations

import json
import subprocess

from tests.conftest import PYTHON, REPO


def test_demo_then_merge(tmp_path):
    demo = [PYTHON, "tests/tools/demo.py", "--out", str(tmp_path)]
    r = subprocess.run([*demo, "--only", "mscoco,vqav2,aokvqa,llava,imagenet"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    train = tmp_path / "out" / "train"
    # The CapFilt files come from other stages in `make demo`; stand-ins here.
    for task in ("capfilt", "capfilt_match"):
        (train / f"{task}.jsonl").write_text(json.dumps(
            {"context": "Beschreibe das Bild.", "label": "Ein Hund.", "image_id": "00000/000000001.jpg",
             "task": task, "lang": "de"}) + "\n", encoding="utf-8")
    r = subprocess.run([*demo, "--only", "merge"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((train / "task_mix_report.json").read_text())
    assert set(report["tasks"]) == {"capfilt", "capfilt_match", "mscoco", "vqav2_vqa", "vqav2_vqg", "aokvqa_cot",
                                    "aokvqa_explain", "llava_detail", "llava_conversation", "imagenet_classify",
                                    "imagenet_decide"}
    assert all(t["rows"] > 0 for t in report["tasks"].values())
    import datasets
    ds = datasets.load_dataset("json", data_files=str(train / "task_mix.jsonl"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == report["mix"]["rows"]
    assert (tmp_path / "out" / "eval" / "mscoco" / "mscoco_coco_test.json").is_file()
    assert (tmp_path / "out" / "eval" / "vqav2" / "vqav2_val.jsonl").is_file()
