"""``python -m common launch STEP``: run a shardable step on several workers, then merge.

    python -m common launch STEP [--set launch.KEY=VALUE ...] [-- STEP ARGS (--config/--paths/--set)]

    python -m common launch mscoco.translate --set 'launch.devices=[cuda:0,cuda:1]' -- \\
        --set paths.work_dir=work --set translation.backend=ctranslate2
    python -m common launch capfilt.download --set launch.executor=slurm --set launch.num_shards=16 -- ...
    python -m common launch match.mine --set launch.executor=ray --set launch.ray.address=auto \\
        --set 'launch.devices=[cuda,cuda,cuda,cuda]' -- ...

STEP is a shardable step of the pipeline (``python -m common steps`` marks
them) or ``translate.file``. Shard i of N is the step's own script, run as
``python SCRIPT STEP_ARGS --set run.num_shards=N --set run.shard_index=i``,
plus the worker's device and the step's extra --set (its ``SHARDS`` rule,
common/shards.py). No executor knows a step by name.

A shard that succeeds leaves a completion record under
``${paths.work_dir}/pipeline/``: the fingerprints of the step's inputs and
config, and of the files the shard wrote. Rerunning the same launch skips
every shard whose record still holds, so after a failure only the failed
shards run again; after an input or config change no old record holds and
every shard runs again, in one go (old shard files are overwritten, never
merged). When every shard is done the step's merge runs once, here (the one
owner of merging), the step's run record is written and the next step is
printed. With N = 1 the script runs once, unsharded.

Executors (``launch.executor``):
  local  one worker process per device at a time (a GPU through CUDA_VISIBLE_DEVICES; CPU
         workers split the cores), logs in launch.log_dir
  slurm  an array job of the shards not done (common/slurm/shard.sbatch, array index = shard)
         and the merge as a job that depends on it (common/slurm/combine.sbatch), submitted
         by common/slurm/submit.sh; resources: launch.slurm.* or the #SBATCH lines
  ray    each shard a Ray task running the same command on a node that shares the file system
         (one GPU per task for a cuda device); launch.ray.address "" starts a local instance

Modes (``launch.mode``): run (the shards not done, then the merge) | shard
(shard launch.shard_index only, on the device the scheduler gave; what a SLURM
array task runs) | combine (only the merge, once every shard is done).
"""
from __future__ import annotations

import os
import queue
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import cli, lifecycle, pipeline, procs, records, shards, steptype
from .config import REPO_ROOT, Config, parse_args
from .errors import UserError, entry_point

DEFAULTS = {
    "launch": {
        "executor": "local",        # local | slurm | ray
        "mode": "run",              # run | shard | combine
        "devices": ["auto"],        # auto: every visible GPU, else one cpu; or e.g. [cuda:0,cuda:1], [cpu,cpu]
        "num_shards": 0,            # 0: one shard per device
        "shard_index": -1,          # mode=shard
        "threads_per_worker": 0,    # CPU workers: 0 splits the cores between the CPU workers
        "log_dir": "",              # "": ${paths.work_dir}/pipeline/logs
        "ray": {
            "address": "",          # "": start a local instance | auto | ray://head:10001
            "num_cpus": 0,          # local instance only (0: every core)
            "cpus_per_shard": 1.0,  # CPU shards: also their threads
        },
        "slurm": {
            "max_parallel": 0,      # shards running at once (0: as many as SLURM allows)
            "shard_args": "",       # extra sbatch options for the shard jobs, e.g. "--partition=gpu"
            "combine_args": "",     # ... and for the merge job
            "python": "",           # python on the compute nodes ("": this one)
        },
    },
}


@dataclass
class Launch:
    step: steptype.Step
    rule: shards.ShardRule
    cfg: Config                     # the step's config, as its script builds it from ``args``
    args: list[str]                 # the step's own arguments
    lc: dict                        # the launch section
    devices: list[str]
    n: int                          # number of shards
    log_dir: Path


