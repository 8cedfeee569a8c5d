"""What the mix report explains beyond its counts, and the dataset card beside the mix.

``explain`` adds to the merge's report, from the reports the steps saved
(``${paths.work_dir}/reports/<step id>.json``, common/pipeline.py):

* ``languages``: per language, the target share (what the translate steps'
  language-split policies ask for, common/languages.py) and the drawn share
  (the draws those steps recorded, before any fallback), the rows of the mix
  by the prompt's and by the target's language (``lang``), the rows whose
  translation fell back to English and why (the translate steps' quality
  verdicts: off-target, length out of bounds, copied, repetition, empty), and
  the rows dropped for an evaluation image;
* ``draws``: rows drawn and each translate step's policy;
* ``decontamination``: per task and evaluation set, the rows dropped for an
  evaluation image (eval_data/decontam.py), the rows kept where an exclusion is
  off, and the training texts identical to an evaluation text.

``card`` writes ``train/README.md``: YAML front matter as dataset hubs read it
(pretty_name, language, license, task_categories, size_categories, configs
with data_files), then the tables of the report.
"""
from __future__ import annotations

import collections
import json
from pathlib import Path

from common import lifecycle, steptype
from common.errors import UserError
from common.jsonl import read_json_object
from common.languages import load_languages
from common.shards import SHARD_GLOB

# What a quality flag (translate/quality.py) means, for the tables.
REASONS = {"off_target": "off-target language", "length_ratio": "length out of bounds (too long or short)",
           "copied_source": "copied the English", "repetition": "runaway repetition", "empty": "empty output"}
# Hub task categories of each task.
TASK_CATEGORIES = {
    "capfilt": "image-to-text", "mscoco": "image-to-text", "llava_detail": "image-to-text",
    "capfilt_match": "visual-question-answering", "vqav2_vqa": "visual-question-answering",
    "aokvqa_cot": "visual-question-answering", "llava_conversation": "visual-question-answering",
    "imagenet_decide": "visual-question-answering", "vqav2_vqg": "image-text-to-text",
    "aokvqa_explain": "image-text-to-text", "imagenet_classify": "image-classification",
}
# Our codes that hubs spell otherwise (ISO 639-1 replaced iw by he).
HUB_CODES = {"iw": "he"}
SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


# -- the steps' reports ------------------------------------------------------------------------------
def step_report(step_id: str, cfg) -> tuple[dict | None, str]:
    """The report a step saved: its own file, or the sum of its shards' (the
    newest of the two). -> (report or None, where it came from)."""
    try:
        whole = lifecycle.report_path(step_id, cfg)
    except UserError:
        return None, "paths.work_dir not set"
    shards = sorted(whole.parent.glob(f"{step_id}{SHARD_GLOB}.json")) if whole.parent.is_dir() else []
    newest_shard = max((p.stat().st_mtime for p in shards), default=None)
    if whole.is_file() and (newest_shard is None or whole.stat().st_mtime >= newest_shard):
        return read_json_object(whole), str(whole.name)
    if not shards:
        return None, f"no report {whole.name}"
    n = max(shards, key=lambda p: p.stat().st_mtime).name.rsplit("-of-", 1)[1]
    parts = [r for r in (read_json_object(p) for p in shards if p.name.endswith("-of-" + n)) if r]
    merged: dict = {"fallback_to_english": {}}
    for key in ("drawn", "language_split"):   # every shard draws over the whole file: the same in each
        if parts and key in parts[0]:
            merged[key] = parts[0][key]
    for r in parts:
        for lang, reasons in (r.get("fallback_to_english") or {}).items():
            for reason, k in reasons.items():
                slot = merged["fallback_to_english"].setdefault(lang, {})
                slot[reason] = slot.get(reason, 0) + k
    return merged, f"{len(parts)} shard reports of {step_id}"


def rows_translated(step: steptype.Step) -> bool:
    """A translate step over rows (each row draws a language; its rows are dealt to
    shards), not one that translates templates only (imagenet.translate)."""
    return step.rule is not None


