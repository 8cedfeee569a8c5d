"""No evaluation image in training: the filter every step that writes a final
training file applies (``train/*.jsonl``, and so the mix).

The evaluation sets (``eval_data/sets.py``) are read from the raw release
files that the evaluation converters read, by the converters' own readers,
named by the same configs
(``configs/mscoco.yaml``, ``vqav2.yaml`` and ``eval_data.yaml``, looked up
next to the step's ``--config`` like ``paths.yaml``, with the step's
``paths.*``), so the set does not depend on which steps ran before. Each set
is cached in ``decontam.cache_dir`` under the fingerprints of its raw files
and the values that select from them (splits), and recomputed when they change.

A training row whose image is in an evaluation set is dropped, and counted
per task, per evaluation set and per language (by the English run of a
translated source, before translation: ``drop``; its final run adopts those
counts and asserts that no such row reached it: ``english_counts``,
``check_final``), unless
``decontam.exclude.<set>`` is false: then the row is kept and counted as kept,
and the report says the exclusion is off. A training row's texts (instruction
and target) identical to an evaluation text (after normalising case,
whitespace and punctuation) are counted with examples, not dropped.

The shared section (``configs/decontam.yaml``) of every step that writes a
final training file::

    decontam:
      exclude: {mscoco: true, chair: true, pope: true, vqav2: true, ...}
      cache_dir: ${paths.work_dir}/decontam
"""
from __future__ import annotations

import collections
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from common.config import REPO_ROOT, Config, build_config
from common.errors import UserError
from common.jsonl import BadRows, read_json_object, read_jsonl, write_json
from eval_data.keys import coco_key, text_hash, web_keys
from eval_data.sets import IMAGE_SETS, SETS, EvalSet

DEFAULTS = {
    "exclude": {name: True for name in IMAGE_SETS},
    "cache_dir": "${paths.work_dir}/decontam",
}
CACHE_VERSION = 1
EXAMPLES = 5
# The config files whose values name the evaluation files, and a step whose schema reads each.
_CONFIGS = {"mscoco": "mscoco.eval", "vqav2": "vqav2.eval", "eval_data": "eval.pope"}
_BUILT: dict[str, dict[str, Config]] = {}


def eval_configs(cfg: Config) -> dict[str, Config]:
    """The mscoco, vqav2 and eval_data configs as the converters would load
    them (the files next to ``cfg``'s own, else configs/), with ``cfg``'s paths."""
    from common import pipeline, steptype   # the ordered list, above the step modules: read at call time
    source = Path(getattr(cfg, "source", "") or "")
    config_dir = source.parent if source.suffix in (".yaml", ".yml") else REPO_ROOT / "configs"
    overrides = [f"paths.{k}={v}" for k, v in sorted(cfg.get("paths", {}).items()) if isinstance(v, str) and v]
    memo = json.dumps([str(config_dir), overrides])
    if memo not in _BUILT:
        built = {}
        for name, step_id in _CONFIGS.items():
            step = pipeline.get(step_id)
            file = config_dir / f"{name}.yaml"
            built[name] = build_config(steptype.schema(step), file if file.is_file() else step.config_file, overrides)
        _BUILT[memo] = built
    return _BUILT[memo]


def inputs(cfg: Config, collection: str) -> list[Path]:
    """The raw files of the image sets of ``collection``: what a final training
    file of it depends on (``reads`` of its step; the other sets'
    texts only shape the reports' counts)."""
    cfgs = eval_configs(cfg)
    return sorted({p for s in SETS if collection in s.collections for p in s.files(cfgs[s.config])})


def coco_inputs(cfg: Config) -> list[Path]:
    return inputs(cfg, "coco")


def web_inputs(cfg: Config) -> list[Path]:
    return inputs(cfg, "web")


# -- loading, with a cache -------------------------------------------------------------------------
@dataclass
class Loaded:
    spec: EvalSet
    exclude: bool | None          # None: no image of this set can be in the step's collection
    images: frozenset
    texts: frozenset
    files: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        out = {"title": self.spec.title, "exclude": self.exclude,
               "images": len(self.images) if self.spec.images and self.files else None,
               "texts": len(self.texts), "files": self.files}
        if self.exclude is None and self.spec.images:
            out["applies"] = False     # its images are of another collection than the step's
        if self.missing:
            out["missing_files"] = self.missing
        if self.spec.note:
            out["note"] = self.spec.note
        return out


