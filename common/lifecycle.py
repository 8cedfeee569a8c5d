"""The lifecycle of a step script, written once in ``run_step``: before any
work ``begin`` (every file it will write must be writable, one line and exit 2
otherwise; a killed run's temporaries are removed), the work, ``save_report``
(always ``${paths.work_dir}/reports/<step id>.json``, a shard's under its own
name), and ``finish`` (the run record and the ``next:`` command)."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .cli import combine_command, command
from .config import Config
from .errors import UserError
from . import procs
from .jsonl import read_json_object, write_json
from .records import expand, file_fingerprint, inputs, manifest_path, outputs, record, same_content, state
from .shards import shard_name
from .steptype import Step

# -- what scripts call --------------------------------------------------------------------------
def shard_of(step: Step, cfg: Config) -> tuple[int, int] | None:
    """(index, num_shards) when this run of a shardable step is one shard of several."""
    run = cfg.get("run") or {}
    n, i = int(run.get("num_shards", 1) or 1), int(run.get("shard_index", 0) or 0)
    return (i, n) if n > 1 and step.shards else None


def report_path(step_id: str, cfg: Config, shard: tuple[int, int] | None = None) -> Path:
    """Where every step saves its JSON report: ``${paths.work_dir}/reports/<step id>.json``
    (a shard: ``<step id>.shard-0000i-of-0000N.json``; a tool such as
    translate_file.py run without paths.work_dir: ``<output>.<step id>.report.json``)."""
    from . import pipeline   # the ordered list (it imports the step modules): read at call time
    name = step_id if shard is None else shard_name(step_id, *shard)
    if not cfg.get("paths", {}).get("work_dir") and pipeline.get(step_id).tool:
        out = outputs(pipeline.get(step_id), cfg)[0]   # a tool run without paths.work_dir: beside its output
        return out.with_name(f"{out.name}.{name}.report.json")
    return cfg.path("paths.work_dir") / "reports" / f"{name}.json"


def save_report(report, step_id: str, cfg: Config) -> Path:
    """Save a step's report (a common.report.Report or a dict) where ``report_path``
    says, and print the path."""
    from . import pipeline   # the ordered list (it imports the step modules): read at call time
    path = report_path(step_id, cfg, shard_of(pipeline.get(step_id), cfg))
    write_json(path, report.as_dict() if hasattr(report, "as_dict") else report, indent=2)
    print(f"report: {path}", file=sys.stderr)
    return path


def _write_targets(step: Step, cfg: Config) -> list[tuple[str, Path, bool]]:
    """(config key, path, is a folder) of everything this run of ``step`` writes:
    its outputs, or one shard's files. A ``writes`` entry ending in ``_dir}`` is a folder."""
    targets = []
    for item in step.writes:
        m = re.search(r"\$\{([^}]+)\}", item)
        key = m.group(1) if m else item
        targets += [(key, p, item.endswith("_dir}")) for p in expand(cfg, item)]
    shard = shard_of(step, cfg)
    if shard is None:
        return targets
    from .shards import shard_path
    files = {str(p) for p in shard_files(step, cfg, *shard)}
    return [(key, q, folder) for key, p, folder in targets
            for q in (shard_path(p, *shard), p) if str(q) in files]


def begin(step_id: str, cfg: Config, extra: Iterable[tuple[str, Path, bool]] = ()) -> None:
    """What every step script calls before any work: every file it will write
    (its outputs or its shard's files, its report, ``extra`` (config key, path,
    is a folder) for other files: caches, indexes)
    must be writable, a translate step's cache must be a SQLite database (one
    line, exit 2, naming the key), and the temporaries a killed run of this step
    left beside them are removed."""
    from . import pipeline   # the ordered list (it imports the step modules): read at call time
    from .jsonl import remove_stale_temps
    from .preflight import check_sqlite, check_writable
    step = pipeline.get(step_id)
    targets = _write_targets(step, cfg) + [(k, Path(p), folder) for k, p, folder in extra]
    targets.append(("paths.work_dir", report_path(step_id, cfg, shard_of(step, cfg)), False))
    check_writable(targets)
    cache = (cfg.get("translation") or {}).get("cache")
    if cache and (step.id.endswith(".translate") or step.id == "translate.file"):
        check_sqlite("translation.cache", Path(os.path.expanduser(str(cache))))
    removed = [t for _, p, folder in targets for t in remove_stale_temps(p, inside=folder)]
    if removed:
        shown = ", ".join(str(p) for p in removed[:3]) + (f" (+{len(removed) - 3} more)" if len(removed) > 3 else "")
        print(f"removed {len(removed)} temporary file(s) a killed run left: {shown}", file=sys.stderr)


def next_step(step: Step) -> Step | None:
    from . import pipeline   # the ordered list (it imports the step modules): read at call time
    i = pipeline.STEPS.index(step)
    return pipeline.STEPS[i + 1] if i + 1 < len(pipeline.STEPS) else None


def finish(step_id: str, cfg: Config, argv: list[str] | None = None,
           written: Iterable[Path] | None = None) -> None:
    """Record a successful run of ``step_id`` and print the command to run next.

    A shard of a sharded run leaves a completion record instead, and points at
    the launcher that merges the shards."""
    from . import pipeline   # the ordered list (it imports the step modules): read at call time
    step = pipeline.get(step_id)
    argv = list(sys.argv[1:] if argv is None else argv)
    shard = shard_of(step, cfg)
    if shard is not None:
        i, n = shard
        record(step, cfg, shard=(i, n), written=written if written is not None else shard_files(step, cfg, i, n))
        print(f"shard {i} of {n} done; when all are, merge them with:\n  next: "
              f"{combine_command(step, argv, n)}", file=sys.stderr)
        return
    record(step, cfg, written=written)
    print_next(step, argv)