def report_inputs(cfg) -> list[Path]:
    """The step reports the mix report reads (the final steps' decontamination
    counts, the translate steps' fallbacks): the merge step declares them, so a
    changed report makes the merge stale."""
    from common import pipeline   # the ordered list, above the step modules: read at call time
    tasks = [str(t) for t in cfg.at("merge.tasks")]
    ids = []
    for step in _steps_of(tasks):
        ids.append(step.id)
        if step.after and step.after[0].endswith(".translate") and rows_translated(pipeline.get(step.after[0])):
            ids.append(step.after[0])
    try:
        return [lifecycle.report_path(sid, cfg) for sid in dict.fromkeys(ids)]
    except UserError:
        return []   # paths.work_dir not set: the merge stops on it before any work


def _steps_of(tasks: list[str]) -> list[steptype.Step]:
    from common import pipeline   # the ordered list, above the step modules: read at call time
    return [s for s in pipeline.STEPS if set(s.tasks) & set(tasks)]


# -- explain -----------------------------------------------------------------------------------------
def fallbacks(tasks: list[str], cfg) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """{language: {reason: rows}} summed over the translate steps of the mix's
    sources, and where each step's counts came from."""
    from common import pipeline   # the ordered list, above the step modules: read at call time
    total: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    sources = {}
    for step in _steps_of(tasks):
        if not step.after or not step.after[0].endswith(".translate") or not rows_translated(pipeline.get(step.after[0])):
            continue
        rep, where = step_report(step.after[0], cfg)
        sources[step.after[0]] = where if rep is not None and "fallback_to_english" in rep else f"not recorded ({where})"
        for lang, reasons in ((rep or {}).get("fallback_to_english") or {}).items():
            total[lang].update(reasons)
    return {k: dict(v) for k, v in sorted(total.items())}, sources


def _translate_steps(tasks: list[str]) -> list[str]:
    """The translate steps that draw a language per row for the mix's tasks, in pipeline order."""
    from common import pipeline   # the ordered list, above the step modules: read at call time
    out = [s.after[0] for s in _steps_of(tasks) if s.after and s.after[0].endswith(".translate")
           and pipeline.get(s.after[0]).reads]
    return list(dict.fromkeys(out))


def draws(tasks: list[str], cfg) -> dict:
    """What the translate steps drew (their reports): rows drawn per language
    (before any fallback to English), the rows each language's target share
    asks for under each step's policy, and the policies."""
    drawn, target = collections.Counter(), collections.Counter()
    policies, missing = {}, []
    for step_id in _translate_steps(tasks):
        rep, where = step_report(step_id, cfg)
        if not rep or "drawn" not in rep or "language_split" not in rep:
            missing.append(f"{step_id} ({where if rep is None else 'no draws recorded: rerun it'})")
            continue
        n = sum(rep["drawn"].values())
        drawn.update(rep["drawn"])
        for lang, pct in rep["language_split"].get("target_percent", {}).items():
            target[lang] += n * pct / 100
        policies[step_id] = {k: v for k, v in rep["language_split"].items() if k != "target_percent"}
    return {"drawn": dict(drawn), "target_rows": dict(target), "policies": policies, "not_recorded": missing}


def prompt_languages(report: dict, cfg, tasks: list[str]) -> dict[str, int]:
    """Rows of the mix per language of the prompt. A row's ``lang`` is its
    target's language; where a step recorded its prompts' languages
    (``<task>_prompt_languages``: VQAv2 questions in the drawn language with an
    English answer), the task's rows are counted by those, scaled to the rows
    the mix took of the task (exact at weight 1 without a cap)."""
    out = collections.Counter(report["mix"]["rows_per_language"])
    for step in _steps_of(tasks):
        rep = None
        for task in step.tasks:
            t = report["tasks"].get(task)
            if not t or not t["rows"]:
                continue
            rep = rep or step_report(step.id, cfg)[0] or {}
            prompts, targets = rep.get(f"{task}_prompt_languages"), rep.get(f"{task}_languages")
            if not prompts or not targets:
                continue
            scale = t["rows"] / (sum(targets.values()) or 1)
            out.subtract(t["rows_per_language"])
            out.update({lang: round(k * scale) for lang, k in prompts.items()})
    return {k: v for k, v in out.items() if v > 0}


