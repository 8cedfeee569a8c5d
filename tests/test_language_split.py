"""Language-split policies (issue 18 item 4): mC4 shares (mBLIP's split, the default,
reproducing the draws of before byte for byte), an English share with the rest uniform
(Centurio), temperature sampling over mC4 shares; checked before work; in the fingerprint
of every step that draws languages."""
from __future__ import annotations

import collections
import hashlib

import pytest

from common import pipeline, records
from common.config import parse_args
from common.errors import UserError
from common.languages import assign_languages, check_split, load_languages, target_percent

# sha256 of the comma-joined draws, computed with the code before the policies existed.
BEFORE = {(5000, 3, None, "vqav2.translate"): "f9f958405d4ca46bfe0f96a6d8554a34179facefdb70622d7d4515a6558b5723",
          (20000, 0, None, "capfilt.translate"): "639dde0b07911c807967a7f4bc74fe17bf1a056d6539d1669ce72869d0a90a08",
          (3000, 1, ("en", "de", "sw", "yo"), "x"): "7a5f4e70760ff945fc2f9c6e8c82b4af1333abd0fed1345a885cbc57dcf6e785"}
DRAWING_STEPS = {"capfilt.translate": "translate", "match.translate": "translate", "mscoco.translate": "mscoco",
                 "vqav2.translate": "vqav2", "llava.translate": "llava"}


def _digest(codes: list[str]) -> str:
    return hashlib.sha256(",".join(codes).encode()).hexdigest()


@pytest.mark.parametrize("split", [None, {"policy": "mc4"}, check_split({"policy": "mc4", "alpha": 0.1}, "k")])
def test_default_policy_reproduces_the_draws_of_before(split):
    for (n, seed, codes, stage), digest in BEFORE.items():
        got = assign_languages(n, seed, list(codes) if codes else None, stage=stage, split=split)
        assert _digest(got) == digest, (n, seed, stage)


def test_english_share_rest_uniform():
    n = 100_000
    split = check_split({"policy": "english_share", "english": 0.5}, "k", list(load_languages()))
    got = collections.Counter(assign_languages(n, 0, split=split, stage="t"))
    assert got["en"] == n // 2
    others = [got[c] for c in load_languages() if c != "en"]
    assert len(others) == len(load_languages()) - 1 and max(others) - min(others) <= 1
    assert sum(got.values()) == n
    pct = target_percent(list(load_languages()), split)
    assert pct["en"] == pytest.approx(50) and pct["de"] == pytest.approx(50 / (len(load_languages()) - 1))


def test_temperature_flattens_mc4_shares():
    table = load_languages()
    codes = list(table)
    mc4 = target_percent(codes)
    hot = target_percent(codes, check_split({"policy": "temperature", "alpha": 0.3}, "k"))
    assert mc4["en"] == pytest.approx(43.8, abs=0.1) and hot["en"] < mc4["en"] / 2 and hot["yo"] > mc4["yo"]
    total = sum(table[c].mc4_percent ** 0.3 for c in codes)
    assert hot["de"] == pytest.approx(100 * table["de"].mc4_percent ** 0.3 / total)
    one = check_split({"policy": "temperature", "alpha": 1}, "k")
    assert assign_languages(5000, 3, stage="vqav2.translate", split=one) == assign_languages(5000, 3, stage="vqav2.translate")
    flat = collections.Counter(assign_languages(960, 0, split=check_split({"policy": "temperature", "alpha": 0}, "k")))
    assert set(flat.values()) == {960 // len(codes)}


@pytest.mark.parametrize("value, codes, part", [
    ({"policy": "centurio"}, None, "k.policy"), ({"policy": "english_share", "english": 1.5}, None, "k.english"),
    ({"policy": "temperature", "alpha": "hot"}, None, "k.alpha"), ("mc4", None, "k:"),
    ({"policy": "english_share", "english": 0.5}, ["de", "fr"], "k.english")])
def test_bad_split_names_the_key(value, codes, part):
    with pytest.raises(UserError) as e:
        check_split(value, "k", codes)
    assert part in str(e.value) and "\n" not in str(e.value)


def test_bad_split_stops_before_work(tmp_path, capsys):
    from pretrain.translate_train import main
    with pytest.raises(SystemExit) as e:
        main(["--set", f"paths.work_dir={tmp_path}/work", "--set", f"paths.out_root={tmp_path}/out",
              "--set", f"paths.raw_root={tmp_path}/raw",
              "--set", "translation.backend=dry-run", "--set", "translate.language_split.policy=centurio"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0 and "translate.language_split.policy" in err, err
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("step_id", sorted(DRAWING_STEPS))
def test_policy_is_in_the_fingerprint_of_every_drawing_step(step_id, tmp_path):
    step = pipeline.get(step_id)
    key = f"{DRAWING_STEPS[step_id]}.language_split"

    def fingerprint(*sets):
        roots = [f"paths.{k}={tmp_path}/{k}" for k in ("raw_root", "out_root", "work_dir")]
        cfg = parse_args("x", step.defaults, None, [a for s in (*roots, *sets) for a in ("--set", s)])
        values = records.shaping_values(step, cfg)
        assert f"{key}.policy" in values
        return records.config_fingerprint(values)
    base = fingerprint()
    assert fingerprint(f"{key}.policy=english_share") != base
    assert fingerprint(f"{key}.policy=temperature") != fingerprint(f"{key}.policy=temperature", f"{key}.alpha=0.5")


def test_policy_table_on_100k_rows_within_tolerance(capsys):
    """The table of docs/languages.md: every policy within 10% (relative) per language with
    1,000 rows or more, English within 0.5 points."""
    from tests.tools import language_split_table as tool
    assert tool.main(["--n", "100000"]) == 0
    out = capsys.readouterr().out
    assert "| en | English | 43.843 | 43.843 | 43843 | 50.000 | 50.000 | 50000 |" in out
    target, got, rows = tool.realised(100_000, 0, check_split({"policy": "temperature", "alpha": 0.3}, "k"))
    assert tool.failures("t", target, got, rows) == []
    assert tool.failures("t", target, {**got, "en": got["en"] + 0.6}, rows)    # the check can fail
    assert tool.failures("t", target, {**got, "de": got["de"] * 1.2}, rows)
