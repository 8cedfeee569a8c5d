"""Peak memory and wall time of every pipeline step at 1x and 10x input, in one run.

    python tests/tools/bench_memory.py [--scales 1,10] [--out DIR] [--only capfilt,vqav2]   # make bench-memory

For each scale a raw root is written by tests/tools/synthetic_raw.py (one
text generator, tests/tools/synthetic.py, for every source; see there for
what 1x holds), then every step of common/pipeline.py runs in order, as
``make demo`` runs it (tests/tools/demo.py: each step's own script in its own
process, translation with the dry-run backend, a tiny CLIP for the matching
step, the CapFilt URLs answered by a loopback server). Per step:

- peak memory: the step's process tree, sampled from /proc every 20 ms (the
  sum of the processes' PSS, so the filter's worker processes count, and the
  pages they share with their parent after fork count once), and the main
  process's own peak RSS (VmHWM);
- wall time, and the size of the inputs the pipeline declares for the step.

The table (markdown) goes to stdout and, with --json, the numbers to a file.
The CapFilt filter runs with ``filter.max_captions`` = 2 x the scale, so that
the download after it fetches about 2,000 URLs at 1x and 20,000 at 10x
(``scale_sets``); everything else has its defaults (``make demo``'s settings).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import cli, pipeline, records, steptype  # noqa: E402
from tests.tools.demo import DEMO_SETS, tiny_clip  # noqa: E402

QUIET = ["translation.backend=dry-run", "translation.progress=false"]
BENCH_SETS: dict[str, list[str]] = {
    **DEMO_SETS,
    "capfilt": ["filter.n_process=2", "download.threads=16", "download.progress=false",
                "download.allow_hosts=[127.0.0.1]", *QUIET],
}


def scale_sets(config: str, scale: float) -> list[str]:
    """The synthetic captions hold about 1,200 distinct noun phrases at any size,
    so the filter keeps about as many phrases at 1x as at 10x: its per-phrase cap
    grows with the scale instead, so that its output (the download's input, and
    every CapFilt step's after it) grows with the scale too."""
    return [f"filter.max_captions={max(1, round(2 * scale))}"] if config == "capfilt" else []


def _tree(pid: int) -> list[int]:
    """pid and its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _kb(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(cmd: list[str], log: Path) -> dict:
    """Run ``cmd``; its wall time, exit status, and in MB: the peak over the
    samples of its process tree's summed PSS (pages shared after fork counted
    once, split between the sharers) and its main process's peak RSS (VmHWM,
    read until it exits; ru_maxrss would include this process's size at fork)."""
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        peak = hwm = 0
        while True:
            pids = _tree(proc.pid)
            peak = max(peak, sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids))
            hwm = max(hwm, _kb(f"/proc/{proc.pid}/status", "VmHWM:"))
            pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "seconds": round(time.monotonic() - t0, 2),
            "peak_tree_mb": round(max(peak, hwm) / 1024, 1), "peak_main_mb": round(hwm / 1024, 1)}


def input_mb(step: steptype.Step, argv: list[str]) -> float:
    try:
        cfg = cli.load_config(step, argv)
        files = [p for path in records.inputs(step, cfg) for p in ([path] if path.is_file() else
                                                                     (q for q in path.rglob("*") if q.is_file())
                                                                     if path.is_dir() else [])]
        return round(sum(p.stat().st_size for p in files) / 1e6, 1)
    except Exception:   # an input the step itself would name; the run says more
        return float("nan")


def run_scale(scale: float, out: Path, only: set[str], web_port: int) -> list[dict]:
    from tests.tools.synthetic_raw import write_raw_root
    py = sys.executable
    raw = out / f"raw_{scale:g}x"
    if not (raw / ".complete").is_file():
        shutil.rmtree(raw, ignore_errors=True)
        write_raw_root(raw, scale, web=f"http://127.0.0.1:{web_port}")
        (raw / ".complete").write_text("")
    run_dir = out / f"run_{scale:g}x"
    shutil.rmtree(run_dir, ignore_errors=True)
    paths = [x for s in (f"paths.raw_root={raw}", f"paths.work_dir={run_dir}/work", f"paths.out_root={run_dir}/out")
             for x in ("--set", s)]
    (run_dir / "logs").mkdir(parents=True)
    rows = []
    for step in pipeline.STEPS:
        if only and not any(step.id == o or step.id.startswith(o + ".") for o in only):
            continue
        extra = [*step.sets, *BENCH_SETS.get(step.config, []), *scale_sets(step.config, scale)]
        if step.id == "match.mine":
            extra.append(f"paths.clip_model={tiny_clip(py, paths)}")
        argv = [*paths, *(x for s in extra for x in ("--set", s))]
        mb = input_mb(step, argv)
        res = measure([py, step.script, *argv], run_dir / "logs" / f"{step.id}.log")
        rows.append({"step": step.id, "number": step.number, "scale": scale, "input_mb": mb, **res})
        print(f"  {scale:g}x {step.number} {step.id}: {res['seconds']}s, peak {res['peak_tree_mb']} MB "
              f"(main {res['peak_main_mb']} MB), input {mb} MB" + (f", EXIT {res['rc']}" if res["rc"] else ""),
              file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], scales: list[float]) -> str:
    by = {(r["step"], r["scale"]): r for r in rows}
    steps = list(dict.fromkeys(r["step"] for r in rows))
    head = "| step | " + " | ".join(f"{s:g}x input MB | {s:g}x peak MB | {s:g}x s" for s in scales)
    if len(scales) == 2:
        head += " | peak growth |"
    lines = [head, "|" + "---|" * (1 + 3 * len(scales) + (len(scales) == 2))]
    for sid in steps:
        cells = []
        for s in scales:
            r = by.get((sid, s))
            cells += ["-"] * 3 if r is None else [
                f"{r['input_mb']}", f"{r['peak_tree_mb']}" + ("" if r["rc"] == 0 else f" (exit {r['rc']})"),
                f"{r['seconds']}"]
        line = f"| {by.get((sid, scales[0]), by.get((sid, scales[-1])))['number']} `{sid}` | " + " | ".join(cells)
        if len(scales) == 2 and (sid, scales[0]) in by and (sid, scales[1]) in by:
            line += f" | {by[(sid, scales[1])]['peak_tree_mb'] / by[(sid, scales[0])]['peak_tree_mb']:.2f}x |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="1,10", help="comma-separated input scales")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    ap.add_argument("--only", default="", help="comma-separated step ids or prefixes")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    ap.add_argument("--port", type=int, default=18093, help="loopback port of the CapFilt URLs")
    args = ap.parse_args(argv)
    from tests.tools import bench_download as bd
    scales = [float(s) for s in args.scales.split(",")]
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_memory_"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    bd.make_images(out / "web", 97, sizes=[(320, 240), (640, 480)])
    server, port = bd.start_server(out / "web", 0.0, args.port)
    try:
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; work folder {out}", file=sys.stderr)
        rows = [r for s in scales for r in run_scale(s, out, set(filter(None, args.only.split(","))), port)]
    finally:
        server.terminate()
        server.wait()
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    print(table(rows, scales))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