def decontamination(tasks: list[str], cfg) -> dict:
    """Per task, the decontamination counts its step recorded."""
    out: dict = {"tasks": {}, "eval_sets": {}, "exclusion_off": [], "not_recorded": []}
    totals: collections.Counter = collections.Counter()
    for step in _steps_of(tasks):
        rep, where = step_report(step.id, cfg)
        dec = (rep or {}).get("decontamination")
        if not dec:
            reason = "ImageNet train images: no evaluation set uses them" if step.id.startswith("imagenet") \
                else where
            out["not_recorded"] += [f"{t} ({reason})" for t in step.tasks if t in tasks]
            continue
        for name, v in dec.get("eval_sets", {}).items():   # the summary of a step it applies to, if any
            if name not in out["eval_sets"] or out["eval_sets"][name].get("exclude") is None:
                out["eval_sets"][name] = {k: x for k, x in v.items() if k not in ("files", "applies")}
        out["exclusion_off"] = sorted(set(out["exclusion_off"]) | set(dec.get("exclusion_off", [])))
        for task, t in dec.get("tasks", {}).items():
            if task in tasks:
                out["tasks"][task] = t
                totals.update(t["dropped_by_eval_set"])
    out["rows_dropped"] = sum(t["rows_dropped"] for t in out["tasks"].values())
    out["dropped_by_eval_set"] = dict(sorted(totals.items()))
    out["rows_with_identical_text"] = sum(t["rows_with_identical_text"] for t in out["tasks"].values())
    return out


def languages(report: dict, fell_back: dict, dec: dict, drew: dict, prompts: dict[str, int]) -> dict[str, dict]:
    """Per language of the mix (or drawn, or with a fallback): target and drawn
    shares (from the translate steps' draws), rows by the prompt's and by the
    target's language, and why rows are English."""
    table = load_languages()
    mix = report["mix"]["rows_per_language"]
    drawn, target = drew["drawn"], drew["target_rows"]
    dropped = collections.Counter()
    for t in dec["tasks"].values():
        dropped.update(t.get("dropped_by_language", {}))
    codes = [c for c in table if c in mix or c in prompts or c in drawn or c in fell_back or c in dropped]
    n_mix, n_drawn = sum(mix.values()) or 1, sum(drawn.values()) or 1
    out = {}
    for c in codes:
        out[c] = {"name": table[c].name, "target_share": round(100 * target.get(c, 0) / n_drawn, 3),
                  "drawn_rows": drawn.get(c, 0), "drawn_share": round(100 * drawn.get(c, 0) / n_drawn, 3),
                  "prompt_rows": prompts.get(c, 0), "prompt_share": round(100 * prompts.get(c, 0) / n_mix, 3),
                  "mix_rows": mix.get(c, 0), "mix_share": round(100 * mix.get(c, 0) / n_mix, 3),
                  "fell_back_to_english": fell_back.get(c, {}), "dropped_eval_image": dropped.get(c, 0)}
    return out


def explain(report: dict, cfg, tasks: list[str]) -> None:
    """Add languages, fallbacks and decontamination to the merge's report (in place)."""
    fell_back, sources = fallbacks(tasks, cfg)
    dec = decontamination(tasks, cfg)
    drew = draws([t for t in tasks if report["tasks"].get(t, {}).get("rows")], cfg)   # the tasks in the mix
    report["fallback_to_english"] = {"by_language": fell_back, "recorded_in": sources,
                                     "rows": sum(sum(v.values()) for v in fell_back.values())}
    report["decontamination"] = dec
    report["draws"] = {"rows": sum(drew["drawn"].values()), "policies": drew["policies"],
                       "not_recorded": drew["not_recorded"]}
    report["mix"]["prompt_rows_per_language"] = dict(sorted(prompt_languages(report, cfg, tasks).items(),
                                                            key=lambda kv: (-kv[1], kv[0])))
    report["languages"] = languages(report, fell_back, dec, drew, report["mix"]["prompt_rows_per_language"])


