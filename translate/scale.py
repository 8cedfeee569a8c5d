"""Run a shardable script on several devices of one machine, then merge.

    python translate/scale.py [--set 'scale.devices=[cuda:0,cuda:1]'] -- SCRIPT [SCRIPT ARGS]

One worker process per device, each the same script with
``run.num_shards=len(devices) run.shard_index=i`` and its device (a GPU is
given to the worker through CUDA_VISIBLE_DEVICES, so the worker sees
``cuda``; CPU workers split the cores between them). When every worker has
succeeded the shard files are merged, byte-identical to a one-process run.
Workers share the translation cache (SQLite, safe for concurrent writers), so
rerunning after a failure only redoes what is not cached. A failed worker is
named with its exit status and the end of its log, and nothing is merged; shard
files of another num_shards are listed and left alone, and a shard file older
than the step's input (an earlier run's) stops the merge by name.

SCRIPT is any translate_*.py (translate/translate_file.py, pretrain/,
tasks/*/, match/translate_match_train.py), match/hard_match.py (sharded
embedding, then the mining run) or pretrain/download_images.py; another
script that accepts run.* works with ``--set scale.output=<its output file>``.

Modes, for cluster schedulers that start the shards themselves (translate/slurm/):
    --set scale.mode=shard --set scale.num_shards=N --set scale.shard_index=i -- SCRIPT ...
    --set scale.mode=combine --set scale.num_shards=N -- SCRIPT ...
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common.config import parse_args
from common.errors import UserError, entry_point
from translate.scale_targets import Target, check_shards, find_target

DEFAULTS = {
    "scale": {
        "mode": "local",            # local: all devices here, then merge | shard: one shard | combine: merge only
        "devices": ["auto"],        # auto: every visible GPU, else one cpu worker; or e.g. [cuda:0, cuda:1], [cpu, cpu]
        "threads_per_worker": 0,    # CPU workers: 0 splits the cores evenly
        "num_shards": 0,            # shard/combine modes
        "shard_index": -1,          # shard mode
        "output": "",               # merge target for a script scale_targets.py does not know
        "log_dir": "${paths.work_dir}/scale_logs",
        "combine": True,            # local mode: merge when every worker succeeded
    },
}


def split_argv(argv: list[str]) -> tuple[list[str], str, list[str]]:
    """(launcher args, script, script args), split at ``--``."""
    if "--" not in argv:
        raise UserError("usage: scale.py [--set scale.KEY=VALUE ...] -- SCRIPT [SCRIPT ARGS]")
    k = argv.index("--")
    rest = argv[k + 1:]
    if not rest:
        raise UserError("no script given after --")
    script = rest[0]
    if not Path(script).is_file():
        raise UserError(f"script not found: {script}")
    return argv[:k], script, rest[1:]


def shared_paths_args(script_args: list[str]) -> list[str]:
    """The script's --paths/--set paths.* arguments, so ${paths.work_dir} means the same here."""
    out, i = [], 0
    while i < len(script_args):
        a = script_args[i]
        if a in ("--set", "--paths") and i + 1 < len(script_args):
            if a == "--paths" or script_args[i + 1].startswith("paths."):
                out += [a, script_args[i + 1]]
            i += 2
            continue
        i += 1
    return out


def visible_gpus() -> list[str]:
    try:
        import torch
        return [f"cuda:{k}" for k in range(torch.cuda.device_count())]
    except ImportError:
        return []


def resolve_devices(devices: list) -> list[str]:
    devices = [str(d) for d in devices]
    if devices == ["auto"]:
        return visible_gpus() or ["cpu"]
    for d in devices:
        if not (d == "cpu" or d == "cuda" or (d.startswith("cuda:") and d[5:].isdigit())):
            raise UserError(f"scale.devices: {d!r} is not cpu, cuda or cuda:N")
    if not devices:
        raise UserError("scale.devices is empty")
    return devices


