"""merge_train: schema check (file:line, exit 2), missing/optional inputs, weights
and caps, deterministic shuffle, report json/md/png, loading with datasets."""
from __future__ import annotations

import json

import pytest
import yaml

from pretrain import merge_train
from tests.conftest import root_sets


def row(task, i, lang="en", image=None):
    return {"context": f"Describe {i}.", "label": f"Label {i} #", "image_id": image or f"img{i % 7}.jpg",
            "task": task, "lang": lang}


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def setup(tmp, weights=None, caps=None, optional_missing=False):
    train = tmp / "out" / "train"
    write(train / "mscoco.jsonl", [row("mscoco", i, lang=["en", "de", "zh"][i % 3]) for i in range(30)])
    write(train / "vqav2_vqa.jsonl", [row("vqav2_vqa", i, lang="iw") for i in range(20)])
    inputs = [{"path": str(train / "mscoco.jsonl"), "source": "mscoco"},
              {"path": str(train / "vqav2_vqa.jsonl"), "source": "vqav2"}]
    if optional_missing:
        inputs.append({"path": str(train / "capfilt.jsonl"), "source": "blip", "optional": True})
    cfg = {"merge": {"inputs": inputs, "weights": weights or {}, "caps": caps or {}, "seed": 3,
                     "output": str(train / "task_mix.jsonl"), "report": str(train / "task_mix_report.json"),
                     "licences": {"mscoco": "CC BY 4.0", "vqav2": "CC BY 4.0"}}}
    path = tmp / "merge.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return ["--config", str(path), *root_sets(tmp)], train


def test_merge_and_load_with_datasets(tmp_path):
    import datasets
    argv, train = setup(tmp_path, optional_missing=True)
    merge_train.main(argv)
    mix = [json.loads(x) for x in (train / "task_mix.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(mix) == 50
    assert sorted(json.dumps(r) for r in mix) == sorted(
        [json.dumps(row("mscoco", i, lang=["en", "de", "zh"][i % 3])) for i in range(30)]
        + [json.dumps(row("vqav2_vqa", i, lang="iw")) for i in range(20)])
    assert [r["task"] for r in mix] != sorted(r["task"] for r in mix)  # shuffled
    ds = datasets.load_dataset("json", data_files=str(train / "task_mix.jsonl"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 50 and sorted(ds.column_names) == ["context", "image_id", "label", "lang", "task"]
    report = json.loads((train / "task_mix_report.json").read_text())
    assert report["tasks"]["mscoco"]["rows"] == 30 and report["tasks"]["mscoco"]["distinct_images"] == 7
    assert report["tasks"]["mscoco"]["rows_per_language"] == {"de": 10, "en": 10, "zh": 10}
    assert report["mix"]["languages"] == 4 and report["mix"]["rows"] == 50
    assert report["missing_optional_inputs"] == [str(train / "capfilt.jsonl")]
    md = (train / "task_mix_report.md").read_text()
    assert "| mscoco | mscoco | 30 | 30 | 7 | 3 | CC BY 4.0 |" in md
    assert (train / "task_mix_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deterministic(tmp_path):
    argv, train = setup(tmp_path / "a")
    merge_train.main(argv)
    argv2, train2 = setup(tmp_path / "b")
    merge_train.main(argv2)
    for name in ("task_mix.jsonl", "task_mix_report.md", "task_mix_report.png"):
        assert (train / name).read_bytes() == (train2 / name).read_bytes()


def test_weights_and_caps(tmp_path):
    argv, train = setup(tmp_path, weights={"mscoco": 1.5, "vqav2_vqa": 0.5}, caps={"mscoco": 40})
    merge_train.main(argv)
    mix = [json.loads(x) for x in (train / "task_mix.jsonl").read_text().splitlines()]
    tasks = [r["task"] for r in mix]
    assert tasks.count("mscoco") == 40 and tasks.count("vqav2_vqa") == 10


@pytest.mark.parametrize("bad,reason", [
    ('{"context": "x", "label": "y", "image_id": "i", "task": "mscoco"}', "keys must be exactly"),
    ('{"context": "x", "label": "", "image_id": "i", "task": "mscoco", "lang": "en"}', "label is empty"),
    ('{"context": "x", "label": "y", "image_id": "i", "task": "mscoco", "lang": "he"}', "unknown language"),
    ('{"context": "x", "label": "y", "image_id": "i", "task": "coco", "lang": "en"}', "unknown task"),
    ('{"context": "x", "label": 3, "image_id": "i", "task": "mscoco", "lang": "en"}', "must be a string"),
    ('{"context": "x", "label": "y", ', "malformed JSON"),
])
def test_bad_row_fails_naming_file_and_line(tmp_path, capsys, bad, reason):
    argv, train = setup(tmp_path)
    p = train / "vqav2_vqa.jsonl"
    lines = p.read_text().splitlines()
    lines.insert(4, bad)
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit) as e:
        merge_train.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{p}:5:" in err and reason in err
    assert not (train / "task_mix.jsonl").exists()


def test_missing_required_input_exits_2(tmp_path, capsys):
    argv, train = setup(tmp_path)
    (train / "vqav2_vqa.jsonl").unlink()
    with pytest.raises(SystemExit) as e:
        merge_train.main(argv)
    assert e.value.code == 2
    assert "vqav2_vqa.jsonl" in capsys.readouterr().err


def test_default_config_lists_every_task():
    cfg = yaml.safe_load(open(merge_train.CONFIG))["merge"]
    names = {i["path"].rsplit("/", 1)[-1] for i in cfg["inputs"]}
    assert names == {f"{t}.jsonl" for t in merge_train.TASKS}
    assert set(cfg["licences"]) == {i["source"] for i in cfg["inputs"]}


def test_distinct_images_shared_collection(tmp_path):
    """Both fixture files use img0..img6: counted once when they share an image
    collection, twice when each source has its own image root."""
    argv, train = setup(tmp_path)
    merge_train.main(argv)
    report = json.loads((train / "task_mix_report.json").read_text())
    assert report["mix"]["distinct_images"] == 14
    cfg = yaml.safe_load((tmp_path / "merge.yaml").read_text())
    for item in cfg["merge"]["inputs"]:
        item["images"] = "coco"
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    merge_train.main(argv)
    report = json.loads((train / "task_mix_report.json").read_text())
    assert report["mix"]["distinct_images"] == 7 and report["tasks"]["vqav2_vqa"]["distinct_images"] == 7


def test_the_merge_declares_the_step_reports_it_reads(tmp_path):
    """The mix report reads the final and translate steps' reports: a changed report makes the merge stale."""
    from common import cli, lifecycle, records
    args, train = setup(tmp_path)
    merge_train.main(args)
    cfg = cli.load_config(merge_train.STEP, args)
    reads = [str(p) for p in records.inputs(merge_train.STEP, cfg)]
    for sid in ("mscoco.final", "mscoco.translate", "vqav2.final", "vqav2.translate"):
        assert str(lifecycle.report_path(sid, cfg)) in reads, sid
    assert records.state(merge_train.STEP, cfg).status == "done"
    report = lifecycle.report_path("mscoco.translate", cfg)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text('{"fallback_to_english": {"de": {"off_target": 1}}}', encoding="utf-8")
    st = records.state(merge_train.STEP, cfg)
    assert st.status == "stale" and str(report) in st.reason
