"""The demo's steps under random ``kill -9`` (issue 20): outputs byte-identical
to an uninterrupted run, and no process left behind.

    python tests/tools/kill_demo.py --out /tmp/kill_demo [--kills 20] [--seed 0]

1. An uninterrupted run of every step (``OUT/clean``), each step timed.
2. A killed run (``OUT/killed``): ``--kills`` kills are drawn (seeded) over the
   steps, each at a random moment of that step's work in the clean run (timed
   from when the step takes its lock, after its imports and checks); a step is
   started, killed with SIGKILL (the step's own process: its workers must die
   with it), started again for its next kill (a step that finished before its
   kill runs again, killed 4 times sooner, at most 4 tries), and finally run
   to completion.
3. Checks: every step is done (``python -m common status``), ``out/`` is byte
   for byte the clean run's (the mix report with its OUT path taken out), and
   no process whose command line names OUT remains.

The same commands as ``make demo`` (tests/tools/demo.py: DEMO_SETS, the loopback
web server for the download, the tiny CLIP), without the engine demo.
Exit 0 when every check holds; a development tool: no product code imports it.
"""
from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from common import cli, pipeline  # noqa: E402
from tests.tools import demo  # noqa: E402


def step_cmd(step, out: Path, raw: str) -> list[str]:
    py = sys.executable
    path_sets = demo_paths(out, raw)
    extra = [f"paths.clip_model={demo.tiny_clip(py, path_sets)}"] if step.id == "match.mine" else []
    return demo.step_command(py, step, path_sets, extra)


def demo_paths(out: Path, raw: str) -> list[str]:
    return [x for s in (f"paths.raw_root={raw}", f"paths.work_dir={out}/work", f"paths.out_root={out}/out")
            for x in ("--set", s)]


def began(proc: subprocess.Popen, lock: Path) -> float | None:
    """Seconds until the step holds its lock (its work begins: common/procs.py), None if it ended first."""
    t0 = time.monotonic()
    while proc.poll() is None:
        try:
            if f'"pid": {proc.pid},' in lock.read_text(encoding="utf-8"):
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.005)
    return None


def run_step(step, cmd: list[str], lock: Path, kill_after: float | None) -> tuple[int, float, float]:
    """Run one step; with ``kill_after``, SIGKILL it that many seconds after its
    work began. (exit status or -9, seconds in all, seconds before its work began)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    start = began(proc, lock)
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return -9, time.monotonic() - t0, start or 0.0
    err = proc.stderr.read()
    if proc.returncode != 0:
        sys.exit(f"kill_demo: {step.id} failed (exit {proc.returncode}):\n{err[-3000:]}")
    return 0, time.monotonic() - t0, start or 0.0


def run_all(out: Path, raw: str, kills: dict[str, list[float]]) -> dict[str, float]:
    """Every step in order, each after its kills; the seconds of work (after its
    lock was taken) of each completing run."""
    seconds, killed = {}, 0
    for step in pipeline.STEPS:
        cmd, lock = step_cmd(step, out, raw), out / "work" / "pipeline" / "locks" / f"{step.id}.lock"
        with demo.web_server(sys.executable, demo_paths(out, raw)) if step.id == "capfilt.download" \
                else _nothing():
            for at in kills.get(step.id, []):
                for _ in range(4):      # a step that finished first: again, killed sooner
                    rc, took, start = run_step(step, cmd, lock, at)
                    print(f"  {step.id}: {'killed' if rc == -9 else 'finished before the kill'} "
                          f"{took - start:.3f}s into its work", flush=True)
                    if rc == -9:
                        killed += 1
                        break
                    at /= 4
            _, took, start = run_step(step, cmd, lock, None)
            seconds[step.id] = took - start
        print(f"{step.number} {step.id}: done, {seconds[step.id]:.2f}s of work", flush=True)
    if kills:
        print(f"{killed} of {sum(map(len, kills.values()))} kills landed while a step worked", flush=True)
    return seconds


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def draw_kills(seconds: dict[str, float], n: int, seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    ids = list(seconds)
    kills: dict[str, list[float]] = {}
    for _ in range(n):
        sid = rng.choice(ids)
        kills.setdefault(sid, []).append(round(rng.uniform(0.0, 1.0) * seconds[sid], 3))
    return kills


def files(root: Path, base: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            out[p.relative_to(root).as_posix()] = data.replace(str(base).encode(), b"OUT") \
                if p.name == "task_mix_report.json" else data
    return out


def checks(clean: Path, killed: Path, raw: str) -> list[str]:
    problems = []
    sets = demo_paths(killed, raw) + [x for s in dict.fromkeys(
        [*(v for vs in demo.DEMO_SETS.values() for v in vs), f"paths.clip_model={killed}/work/models/tiny-clip"])
        for x in ("--set", s)]
    status = subprocess.run([sys.executable, "-m", "common", "status", *sets], cwd=ROOT, capture_output=True,
                            text=True)
    if "every step is done" not in status.stdout:
        problems.append(f"status: not every step is done:\n{status.stdout[-3000:]}{status.stderr[-2000:]}")
    a, b = files(clean / "out", clean), files(killed / "out", killed)
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if differ:
        problems.append(f"{len(differ)} of {len(a)} output files differ: {differ[:10]}")
    print(f"outputs compared: {len(a)} files under out/, {len(differ)} differ", flush=True)
    left = [p for p in psutil.process_iter(["pid", "cmdline"])
            if p.pid != psutil.Process().pid and str(killed) in " ".join(p.info["cmdline"] or [])]
    left = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    if left:
        problems.append(f"{len(left)} process(es) left behind: {[(p.pid, p.info['cmdline'][:3]) for p in left]}")
    print(f"processes left behind: {len(left)}", flush=True)
    return problems


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="kill_demo")
    ap.add_argument("--raw", default="tests/fixtures/raw")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    print("== uninterrupted run", flush=True)
    seconds = run_all(out / "clean", args.raw, {})
    kills = draw_kills(seconds, args.kills, args.seed)
    print(f"== killed run: {args.kills} kills (seed {args.seed}): {kills}", flush=True)
    run_all(out / "killed", args.raw, kills)
    print("== checks", flush=True)
    problems = checks(out / "clean", out / "killed", args.raw)
    if problems:
        sys.exit("kill_demo: FAILED\n" + "\n".join(problems))
    print("kill_demo: every step done, out/ byte-identical to the uninterrupted run, no process left behind")


if __name__ == "__main__":
    main()