def worker_plan(devices: list[str], target: Target, threads_per_worker: int,
                cores: int | None = None) -> list[tuple[list[str], dict[str, str]]]:
    """Per worker: (extra --set arguments, environment changes)."""
    cores = cores or os.cpu_count() or 1
    cpu_workers = sum(d == "cpu" for d in devices)
    threads = threads_per_worker or max(1, cores // max(1, cpu_workers))
    parent_visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    plan = []
    for i, d in enumerate(devices):
        sets = [f"run.num_shards={len(devices)}", f"run.shard_index={i}", *target.worker_sets]
        env: dict[str, str] = {"TOKENIZERS_PARALLELISM": "false"}
        if d == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
            if target.device_section:
                sets.append(f"{target.device_section}.device=cpu")
                if target.has_threads:
                    sets.append(f"{target.device_section}.threads={threads}")
        else:
            k = int(d[5:]) if d.startswith("cuda:") else 0
            if parent_visible:   # cuda:k means the k-th GPU this process sees
                ids = [x for x in parent_visible.split(",") if x.strip()]
                if k >= len(ids):
                    raise UserError(f"scale.devices: {d} but CUDA_VISIBLE_DEVICES={parent_visible}")
                env["CUDA_VISIBLE_DEVICES"] = ids[k]
            else:
                env["CUDA_VISIBLE_DEVICES"] = str(k)
            if target.device_section:
                sets.append(f"{target.device_section}.device=cuda")
        plan.append((sets, env))
    return plan


def with_sets(script: str, args: list[str], sets: list[str]) -> list[str]:
    cmd = [sys.executable, script, *args]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def tail(path: Path, n: int = 15) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()
    return "\n".join("    " + ln for ln in lines[-n:])


def exit_text(rc: int) -> str:
    return f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"


def combine(target: Target, script: str, args: list[str], n: int, since: float | None = None) -> str:
    """Check the shard files (see check_shards), then merge."""
    for w in check_shards(target, args, n, since):
        print(f"[scale] warning: {w}", file=sys.stderr)
    return target.combine(script, args, n)


def run_local(script: str, args: list[str], devices: list[str], target: Target, sc: dict) -> None:
    log_dir = Path(sc["log_dir"])
    log_dir.mkdir(parents=True, exist_ok=True)
    n = len(devices)
    procs = []
    t0 = time.monotonic()
    started = time.time()
    try:
        for i, (sets, env) in enumerate(worker_plan(devices, target, sc["threads_per_worker"])):
            log = log_dir / f"{Path(script).stem}.shard-{i:05d}-of-{n:05d}.log"
            cmd = with_sets(script, args, sets)
            with open(log, "w", encoding="utf-8") as f:
                f.write(" ".join(cmd) + "\n")
                f.flush()
                p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **env})
            procs.append((i, devices[i], p, log))
            print(f"[scale] shard {i}/{n} on {devices[i]}: pid {p.pid}, log {log}", file=sys.stderr)
        failed = []
        for i, dev, p, log in procs:
            rc = p.wait()
            print(f"[scale] shard {i}/{n} on {dev}: {exit_text(rc)} after {time.monotonic() - t0:.1f}s",
                  file=sys.stderr)
            if rc != 0:
                failed.append((i, rc, log))
    except KeyboardInterrupt:
        for _, _, p, _ in procs:
            if p.poll() is None:
                p.terminate()
        raise
    for i, rc, log in failed:
        print(f"[scale] shard {i} failed ({exit_text(rc)}); end of {log}:\n{tail(log)}", file=sys.stderr)
    if failed:
        named = "; ".join(f"shard {i} ({exit_text(rc)}, log {log})" for i, rc, log in failed)
        raise UserError(f"{len(failed)} of {n} shards failed, nothing merged: {named} "
                        "(rerun the same command: finished translations come from the cache)")
    if sc["combine"] and n > 1:
        print(f"[scale] {combine(target, script, args, n, since=started)}", file=sys.stderr)
    elif n == 1:
        print("[scale] one shard: its output is the final file", file=sys.stderr)
    print(f"[scale] {n} worker(s) on {', '.join(devices)}: {time.monotonic() - t0:.1f}s", file=sys.stderr)


@entry_point
def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv and ("-h" in argv or "--help" in argv):
        parse_args(__doc__, DEFAULTS, None, ["--help"])  # prints the help and exits 0
    own, script, args = split_argv(argv)
    cfg = parse_args(__doc__, DEFAULTS, None, own + shared_paths_args(args))
    sc = cfg["scale"]
    target = find_target(script, sc["output"])
    mode = sc["mode"]
    if mode == "local":
        run_local(script, args, resolve_devices(sc["devices"]), target, sc)
    elif mode in ("shard", "combine"):
        n, i = sc["num_shards"], sc["shard_index"]
        if n < 1:
            raise UserError(f"scale.mode={mode} needs scale.num_shards >= 1")
        if mode == "combine":
            print(f"[scale] {combine(target, script, args, n) if n > 1 else 'one shard: nothing to merge'}",
                  file=sys.stderr)
            return
        if not 0 <= i < n:
            raise UserError(f"scale.shard_index={i} must be within 0..{n - 1}")
        # The scheduler has chosen the device (SLURM sets CUDA_VISIBLE_DEVICES): keep the script's own.
        sets = [f"run.num_shards={n}", f"run.shard_index={i}", *target.worker_sets]
        rc = subprocess.call(with_sets(script, args, sets))
        if rc != 0:
            print(f"[scale] shard {i} of {n} ({script}) failed: {exit_text(rc)}", file=sys.stderr)
        sys.exit(rc if rc >= 0 else 128 - rc)   # killed by signal s: 128 + s, as a shell reports it
    else:
        raise UserError(f"scale.mode: {mode!r} is not one of local, shard, combine")


if __name__ == "__main__":
    main()
