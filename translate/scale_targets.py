"""How each shardable script is split and merged, for translate/scale.py and
the SLURM combine job.

A target says which config section receives the worker's device (and CPU
threads), which extra ``--set`` a worker needs, and how the shard files are
merged once every shard is done. The merge reads the script's own config with
the same arguments the workers got, so it finds the same output path.

Before a merge, ``check_shards`` looks at the shard files themselves: files of
another ``num_shards`` (an earlier run with a different N) are never merged and
are listed, and a shard file older than the step's input, or (launcher) older
than the launch, belongs to an earlier run and stops the merge by name.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from common.config import REPO_ROOT, parse_args
from common.errors import UserError
from translate.stage import check_shard_files, combine_shards

Files = tuple[Path | None, list[Path]]


@dataclass
class Target:
    device_section: str | None          # the section holding device/threads keys (None: CPU-only job)
    combine: Callable[[str, list[str], int], str]   # (script, its args, num_shards) -> what was written
    worker_sets: list[str] = field(default_factory=list)
    has_threads: bool = True             # the device section has a ``threads`` key
    # (script args) -> (the input the shards read, the output files that are sharded); None: no shard files
    files: Callable[[list[str]], Files] | None = None




def check_shards(target: Target, args: list[str], n: int, since: float | None = None) -> list[str]:
    """translate.stage.check_shard_files for each sharded output of the target."""
    if target.files is None:
        return []
    src, outputs = target.files(args)
    return [w for out in outputs for w in check_shard_files(out, n, src, since)]


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


def _capfilt_files(args: list[str]) -> Files:
    c = _capfilt_cfg(args)
    return c.path("translate.input"), [c.path("translate.output")]


def _translate_file_files(args: list[str]) -> Files:
    from translate import translate_file as m
    c = parse_args(m.__doc__, m.DEFAULTS, str(REPO_ROOT / "configs" / "translate_file.yaml"), args)
    return c.path("file.input"), [c.path("file.output")]


def _task_files(module: str) -> Callable[[list[str]], Files]:
    def files(args: list[str]) -> Files:
        import importlib
        m = importlib.import_module(f"tasks.{module}.settings")
        cfg = parse_args("", m.DEFAULTS, m.CONFIG, args)
        if module == "mscoco":
            en, tr, _ = m.intermediate_paths(cfg)
        else:
            w = m.work_paths(cfg)
            en, tr = w["en"], w["translated"]
        return en, [tr]
    return files


def _match_translate_files(args: list[str]) -> Files:
    from match.settings import CONFIG_FILE, DEFAULTS
    c = parse_args("", DEFAULTS, CONFIG_FILE, args)
    return c.path("translate.input"), [c.path("translate.output")]


def _download_files(args: list[str]) -> Files:
    c = _capfilt_cfg(args)
    return c.path("download.input"), [c.path("download.output"), c.path("download.status")]


def _hard_match_combine(script: str, args: list[str], n: int) -> str:
    """The mining run; it embeds what no shard did, so a shard that never ran
    costs time, not rows; say so, with the counts."""
    msg = _rerun("run.num_shards=1", "run.shard_index=0", "embed.only=false")(script, args, n)
    from match.settings import CONFIG_FILE, DEFAULTS
    report = parse_args("", DEFAULTS, CONFIG_FILE, args).path("match.report")
    try:
        emb = json.loads(report.read_text(encoding="utf-8")).get("embedding", {})
    except (OSError, ValueError):
        emb = {}
    late = {k: emb.get(k, 0) for k in ("texts_embedded", "images_embedded") if emb.get(k, 0)}
    if late:
        print(f"[scale] warning: the mining run had to embed {late} that no embedding shard had "
              f"(a shard of {n} did not finish or ran on other input?); the output is complete", file=sys.stderr)
    return msg


def _download_combine(script: str, args: list[str], n: int) -> str:
    from pretrain.download_images import combine_download_shards
    dc = _capfilt_cfg(args)["download"]
    rows = combine_download_shards(dc, n)
    return f"merged {n} download shards: {rows} rows -> {dc['output']}"


TARGETS: dict[str, Target] = {
    "translate/translate_file.py": Target("translation", _merge_at(_translate_file_out),
                                          files=_translate_file_files),
    # The last shard to finish merges on its own; merging again gives the same bytes.
    "pretrain/translate_train.py": Target("translation", _merge_at(lambda a: _capfilt_cfg(a).path("translate.output")),
                                          files=_capfilt_files),
    "tasks/mscoco/translate_train.py": Target("translation", _merge_at(_mscoco_out), files=_task_files("mscoco")),
    "tasks/vqa/translate_train.py": Target("translation", _merge_at(_vqa_out), files=_task_files("vqa")),
    "tasks/llava/translate_train.py": Target("translation", _merge_at(_llava_out), files=_task_files("llava")),
    "match/translate_match_train.py": Target("translation", _rerun("run.num_shards={n}", "run.shard_index=0",
                                                                   "translate.combine_shards=true"),
                                             files=_match_translate_files),
    # Shards fill the embedding cache; the merge is the (single) mining run.
    "match/hard_match.py": Target("embed", _hard_match_combine, worker_sets=["embed.only=true"], has_threads=False),
    "pretrain/download_images.py": Target(None, _download_combine, files=_download_files),
}

# Expensive-step scripts deliberately not sharded, and why (tests check this list is complete).
NOT_SHARDED: dict[str, str] = {
    "tasks/imagenet/translate_train.py": "translates only the instruction templates and yes/no "
                                         "(a few thousand segments, minutes on one GPU); run it directly",
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
    if key in NOT_SHARDED:
        raise UserError(f"{script} is not sharded: it {NOT_SHARDED[key]}")
    if output:
        return Target("translation",
                      lambda script, args, n: f"merged {n} shards: {combine_shards(output, n)} rows -> {output}",
                      files=lambda args: (None, [Path(output)]))
    raise UserError(f"{script}: not one of the known scripts ({', '.join(TARGETS)}); "
                    "set scale.output to the output file its shards are named after")
