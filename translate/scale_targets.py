"""How each shardable script is split and merged, for translate/scale.py and
the SLURM combine job.

A target says which config section receives the worker's device (and CPU
threads), which extra ``--set`` a worker needs, and how the shard files are
merged once every shard is done. The merge reads the script's own config with
the same arguments the workers got, so it finds the same output path.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from common.config import REPO_ROOT, parse_args
from common.errors import UserError
from translate.stage import combine_shards


@dataclass
class Target:
    device_section: str | None          # the section holding device/threads keys (None: CPU-only job)
    combine: Callable[[str, list[str], int], str]   # (script, its args, num_shards) -> what was written
    worker_sets: list[str] = field(default_factory=list)
    has_threads: bool = True             # the device section has a ``threads`` key


def _merge_at(load_output: Callable[[list[str]], Path]) -> Callable[[str, list[str], int], str]:
    def combine(script: str, args: list[str], n: int) -> str:
        out = load_output(args)
        rows = combine_shards(out, n)
        return f"merged {n} shards: {rows} rows -> {out}"
    return combine


def _rerun(*sets: str) -> Callable[[str, list[str], int], str]:
    """Merge by running the script once more (scripts with a merge mode of their own)."""
    def combine(script: str, args: list[str], n: int) -> str:
        cmd = [sys.executable, script, *args]
        for s in sets:
            cmd += ["--set", s.format(n=n)]
        rc = subprocess.call(cmd)
        if rc != 0:
            raise UserError(f"combine step failed (exit {rc}): {' '.join(cmd)}")
        return f"ran {' '.join(cmd[1:])}"
    return combine


def _translate_file_out(args: list[str]) -> Path:
    from translate import translate_file as m
    return parse_args(m.__doc__, m.DEFAULTS, str(REPO_ROOT / "configs" / "translate_file.yaml"),
                      args).path("file.output")


def _capfilt_cfg(args: list[str]):
    from pretrain.capfilt_config import CONFIG_FILE, DEFAULTS
    return parse_args("", DEFAULTS, str(REPO_ROOT / "configs" / CONFIG_FILE), args)


def _mscoco_out(args: list[str]) -> Path:
    from tasks.mscoco.settings import CONFIG, DEFAULTS, intermediate_paths
    return intermediate_paths(parse_args("", DEFAULTS, CONFIG, args))[1]


def _vqa_out(args: list[str]) -> Path:
    from tasks.vqa.settings import CONFIG, DEFAULTS, work_paths
    return work_paths(parse_args("", DEFAULTS, CONFIG, args))["translated"]


def _llava_out(args: list[str]) -> Path:
    from tasks.llava.settings import CONFIG, DEFAULTS, work_paths
    return work_paths(parse_args("", DEFAULTS, CONFIG, args))["translated"]


def _download_combine(script: str, args: list[str], n: int) -> str:
    from pretrain.download_images import combine_download_shards
    dc = _capfilt_cfg(args)["download"]
    rows = combine_download_shards(dc, n)
    return f"merged {n} download shards: {rows} rows -> {dc['output']}"


TARGETS: dict[str, Target] = {
    "translate/translate_file.py": Target("translation", _merge_at(_translate_file_out)),
    # The last shard to finish merges on its own; merging again gives the same bytes.
    "pretrain/translate_train.py": Target("translation", _merge_at(lambda a: _capfilt_cfg(a).path("translate.output"))),
    "tasks/mscoco/translate_train.py": Target("translation", _merge_at(_mscoco_out)),
    "tasks/vqa/translate_train.py": Target("translation", _merge_at(_vqa_out)),
    "tasks/llava/translate_train.py": Target("translation", _merge_at(_llava_out)),
    "match/translate_match_train.py": Target("translation", _rerun("run.num_shards={n}", "run.shard_index=0",
                                                                   "translate.combine_shards=true")),
    # Shards fill the embedding cache; the merge is the (single) mining run.
    "match/hard_match.py": Target("embed", _rerun("run.num_shards=1", "run.shard_index=0", "embed.only=false"),
                                  worker_sets=["embed.only=true"], has_threads=False),
    "pretrain/download_images.py": Target(None, _download_combine),
}


def script_key(script: str) -> str:
    """The repo-relative name of a script path given in any form."""
    p = Path(script)
    p = (Path.cwd() / p).resolve() if not p.is_absolute() else p.resolve()
    try:
        return p.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(p)


def find_target(script: str, output: str) -> Target:
    """The script's target; an unknown script needs ``output`` (its sharded output file)."""
    key = script_key(script)
    if key in TARGETS:
        return TARGETS[key]
    if output:
        return Target("translation", lambda script, args, n: f"merged {n} shards: {combine_shards(output, n)} rows -> {output}")
    raise UserError(f"{script}: not one of the known scripts ({', '.join(TARGETS)}); "
                    "set scale.output to the output file its shards are named after (a script without "
                    "run.* keys, e.g. tasks/imagenet/translate_train.py, is small: run it directly)")