def print_next(step: Step, argv: list[str]) -> None:
    nxt = next_step(step)
    if nxt is None:
        print("next: nothing; every step of the pipeline has run (python -m common status)", file=sys.stderr)
    else:
        print(f"next: {command(nxt, argv, step)}", file=sys.stderr)


def choose_run(english_id: str, final_id: str, cfg: Config, wanted: str) -> str:
    """Which run of a two-run generate script this is: ``wanted`` is auto,
    english or final. Auto gives final only when the English intermediate is
    done (its own inputs unchanged) and the translation step is done on it."""
    from . import pipeline   # the ordered list (it imports the step modules): read at call time
    if wanted not in ("auto", "english", "final"):
        raise UserError(f"generate.step: {wanted!r} is not one of auto, english, final")
    english, final = pipeline.get(english_id), pipeline.get(final_id)
    translate = pipeline.get(final.after[0])
    if wanted == "english":
        return "english"
    eng_state, tr_state = state(english, cfg), state(translate, cfg)
    if wanted == "final":
        if eng_state.status != "done" or tr_state.status != "done":
            bad = english if eng_state.status != "done" else translate
            st = eng_state if bad is english else tr_state
            raise UserError(f"cannot write the final file: step {bad.number} ({bad.id}) is {st.status}"
                            f" ({st.reason}); run: {command(bad, sys.argv[1:], english)}")
        return "final"
    return "final" if eng_state.status == "done" and tr_state.status == "done" else "english"



def upstream_problem(rec: dict | None) -> str | None:
    """Why a step's run record no longer holds (an input or an output changed since), or None."""
    for kind in ("inputs", "outputs"):
        for path, fp in (rec or {}).get(kind, {}).items():
            if not same_content(fp, file_fingerprint(Path(path), fp)):
                what = "input changed since the run" if kind == "inputs" else "output changed after the run"
                return f"{what}: {path}"
    return None


def check_upstream(step: Step, cfg: Config, argv: list[str]) -> None:
    """Before any work: every step upstream whose output this run reads (its
    ``after`` steps, and theirs, recursively) must still hold its run record:
    the files it read and wrote unchanged since it ran. Otherwise one line (exit
    2) naming the stale step and the command that reruns it. Files are compared,
    not configs: a step upstream of another config file (the merge's inputs)
    cannot be rebuilt from this command line; its config is checked by its own
    run and by ``status``. An upstream step without a run record is not checked
    (a stage run alone, your own file at its path: taken as given, and
    fingerprinted in this step's record); a missing optional input (the merge)
    is left to the step."""
    from . import pipeline   # the ordered list (it imports the step modules): read at call time
    todo, seen = [(step, {str(p.resolve()) for p in inputs(step, cfg)})], set()
    while todo:
        s, s_reads = todo.pop()
        for aid in s.after:
            a = pipeline.get(aid)
            rec = read_json_object(manifest_path(a, cfg))
            if rec is None or aid in seen or not s_reads & {str(Path(p).resolve()) for p in rec.get("outputs", {})}:
                continue
            seen.add(aid)
            why = upstream_problem(rec)
            if why:
                raise UserError(f"step {a.number} ({a.id}) is stale ({why}); this run would build on it. "
                                f"Rerun it first: {command(a, argv, step)}")
            todo.append((a, {str(Path(p).resolve()) for p in rec.get("inputs", {})}))


def shard_files(step: Step, cfg: Config, index: int, num_shards: int) -> list[Path]:
    """The files shard ``index`` of ``step`` writes, by the step's SHARDS rule (common/shards.py)."""
    from .shards import rule_of
    return rule_of(step).files(cfg, index, num_shards)


@dataclass
class Done:
    """What the work of a step gives ``run_step``: its report (a Report or a
    dict), checks to make once the report is saved (``then``; a UserError there
    leaves no run record), and whether the run is a whole one (``record``: False
    for a partial run, e.g. an embedding-only pass, that must not count as done)."""
    report: Any
    then: Callable[[], None] | None = None
    record: bool = True


def run_step(step: Step, cfg: Config, argv: list[str] | None, work: Callable[[], Any],
             extra: Iterable[tuple[str, Path, bool]] = (), partial: Any = None) -> Any:
    """The one lifecycle of every step script: ``begin`` (``extra``: other files
    it writes, as for begin), the step's lock (one writer per step, or shard,
    and work dir: common/procs.py), no stale step upstream (``check_upstream``),
    ``work()`` (returns a report or a ``Done``), save the report under the step
    id (a shard's under its shard name), the checks of ``Done.then``, and
    ``finish`` (run record, ``next:``). ``partial``: a report the work fills as
    it goes, saved also when the work fails."""
    argv = list(sys.argv[1:] if argv is None else argv)
    begin(step.id, cfg, extra)   # the temporaries it removes are a dead run's, never a live one's
    shard = shard_of(step, cfg)
    lock = procs.lock_name(step, cfg, shard)
    procs.acquire(lock, f"{step.id}" + (f" shard {shard[0]} of {shard[1]}" if shard else ""))
    try:
        check_upstream(step, cfg, argv)
        return _work(step, cfg, argv, work, partial)
    finally:
        procs.release(lock)


def _work(step: Step, cfg: Config, argv: list[str], work: Callable[[], Any], partial: Any) -> Any:
    try:
        done = work()
    except BaseException:
        if partial is not None:
            save_report(partial, step.id, cfg)
        raise
    done = done if isinstance(done, Done) else Done(done)
    save_report(done.report, step.id, cfg)
    if done.then is not None:
        done.then()
    if done.record:
        finish(step.id, cfg, argv)
    return done.report
