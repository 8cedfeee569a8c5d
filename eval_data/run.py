"""Plumbing every converter shares: input checks, record reading, accounting, output.

Accounting is per input *unit* (a record, or a record x language where one
record feeds several languages): every unit read is either used or skipped
with a reason, and ``Accounts.close`` refuses to finish when the books do not
balance, so no row is ever dropped silently.
"""
from __future__ import annotations

import collections
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

from common.config import Config
from common.errors import UserError
from common.jsonl import TOO_DEEP, BadRows, load_json, read_jsonl, write_json, write_jsonl
from common.languages import table_inputs
from common import templates
from common.report import Report
from common.templates import fill  # noqa: F401  (the converters' prompts)
from common.steptype import Step
from eval_data.settings import DEFAULTS as EVAL_DEFAULTS


def check_template(key: str, template: str, *fields: str) -> None:
    """Stop before any work unless a prompt template uses only ``fields`` and at least the first
    (the question, statement or hypothesis itself); ``fill`` is common.templates.fill."""
    templates.check(key, template, set(fields), required={fields[0]})


def require_inputs(inputs: list[tuple[str, Path]]) -> None:
    """Stop before any work when an input file is missing, naming key and path."""
    missing = [(key, p) for key, p in inputs if not Path(p).is_file()]
    if missing:
        key, p = missing[0]
        more = f" (and {len(missing) - 1} more missing input files)" if len(missing) > 1 else ""
        raise UserError(f"{key}: input file not found: {p}{more}")


def path_for(cfg_section: dict, key: str, section: str, **fields: str) -> tuple[str, Path]:
    """(config key as the user writes it, path with {lang}/{split} filled in)."""
    raw = str(cfg_section[key])
    label = f"{section}.{key}" + "".join(f" ({k}={v})" for k, v in fields.items())
    return label, Path(fill(raw, **fields) if fields else raw)


class Accounts:
    """Counts in/used/skipped per input and rows per output, on a common Report."""

    def __init__(self, stage: str):
        self.report = Report(stage)
        self.units: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.outputs: dict[str, int] = {}

    def seen(self, source: str, n: int = 1) -> None:
        self.units[source]["in"] += n

    def used(self, source: str, n: int = 1) -> None:
        self.units[source]["used"] += n

    def skip(self, source: str, reason: str, where: str = "", n: int = 1) -> None:
        self.units[source]["skipped"] += n
        self.report.skip(f"{source}: {reason}", where, n=n)

    def note(self, key: str, where: str = "", n: int = 1) -> None:
        """A counted problem that does not drop the row (e.g. an image not on disk)."""
        self.report.count(key, n)
        examples = self.report.extra.setdefault("examples", {}).setdefault(key, [])
        if where and len(examples) < 5:
            examples.append(where)
            print(f"warning: {key}: {where}", file=sys.stderr)

    def wrote(self, path: Path, rows: Iterable[dict]) -> int:
        n = write_jsonl(path, rows)
        self.outputs[Path(path).name] = n
        self.report.count(f"rows written {Path(path).name}", n)
        return n

    def wrote_json(self, path: Path, obj: Any, what: str) -> None:
        write_json(path, obj)
        self.report.count(f"{what} {Path(path).name}", len(obj.get("annotations", [])))

    def close(self) -> dict:
        """Check that every unit is accounted for, print the report and return it
        (``run_main`` saves it where every step's report goes)."""
        unbalanced = {s: dict(c) for s, c in self.units.items() if c["in"] != c["used"] + c["skipped"]}
        self.report.extra["inputs"] = {s: dict(c) for s, c in self.units.items()}
        self.report.extra["outputs"] = dict(self.outputs)
        for s, c in self.units.items():
            self.report.count(f"in {s}", c["in"])
        self.report.print()
        by_file: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for s, c in self.units.items():    # "file [lang]" units: a file counts as a whole
            by_file[s.split(" [")[0]].update(c)
        unused = [(s, c) for s, c in by_file.items() if c["in"] and not c["used"]]
        if unused and not unbalanced:
            raise UserError(f"{unused[0][0]}: none of its {unused[0][1]['in']} records could be used (see the "
                            "skipped rows above): check the file and the config section")
        if unbalanced:
            # A converter bug, not a user error: a row went neither out nor into a skip reason.
            raise AssertionError(f"rows not accounted for: {unbalanced}")
        return self.report.as_dict()