# -- markdown ----------------------------------------------------------------------------------------
def _policy(split: dict) -> str:
    """'mc4', 'english_share 0.5', 'temperature 0.3'."""
    return " ".join(str(split[k]) for k in ("policy", "english", "alpha") if k in split)


def _reasons(d: dict) -> str:
    return ", ".join(f"{REASONS.get(k, k)} {v}" for k, v in sorted(d.items())) or ""


def markdown_sections(report: dict) -> list[str]:
    """The languages and decontamination tables (for the .md report and the card)."""
    draws = report.get("draws") or {}
    policies = "; ".join(f"{k}: {_policy(v)}" for k, v in draws.get("policies", {}).items()) or "none recorded"
    lines = ["## Languages", "",
             "Drawn: the languages the translate steps drew, one per row, by their language-split policy "
             f"({policies}; {draws.get('rows', 0)} rows drawn), before any fallback to English; target: the "
             "share the policies ask for. Prompt and target: rows of the mix by the language of the prompt and "
             "of the target (the row's `lang`): a VQAv2 question in the drawn language with an English answer "
             "counts under its language as a prompt and under English as a target. A-OKVQA is English and "
             "ImageNet has every language in equal measure, so the whole mix differs from the draws. Fell back: "
             "rows whose translation was rejected at the translate step and stayed English "
             f"({report.get('fallback_to_english', {}).get('rows', 0)} rows in all).", ""]
    if draws.get("not_recorded"):
        lines += ["Draws not recorded: " + ", ".join(draws["not_recorded"]), ""]
    lines += ["| lang | name | target % | drawn % | drawn rows | prompt % | prompt rows | target % (mix) | "
              "target rows | fell back to English (why) | dropped: evaluation image |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for c, r in report.get("languages", {}).items():
        fb = r["fell_back_to_english"]
        lines.append(f"| {c} | {r['name']} | {r['target_share']:.3f} | {r['drawn_share']:.3f} | {r['drawn_rows']} "
                     f"| {r['prompt_share']:.3f} | {r['prompt_rows']} | {r['mix_share']:.3f} | {r['mix_rows']} "
                     f"| {sum(fb.values())}{' (' + _reasons(fb) + ')' if fb else ''} | {r['dropped_eval_image']} |")
    return lines + [""] + decontamination_markdown(report.get("decontamination") or {})


def decontamination_markdown(dec: dict) -> list[str]:
    sets = [k for k, v in dec.get("eval_sets", {}).items() if v.get("exclude") is not None]
    lines = ["## Evaluation images and texts", "",
             f"Rows dropped because their image is an evaluation image: **{dec.get('rows_dropped', 0)}**. "
             "A row can be counted under several sets (Karpathy test images are CHAIR's and VQAv2 val's too).", ""]
    if sets:
        lines += ["| task | rows checked | dropped | " + " | ".join(sets) + " | texts identical to an evaluation text |",
                  "|---|---:|---:|" + "---:|" * len(sets) + "---:|"]
        for task, t in dec.get("tasks", {}).items():
            cells = " | ".join(str(t["dropped_by_eval_set"].get(s, 0)) for s in sets)
            lines.append(f"| {task} | {t['rows_checked']} | {t['rows_dropped']} | {cells} | "
                         f"{t['rows_with_identical_text']} |")
    if dec.get("exclusion_off"):
        lines += ["", "**Exclusion off** (their images stay in training, decontam.exclude.<set>=false): "
                  + ", ".join(dec["exclusion_off"])]
    kept = {task: t["kept_with_eval_image_by_eval_set"] for task, t in dec.get("tasks", {}).items()
            if t.get("kept_with_eval_image_by_eval_set")}
    if kept:
        lines += ["", "Rows kept with an evaluation image: " + "; ".join(f"{k}: {v}" for k, v in kept.items())]
    if dec.get("not_recorded"):
        lines += ["", "Not checked: " + ", ".join(dec["not_recorded"])]
    notes = [f"{k}: {v['note']}" for k, v in dec.get("eval_sets", {}).items() if v.get("note")]
    if notes:
        lines += ["", "Text-only evaluation sets (image overlap not computable):", ""] + [f"- {n}" for n in notes]
    examples = [e for t in dec.get("tasks", {}).values() for e in t.get("identical_text_examples", [])][:10]
    if examples:
        lines += ["", "Training texts identical to an evaluation text (kept; examples):", ""]
        lines += [f"- {e['task']} {e['field']}: \"{e['text']}\" ({', '.join(e['eval_sets'])})" for e in examples]
    return lines


# -- the dataset card --------------------------------------------------------------------------------
def size_category(n: int) -> str:
    for limit, name in SIZES:
        if n < limit:
            return name
    return "n>1B"


def front_matter(report: dict, cfg, mix_name: str, task_files: dict[str, str]) -> list[str]:
    m = cfg.at("merge")
    ids = sorted({str(m["licence_ids"].get(t["source"], "other")) for t in report["tasks"].values() if t["rows"]})
    langs = sorted(HUB_CODES.get(c, c) for c in load_languages() if c in report["mix"]["rows_per_language"])
    cats = sorted({TASK_CATEGORIES.get(t, "image-text-to-text") for t, v in report["tasks"].items() if v["rows"]})
    lines = ["---", f"pretty_name: {json.dumps(m['pretty_name'], ensure_ascii=False)}", "language:"]
    lines += [f"- {c}" for c in langs]
    lines += ["license:"] + [f"- {i}" for i in ids]
    lines += ["multilinguality:", "- multilingual" if len(langs) > 1 else "- monolingual"]
    lines += ["size_categories:", f"- {size_category(report['mix']['rows'])}", "task_categories:"]
    lines += [f"- {c}" for c in cats]
    lines += ["configs:", "- config_name: default", "  default: true", "  data_files:", "  - split: train",
              f"    path: {mix_name}"]
    for task, path in task_files.items():
        lines += [f"- config_name: {task}", "  data_files:", "  - split: train", f"    path: {path}"]
    return lines + ["---"]


def card(report: dict, cfg) -> str:
    """train/README.md: front matter, what the mix is, its tables and licences."""
    out_path = Path(report["output"])
    here = out_path.parent
    task_files = {}
    for path, counts in report["inputs"].items():
        p = Path(path)
        if len(counts) == 1 and p.parent.resolve() == here.resolve():
            task_files[next(iter(counts))] = p.name
    m = report["mix"]
    lines = front_matter(report, cfg, out_path.name, task_files)
    lines += ["", f"# {cfg.at('merge.pretty_name')}", "",
              f"{m['rows']} image-text training examples in {m['languages']} languages on {m['distinct_images']} "
              "distinct images: captioning, image-caption matching, visual question answering and question "
              "generation, reasoning, conversation and classification. English examples were machine-translated "
              "(NLLB-200), each into one language drawn by its mC4 share. Each row has `context` (the instruction), "
              "`label` (the target), `image_id` (the image's path under its collection's root), `task` and `lang`.",
              "", "Images are not included: get them from their sources (MS COCO 2014 train/val, the BLIP CapFilt "
              "web URLs, ImageNet train) and resolve `image_id` against each collection's root.", "",
              "## Tasks", "", "| task | source | rows | distinct images | languages | licence |", "|---|---|---:|---:|---:|---|"]
    for task, t in report["tasks"].items():
        lines.append(f"| {task} | {t['source']} | {t['rows']} | {t['distinct_images']} | {t['languages']} | "
                     f"{t['licence']} |")
    lines += ["", "Using the mix means following the licence and terms of every source above; the `license` list "
              "in the header names them, the most restrictive (non-commercial) included.", ""]
    return "\n".join(lines + markdown_sections(report)) + "\n"
