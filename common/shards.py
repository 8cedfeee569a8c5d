"""Sharding, written once: how a step's work is split, how its parts are merged.

* ``run.num_shards`` / ``run.shard_index`` (``RUN_DEFAULTS``): every shardable
  script takes them. ``check_shard_args`` validates them.
* Row selection: ``round_robin`` (the i-th usable row goes to shard i % N;
  translation) and ``key_shard`` (stable_hash(key) % N: duplicates of a key
  stay in one shard; download URLs, embedding keys).
* Names: shard i of N of ``out`` is ``out.shard-0000i-of-0000N`` (``shard_path``).
* The ordered merge: ``interleave`` puts round-robin shard files back in input
  order, byte-identical to a one-shard run; ``ShardFiles`` reads shard files
  line by line for merges of another order (download's by-URL merge).
* Checks before a merge: a shard counts only with a valid completion record
  (``record_problem``: the input and config fingerprints it ran with are
  today's, the files it recorded are the ones on disk), so shard files of an
  earlier run are never merged; shard files of another N are listed
  (``foreign_shards``) and left alone.
* ``ShardRule``: what a step module declares as ``SHARDS = ShardRule(...)``:
  which config section receives a worker's device, extra ``--set`` for
  workers, the outputs written in parts, and the merge. The launchers
  (common/executors.py) read it; no launcher names a step.
"""
from __future__ import annotations

import glob
import itertools
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, TypeVar

from .errors import UserError
from .jsonl import atomic_open, read_json_object, read_jsonl, write_jsonl
from .sampling import stable_hash

if TYPE_CHECKING:
    from .config import Config
    from .steptype import Step

RUN_DEFAULTS: dict = {"num_shards": 1, "shard_index": 0}

T = TypeVar("T")
_SHARD_NAME = re.compile(r"\.shard-(\d{5})-of-(\d{5})$")


# -- names and arguments -----------------------------------------------------------------------
SHARD_GLOB = ".shard-*-of-*"


def shard_name(name: str, index: int, num_shards: int) -> str:
    """The one shard naming: ``<name>.shard-0000i-of-0000N`` (files, run records, reports, logs)."""
    return f"{name}.shard-{index:05d}-of-{num_shards:05d}"


def shard_path(path: str | Path, index: int, num_shards: int) -> Path:
    path = Path(path)
    return path.with_name(shard_name(path.name, index, num_shards))


def check_shard_args(run: dict) -> tuple[int, int]:
    """(num_shards, shard_index) of a ``run`` section; a UserError unless 0 <= index < num_shards."""
    n, i = int(run["num_shards"]), int(run["shard_index"])
    if n < 1 or not 0 <= i < n:
        raise UserError(f"run.shard_index={i} run.num_shards={n}: need 0 <= shard_index < num_shards")
    return n, i


# -- row selection -----------------------------------------------------------------------------
def round_robin(items: Iterable[T], num_shards: int, shard_index: int) -> Iterator[T]:
    """Items shard_index, shard_index + N, ...: give it the usable rows only
    (every shard skips the same unusable ones), so ``interleave`` restores input order."""
    for k, item in enumerate(items):
        if k % num_shards == shard_index:
            yield item


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def key_shard(key: str, num_shards: int, salt: str | None = None) -> int:
    """The shard of a key: stable across processes and machines; equal keys share a shard."""
    return (stable_hash(key) if salt is None else stable_hash(salt, key)) % num_shards


# -- reading and merging shard files -----------------------------------------------------------
class ShardFiles:
    """The N shard files of one output, open for reading line by line.

    A missing file is named (UserError), never taken as empty."""

    def __init__(self, out: str | Path, num_shards: int):
        self.paths = [shard_path(out, i, num_shards) for i in range(num_shards)]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise UserError(f"missing shard file(s): {', '.join(missing)}")
        self.files = [open(p, encoding="utf-8") for p in self.paths]

    def readline(self, shard: int) -> str:
        return self.files[shard].readline()

    def leftover(self) -> list[str]:
        """The shard files with lines not yet read."""
        return [str(p) for p, f in zip(self.paths, self.files) if f.readline()]

    def close(self) -> None:
        for f in self.files:
            f.close()

    def __enter__(self) -> "ShardFiles":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def interleave(out: str | Path, num_shards: int) -> int:
    """Merge round-robin shard files into ``out`` in input order (byte-identical
    to a one-shard run) and their rejects files into ``out``.rejects.jsonl.
    Returns the rows written; a missing shard file is named and nothing is written."""
    out = Path(out)
    n = 0
    with ShardFiles(out, num_shards) as parts, atomic_open(out) as f:
        while True:
            lines = [line for line in (parts.readline(s) for s in range(num_shards)) if line]
            if not lines:
                break
            f.writelines(lines)
            n += len(lines)
    rejects = []
    for i in range(num_shards):
        rp = Path(f"{shard_path(out, i, num_shards)}.rejects.jsonl")
        if rp.is_file():
            rejects += list(read_jsonl(rp))
    write_jsonl(Path(f"{out}.rejects.jsonl"), rejects)
    return n


