"""Merge the final training files named in config into train/task_mix.jsonl.

Every row of every input is checked against the training-row schema of
common/FORMATS.md (exactly context, label, image_id, task, lang; non-empty strings; a
known task and language code): one bad row stops the merge naming file and line
(exit 2), since a mix with broken rows must not reach training. Per task,
optional weights then caps set the row count (seeded). The mix is shuffled
deterministically. Writes task_mix_report.json, a .md table (rows, distinct
images and languages per task and for the mix, each source's licence; per
language the target and actual shares and the rows that fell back to English
and why; the rows dropped for an evaluation image, from the steps' reports:
pretrain/mix_card.py), a .png plot of rows per language, and the dataset card
merge.card (train/README.md, YAML front matter for dataset hubs).

Memory: the first pass keeps one 8-byte reference (file, byte offset) per row;
the second pass reads the chosen rows back by offset in shuffled order.

  python pretrain/merge_train.py [--config configs/merge_train.yaml] [--set key=value ...]
"""
from __future__ import annotations

import collections
import json
import sys
from array import array
from pathlib import Path

import numpy as np

from common import lifecycle, records
from common.config import REPO_ROOT, free_mapping, parse_args
from common.errors import UserError, entry_point
from common.jsonl import TOO_DEEP, atomic_open, write_json
from common.languages import load_languages, table_inputs
from common.sampling import rng
from common.scripts import is_simplified
from common.steptype import Step
from pretrain import mix_card

CONFIG = str(REPO_ROOT / "configs" / "merge_train.yaml")
# Every training task, in pipeline order: the tasks the steps declare (common/pipeline.py
# TASKS; tests/test_pipeline.py checks that the two lists are the same).
TASKS = ["capfilt", "capfilt_match", "mscoco", "vqav2_vqa", "vqav2_vqg", "aokvqa_cot", "aokvqa_explain",
         "llava_detail", "llava_conversation", "imagenet_classify", "imagenet_decide"]
DEFAULTS = {
    "merge": {
        "inputs": [],
        "weights": free_mapping(),
        "caps": free_mapping(),
        "seed": 0,
        "output": "${paths.out_root}/train/task_mix.jsonl",
        "report": "${paths.out_root}/train/task_mix_report.json",
        "licences": free_mapping(),
        "tasks": TASKS,
        # The dataset card beside the mix (pretrain/mix_card.py): its title, and the
        # hub licence id of each source (a list in the card's front matter).
        "card": "${paths.out_root}/train/README.md",
        "pretty_name": "Multilingual image-text instruction mix",
        "licence_ids": free_mapping(),
    },
}
KEYS = ("context", "label", "image_id", "task", "lang")
OFFSET_BITS = 40  # a reference is (file index << 40) | byte offset: files up to 1 TB


# -- config --------------------------------------------------------------------
def parse_inputs(items) -> list[dict]:
    """merge.inputs -> [{path, source, images, optional}], each entry checked.

    ``images`` names the image collection the row's image_id is relative to
    (default: the source), so one COCO file used by several sources counts as
    one distinct image of the mix."""
    if not isinstance(items, list) or not items:
        raise UserError("merge.inputs: need a non-empty list of {path, source[, images, optional]}")
    out, seen = [], set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise UserError(f"merge.inputs[{i}]: expected {{path, source[, images, optional]}}, got {item!r}")
        unknown = set(item) - {"path", "source", "images", "optional"}
        if unknown:
            raise UserError(f"merge.inputs[{i}]: unknown key(s) {sorted(unknown)}")
        path, source, optional = item.get("path"), item.get("source"), item.get("optional", False)
        if not isinstance(path, str) or not path or not isinstance(source, str) or not source:
            raise UserError(f"merge.inputs[{i}]: path and source must be non-empty strings")
        if not isinstance(optional, bool):
            raise UserError(f"merge.inputs[{i}].optional must be true/false")
        images = item.get("images", source)
        if not isinstance(images, str) or not images:
            raise UserError(f"merge.inputs[{i}].images must be a non-empty string")
        if path in seen:
            raise UserError(f"merge.inputs[{i}]: {path} is listed twice")
        seen.add(path)
        out.append({"path": Path(path), "source": source, "images": images, "optional": optional})
    return out


def check_numbers(name: str, mapping: dict, tasks: list[str], kind) -> dict:
    for task, value in mapping.items():
        if task not in tasks:
            raise UserError(f"merge.{name}.{task}: not a task of merge.tasks")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                or (kind is int and not isinstance(value, int)):
            raise UserError(f"merge.{name}.{task}: need a non-negative {'integer' if kind is int else 'number'}")
    return mapping


