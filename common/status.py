"""``python -m common status``: every numbered step, done / stale / missing, and what to run next.

    python -m common status [--paths FILE] [--args-file FILE] [--set paths.raw_root=DIR --set paths.work_dir=DIR ...]

Each step's config is built the way its script builds it (configs/<stage>.yaml,
configs/paths.yaml, and the --set values that apply to that stage: paths.* and
translation.* everywhere, a stage section wherever a stage has it). A step is
done when its outputs match what its last run recorded and its inputs and
config are unchanged; stale when any of those changed; missing when an output
does not exist. The command printed last is the first step that is not done.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import cli, pipeline
from .errors import UserError, entry_point

MARK = {"done": "done", "stale": "STALE", "missing": "missing", "error": "ERROR"}


def _parse(argv: list[str]) -> list[str]:
    ap = argparse.ArgumentParser(prog="python -m common status", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", default=None, help="paths YAML (default: configs/paths.yaml)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value for every step that has it (repeatable)")
    ap.add_argument("--args-file", default=None, metavar="FILE",
                    help="more arguments, one per line, read before --set (make demo writes OUT/status.args)")
    args = ap.parse_args(argv)
    out = ["--paths", args.paths] if args.paths else []
    if args.args_file:
        try:
            out += [line for line in Path(args.args_file).read_text(encoding="utf-8").splitlines() if line]
        except OSError as e:
            raise UserError(f"--args-file {args.args_file}: cannot read it ({e.strerror or e})") from None
    for s in args.overrides:
        out += ["--set", s]
    return out


@entry_point
def main(argv: list[str] | None = None) -> None:
    argv = _parse(list(sys.argv[1:] if argv is None else argv))
    rows = pipeline.status_rows(argv)
    width = max(len(s.id) for s, _ in rows)
    stage = None
    for step, st in rows:
        head = step.number.split(".")[0]
        if head != stage:
            stage = head
            title = next(s.title for s in pipeline.STAGES if str(s.number) == head)
            print(f"{head}. {title}")
        reason = f"  ({st.reason})" if st.reason and st.status != "done" else ""
        print(f"  {step.number:<5} {step.id:<{width}}  {MARK.get(st.status, st.status):<7}{reason}")
    counts = {k: sum(1 for _, st in rows if st.status == k) for k in MARK}
    print("\n" + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    nxt = pipeline.first_to_run(rows)
    if nxt is None:
        print("every step is done")
    else:
        print(f"next: {cli.command(nxt, argv)}")


def steps_main(argv: list[str] | None = None) -> None:
    print(pipeline.markdown_steps())