def _fingerprints(files: list[Path], known: dict) -> dict:
    from common.records import file_fingerprint
    return {str(p): file_fingerprint(p, known.get(str(p))) for p in files}


def _cached(spec: EvalSet, files: list[Path], params: dict, cache_dir: Path | None) -> tuple[set, set]:
    """(image keys, text hashes) of one set: from the cache while its raw files
    (content fingerprints) and params are the ones it was made from."""
    from common.records import same_content
    path = cache_dir / f"{spec.name}.json" if cache_dir else None
    old = read_json_object(path) if path is not None else None
    known = old.get("files", {}) if old is not None else {}
    fps = _fingerprints(files, known)
    if old is not None and old.get("version") == CACHE_VERSION and old.get("params") == params \
            and set(known) == set(fps) and all(same_content(known[k], fps[k]) for k in fps):
        return set(old.get("images", [])), set(old.get("texts", []))
    images, texts = spec.read(files, params)
    images.discard(None)
    texts.discard(None)
    if path is not None:
        write_json(path, {"version": CACHE_VERSION, "set": spec.name, "files": fps, "params": params,
                          "images": sorted(images), "texts": sorted(texts)})
    return images, texts


def load_sets(cfg: Config, collection: str) -> list[Loaded]:
    """Every evaluation set, with its switch where its images can be in
    ``collection`` (coco | web). Such a set whose exclusion is on needs the raw
    files that hold its images: any missing stop the step (one UserError naming
    the first file and the switches that would train without excluding them);
    files that only add texts, and other sets' files, may be missing."""
    d = cfg.at("decontam")
    cache_dir = cfg.path("decontam.cache_dir") if str(d.get("cache_dir") or "") else None
    cfgs = eval_configs(cfg)
    out, lacking = [], []
    for spec in SETS:
        exclude = bool(d["exclude"].get(spec.name, True)) if collection in spec.collections else None
        files = spec.files(cfgs[spec.config])
        needed = [p for p in spec.required_files(cfgs[spec.config]) if not p.is_file()] if exclude else []
        if needed:
            lacking.append((spec, needed[0]))
            continue
        present = [p for p in files if p.is_file()]
        images, texts = _cached(spec, present, spec.params(cfgs[spec.config]), cache_dir) if present else (set(), set())
        out.append(Loaded(spec, exclude, frozenset(images), frozenset(texts), [str(p) for p in present],
                          [str(p) for p in files if not p.is_file()]))
    if lacking:
        spec, path = lacking[0]
        names = ", ".join(s.name for s, _ in lacking)
        raise UserError(f"decontam: the raw files of {len(lacking)} evaluation set(s) ({names}) are missing, e.g. "
                        f"{spec.title}: {path}; their images must not be trained on: get the files, or train "
                        "without excluding them: " + " ".join(f"--set decontam.exclude.{s.name}=false"
                                                               for s, _ in lacking))
    return out


# -- the filter ------------------------------------------------------------------------------------
class TaskCounts:
    def __init__(self) -> None:
        self.rows = 0
        self.dropped = 0
        self.dropped_by_set: collections.Counter = collections.Counter()
        self.kept_by_set: collections.Counter = collections.Counter()
        self.dropped_by_lang: collections.Counter = collections.Counter()
        self.identical = 0
        self.identical_by_set: collections.Counter = collections.Counter()
        self.examples: list[dict] = []

    def as_dict(self) -> dict:
        return {"rows_checked": self.rows, "rows_dropped": self.dropped,
                "dropped_by_eval_set": dict(sorted(self.dropped_by_set.items())),
                "kept_with_eval_image_by_eval_set": dict(sorted(self.kept_by_set.items())),
                "dropped_by_language": dict(sorted(self.dropped_by_lang.items())),
                "rows_with_identical_text": self.identical,
                "identical_text_by_eval_set": dict(sorted(self.identical_by_set.items())),
                "identical_text_examples": self.examples}