# -- rows ----------------------------------------------------------------------
def check_row(row, tasks: set, languages) -> str | None:
    """Why a training row breaks the schema, or None."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    if set(row) != set(KEYS):
        missing, extra = sorted(set(KEYS) - set(row)), sorted(set(row) - set(KEYS))
        return "keys must be exactly " + ", ".join(KEYS) + \
            (f" (missing {missing})" if missing else "") + (f" (unexpected {extra})" if extra else "")
    for key in KEYS:
        if not isinstance(row[key], str):
            return f"{key} must be a string, got {type(row[key]).__name__}"
        if not row[key].strip():
            return f"{key} is empty"
    if row["task"] not in tasks:
        return f"unknown task {row['task']!r}"
    if row["lang"] not in languages:
        return f"unknown language code {row['lang']!r}"
    return None


def scan(inputs: list[dict], tasks: list[str],
         hashes: dict[str, array] | None = None) -> tuple[dict[str, array], dict]:
    """First pass: validate every row (a task that does not belong in its file,
    ``item["tasks"]``, is an error too); -> ({task: refs}, {path: {task: rows}}).
    ``hashes`` gets each row's hash, parallel to the refs (for ``drop_duplicates``)."""
    languages = load_languages()
    task_set = set(tasks)
    refs: dict[str, array] = {t: array("q") for t in tasks}
    hashes = hashes if hashes is not None else {}
    hashes.update({t: array("q") for t in tasks})
    per_file: dict[str, dict] = {}
    for fi, item in enumerate(inputs):
        path = item["path"]
        counts: collections.Counter = collections.Counter()
        traditional = 0
        with open(path, "rb") as f:
            offset = 0
            for lineno, line in enumerate(f, 1):
                start, offset = offset, offset + len(line)
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise UserError(f"{path}:{lineno}: malformed JSON ({e})") from None
                except RecursionError:
                    raise UserError(f"{path}:{lineno}: {TOO_DEEP}") from None
                reason = check_row(row, task_set, languages)
                if not reason and item.get("tasks") and row["task"] not in item["tasks"]:
                    reason = (f"task {row['task']!r} does not belong in this file (it holds "
                              f"{', '.join(item['tasks'])}): a file of another step?")
                if reason:
                    raise UserError(f"{path}:{lineno}: {reason}")
                refs[row["task"]].append((fi << OFFSET_BITS) | start)
                hashes[row["task"]].append(hash(tuple(row[k] for k in KEYS)))
                counts[row["task"]] += 1
                if row["lang"] == "zh" and not is_simplified(row["context"] + row["label"]):
                    traditional += 1
        per_file[str(path)] = dict(counts)
        if traditional:  # every zh text should be Simplified (common/scripts.py)
            print(f"[merge] warning: {path}: {traditional} zh rows hold Traditional characters", file=sys.stderr)
        print(f"[merge] {path}: {sum(counts.values())} rows", file=sys.stderr)
    return refs, per_file


def line_of(path: Path, offset: int) -> int:
    """The line number of the row at byte ``offset`` (for a message)."""
    with open(path, "rb") as f:
        return f.read(offset).count(b"\n") + 1


def drop_duplicates(refs: dict[str, array], hashes: dict[str, array], inputs: list[dict]) -> dict[str, int]:
    """Rows equal in all five keys are one training example: keep the first
    (in input order), drop the others, and say so. Returns {task: rows dropped}."""
    dropped, examples = {}, []
    for task, h in hashes.items():
        hv = np.frombuffer(h, dtype=np.int64) if len(h) else np.zeros(0, dtype=np.int64)
        keep = np.zeros(len(hv), dtype=bool)
        keep[np.unique(hv, return_index=True)[1]] = True
        if keep.all():
            continue
        r = np.frombuffer(refs[task], dtype=np.int64)
        for ref in r[~keep][:max(0, 3 - len(examples))].tolist():
            path = inputs[ref >> OFFSET_BITS]["path"]
            examples.append(f"{path}:{line_of(path, ref & ((1 << OFFSET_BITS) - 1))}")
        refs[task] = array("q", r[keep].tobytes())
        dropped[task] = int((~keep).sum())
    if dropped:
        print(f"[merge] warning: dropped {sum(dropped.values())} duplicated rows (equal in "
              f"{', '.join(KEYS)}; the first is kept): {dropped}, e.g. {'; '.join(examples)}", file=sys.stderr)
    return dropped