def jsonl_records(path: Path, acc: Accounts | None = None, source: str = "", max_bad: int | None = None) -> Iterator:
    """Stream a JSONL input. With ``acc`` (a converter), malformed lines are counted
    as read-and-skipped (up to ``max_bad``) and a file with no record stops the run;
    without (the evaluation keys, ``eval_data/sets.py``) they are skipped quietly."""
    bad = BadRows(max_bad=max_bad, key="io.max_bad_rows") if acc is not None else BadRows(max_bad=None, quiet=True)
    good = 0
    for row in read_jsonl(path, bad):
        good += 1
        yield row
    if acc is None:
        return
    if bad.count:
        acc.seen(source, bad.count)
        acc.skip(source, "malformed JSON line", "; ".join(bad.examples[:3]), n=bad.count)
    if not good:
        refuse_empty(path, bad)


def refuse_empty(path: Path, bad: BadRows) -> None:
    """An input with no usable record would make empty benchmark files: one line naming it."""
    if not bad.count:
        raise UserError(f"{path}: no records (an empty file? fetch it again)")
    raise UserError(f"{path}: none of its {bad.count} records could be read (e.g. {bad.examples[0]})")


def json_document(path: Path, expect: type, what: str, acc: Accounts | None = None, source: str = "",
                  records: str | None = None, max_bad: int = 1000) -> Any:
    """A whole JSON document. With ``acc``, a record holding invalid UTF-8 (an
    element of the top level, or of its ``records`` member) is reported, counted
    as read and skipped (up to ``io.max_bad_rows``) instead of stopping the run."""
    bad = BadRows(max_bad=max_bad, key="io.max_bad_rows") if acc is not None else None
    data = load_json(path, bad, records)
    if not isinstance(data, expect):
        raise UserError(f"{path}: expected {what} at the top level, got {type(data).__name__}")
    if bad is not None and bad.count:
        acc.seen(source, bad.count)
        deep = all(TOO_DEEP in e for e in bad.examples)
        acc.skip(source, TOO_DEEP if deep else "invalid UTF-8", "; ".join(bad.examples[:3]), n=bad.count)
    if acc is not None:
        held = data.get(records) if records is not None and isinstance(data, dict) else data
        if isinstance(held, (dict, list)) and not held:
            refuse_empty(path, bad)
    return data


def need(row: Any, *keys: str, types: tuple = (str,)) -> str | None:
    """The reason a record cannot be used (missing or empty field), or None."""
    if not isinstance(row, dict):
        return f"record is a {type(row).__name__}, not an object"
    for k in keys:
        v = row.get(k)
        if v is None:
            return f"missing field {k!r}"
        if not isinstance(v, types):
            return f"field {k!r} has type {type(v).__name__}"
        if isinstance(v, str) and not v.strip():
            return f"empty field {k!r}"
    return None


def source_name(path: Path, cfg: Config) -> str:
    """An input's name for reports: its path under paths.raw_root where it is there."""
    try:
        # abspath, not resolve(): a raw root of symlinks must still name files by their place in it.
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(cfg.path("paths.raw_root"))).as_posix()
    except ValueError:
        return Path(path).as_posix()


def eval_step(bench: str, title: str, module: str, shaped_by: tuple[str, ...] = ()) -> Step:
    """The step of one benchmark's converter: reads the raw files of its config
    section, writes its output folder."""
    return Step(f"eval.{bench}", module, "eval_data", title, reads=(f"{bench}.*", table_inputs), writes=(f"${{{bench}.out_dir}}",),
                shaped_by=(bench, "language_names", *shaped_by), defaults=EVAL_DEFAULTS)


def run_main(step: Step, convert, cfg: Config) -> dict:
    """A converter's entry point: the step's lifecycle (common/lifecycle.py run_step) around ``convert``."""
    from common import lifecycle
    return lifecycle.run_step(step, cfg, None, lambda: convert(cfg))
