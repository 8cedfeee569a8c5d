"""Which step report the mix card reads (pretrain/mix_card.py ``step_report``):
a step's own report, or the sum of its shards' reports, whichever was written
last; only the shards of the newest sharded run; nothing where neither exists."""
from __future__ import annotations

import json
import os

from common.config import Config
from pretrain import mix_card

STEP = "capfilt.translate"


def cfg_of(tmp_path):
    return Config({"paths": {"work_dir": str(tmp_path / "work")}})


def put(tmp_path, name: str, body, mtime: int | None = None):
    p = tmp_path / "work" / "reports" / f"{name}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def whole(tag):
    return {"fallback_to_english": {"de": {"empty": tag}}, "tag": tag}


def shard(i, n, lang_counts, mtime):
    return (f"{STEP}.shard-{i:05d}-of-{n:05d}", {"fallback_to_english": lang_counts}, mtime)


def test_the_steps_own_report_when_there_are_no_shards(tmp_path):
    put(tmp_path, STEP, whole(1))
    assert mix_card.step_report(STEP, cfg_of(tmp_path)) == (whole(1), f"{STEP}.json")


def test_the_own_report_wins_when_it_is_newer_or_as_new_as_the_shards(tmp_path):
    for name, body, t in [shard(0, 2, {"de": {"empty": 5}}, 1000), shard(1, 2, {"de": {"empty": 6}}, 2000)]:
        put(tmp_path, name, body, t)
    put(tmp_path, STEP, whole(1), 3000)
    assert mix_card.step_report(STEP, cfg_of(tmp_path))[0] == whole(1)
    put(tmp_path, STEP, whole(2), 2000)            # as new as the newest shard
    assert mix_card.step_report(STEP, cfg_of(tmp_path))[0] == whole(2)


def test_newer_shards_are_summed_per_language_and_reason(tmp_path):
    put(tmp_path, STEP, whole(1), 1000)
    for name, body, t in [shard(0, 3, {"de": {"empty": 1, "off_target": 2}, "fr": {"empty": 1}}, 2000),
                          shard(1, 3, {"de": {"empty": 4}}, 2001),
                          shard(2, 3, {}, 2002)]:
        put(tmp_path, name, body, t)
    got, where = mix_card.step_report(STEP, cfg_of(tmp_path))
    assert got == {"fallback_to_english": {"de": {"empty": 5, "off_target": 2}, "fr": {"empty": 1}}}
    assert where == f"3 shard reports of {STEP}"


def test_only_the_shards_of_the_newest_sharded_run_count(tmp_path):
    for name, body, t in [shard(0, 2, {"de": {"empty": 100}}, 1000), shard(1, 2, {"de": {"empty": 100}}, 1001),
                          shard(0, 3, {"de": {"empty": 1}}, 2000), shard(1, 3, {"de": {"empty": 2}}, 2001)]:
        put(tmp_path, name, body, t)
    put(tmp_path, f"{STEP}.shard-00002-of-00003", "not json", 2002)   # unreadable: skipped
    got, where = mix_card.step_report(STEP, cfg_of(tmp_path))
    assert got == {"fallback_to_english": {"de": {"empty": 3}}} and where == f"2 shard reports of {STEP}"
    # Another step's shards are not this step's.
    put(tmp_path, "capfilt.translatex.shard-00000-of-00001", {"fallback_to_english": {"de": {"empty": 9}}}, 3000)
    assert mix_card.step_report(STEP, cfg_of(tmp_path))[0] == got


def test_no_report_at_all(tmp_path):
    assert mix_card.step_report(STEP, cfg_of(tmp_path)) == (None, f"no report {STEP}.json")
    (tmp_path / "work" / "reports").mkdir(parents=True)
    assert mix_card.step_report(STEP, cfg_of(tmp_path)) == (None, f"no report {STEP}.json")
    assert mix_card.step_report(STEP, Config({"paths": {"work_dir": ""}})) == (None, "paths.work_dir not set")


def test_fallbacks_are_read_from_the_translate_steps_of_the_mixs_tasks(tmp_path):
    put(tmp_path, "capfilt.translate", {"fallback_to_english": {"de": {"empty": 2}}})
    put(tmp_path, "mscoco.translate", {"fallback_to_english": {"de": {"empty": 1, "copied_source": 1}}})
    put(tmp_path, "vqav2.translate", {"counts": {}})                       # an older report: no fallbacks
    put(tmp_path, "match.translate", {"fallback_to_english": {"fr": {"empty": 7}}})   # capfilt_match: not asked
    got, sources = mix_card.fallbacks(["capfilt", "mscoco", "vqav2_vqa", "aokvqa_cot"], cfg_of(tmp_path))
    assert got == {"de": {"empty": 3, "copied_source": 1}}
    assert sources == {"capfilt.translate": "capfilt.translate.json", "mscoco.translate": "mscoco.translate.json",
                       "vqav2.translate": "not recorded (vqav2.translate.json)"}