def check_paths(inputs: list[dict], cfg, argv) -> None:
    """Before any work: no input may be overwritten by the merge's own outputs,
    and each input learns the tasks it may hold (``item["tasks"]``: from the
    pipeline step that writes it, else from a file named ``<task>.jsonl``)."""
    from common import pipeline   # the ordered list of steps, above this one
    report = cfg.path("merge.report")
    ours = {item.strip("${}"): p for item in pipeline.get("merge").writes for p in records.expand(cfg, item)}
    ours.update({"merge.report (.md)": report.with_suffix(".md"), "merge.report (.png)": report.with_suffix(".png")})
    known = pipeline.final_files(argv)
    for i, item in enumerate(inputs):
        resolved = item["path"].resolve()
        for key, path in ours.items():
            if path.resolve() == resolved:
                raise UserError(f"{key}: {path} is also merge.inputs[{i}]; the merge would overwrite its own input")
        stem = item["path"].name.split(".")[0]
        item["tasks"] = known.get(resolved) or ((stem,) if stem in TASKS else None)


def select(refs: array, weight: float, cap: int | None, r: np.random.Generator) -> np.ndarray:
    """Weight (whole copies plus a seeded sample for the fraction), then cap."""
    base = np.frombuffer(refs, dtype=np.int64) if len(refs) else np.zeros(0, dtype=np.int64)
    n = len(base)
    whole, frac = int(weight), weight - int(weight)
    parts = [base] * whole
    extra = int(round(n * frac))
    if extra:
        parts.append(np.sort(r.choice(n, size=extra, replace=False)).astype(np.int64))
        parts[-1] = base[parts[-1]]
    chosen = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if cap is not None and len(chosen) > cap:
        chosen = chosen[np.sort(r.choice(len(chosen), size=cap, replace=False))]
    return chosen


def write_mix(inputs: list[dict], order: np.ndarray, out_path: Path) -> dict:
    """Second pass: copy the chosen rows in shuffled order; -> per-task statistics."""
    stats: dict[str, dict] = collections.defaultdict(lambda: {"rows": 0, "images": set(),
                                                              "langs": collections.Counter()})
    mask = (1 << OFFSET_BITS) - 1
    files = [open(item["path"], "rb") for item in inputs]
    try:
        with atomic_open(out_path, "wb") as out:
            for ref in order.tolist():
                f = files[ref >> OFFSET_BITS]
                f.seek(ref & mask)
                line = f.readline()
                row = json.loads(line)
                out.write(line if line.endswith(b"\n") else line + b"\n")
                # image ids are relative to each collection's root: count (collection, id)
                image = hash((inputs[ref >> OFFSET_BITS]["images"], row["image_id"]))
                for key in (row["task"], None):
                    s = stats[key]
                    s["rows"] += 1
                    s["images"].add(image)
                    s["langs"][row["lang"]] += 1
    finally:
        for f in files:
            f.close()
    return stats


# -- report --------------------------------------------------------------------
def build_report(inputs, per_file, refs, stats, source_of, licences, weights, caps, out_path) -> dict:
    def summary(s):
        return {"rows": s["rows"], "distinct_images": len(s["images"]), "languages": len(s["langs"]),
                "rows_per_language": dict(sorted(s["langs"].items(), key=lambda kv: (-kv[1], kv[0])))}
    empty = {"rows": 0, "images": set(), "langs": collections.Counter()}
    tasks = {}
    for task in refs:
        if not len(refs[task]) and task not in stats:
            continue
        src = source_of.get(task, "")
        tasks[task] = {"rows_in": len(refs[task]), **summary(stats.get(task, empty)),
                       "weight": weights.get(task, 1.0), "cap": caps.get(task), "source": src,
                       "licence": licences.get(src, "not set (add merge.licences." + src + ")")}
    return {"output": str(out_path), "inputs": per_file,
            "missing_optional_inputs": [str(i["path"]) for i in inputs if i.get("missing")],
            "tasks": tasks, "mix": summary(stats.get(None, empty))}


