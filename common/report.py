"""Run reports: counts in, out, skipped and why, printed and saved as JSON."""
from __future__ import annotations

import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

from .jsonl import write_json


class Report:
    def __init__(self, stage: str):
        self.stage = stage
        self.counts: collections.Counter = collections.Counter()
        self.skipped: collections.Counter = collections.Counter()
        self.examples: dict[str, list[str]] = collections.defaultdict(list)
        self.extra: dict[str, Any] = {}
        self.start = time.time()

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def skip(self, reason: str, where: str = "", n: int = 1, keep: int = 5) -> None:
        """Count a skipped record; keep the first few locations for the report."""
        self.skipped[reason] += n
        if where and len(self.examples[reason]) < keep:
            self.examples[reason].append(where)

    def duplicate(self, seen: dict, key: Any, record: Any, where: str) -> bool:
        """Whether a record repeats an id seen before (``seen``: id -> content hash,
        kept by the caller); such a record is skipped and counted, the first kept:
        as a plain duplicate when its content is the same, else as an id of
        another record (which of the two is right is unknown)."""
        digest = hash(json.dumps(record, sort_keys=True, default=str))
        if key not in seen:
            seen[key] = digest
            return False
        self.skip("duplicate record (first kept)" if seen[key] == digest
                  else "id used by another record (first kept)", where)
        return True

    def as_dict(self) -> dict:
        return {
            "stage": self.stage,
            "counts": dict(self.counts),
            "skipped": dict(self.skipped),
            "skipped_examples": {k: v for k, v in self.examples.items() if v},
            **self.extra,
            "seconds": round(time.time() - self.start, 2),
        }

    def print(self, file=None) -> None:
        file = file or sys.stderr   # looked up now: a default bound at import outlives a redirected stderr
        d = self.as_dict()
        print(f"[{self.stage}] done in {d['seconds']}s", file=file)
        for k, v in d["counts"].items():
            print(f"  {k}: {v}", file=file)
        if d["skipped"]:
            print("  skipped:", file=file)
            for k, v in sorted(d["skipped"].items()):
                ex = self.examples.get(k)
                print(f"    {k}: {v}" + (f" (e.g. {'; '.join(ex[:3])})" if ex else ""), file=file)
        for k, v in self.extra.items():
            if not isinstance(v, (dict, list)):
                print(f"  {k}: {v}", file=file)

    def save(self, path: str | Path) -> None:
        write_json(path, self.as_dict(), indent=2)