# -- the command line ---------------------------------------------------------------------------
def split_argv(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """(step id, launcher args, step args): ``STEP [launcher args] [-- step args]``."""
    own, args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    if not own or own[0].startswith("-"):
        raise UserError("usage: python -m common launch STEP [--set launch.KEY=VALUE ...] [-- STEP ARGS]")
    return own[0], own[1:], args


def check_own_args(own: list[str]) -> None:
    """Before ``--`` only launch.* belongs: a step's --set / --config / --paths there would be ignored."""
    _, _, sets = cli.split_args(own)
    for flag in ("--config", "--paths"):
        if any(a == flag or a.startswith(flag + "=") for a in own):
            raise UserError(f"{flag} before '--' is the step's option: put it after '--' "
                            "(python -m common launch STEP [--set launch.KEY=VALUE ...] -- STEP ARGS)")
    for item in sets:
        key = item.split("=", 1)[0].strip()
        if key.split(".", 1)[0] != "launch":
            raise UserError(f"--set {item} before '--' is not a launch.* setting: the launcher would ignore it; "
                            f"put it after '--' for the step (... -- --set {item})")


def parse(argv: list[str]) -> Launch:
    step_id, own, args = split_argv(argv)
    check_own_args(own)
    lc = parse_args(__doc__, DEFAULTS, None, own)["launch"]
    step = pipeline.get(step_id)
    rule = shards.rule_of(step)
    cfg = cli.load_config(step, args)
    for key, allowed in (("executor", ("local", "slurm", "ray")), ("mode", ("run", "shard", "combine"))):
        if lc[key] not in allowed:
            raise UserError(f"launch.{key}: {lc[key]!r} is not one of {', '.join(allowed)}")
    if lc["executor"] == "slurm" and lc["mode"] == "run" and not lc["num_shards"]:
        raise UserError("launch.executor=slurm: set launch.num_shards (the size of the array job)")
    if lc["num_shards"] < 0 or (lc["mode"] != "run" and lc["num_shards"] == 0):
        need = "the number of shards of the run (>= 1)" if lc["mode"] != "run" else ">= 0 (0: one shard per device)"
        raise UserError(f"launch.num_shards must be {need} with launch.mode={lc['mode']}, got {lc['num_shards']}")
    devices = resolve_devices(lc["devices"])
    n = lc["num_shards"] or len(devices)
    if n < 1:
        raise UserError(f"launch.num_shards must be >= 1, got {n}")
    log_dir = Path(lc["log_dir"]) if lc["log_dir"] else records.record_dir(cfg) / "logs"
    return Launch(step, rule, cfg, args, lc, devices, n, log_dir)


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
    if not devices:
        raise UserError("launch.devices is empty")
    for d in devices:
        if not (d in ("cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit())):
            raise UserError(f"launch.devices: {d!r} is not cpu, cuda or cuda:N")
    return devices


# -- one shard ----------------------------------------------------------------------------------
def worker_setup(launch: Launch, device: str, threads: int, pin_gpu: bool = True) -> tuple[list[str], dict]:
    """(--set for the device, environment changes) of a worker on ``device``.
    ``pin_gpu``: choose the GPU through CUDA_VISIBLE_DEVICES (Ray and SLURM choose their own)."""
    section = launch.rule.device
    env = {"TOKENIZERS_PARALLELISM": "false"}
    sets: list[str] = []
    if device == "cpu":
        env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if section:
            sets.append(f"{section}.device=cpu")
            if launch.rule.threads:
                sets.append(f"{section}.threads={threads}")
        return sets, env
    if pin_gpu:
        k = int(device[5:]) if device.startswith("cuda:") else 0
        parent = os.environ.get("CUDA_VISIBLE_DEVICES")
        if parent:   # cuda:k is the k-th GPU this process sees
            ids = [x for x in parent.split(",") if x.strip()]
            if k >= len(ids):
                raise UserError(f"launch.devices: {device} but CUDA_VISIBLE_DEVICES={parent}")
            env["CUDA_VISIBLE_DEVICES"] = ids[k]
        else:
            env["CUDA_VISIBLE_DEVICES"] = str(k)
    if section:
        sets.append(f"{section}.device=cuda")
    return sets, env


def shard_argv(launch: Launch, index: int, device_sets: list[str]) -> list[str]:
    """The script and its arguments for shard ``index`` (unsharded when N is 1)."""
    sets = [] if launch.n == 1 else [f"run.num_shards={launch.n}", f"run.shard_index={index}",
                                     *launch.rule.worker_sets]
    out = [str(REPO_ROOT / launch.step.script), *launch.args]
    for s in [*sets, *device_sets]:
        out += ["--set", s]
    return out


def worker_env(changes: dict) -> dict:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT) + (os.pathsep + path if path else ""), **changes}


def log_path(launch: Launch, index: int) -> Path:
    return launch.log_dir / f"{shards.shard_name(launch.step.id, index, launch.n)}.log"


def shard_problem(launch: Launch, index: int) -> str | None:
    """Why shard ``index`` still has to run (None: done for this input and config)."""
    if launch.n == 1:
        st = records.state(launch.step, launch.cfg)
        return None if st.status == "done" else (st.reason or st.status)
    return shards.record_problem(launch.step, launch.cfg, launch.rule, index, launch.n)


def snapshot(paths: list[Path]) -> dict[Path, tuple | None]:
    """(inode, mtime) of each file: an atomic rewrite changes both, an untouched file neither."""
    out = {}
    for p in paths:
        try:
            st = p.stat()
            out[p] = (st.st_ino, st.st_mtime_ns)
        except OSError:
            out[p] = None
    return out


def settle(launch: Launch, index: int, rc: int, before: dict) -> str | None:
    """After shard ``index`` exited with ``rc``: None and its completion record
    when it succeeded and wrote its files; else what went wrong."""
    if rc != 0:
        return exit_text(rc)
    after = snapshot(list(before))
    stale = [str(p) for p, was in before.items() if after[p] is None or after[p] == was]
    if stale:
        return f"exit 0 but did not write {', '.join(stale)} (a file there is from an earlier run)"
    step, cfg = launch.step, launch.cfg
    if launch.n == 1:
        records.record(step, cfg)
    else:
        records.record(step, cfg, shard=(index, launch.n), written=launch.rule.files(cfg, index, launch.n))
    return None


def exit_text(rc: int) -> str:
    return f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"


def tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return "    (no log)"
    return "\n".join("    " + ln for ln in lines[-n:])


def say(msg: str) -> None:
    print(f"[launch] {msg}", file=sys.stderr, flush=True)


# -- executors ----------------------------------------------------------------------------------
def run_local(launch: Launch, todo: list[int]) -> dict[int, str | None]:
    """Every shard of ``todo`` as a process here, one per device at a time."""
    cpu_slots = sum(d == "cpu" for d in launch.devices)
    threads = launch.lc["threads_per_worker"] or max(1, (os.cpu_count() or 1) // max(1, cpu_slots))
    free: queue.Queue = queue.Queue()
    for d in launch.devices:
        worker_setup(launch, d, threads)    # a device that cannot be given stops the launch before any shard
        free.put(d)
    t0 = time.monotonic()

    def one(i: int) -> str | None:
        device = free.get()
        try:
            sets, env = worker_setup(launch, device, threads)
            cmd = [sys.executable, *shard_argv(launch, i, sets)]
            before = snapshot(launch.rule.parts(launch.cfg, i, launch.n))
            log = log_path(launch, i)
            with open(log, "w", encoding="utf-8") as f:
                f.write(" ".join(cmd) + "\n")
                f.flush()
                p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=worker_env(env),
                                     preexec_fn=procs.child_preexec)   # dies with the launcher
                say(f"shard {i}/{launch.n} on {device}: pid {p.pid}, log {log}")
                rc = p.wait()
            problem = settle(launch, i, rc, before)
            say(f"shard {i}/{launch.n} on {device}: {problem or 'done'} after {time.monotonic() - t0:.1f}s")
            return problem
        finally:
            free.put(device)

    with ThreadPoolExecutor(max_workers=len(launch.devices)) as pool:
        return dict(zip(todo, pool.map(one, todo)))


def _ray_shard(argv: list[str], env: dict, cwd: str, log: str) -> int:
    """A Ray task: one shard's command, in a subprocess, with the node's python."""
    import os as _os
    import subprocess as _sp
    import sys as _sys
    cmd = [_sys.executable, *argv]
    with open(log, "w", encoding="utf-8") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        return _sp.call(cmd, cwd=cwd, stdout=f, stderr=_sp.STDOUT, env={**_os.environ, **env})


def ray_init(rc: dict):
    try:
        import ray
    except ImportError:
        raise UserError("launch.executor=ray: ray is not installed (pip install -e '.[ray]')") from None
    if ray.is_initialized():
        return ray, False
    if rc["address"]:
        try:
            ray.init(address=rc["address"], log_to_driver=False)
        except ConnectionError as e:   # e.g. address=auto with no cluster running
            raise UserError(f"launch.ray.address={rc['address']}: cannot connect "
                            f"({str(e).splitlines()[0]}); empty starts a local instance") from None
    else:
        ray.init(num_cpus=rc["num_cpus"] or None, include_dashboard=False, log_to_driver=False)
    return ray, True


def run_ray(launch: Launch, todo: list[int]) -> dict[int, str | None]:
    """Every shard of ``todo`` as a Ray task (the file system is shared with the nodes)."""
    rc = launch.lc["ray"]
    ray, started = ray_init(rc)
    try:
        task = ray.remote(_ray_shard)
        refs, befores = {}, {}
        cpus = max(1, int(rc["cpus_per_shard"]))
        for i in todo:
            device = launch.devices[i % len(launch.devices)]
            sets, env = worker_setup(launch, device, cpus, pin_gpu=False)
            env["PYTHONPATH"] = worker_env({})["PYTHONPATH"]
            gpus = 0 if device == "cpu" else 1
            befores[i] = snapshot(launch.rule.parts(launch.cfg, i, launch.n))
            refs[i] = task.options(num_cpus=rc["cpus_per_shard"], num_gpus=gpus).remote(
                shard_argv(launch, i, sets), env, os.getcwd(), str(log_path(launch, i)))
            say(f"shard {i}/{launch.n}: Ray task on {'a GPU' if gpus else 'CPU'}, log {log_path(launch, i)}")
        out = {}
        for i, ref in refs.items():
            try:
                code = ray.get(ref)
            except ray.exceptions.RayError as e:
                code = 1
                say(f"shard {i}/{launch.n}: the Ray task failed: {str(e).splitlines()[0]}")
            out[i] = settle(launch, i, code, befores[i])
            say(f"shard {i}/{launch.n}: {out[i] or 'done'}")
        return out
    finally:
        if started:
            ray.shutdown()


def submit_slurm(launch: Launch, todo: list[int]) -> None:
    """The shards of ``todo`` as an array job and the merge as a job that depends on it."""
    sc = launch.lc["slurm"]
    env = {"ARRAY": ",".join(map(str, todo)), "LOG_DIR": str(launch.log_dir),
           "PY": sc["python"] or sys.executable, "SHARD_SBATCH_ARGS": sc["shard_args"],
           "COMBINE_SBATCH_ARGS": sc["combine_args"]}
    if sc["max_parallel"]:
        env["MAX_PARALLEL"] = str(sc["max_parallel"])
    cmd = ["bash", str(REPO_ROOT / "common" / "slurm" / "submit.sh"), str(launch.n), launch.step.id, *launch.args]
    rc = subprocess.call(cmd, env={**os.environ, **env})
    if rc != 0:
        raise UserError(f"common/slurm/submit.sh failed (exit {rc})")


# -- modes --------------------------------------------------------------------------------------
def shard_lock(launch: Launch, index: int) -> Path:
    """The lock shard ``index`` takes when it runs (the whole step's when N is 1)."""
    return procs.lock_name(launch.step, launch.cfg, (index, launch.n) if launch.n > 1 else None)


def pending(launch: Launch) -> list[int]:
    """The shards to run; says which are done already. A shard another live
    process is running (a killed launcher's, or another launch) stops the
    launch: it is never run twice at once."""
    todo = []
    for i in range(launch.n):
        who = procs.running(shard_lock(launch, i))
        if who:
            raise UserError(f"{launch.step.id} shard {i} of {launch.n} is still running ({who}; lock "
                            f"{shard_lock(launch, i)}): wait for it to end, then launch again")
        why = shard_problem(launch, i)
        if why is None:
            say(f"shard {i}/{launch.n}: done earlier for this input and config, skipped")
        else:
            todo.append(i)
    return todo


def shard_hint(launch: Launch, index: int) -> str:
    parts = ["python", "-m", "common", "launch", launch.step.id, "--set", "launch.mode=shard",
             "--set", f"launch.num_shards={launch.n}", "--set", f"launch.shard_index={index}", "--", *launch.args]
    return " ".join(shlex.quote(p) for p in parts)


def combine(launch: Launch) -> None:
    """The merge, once every shard is done; then the step's run record and the next step."""
    step, cfg, n = launch.step, launch.cfg, launch.n
    if n > 1:
        procs.acquire(procs.lock_name(step, cfg, None), step.id)   # the merged files: one writer
        shards.check_complete(step, cfg, launch.rule, n, rerun_hint=lambda i: shard_hint(launch, i))
        say(launch.rule.merge(cfg, n))
        records.record(step, cfg)
    elif shard_problem(launch, 0) is not None:
        raise UserError(f"{step.id} has not run for this input and config: {shard_problem(launch, 0)}")
    if step in pipeline.STEPS:
        lifecycle.print_next(step, launch.args)


def run_mode(launch: Launch) -> None:
    lifecycle.begin(launch.step.id, launch.cfg)   # the merged outputs can be written: checked before any shard runs
    launch.log_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    todo = pending(launch)
    if not todo and (launch.n == 1 or records.state(launch.step, launch.cfg).status == "done"):
        say(f"{launch.step.id}: every shard and the merge are done for this input and config")
        if launch.step in pipeline.STEPS:
            lifecycle.print_next(launch.step, launch.args)
        return
    executor = launch.lc["executor"]
    if executor == "slurm":
        submit_slurm(launch, todo)
        return
    results = (run_ray if executor == "ray" else run_local)(launch, todo) if todo else {}
    failed = {i: why for i, why in results.items() if why}
    for i, why in failed.items():
        say(f"shard {i} failed ({why}); end of {log_path(launch, i)}:\n{tail(log_path(launch, i))}")
    if failed:
        named = "; ".join(f"shard {i} ({why}, log {log_path(launch, i)})" for i, why in failed.items())
        raise UserError(f"{len(failed)} of {launch.n} shards failed, nothing merged: {named} "
                        "(rerun the same command: finished shards are skipped)")
    combine(launch)
    say(f"{launch.step.id}: {launch.n} shard(s) on {executor} in {time.monotonic() - t0:.1f}s")


def shard_mode(launch: Launch) -> None:
    """One shard on the device the scheduler gave it; exits with the shard's status."""
    i, n = launch.lc["shard_index"], launch.n
    if not 0 <= i < n:
        raise UserError(f"launch.shard_index={i} must be within 0..{n - 1}")
    why = shard_problem(launch, i)
    if why is None:
        say(f"shard {i}/{n}: done earlier for this input and config, skipped")
        return
    before = snapshot(launch.rule.parts(launch.cfg, i, n))
    rc = subprocess.call([sys.executable, *shard_argv(launch, i, [])], env=worker_env({}),
                         preexec_fn=procs.child_preexec)
    problem = settle(launch, i, rc, before)
    if problem:
        say(f"shard {i} of {n} ({launch.step.id}) failed: {problem}")
        sys.exit(2 if rc == 0 else rc if rc > 0 else 128 - rc)   # killed by signal s: 128 + s, as a shell says


@entry_point
def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    own = argv[:argv.index("--")] if "--" in argv else argv
    if not own or "-h" in own or "--help" in own:
        parse_args(__doc__, DEFAULTS, None, ["--help"])   # prints the help and exits 0
    launch = parse(argv)
    mode = launch.lc["mode"]
    # One launcher per step and work dir (a SLURM launch only submits: its merge job takes the lock).
    lock = procs.lock_name(launch.step, launch.cfg, None).with_suffix(".launch.lock")
    if mode == "combine" or (mode == "run" and launch.lc["executor"] != "slurm"):
        procs.acquire(lock, f"python -m common launch {launch.step.id}")
    try:
        if mode == "combine":
            lifecycle.begin(launch.step.id, launch.cfg)
            combine(launch)
        elif mode == "shard":
            shard_mode(launch)
        else:
            run_mode(launch)
    finally:
        procs.release(lock)
        procs.release(procs.lock_name(launch.step, launch.cfg, None))   # combine's, when it took it