def markdown(report: dict) -> str:
    lines = ["# Task mix", "", f"Output: `{Path(report['output']).name}`", "",
             "| task | source | rows in | rows | distinct images | languages | licence |",
             "|---|---|---:|---:|---:|---:|---|"]
    for task, t in report["tasks"].items():
        lines.append(f"| {task} | {t['source']} | {t['rows_in']} | {t['rows']} | {t['distinct_images']} | "
                     f"{t['languages']} | {t['licence']} |")
    m = report["mix"]
    lines.append(f"| **mix** | | | **{m['rows']}** | **{m['distinct_images']}** | **{m['languages']}** | |")
    if report["missing_optional_inputs"]:
        lines += ["", "Optional inputs not found: " + ", ".join(f"`{p}`" for p in report["missing_optional_inputs"])]
    lines += ["", "Use of the mix must follow the licence of every source above.", ""]
    if "languages" in report:   # target and actual shares, fallbacks, decontamination (pretrain/mix_card.py)
        return "\n".join(lines + mix_card.markdown_sections(report)) + "\n"
    lines += ["## Rows per language (mix)", "", "| lang | rows |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in m["rows_per_language"].items()]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    per_lang = report["mix"]["rows_per_language"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(per_lang) + 2), 4))
    ax.bar(list(per_lang), list(per_lang.values()), color="#3a6ea5")
    ax.set_yscale("log")
    ax.set_ylabel("rows (log)")
    ax.set_title(f"task mix: rows per language ({report['mix']['rows']} rows)")
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)



STEP = Step("merge", "pretrain.merge_train", "merge_train", "merge every final training file",
            reads=(table_inputs, "merge.inputs", mix_card.report_inputs), writes=("${merge.output}", "${merge.report}", "${merge.card}"),
            after=("capfilt.final", "match.final", "mscoco.final", "vqav2.final", "aokvqa.generate",
                   "llava.final", "imagenet.generate"),
            shaped_by=("merge",), defaults=DEFAULTS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    m = cfg.at("merge")
    inputs = parse_inputs(m["inputs"])
    tasks = [str(t) for t in m["tasks"]]
    unknown_tasks = set(tasks) - set(TASKS)
    if unknown_tasks:
        print(f"warning: merge.tasks names tasks no pipeline step writes: {sorted(unknown_tasks)}", file=sys.stderr)
    weights = check_numbers("weights", m["weights"], tasks, float)
    caps = check_numbers("caps", m["caps"], tasks, int)
    argv = list(sys.argv[1:] if argv is None else argv)
    check_paths(inputs, cfg, argv)
    lifecycle.run_step(STEP, cfg, argv, lambda: merge(cfg, inputs, tasks, weights, caps))


def merge(cfg, inputs: list[dict], tasks: list[str], weights: dict, caps: dict) -> dict:
    """The mix, its report (+ .md, .png) and dataset card; returns the step report."""
    m = cfg.at("merge")
    for item in inputs:  # every input checked before any work
        if not item["path"].is_file():
            if not item["optional"]:
                raise UserError(f"merge.inputs: input file not found: {item['path']} "
                                f"(produce it first, or mark it optional: true)")
            item["missing"] = True
            print(f"warning: optional input not found, skipped: {item['path']}", file=sys.stderr)
    present = [i for i in inputs if not i.get("missing")]
    hashes: dict[str, array] = {}
    refs, per_file = scan(present, tasks, hashes)
    dropped = drop_duplicates(refs, hashes, present)
    del hashes
    source_of: dict[str, str] = {}
    for item in present:
        for task in per_file[str(item["path"])]:
            source_of.setdefault(task, item["source"])
    gen = np.random.default_rng(rng(m["seed"], "merge").getrandbits(64))
    chosen = [select(refs[t], float(weights.get(t, 1.0)), caps.get(t), gen) for t in tasks]
    order = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    order = order[gen.permutation(len(order))]
    out_path = cfg.path("merge.output")
    stats = write_mix(present, order, out_path)
    report = build_report(inputs, per_file, refs, stats, source_of, m["licences"], weights, caps, out_path)
    mix_card.explain(report, cfg, tasks)
    report_path = cfg.path("merge.report")
    write_json(report_path, report, indent=2)
    with atomic_open(report_path.with_suffix(".md")) as f:
        f.write(markdown(report))
    plot(report, report_path.with_suffix(".png"))
    with atomic_open(cfg.path("merge.card")) as f:
        f.write(mix_card.card(report, cfg))
    print(f"dataset card: {cfg.path('merge.card')}", file=sys.stderr)
    print(markdown(report).split("\n## ")[0], file=sys.stderr)
    print(f"wrote {len(order)} rows -> {out_path}; report {report_path} (.md, .png)", file=sys.stderr)
    return {"stage": "merge", "rows_out": len(order), "inputs": per_file,
            "missing_optional_inputs": report["missing_optional_inputs"],
            "duplicates_dropped": dropped, "mix_report": str(report_path)}


if __name__ == "__main__":
    main()