class Decontaminator:
    """``keep(task, image_keys, row)``: whether a final training row may be
    written; counts everything for ``report()``. ``collection``: the images
    the step's rows are on (``coco`` or ``web``)."""

    def __init__(self, cfg: Config, collection: str):
        self.sets = load_sets(cfg, collection)
        self.excluded = {s.spec.name for s in self.sets if s.exclude}
        self.images: dict[str, tuple[str, ...]] = {}
        self.texts: dict[int, tuple[str, ...]] = {}
        names: dict[tuple, tuple] = {}   # one tuple object per combination of sets (memory)
        for s in self.sets:
            indexes = ((self.images, s.images), (self.texts, s.texts)) if s.exclude is not None else \
                ((self.texts, s.texts),)
            for index, keys in indexes:
                for k in keys:
                    t = index.get(k, ()) + (s.spec.name,)
                    index[k] = names.setdefault(t, t)
        self.tasks: dict[str, TaskCounts] = collections.defaultdict(TaskCounts)
        self.adopted = False   # counts taken from the English run's report (``adopt``)

    def hits(self, keys: Iterable[str | None]) -> set[str]:
        return {name for k in keys if k for name in self.images.get(k, ())}

    def drop(self, task: str, keys: Iterable[str | None], lang: str) -> bool:
        """Whether a row on these image keys is dropped (its image is in an
        excluded evaluation set); counts the row, its sets and ``lang``. An
        English run calls it, before translation."""
        c = self.tasks[task]
        c.rows += 1
        hits = self.hits(keys)
        for name in hits:
            (c.dropped_by_set if name in self.excluded else c.kept_by_set)[name] += 1
        if hits & self.excluded:
            c.dropped += 1
            c.dropped_by_lang[lang] += 1
            return True
        return False

    def keep(self, task: str, keys: Iterable[str | None], row: dict) -> bool:
        """Whether a final training row may be written (``drop``, then its texts counted)."""
        if self.drop(task, keys, row.get("lang", "")):
            return False
        self._check_texts(self.tasks[task], task, row)
        return True

    def adopt(self, english: dict | None, english_step: str, rerun: str) -> None:
        """Start the counts from the English run's report (``decontamination``):
        the final run of a translated source checks rows the English run
        already filtered. It must have used these sets and switches; without
        its report (an input made by hand) the final run's own counts stand, with a warning."""
        if english is None:
            print(f"WARNING: decontam: no report of step {english_step} with decontamination counts: the rows "
                  "its English run dropped are not counted here", file=sys.stderr)
            return
        if english.get("key") != self.key():
            raise UserError(f"decontam: the report of step {english_step} does not record this config's "
                            f"evaluation sets and switches (decontam.*): rerun {rerun}")
        for task, d in english.get("tasks", {}).items():
            c = self.tasks[task]
            c.rows, c.dropped = d["rows_checked"], d["rows_dropped"]
            c.dropped_by_set.update(d["dropped_by_eval_set"])
            c.kept_by_set.update(d["kept_with_eval_image_by_eval_set"])
            c.dropped_by_lang.update(d["dropped_by_language"])
        self.adopted = True

    def check_final(self, task: str, keys: Iterable[str | None], row: dict, rerun: str) -> None:
        """The final run's assertion: no row on an excluded evaluation image got
        past the English run (an error naming the run to redo); texts counted."""
        if not self.adopted:
            self.tasks[task].rows += 1
        hits = self.hits(keys) & self.excluded
        if hits:
            raise UserError(f"decontam: a {task} row on an evaluation image ({', '.join(sorted(hits))}: "
                            f"{row.get('image_id')}) reached the final run; the English run drops them before "
                            f"translation: rerun {rerun} and the steps after it")
        self._check_texts(self.tasks[task], task, row)

    def checked(self, pairs: Iterable[tuple[str, dict]], keys_of, rerun: str) -> Iterator[tuple[str, dict]]:
        """(task, final row) pairs, each through ``check_final`` (``keys_of(row)``: its image keys)."""
        for task, row in pairs:
            self.check_final(task, keys_of(row), row, rerun)
            yield task, row

    def _check_texts(self, c: TaskCounts, task: str, row: dict) -> None:
        found: dict[str, tuple[str, ...]] = {}
        for key in ("context", "label"):
            names = self.texts.get(text_hash(row.get(key)))
            if names:
                found[key] = names
        if not found:
            return
        c.identical += 1
        for name in {n for names in found.values() for n in names}:
            c.identical_by_set[name] += 1
        if len(c.examples) < EXAMPLES:
            key = next(iter(found))
            c.examples.append({"task": task, "field": key, "text": row[key][:200], "eval_sets": list(found[key])})

    def filter(self, pairs: Iterable[tuple[str, dict]], keys_of) -> Iterator[tuple[str, dict]]:
        """(task, final row) pairs whose image (``keys_of(row)``) is in no excluded evaluation set."""
        for task, row in pairs:
            if self.keep(task, keys_of(row), row):
                yield task, row

    def key(self) -> str:
        """A fingerprint of the evaluation sets and switches this filter used."""
        h = hashlib.sha256()
        for s in self.sets:
            h.update(json.dumps([s.spec.name, s.exclude, sorted(s.images), len(s.texts)]).encode())
        return h.hexdigest()

    def report(self) -> dict:
        return {"eval_sets": {s.spec.name: s.summary() for s in self.sets},
                "exclusion_off": sorted(s.spec.name for s in self.sets if s.exclude is False),
                "key": self.key(),
                "tasks": {task: c.as_dict() for task, c in self.tasks.items()}}

    def print(self, file=None) -> None:
        for line in summary_lines(self.report()):
            print(line, file=file or sys.stderr)

    def record(self, report) -> None:
        """The counts into a step's report (``decontamination``), and a few lines to stderr."""
        report.extra["decontamination"] = self.report()
        self.print()


