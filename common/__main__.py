"""The pipeline's command line: ``python -m common COMMAND``.

    status [--set paths.raw_root=... ...]   every numbered step: done / stale / missing, and the next command
    steps                                   the numbered steps as the README lists them
    launch STEP [--set launch.*=...] -- [STEP ARGS]   run a shardable step on several workers, then merge
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "status": "common.status:main",
    "steps": "common.status:steps_main",
    "launch": "common.executors:main",
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    module, func = COMMANDS[argv[0]].split(":")
    getattr(importlib.import_module(module), func)(argv[1:])


if __name__ == "__main__":
    main()