def foreign_shards(out: str | Path, num_shards: int) -> list[Path]:
    """Shard files of ``out`` from a run with another num_shards (never merged)."""
    out = Path(out)
    return sorted(q for q in out.parent.glob(glob.escape(out.name) + SHARD_GLOB)
                  if (m := _SHARD_NAME.search(q.name)) and int(m.group(2)) != num_shards)


def foreign_note(outs: Iterable[Path], num_shards: int) -> str | None:
    others = [q for out in outs for q in foreign_shards(out, num_shards)]
    if not others:
        return None
    shown = ", ".join(str(q) for q in others[:6]) + (f", ... ({len(others)} files)" if len(others) > 6 else "")
    return f"not merged (another run.num_shards than {num_shards}; delete when no longer needed): {shown}"


# -- what a step declares ----------------------------------------------------------------------
@dataclass(frozen=True)
class ShardRule:
    """How a step is split and merged (``SHARDS = ShardRule(...)`` in the step's module).

    ``sharded`` and ``first_shard`` are written like ``Step.writes`` (``${section.key}``
    templates, resolved with the step's config)."""
    device: str | None = None                # config section that gets the worker's device, or None
    threads: bool = True                     # ... and its ``threads`` key for CPU workers
    worker_sets: tuple[str, ...] = ()        # extra --set for every shard (e.g. embed.only=true)
    sharded: tuple[str, ...] = ()            # outputs each shard writes a part of (<output>.shard-i-of-N)
    first_shard: tuple[str, ...] = ()        # outputs shard 0 writes whole (translated templates)
    combine: Callable[["Config", int], str] | None = None   # the merge; None: interleave ``sharded``

    def outputs(self, cfg: "Config") -> list[Path]:
        from .records import expand
        return [p for item in self.sharded for p in expand(cfg, item)]

    def parts(self, cfg: "Config", index: int, num_shards: int) -> list[Path]:
        """The shard files shard ``index`` writes (the outputs themselves when N is 1)."""
        outs = self.outputs(cfg)
        return outs if num_shards == 1 else [shard_path(p, index, num_shards) for p in outs]

    def files(self, cfg: "Config", index: int, num_shards: int) -> list[Path]:
        """Everything shard ``index`` writes: its parts, and for shard 0 the whole files."""
        from .records import expand
        whole = [p for item in self.first_shard for p in expand(cfg, item)] if index == 0 else []
        return self.parts(cfg, index, num_shards) + whole

    def merge(self, cfg: "Config", num_shards: int) -> str:
        if self.combine is not None:
            return self.combine(cfg, num_shards)
        done = [f"{interleave(out, num_shards)} rows -> {out}" for out in self.outputs(cfg)]
        return f"merged {num_shards} shards: " + "; ".join(done)


def rule_of(step: "Step") -> ShardRule:
    """The ShardRule the step declares."""
    if step.rule is None:
        raise UserError(f"step {step.id} is not sharded: run python {step.script} directly")
    return step.rule


# -- completion records ------------------------------------------------------------------------
def record_problem(step: "Step", cfg: "Config", rule: ShardRule, index: int, num_shards: int) -> str | None:
    """Why shard ``index`` of ``num_shards`` does not count as done (None: it does).

    Done means: its completion record exists, was made with today's input and
    config fingerprints, and every file it wrote is on disk as recorded."""
    from . import records
    m = read_json_object(records.manifest_path(step, cfg, (index, num_shards)))
    if m is None:
        return "no completion record"
    now = records.input_record(step, cfg)
    if m.get("config") != now["config"]:
        return "config changed since it ran"
    recorded = m.get("inputs", {})
    for p, fp in now["inputs"].items():
        if not records.same_content(recorded.get(p), fp):
            return f"input changed since it ran: {p}"
    outs = m.get("outputs", {})
    for p in rule.files(cfg, index, num_shards):
        if not records.same_content(outs.get(str(p)), records.file_fingerprint(p, outs.get(str(p)))):
            return f"{p} is missing or not the file it wrote"
    return None


def check_complete(step: "Step", cfg: "Config", rule: ShardRule, num_shards: int,
                   rerun_hint: Callable[[int], str] | None = None) -> None:
    """Before a merge: every shard done for today's input and config (else a
    UserError naming each shard that is not); shard files of another N listed."""
    bad = [(i, why) for i in range(num_shards) if (why := record_problem(step, cfg, rule, i, num_shards))]
    if bad:
        named = "; ".join(f"shard {i} ({why})" for i, why in bad[:10]) + (" ..." if len(bad) > 10 else "")
        hint = f"; run it: {rerun_hint(bad[0][0])}" if rerun_hint else ""
        raise UserError(f"{len(bad)} of {num_shards} shards not done for this input and config, "
                        f"nothing merged: {named}{hint}")
    note = foreign_note(rule.outputs(cfg), num_shards)
    if note:
        print(f"warning: {note}", file=sys.stderr)