def english_counts(cfg: Config, collection: str, english_step: str, rerun: str) -> Decontaminator:
    """The final run's filter: this config's sets, with the row counts of the
    English run's report (``reports/<english_step>.json``), which dropped the
    rows on evaluation images before translation (``rerun``: the command that
    remakes it, for the error when the report is not of these sets)."""
    from common import lifecycle
    dec = Decontaminator(cfg, collection)
    english = read_json_object(lifecycle.report_path(english_step, cfg)) or {}
    dec.adopt(english.get("decontamination"), english_step, rerun)
    return dec


def summary_lines(rep: dict) -> list[str]:
    """A few readable lines of a decontamination report."""
    lines = []
    for task, t in rep.get("tasks", {}).items():
        by = ", ".join(f"{k} {v}" for k, v in t["dropped_by_eval_set"].items()) or "none"
        lines.append(f"[decontam] {task}: {t['rows_dropped']} of {t['rows_checked']} rows dropped "
                     f"(evaluation images of: {by}); {t['rows_with_identical_text']} kept rows with a text "
                     "identical to an evaluation text")
        if t["kept_with_eval_image_by_eval_set"]:
            kept = ", ".join(f"{k} {v}" for k, v in t["kept_with_eval_image_by_eval_set"].items())
            lines.append(f"[decontam] {task}: kept with an evaluation image (exclusion off): {kept}")
    if rep.get("exclusion_off"):
        lines.append("[decontam] exclusion OFF for: " + ", ".join(rep["exclusion_off"])
                     + " (their images stay in training; decontam.exclude.<set>)")
    return lines


def coco_keys(row: dict) -> list[str | None]:
    """The key of a COCO-based training row's image (its image_id is the COCO file name)."""
    return [coco_key(row.get("image_id"))]


def web_images(path: Path, dec: Decontaminator) -> dict[str, list[str]]:
    """image_id -> keys, for the CapFilt rows of ``path`` (id, image_id, url)
    whose URL is an evaluation image: the matching examples name only the image."""
    out: dict[str, list[str]] = {}
    for row in read_jsonl(path, BadRows(max_bad=None, quiet=True)):
        keys = web_keys(row.get("url")) if isinstance(row, dict) else []
        if dec.hits(keys) and isinstance(row.get("image_id"), str):
            out[row["image_id"]] = keys
    return out

