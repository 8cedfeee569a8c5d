"""``make scale-demo``: the launchers on the fixtures, checked against a one-process run.

    python tests/tools/scale_demo.py --out demo_work [--raw tests/fixtures/raw] [--set key=value ...]

The CapFilt chain and MSCOCO run as ``make demo`` runs them (tests/tools/demo.py),
except the shardable steps, which go through ``python -m common launch``:
capfilt.download on 2 CPU workers (from the loopback server), capfilt.translate
on 2 and mscoco.translate on 3 (local executor), writing OUT/work and OUT/out.
Then mscoco.translate once more with the Ray executor (2 shards on a local Ray
instance, when ray is installed) in OUT/ray. The same steps run in one process
each in OUT/one, and every output must be byte-identical (cmp) to theirs.
A development tool: no product code imports it.
"""
from __future__ import annotations

import argparse
import filecmp
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import cli, pipeline, records  # noqa: E402
from tests.tools.demo import DEMO_SETS, run, step_command, web_server  # noqa: E402

STEPS = [s for s in pipeline.STEPS if s.id.startswith(("capfilt.", "mscoco.")) and s.id != "mscoco.eval"]
WORKERS = {"capfilt.download": 2, "capfilt.translate": 2, "mscoco.translate": 3}


def path_sets(out: Path, raw: str) -> list[str]:
    return [x for s in (f"paths.raw_root={raw}", f"paths.work_dir={out}/work", f"paths.out_root={out}/out")
            for x in ("--set", s)]


def run_steps(py: str, steps: list, out: Path, raw: str, overrides: list[str], launch: dict[str, list[str]]) -> None:
    """Every step of ``steps`` in order; one named in ``launch`` through the launcher with those settings."""
    paths = path_sets(out, raw)
    for step in steps:
        extra = cli.sets_for(step, overrides, same_config=True)
        cmd = step_command(py, step, paths, extra)
        if step.id in launch:
            cmd = [py, "-m", "common", "launch", step.id, *launch[step.id], "--", *cmd[2:]]
        print(f"== {step.number} {step.id}" + (" (launched)" if step.id in launch else ""), flush=True)
        if step.id == "capfilt.download":
            with web_server(py, paths):
                run(cmd)
        else:
            run(cmd)


def outputs(steps: list, out: Path, raw: str, overrides: list[str]) -> list[Path]:
    """Every file ``steps`` write (a folder's files included), relative to ``out``."""
    found = []
    for step in steps:
        argv = [*path_sets(out, raw), *(x for s in DEMO_SETS.get(step.config, []) for x in ("--set", s))]
        for p in records.outputs(step, cli.load_config(step, [*argv, *overrides])):
            files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
            found += [q.resolve().relative_to(out.resolve()) for q in files]
    return sorted(set(found))


def compare(reference: Path, other: Path, files: list[Path]) -> list[str]:
    bad = []
    for rel in files:
        same = (other / rel).is_file() and filecmp.cmp(reference / rel, other / rel, shallow=False)
        print(f"  {'same' if same else 'DIFFERENT'}: {other / rel}", flush=True)
        if not same:
            bad.append(str(other / rel))
    return bad


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo_work", help="writes OUT/work, OUT/out, OUT/one (reference), OUT/ray")
    ap.add_argument("--raw", default="tests/fixtures/raw", help="raw root laid out as in common/FORMATS.md")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    py, out, sets = sys.executable, Path(args.out), [x for s in args.overrides for x in ("--set", s)]
    print("== one process per step (the reference) in", out / "one", flush=True)
    run_steps(py, STEPS, out / "one", args.raw, args.overrides, {})
    print("== the launchers, local executor, in", out, flush=True)
    run_steps(py, STEPS, out, args.raw, args.overrides,
              {sid: ["--set", f"launch.devices=[{','.join(['cpu'] * n)}]"] for sid, n in WORKERS.items()})
    files = outputs(STEPS, out / "one", args.raw, sets)
    print(f"== compare: {len(files)} output files", flush=True)
    bad = compare(out / "one", out, files)
    if importlib.util.find_spec("ray") is None:
        print("== ray is not installed (pip install -e '.[ray]'): the Ray executor is skipped", flush=True)
    else:
        print("== mscoco.translate with the Ray executor (2 shards, a local instance) in", out / "ray", flush=True)
        ray = ["--set", "launch.executor=ray", "--set", "launch.num_shards=2", "--set", "launch.devices=[cpu]",
               "--set", "launch.ray.num_cpus=2"]
        mscoco = [s for s in STEPS if s.id.startswith("mscoco.")]
        run_steps(py, mscoco, out / "ray", args.raw, args.overrides, {"mscoco.translate": ray})
        bad += compare(out / "one", out / "ray", outputs(mscoco, out / "one", args.raw, sets))
    if bad:
        sys.exit(f"scale demo: {len(bad)} file(s) differ from the one-process run: {', '.join(bad)}")
    print(f"scale demo finished: every launched output equals the one-process run's (outputs under {out}/out)")


if __name__ == "__main__":
    main()
