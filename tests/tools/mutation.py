"""Mutation testing of the core modules (``make mutation``), each against its
own focused test files, with mutmut 3.

For every module a scratch copy of the working tree is made (so the tree
itself never gets a ``mutants/`` folder or a mutmut config), mutmut mutates
that one file, runs only the module's test files (and, per mutant, only the
tests that reach the mutated function), and the counts are collected:

    python tests/tools/mutation.py                       # every module
    python tests/tools/mutation.py common/languages.py   # one or more
    python tests/tools/mutation.py --survivors           # also print each surviving mutant's diff

Score = (killed + timeout) / all mutants; a mutant no test reaches counts as
survived. Modules whose score is under --min-score (default 85) make the exit
status 1.

Every run records its modules' results in docs/mutation.json as each module
ends (one entry per module, replaced by the module's latest run: counts,
score, seconds, date, the run's start time, surviving mutants) and rewrites the table between ``<!-- mutation:begin -->``
and ``<!-- mutation:end -->`` in docs/testing.md from that file, so the table
is the last run's, never typed (tests/test_tools.py checks that the two agree;
``--no-docs`` leaves both alone). The prose below the table in docs/testing.md
says why each surviving mutant is equivalent or accepted.
A development tool, not part of the pipeline.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# module -> its focused test files.
MODULES: dict[str, list[str]] = {
    "common/languages.py": ["tests/test_languages.py"],
    "common/jsonl.py": ["tests/test_jsonl.py", "tests/test_jsonl_contract.py", "tests/test_jsonl_deep.py"],
    "common/shards.py": ["tests/test_shards.py"],
    "match/negatives.py": ["tests/test_match_negatives.py"],
    "eval_data/decontam.py": ["tests/test_decontam.py", "tests/test_decontam_contract.py"],
    "translate/quality.py": ["tests/test_translate_quality.py", "tests/test_translate_langid.py"],
    "translate/segment.py": ["tests/test_translate_segment.py", "tests/test_translate_engine.py"],
    # State, keys and resume (issue 22).
    "common/records.py": ["tests/test_records.py"],
    "common/cli.py": ["tests/test_cli_status.py"],
    "common/status.py": ["tests/test_cli_status.py"],
    "common/lifecycle.py": ["tests/test_lifecycle.py", "tests/test_lifecycle_run.py"],
    "pretrain/download_resume.py": ["tests/test_download_resume.py"],
    "pretrain/merge_train.py": ["tests/test_merge_train.py", "tests/test_merge_keys.py", "tests/test_merge_report.py",
                                "tests/test_merge_config.py"],
    "pretrain/mix_card.py": ["tests/test_mix_card.py", "tests/test_mix_card_reports.py", "tests/test_mix_card_text.py"],
    "translate/source.py": ["tests/test_source_keys.py", "tests/test_source_steps.py"],
    "translate/shaping.py": ["tests/test_source_keys.py", "tests/test_translate_cache.py"],
    # The evaluation converters (issue 22): each run in-process by test_eval_convert.py.
    "eval_data/run.py": ["tests/test_eval_convert.py", "tests/test_eval_sides_labels.py"],
    "eval_data/rows.py": ["tests/test_eval_convert.py", "tests/test_eval_prompts.py"],
    "eval_data/captions.py": ["tests/test_eval_convert.py", "tests/test_eval_units.py"],
    "eval_data/images.py": ["tests/test_eval_convert.py", "tests/test_eval_units.py"],
    "eval_data/xgqa/convert.py": ["tests/test_eval_convert.py", "tests/test_eval_units.py"],
    "eval_data/xvnli/convert.py": ["tests/test_eval_convert.py", "tests/test_eval_units.py"],
    "eval_data/marvl/convert.py": ["tests/test_eval_convert.py", "tests/test_eval_sides_labels.py",
                                   "tests/test_eval_units.py"],
    "eval_data/xflickrco/convert.py": ["tests/test_eval_convert.py"],
    "eval_data/xm3600/convert.py": ["tests/test_eval_convert.py"],
    "eval_data/maxm/convert.py": ["tests/test_eval_convert.py", "tests/test_eval_prompts.py"],
    "eval_data/pope/convert.py": ["tests/test_eval_convert.py", "tests/test_eval_sides_labels.py"],
    "eval_data/chair/convert.py": ["tests/test_eval_convert.py"],
}
# What each module is, for the table.
WHAT = {
    "common/languages.py": "language assignment",
    "translate/quality.py": "quality checks, language check",
    "translate/segment.py": "sentence splitter",
    "match/negatives.py": "sides, hard negatives",
    "common/jsonl.py": "JSONL/JSON readers, atomic writer",
    "common/shards.py": "shard merge, completion records",
    "eval_data/decontam.py": "evaluation images out of training",
    "common/records.py": "run records: done / stale / missing",
    "common/cli.py": "command lines, the next: command",
    "common/status.py": "python -m common status",
    "common/lifecycle.py": "begin, reports, finish, which run",
    "pretrain/download_resume.py": "which failures a resume refetches",
    "pretrain/merge_train.py": "the task mix: schema, dedupe, seed",
    "pretrain/mix_card.py": "mix report and dataset card",
    "translate/source.py": "template store key, instruction picker",
    "translate/shaping.py": "the translation settings that shape an output: cache, store and step keys",
    "eval_data/run.py": "converters' input checks, accounting, output",
    "eval_data/rows.py": "evaluation row, language names",
    "eval_data/captions.py": "caption references, zh/ja/th segmentation",
    "eval_data/images.py": "image files under any Unicode normalisation",
    "eval_data/xgqa/convert.py": "xGQA, GQA train",
    "eval_data/xvnli/convert.py": "XVNLI labels",
    "eval_data/marvl/convert.py": "MaRVL, NLVR2: sides, truth",
    "eval_data/xflickrco/convert.py": "xFlickrCO, Flickr30k: references, train prompts",
    "eval_data/xm3600/convert.py": "XM3600 per language",
    "eval_data/maxm/convert.py": "MaXM prompts, answers",
    "eval_data/pope/convert.py": "POPE yes/no",
    "eval_data/chair/convert.py": "CHAIR ground truth",
}
RESULTS = REPO / "docs" / "mutation.json"
DOC = REPO / "docs" / "testing.md"
BEGIN, END = "<!-- mutation:begin -->", "<!-- mutation:end -->"
SKIP_DIRS = {".git", ".venv", "mutants", "demo_work", "__pycache__", ".pytest_cache"}


def scratch_copy(dest: Path) -> None:
    """The working tree (tracked or not, without the venv and build folders) into dest."""
    def keep(info: tarfile.TarInfo):
        parts = Path(info.name).parts
        return None if set(parts) & SKIP_DIRS or any(x.startswith(".venv") for x in parts) else info
    buf = dest.with_suffix(".tar")
    with tarfile.open(buf, "w") as tar:
        tar.add(REPO, arcname=".", filter=keep)
    with tarfile.open(buf) as tar:
        tar.extractall(dest, filter="fully_trusted")
    buf.unlink()


def write_config(work: Path, module: str, tests: list[str]) -> None:
    """mutmut reads [tool.mutmut] from pyproject.toml first, else [mutmut] from setup.cfg."""
    pyproject = work / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    if "[tool.mutmut]" in text:
        pyproject.write_text(text.split("[tool.mutmut]")[0], encoding="utf-8")
    # Everything else travels too: tests run scripts and read configs relative to the tree.
    others = sorted(p.name for p in work.iterdir() if p.name not in ("mutants", "setup.cfg", "tests"))
    (work / "setup.cfg").write_text(
        "[mutmut]\n"
        f"source_paths={module}\n"
        "also_copy=\n" + "".join(f"    {o}\n" for o in others) +
        "pytest_add_cli_args_test_selection=\n" + "".join(f"    {t}\n" for t in tests) +
        "pytest_add_cli_args=\n    -p\n    no:cacheprovider\n    -q\n", encoding="utf-8")


def run_module(module: str, tests: list[str], children: int, survivors: bool, only: list[str] = ()) -> dict:
    """Mutate one module in a scratch copy; its counts (and surviving mutants' diffs).
    ``only``: function names (globs) whose mutants alone are run and counted."""
    mutmut = Path(sys.executable).with_name("mutmut")
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        work = Path(tmp) / "tree"
        work.mkdir()
        scratch_copy(work)
        write_config(work, module, tests)
        env = {**os.environ, "PYTHONPATH": str(work), "CUDA_VISIBLE_DEVICES": ""}
        t0 = time.monotonic()
        prefix = module[:-3].replace("/", ".")
        # mutmut names a function's mutants x_<name>__mutmut_<n>, a method's xǁ<Class>ǁ<name>__mutmut_<n>
        patterns = [f"{prefix}.x{'ǁ' + f.replace('.', 'ǁ') if '.' in f else '_' + f}__mutmut_*" for f in only]
        run = subprocess.run([str(mutmut), "run", "--max-children", str(children), *patterns], cwd=work, env=env,
                             capture_output=True, text=True)
        seconds = time.monotonic() - t0
        subprocess.run([str(mutmut), "export-cicd-stats"], cwd=work, env=env, capture_output=True, text=True)
        stats_file = work / "mutants" / "mutmut-cicd-stats.json"
        if run.returncode != 0 or not stats_file.is_file():
            tail = (run.stdout + run.stderr)[-3000:]
            return {"module": module, "error": f"mutmut run exited {run.returncode}:\n{tail}"}
        stats = json.loads(stats_file.read_text())
        listing = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=work, env=env,
                                 capture_output=True, text=True).stdout
        status = {line.split(":")[0].strip(): line.rsplit(":", 1)[1].strip()
                  for line in listing.splitlines() if ":" in line}
        if only:   # count the chosen functions' mutants only (mutmut's stats count every mutant)
            status = {k: v for k, v in status.items() if any(fnmatch.fnmatch(k, p) for p in patterns)}
            stats = {"total": len(status), **{k: sum(v == name for v in status.values()) for k, name in
                                              (("killed", "killed"), ("timeout", "timeout"),
                                               ("survived", "survived"), ("no_tests", "no tests"))}}
        names = [k for k, v in status.items() if v in ("survived", "no tests")]
        diffs = {}
        if survivors:
            for name in names:
                shown = subprocess.run([str(mutmut), "show", name], cwd=work, env=env,
                                       capture_output=True, text=True).stdout
                diffs[name] = "\n".join(x for x in shown.splitlines()
                                        if x.startswith(("-", "+")) and not x.startswith(("---", "+++")))
    detected = stats["killed"] + stats["timeout"]
    return {"module": module, "tests": tests, "total": stats["total"], "killed": stats["killed"],
            "timeout": stats["timeout"], "survived": stats["survived"], "no_tests": stats["no_tests"],
            "score": round(100 * detected / stats["total"], 1) if stats["total"] else 100.0,
            "seconds": round(seconds, 1), "surviving": names, "diffs": diffs, "only": list(only)}


def table(results: dict[str, dict]) -> str:
    """The markdown table of recorded results, in MODULES order (then any others)."""
    order = [m for m in MODULES if m in results] + sorted(set(results) - set(MODULES))
    lines = ["| module | its tests | mutants | detected | survived | score | run |",
             "|---|---|---:|---:|---:|---:|---|"]
    for m in order:
        r = results[m]
        what = f" ({WHAT[m]})" if m in WHAT else ""
        if r.get("only"):
            what += "; only " + ", ".join(f"`{f}`" for f in r["only"])
        run = r.get("run") or r.get("date", "")
        run += "" if r.get("seconds") is None else f", {r['seconds']:.0f} s"
        lines.append(f"| `{m}`{what} | {', '.join(Path(t).name for t in r['tests'])} | {r['total']} | "
                     f"{r['killed'] + r['timeout']} | {r['survived'] + r['no_tests']} | {r['score']}% | "
                     f"{run} |")
    return "\n".join(lines)


def load_results(path: Path = RESULTS) -> dict[str, dict]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def record_results(new: list[dict], results_path: Path = RESULTS, doc: Path = DOC) -> None:
    """Merge this run's results into results_path; regenerate the table in doc."""
    results = load_results(results_path)
    today = time.strftime("%Y-%m-%d")
    for r in new:
        if "error" not in r:
            results[r["module"]] = {k: r[k] for k in ("tests", "total", "killed", "timeout", "survived",
                                                      "no_tests", "score", "seconds", "surviving")} | \
                {"date": today, **({"only": r["only"]} if r.get("only") else {}),
                 **({"run": r["run"]} if r.get("run") else {})}
    results_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    write_table(doc, table(results))


def write_table(doc: Path, text: str) -> None:
    body = doc.read_text(encoding="utf-8")
    if BEGIN not in body or END not in body:
        sys.exit(f"{doc}: no {BEGIN} ... {END} block to write the table into")
    head, rest = body.split(BEGIN, 1)
    doc.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modules", nargs="*", help=f"default: {' '.join(MODULES)}")
    ap.add_argument("--children", type=int, default=os.cpu_count() or 2, help="mutants run in parallel")
    ap.add_argument("--min-score", type=float, default=85.0)
    ap.add_argument("--survivors", action="store_true", help="print every surviving mutant's diff")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--only", action="append", default=[], metavar="FUNCTION",
                    help="run and count only the mutants of these functions (globs, Class.method for a method; repeatable): "
                         "for a module whose tests are too slow to run against every mutant")
    ap.add_argument("--no-docs", action="store_true",
                    help="leave docs/mutation.json and the table in docs/testing.md alone")
    args = ap.parse_args(argv)
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        sys.exit("mutmut is not installed in this environment: pip install -e '.[test]'")
    chosen = args.modules or list(MODULES)
    results, low = [], []
    started = time.strftime("%Y-%m-%d %H:%M")    # names the run every module's entry came from
    for module in chosen:
        tests = MODULES.get(module)
        if tests is None:
            sys.exit(f"unknown module {module!r}: one of {', '.join(MODULES)}")
        if not (REPO / module).is_file() or not all((REPO / t).is_file() for t in tests):
            print(f"{module}: skipped (the module or its tests {tests} do not exist here)", file=sys.stderr)
            continue
        res = run_module(module, tests, args.children, args.survivors, args.only)
        res["run"] = started
        results.append(res)
        if not args.no_docs:     # recorded as each module ends: a run stopped halfway keeps what it did
            record_results([res])
        if "error" in res:
            print(f"{module}: {res['error']}", file=sys.stderr)
            low.append(module)
            continue
        print(f"{module}: {res['score']}% of {res['total']} mutants detected (killed {res['killed']}, "
              f"timeout {res['timeout']}, survived {res['survived']}, no test {res['no_tests']}; "
              f"{res['seconds']} s)", file=sys.stderr)
        for name in res["surviving"]:
            print(f"    survived: {name}", file=sys.stderr)
            if name in res["diffs"]:
                print("        " + res["diffs"][name].replace("\n", "\n        "), file=sys.stderr)
        if res["score"] < args.min_score:
            low.append(module)
    print("\n| module | tests | mutants | detected | score |\n|---|---|---:|---:|---:|")
    for r in results:
        if "error" not in r:
            print(f"| `{r['module']}` | {', '.join(Path(t).name for t in r['tests'])} | {r['total']} | "
                  f"{r['killed'] + r['timeout']} | {r['score']}% |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    if low:
        print(f"under {args.min_score}% (or failed): {', '.join(low)}", file=sys.stderr)
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
