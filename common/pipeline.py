"""The pipeline, declared once: every step, in order, with what it reads and writes.

Users run the numbered scripts by hand. Everything that needs to know the
steps (the ``status`` command, each script's closing ``next:`` hint, ``make
demo``, the merge's task list, the launchers, the README check) reads them from
``STAGES`` below, and only from there.

A step names config *values*, not paths: ``reads``/``writes`` are strings with
``${section.key}`` references resolved with the step's own config (its YAML,
``configs/paths.yaml`` and the user's ``--set``), so the same declaration
serves every layout. ``shaped_by`` lists the config keys or sections whose
values shape the output (keys that only change speed or logging are left out,
see ``NOT_SHAPING``).

When a step finishes it records a manifest in ``${paths.work_dir}/pipeline/``:
the fingerprint of every file it read and wrote (size, mtime and SHA-256;
the hash is reused while size and mtime are unchanged, as git's index does) and
of the config values that shaped it. A step is then

* ``done``: its outputs exist and match the record, the inputs and config are
  the ones it ran with;
* ``stale``: the outputs exist but the inputs, the config or the outputs
  changed since (or there is no record): rerun it;
* ``missing``: an output does not exist.

Only recorded fingerprints are compared, never one file's mtime against
another's.

Every step script calls ``begin(step_id, cfg)`` before any work (every file it
will write must be writable, one line and exit 2 otherwise; a killed run's
temporaries are removed), saves its report with ``save_report`` (always
``${paths.work_dir}/reports/<step id>.json``) and ends with ``finish``.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .config import REPO_ROOT, Config, build_config, resolve_value
from .errors import UserError
from .jsonl import read_json_object, write_json

CONFIG_DIR = REPO_ROOT / "configs"

# config name -> "module:attribute" of its schema (the DEFAULTS dict).
SCHEMAS = {
    "capfilt": "pretrain.capfilt_config:DEFAULTS",
    "match": "match.settings:DEFAULTS",
    "mscoco": "tasks.mscoco.settings:DEFAULTS",
    "vqav2": "tasks.vqa.settings:DEFAULTS",
    "aokvqa": "tasks.aokvqa.generate_train:DEFAULTS",
    "llava": "tasks.llava.settings:DEFAULTS",
    "imagenet": "tasks.imagenet.settings:DEFAULTS",
    "merge_train": "pretrain.merge_train:DEFAULTS",
    "eval_data": "eval_data.settings:DEFAULTS",
}

# Leaf keys that change speed, logging or bookkeeping, not what a step writes.
NOT_SHAPING = frozenset({
    "progress", "threads", "n_process", "batch_size", "report", "report_dir", "max_bad_rows", "device",
    "cache", "log_dir", "flush_segments", "index_dir", "text_batch", "image_batch", "image_workers",
    "query_batch", "chunk_rows", "cache_dir", "only", "step", "connect_timeout", "read_timeout",
    "max_seconds", "retries", "backoff", "max_backoff", "retry_timeouts", "retry_failed", "user_agent",
    "max_batch_tokens", "dtype", "skipped_images", "num_shards", "shard_index",
    "max_reject_rate", "min_success_rate",   # checks of an outcome, not what is written
})


@dataclass(frozen=True)
class Step:
    id: str                          # "capfilt.filter"
    module: str                      # "pretrain.filter" (the script is pretrain/filter.py)
    config: str                      # a key of SCHEMAS; its YAML is configs/<config>.yaml
    title: str                       # what the step does, in a few words
    reads: tuple[str, ...] = ()      # input files ("${filter.input}"); see expand()
    writes: tuple[str, ...] = ()     # output files or folders
    after: tuple[str, ...] = ()      # steps whose outputs this one reads
    shaped_by: tuple[str, ...] = ()  # config keys/sections whose values shape the outputs
    sets: tuple[str, ...] = ()       # --set this run of the script needs (two-run scripts)
    tasks: tuple[str, ...] = ()      # training tasks in the output (the merge's task list)
    shards: bool = False             # the module declares SHARDS (see common/shards.py)
    number: str = ""                 # "2.1", filled in from STAGES

    @property
    def script(self) -> str:
        return self.module.replace(".", "/") + ".py"

    @property
    def config_file(self) -> Path:
        return CONFIG_DIR / f"{self.config}.yaml"


@dataclass(frozen=True)
class Stage:
    number: int
    title: str
    steps: tuple[Step, ...]


def _s(*items: str) -> tuple[str, ...]:
    return tuple(items)


_TRANSLATE_SHAPE = _s("translation")
# The raw evaluation files every step that writes a final training file reads
# (common/decontam.py: no evaluation image in training), by its images' collection.
_DECONTAM = _s("common.decontam:coco_inputs")
_DECONTAM_WEB = _s("common.decontam:web_inputs")


def _translated_source(src: str, title: str, module: str, raw: tuple[str, ...], english_keys: tuple[str, ...],
                       work: dict[str, tuple[str, ...]], outputs: tuple[str, ...],
                       tasks: tuple[str, ...]) -> tuple[Step, ...]:
    """The three steps of a translated task source: English intermediate,
    translation, final file (the first and last are one script, run twice).
    ``work``: the English, translated and template files under the source's work_dir."""
    gen, tr = f"tasks.{module}.generate_train", f"tasks.{module}.translate_train"
    return (
        Step(f"{src}.english", gen, src, f"{title}: English intermediate", reads=raw,
             writes=work["en"], shaped_by=tuple(f"{src}.{k}" for k in english_keys)),
        Step(f"{src}.translate", tr, src, f"{title}: translate rows and templates",
             reads=work["en"], writes=work["translated"], after=_s(f"{src}.english"),
             shaped_by=_s(f"{src}.languages", f"{src}.seed", f"{src}.templates", *_TRANSLATE_SHAPE),
             shards=True),
        Step(f"{src}.final", gen, src, f"{title}: final training file",
             reads=work["translated"] + _DECONTAM, writes=outputs, after=_s(f"{src}.translate"),
             shaped_by=_s(src, "decontam"), tasks=tasks),
    )


def _eval(bench: str, title: str, shaped_by: tuple[str, ...] = ()) -> Step:
    return Step(f"eval.{bench}", f"eval_data.{bench}.convert", "eval_data", title,
                reads=_s(f"{bench}.*"), writes=_s(f"${{{bench}.out_dir}}"),
                shaped_by=_s(bench, "language_names", *shaped_by))


STAGES: tuple[Stage, ...] = (
    Stage(2, "BLIP Web CapFilt", (
        Step("capfilt.filter", "pretrain.filter", "capfilt", "noun-phrase filter of the CapFilt captions",
             reads=_s("${filter.input}"), writes=_s("${filter.output}"),
             shaped_by=_s("filter")),
        Step("capfilt.download", "pretrain.download_images", "capfilt", "download and resize the images",
             reads=_s("${download.input}"), writes=_s("${download.output}", "${download.status}"),
             after=_s("capfilt.filter"), shaped_by=_s("download"), shards=True),
        Step("capfilt.english", "pretrain.generate_train", "capfilt", "English intermediate",
             reads=_s("${generate.input}"), writes=_s("${generate.english}"),
             after=_s("capfilt.download"),
             shaped_by=_s("generate.caption_templates", "generate.seed", "generate.check_images")),
        Step("capfilt.translate", "pretrain.translate_train", "capfilt", "translate captions and templates",
             reads=_s("${translate.input}"), writes=_s("${translate.output}", "${translate.templates_output}"),
             after=_s("capfilt.english"),
             shaped_by=_s("translate", "generate.caption_templates", *_TRANSLATE_SHAPE), shards=True),
        Step("capfilt.final", "pretrain.generate_train", "capfilt", "final training file",
             reads=_s("${generate.translated}", "${generate.templates}", *_DECONTAM_WEB),
             writes=_s("${generate.output}"),
             after=_s("capfilt.translate"), shaped_by=_s("generate", "decontam"), tasks=_s("capfilt")),
    )),
    Stage(3, "Image-caption matching with hard negatives", (
        Step("match.mine", "match.hard_match", "match", "CLIP embeddings, FAISS search, hard negatives",
             reads=_s("${match.input}"), writes=_s("${match.output}"), after=_s("capfilt.english"),
             shaped_by=_s("match", "embed.model", "embed.max_text_tokens", "search", "negatives"),
             shards=True),
        Step("match.translate", "match.translate_match_train", "match", "translate the candidate captions",
             reads=_s("${translate.input}"), writes=_s("${translate.output}", "${translate.templates_output}"),
             after=_s("match.mine"), shaped_by=_s("translate", "generate.templates", *_TRANSLATE_SHAPE), shards=True),
        Step("match.final", "match.generate_match_train", "match", "final training file",
             reads=_s("${generate.input}", "${generate.translated_templates}", "${match.input}", *_DECONTAM_WEB),
             writes=_s("${generate.output}"), after=_s("match.translate"),
             shaped_by=_s("generate", "decontam", *_TRANSLATE_SHAPE), tasks=_s("capfilt_match")),
    )),
    Stage(4, "MSCOCO captions", _translated_source(
        "mscoco", "MSCOCO", "mscoco", _s("${mscoco.karpathy}"),
        ("karpathy", "image_dir", "image_patterns", "check_images", "train_splits"),
        {"en": _s("${mscoco.work_dir}/captions_en.jsonl"),
         "translated": _s("${mscoco.work_dir}/captions_translated.jsonl",
                          "${mscoco.work_dir}/templates_translated.json")},
        _s("${mscoco.train_file}"), _s("mscoco")) + (
        Step("mscoco.eval", "tasks.mscoco.generate_eval", "mscoco", "Karpathy val/test evaluation files",
             reads=_s("${mscoco.karpathy}"), writes=_s("${mscoco.eval_dir}"),
             shaped_by=_s("mscoco.eval_splits", "mscoco.image_patterns")),
    )),
    Stage(5, "VQAv2", _translated_source(
        "vqav2", "VQAv2", "vqa", _s("${vqav2.train_questions}", "${vqav2.train_annotations}"),
        ("train_questions", "train_annotations", "train_image_pattern", "image_dir", "check_images",
         "answer_min_count"),
        {"en": _s("${vqav2.work_dir}/questions_en.jsonl", "${vqav2.work_dir}/answers_frequent.json"),
         "translated": _s("${vqav2.work_dir}/questions_translated.jsonl",
                          "${vqav2.work_dir}/templates_translated.json",
                          "${vqav2.work_dir}/answers_translated.json")},
        _s("${vqav2.vqa_file}", "${vqav2.vqg_file}"), _s("vqav2_vqa", "vqav2_vqg")) + (
        Step("vqav2.eval", "tasks.vqa.generate_eval", "vqav2", "val evaluation file",
             reads=_s("${vqav2.val_questions}", "${vqav2.val_annotations}"), writes=_s("${vqav2.eval_file}"),
             shaped_by=_s("vqav2.val_image_pattern")),
    )),
    Stage(6, "A-OKVQA", (
        Step("aokvqa.generate", "tasks.aokvqa.generate_train", "aokvqa", "rationale and explanation examples",
             reads=_s("aokvqa.files", *_DECONTAM), writes=_s("${aokvqa.cot_file}", "${aokvqa.explain_file}"),
             shaped_by=_s("aokvqa", "decontam"), tasks=_s("aokvqa_cot", "aokvqa_explain")),
    )),
    Stage(7, "LLaVA-Instruct", _translated_source(
        "llava", "LLaVA", "llava", _s("${llava.detail_file}", "${llava.conversation_file}"),
        ("detail_file", "conversation_file", "image_dir", "image_patterns", "max_answer_sentences"),
        {"en": _s("${llava.work_dir}/turns_en.jsonl"),
         "translated": _s("${llava.work_dir}/turns_translated.jsonl", "${llava.work_dir}/templates_translated.json")},
        _s("${llava.detail_out}", "${llava.conversation_out}"), _s("llava_detail", "llava_conversation"))),
    Stage(8, "ImageNet with Babel-ImageNet names", (
        Step("imagenet.translate", "tasks.imagenet.translate_train", "imagenet",
             "translate instructions and yes/no", writes=_s("${imagenet.work_dir}/templates_translated.json"),
             shaped_by=_s("imagenet.templates", "imagenet.yes_no", "imagenet.languages", *_TRANSLATE_SHAPE)),
        Step("imagenet.generate", "tasks.imagenet.generate_train", "imagenet", "classify and decide examples",
             reads=_s("${imagenet.class_index}", "${imagenet.classnames_en}", "${imagenet.babel}",
                      "${imagenet.work_dir}/templates_translated.json"),
             writes=_s("${imagenet.classify_file}", "${imagenet.decide_file}"), after=_s("imagenet.translate"),
             shaped_by=_s("imagenet"), tasks=_s("imagenet_classify", "imagenet_decide")),
    )),
    Stage(9, "The task mix", (
        Step("merge", "pretrain.merge_train", "merge_train", "merge every final training file",
             reads=_s("merge.inputs"), writes=_s("${merge.output}", "${merge.report}", "${merge.card}"),
             after=_s("capfilt.final", "match.final", "mscoco.final", "vqav2.final", "aokvqa.generate",
                      "llava.final", "imagenet.generate"),
             shaped_by=_s("merge")),
    )),
    Stage(10, "Evaluation sets", (
        _eval("xgqa", "xGQA (+ GQA train)"),
        _eval("xvnli", "XVNLI"),
        _eval("marvl", "MaRVL (+ NLVR2)"),
        _eval("xflickrco", "xFlickrCO (+ Flickr30k)", _s("captions")),
        _eval("xm3600", "XM3600", _s("captions")),
        _eval("maxm", "MaXM"),
        _eval("pope", "POPE"),
        _eval("chair", "CHAIR"),
    )),
)


def _numbered() -> tuple[Step, ...]:
    out = []
    for stage in STAGES:
        for k, step in enumerate(stage.steps, 1):
            object.__setattr__(step, "number", f"{stage.number}.{k}")
            out.append(step)
    return tuple(out)


STEPS: tuple[Step, ...] = _numbered()
BY_ID: dict[str, Step] = {s.id: s for s in STEPS}
# Every training task, in pipeline order: the merge's task list and its report's.
TASKS: tuple[str, ...] = tuple(t for s in STEPS for t in s.tasks)


def get(step_id: str) -> Step:
    if step_id not in BY_ID:
        raise UserError(f"unknown step {step_id!r} (steps: {', '.join(BY_ID)})")
    return BY_ID[step_id]


def steps_of_script(script: str | Path) -> list[Step]:
    """The steps a script runs (two for a two-run generate_train.py)."""
    p = Path(script)
    p = (Path.cwd() / p).resolve() if not p.is_absolute() else p.resolve()
    try:
        key = p.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        key = str(p)
    return [s for s in STEPS if s.script == key]


def schema(step: Step) -> dict:
    module, attr = SCHEMAS[step.config].split(":")
    return getattr(importlib.import_module(module), attr)


# -- the command line each step was run with ----------------------------------------------------
def split_args(argv: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(--config, --paths, [--set values]) of a script's command line."""
    config = paths = None
    sets: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        for flag in ("--config", "--paths", "--set"):
            if a == flag and i + 1 < len(argv):
                value = argv[i + 1]
                i += 1
                break
            if a.startswith(flag + "="):
                value = a[len(flag) + 1:]
                break
        else:
            i += 1
            continue
        if flag == "--config":
            config = value
        elif flag == "--paths":
            paths = value
        else:
            sets.append(value)
        i += 1
    return config, paths, sets


def sets_for(step: Step, sets: list[str], same_config: bool) -> list[str]:
    """The --set values that mean the same for ``step``: paths.* and translation.*
    always (shared files); a stage section only within the same config file;
    never run.* (a shard's own) or the step-choosing keys of a two-run script."""
    sections = set(schema(step)) | {"paths"}
    own = {s.split("=", 1)[0] for s in step.sets} | {"generate.step"}
    out = []
    for item in sets:
        key = item.split("=", 1)[0].strip()
        top = key.split(".", 1)[0]
        if top not in sections or top == "run" or key in own:
            continue
        if top in ("paths", "translation", "decontam") or same_config:
            out.append(item)
    return out


def command(step: Step, argv: list[str] | None = None, from_step: Step | None = None) -> str:
    """A command line for ``step`` that a user can paste, carrying over the
    options of ``argv`` (the command line of ``from_step``) that apply to it."""
    config, paths, sets = split_args(list(argv or []))
    same = from_step is not None and from_step.config == step.config
    parts = ["python", step.script]
    if config and same and Path(config).resolve() != step.config_file.resolve():
        parts += ["--config", config]
    if paths:
        parts += ["--paths", paths]
    for s in [*step.sets, *sets_for(step, sets, same or from_step is None)]:
        parts += ["--set", s]
    return " ".join(shlex.quote(p) for p in parts)


def load_config(step: Step, argv: list[str] | None = None) -> Config:
    """The step's config as its script would build it from ``argv``
    (--set values for sections the step does not have are ignored)."""
    config, paths, sets = split_args(list(argv or []))
    sections = set(schema(step)) | {"paths"}
    sets = [s for s in sets if s.split("=", 1)[0].split(".", 1)[0] in sections]
    return build_config(schema(step), config or step.config_file, [*step.sets, *sets], paths)


# -- what a step reads and writes ---------------------------------------------------------------
def expand(cfg: Config, item: str) -> list[Path]:
    """The paths one reads/writes entry names.

    ``${a.b}/x`` is resolved with the config; a bare ``a.b`` names a config
    value that is a list of paths or of {path: ...} entries; ``section.*``
    is every input file of a section (string values under ``paths.raw_root``),
    ``{lang}``/``{split}`` filled from the section's language and split lists;
    ``module:function`` is a function of the config that lists the files
    (``common.decontam:inputs``: the raw evaluation files)."""
    if "${" in item:
        return [Path(os.path.expanduser(str(resolve_value(item, cfg))))]
    if re.fullmatch(r"[\w.]+:\w+", item):
        module, func = item.split(":")
        return [Path(p) for p in getattr(importlib.import_module(module), func)(cfg)]
    if item.endswith(".*"):
        return _section_inputs(cfg, item[:-2])
    value = cfg.at(item)
    items = value if isinstance(value, list) else [value]
    out = []
    for v in items:
        v = v.get("path") if isinstance(v, dict) else v
        if isinstance(v, str) and v:
            out.append(Path(os.path.expanduser(v)))
    return out


def _section_inputs(cfg: Config, section: str) -> list[Path]:
    sec = cfg.at(section)
    raw = str(cfg.at("paths.raw_root"))
    langs = [str(x) for k in ("langs", "nlvr2_langs") for x in sec.get(k, []) or []]
    splits = [str(x) for x in sec.get("splits", []) or []]
    out = []
    for key, value in sec.items():
        if not isinstance(value, str) or not raw or not value.startswith(raw) or key.endswith("image_root"):
            continue
        values = [value]
        if "{lang}" in value:
            values = [v.replace("{lang}", lang) for v in values for lang in langs]
        if "{split}" in value:
            values = [v.replace("{split}", sp) for v in values for sp in splits]
        out += [Path(v) for v in values if "{" not in v]
    return sorted(set(out))


def inputs(step: Step, cfg: Config) -> list[Path]:
    return [p for item in step.reads for p in expand(cfg, item)]


def outputs(step: Step, cfg: Config) -> list[Path]:
    return [p for item in step.writes for p in expand(cfg, item)]


# -- fingerprints ------------------------------------------------------------------------------
_HASHED: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def file_fingerprint(path: Path, known: dict | None = None) -> dict:
    """{size, mtime_ns, sha256} of a file; {kind: dir} of a folder (its files,
    listed with sizes); {kind: absent} where nothing is. ``known``: an earlier
    fingerprint of the same path whose hash is reused while size and mtime match."""
    try:
        st = path.stat()
    except OSError:
        return {"kind": "absent"}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        listing = [(p.relative_to(path).as_posix(), file_fingerprint(p)["sha256"]) for p in files]
        return {"kind": "dir", "sha256": hashlib.sha256(json.dumps(listing).encode()).hexdigest()}
    fp = {"kind": "file", "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if known and known.get("size") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns \
            and known.get("sha256"):
        fp["sha256"] = known["sha256"]
        return fp
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = _sha256(path)
    fp["sha256"] = _HASHED[key]
    return fp


def same_content(a: dict | None, b: dict | None) -> bool:
    if not a or not b or a.get("kind") != b.get("kind"):
        return False
    return a.get("kind") == "absent" or a.get("sha256") == b.get("sha256")


def shaping_values(step: Step, cfg: Config) -> dict[str, Any]:
    """The resolved config values that shape the step's output, by dotted key."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k not in NOT_SHAPING:
                    walk(f"{prefix}.{k}", v)
        else:
            out[prefix] = node

    for key in step.shaped_by:
        try:
            walk(key, cfg.at(key))
        except UserError:
            continue  # a key this config does not have
    return out


def config_fingerprint(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


# -- manifests ---------------------------------------------------------------------------------
def record_dir(cfg: Config) -> Path:
    return cfg.path("paths.work_dir") / "pipeline"


def manifest_path(step: Step, cfg: Config, shard: tuple[int, int] | None = None) -> Path:
    name = step.id if shard is None else f"{step.id}.shard-{shard[0]:05d}-of-{shard[1]:05d}"
    return record_dir(cfg) / f"{name}.json"


def _known(step: Step, cfg: Config) -> dict[str, dict]:
    """Fingerprints recorded by this step and the steps it reads from, by path."""
    known: dict[str, dict] = {}
    for sid in (*step.after, step.id):
        m = read_json_object(manifest_path(BY_ID[sid], cfg))
        if m:
            known.update(m.get("inputs", {}))
            known.update(m.get("outputs", {}))
    return known


def input_record(step: Step, cfg: Config) -> dict:
    """What a run of ``step`` with this config depends on: its inputs' and config's fingerprints."""
    known = _known(step, cfg)
    values = shaping_values(step, cfg)
    return {"inputs": {str(p): file_fingerprint(p, known.get(str(p))) for p in inputs(step, cfg)},
            "config": config_fingerprint(values), "config_values": values}


def record(step: Step, cfg: Config, shard: tuple[int, int] | None = None,
           written: Iterable[Path] | None = None) -> Path:
    """Write the step's manifest (or, for one shard of a sharded run, its
    completion record) after a successful run."""
    rec = input_record(step, cfg)
    outs = list(written) if written is not None else outputs(step, cfg)
    rec = {"step": step.id, "finished": datetime.datetime.now().isoformat(timespec="seconds"),
           **rec, "outputs": {str(p): file_fingerprint(p) for p in outs}}
    if shard is not None:
        rec["shard"] = {"index": shard[0], "num_shards": shard[1]}
    path = manifest_path(step, cfg, shard)
    write_json(path, rec, indent=1)
    return path


@dataclass
class State:
    status: str                      # done | stale | missing
    reason: str = ""
    changed: list[str] = field(default_factory=list)


def state(step: Step, cfg: Config) -> State:
    outs = outputs(step, cfg)
    absent = [p for p in outs if not p.exists()]
    if absent:
        return State("missing", f"no {absent[0]}" + (f" (+{len(absent) - 1} more)" if len(absent) > 1 else ""))
    m = read_json_object(manifest_path(step, cfg))
    if m is None:
        return State("stale", "no run record (outputs from an older run or another tool)")
    values = shaping_values(step, cfg)
    if m.get("config") != config_fingerprint(values):
        old = m.get("config_values", {})
        changed = sorted(k for k in set(old) | set(values) if old.get(k, None) != values.get(k, None))
        return State("stale", "config changed: " + ", ".join(changed[:5]), changed)
    recorded_in = m.get("inputs", {})
    for p in inputs(step, cfg):
        if not same_content(recorded_in.get(str(p)), file_fingerprint(p, recorded_in.get(str(p)))):
            return State("stale", f"input changed since the run: {p}", [str(p)])
    recorded_out = m.get("outputs", {})
    for p in outs:
        if not same_content(recorded_out.get(str(p)), file_fingerprint(p, recorded_out.get(str(p)))):
            return State("stale", f"output changed after the run: {p}", [str(p)])
    return State("done")


def is_done(step_id: str, cfg: Config) -> bool:
    return state(get(step_id), cfg).status == "done"


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
    name = step_id if shard is None else f"{step_id}.shard-{shard[0]:05d}-of-{shard[1]:05d}"
    if not cfg.get("paths", {}).get("work_dir") and any(t.id == step_id for t in TOOLS):
        out = outputs(get(step_id), cfg)[0]   # a tool run without paths.work_dir: beside its output
        return out.with_name(f"{out.name}.{name}.report.json")
    return cfg.path("paths.work_dir") / "reports" / f"{name}.json"


def save_report(report, step_id: str, cfg: Config) -> Path:
    """Save a step's report (a common.report.Report or a dict) where ``report_path``
    says, and print the path."""
    path = report_path(step_id, cfg, shard_of(get(step_id), cfg))
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
    from .jsonl import remove_stale_temps
    from .preflight import check_sqlite, check_writable
    step = get(step_id)
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
    i = STEPS.index(step)
    return STEPS[i + 1] if i + 1 < len(STEPS) else None


def finish(step_id: str, cfg: Config, argv: list[str] | None = None,
           written: Iterable[Path] | None = None) -> None:
    """Record a successful run of ``step_id`` and print the command to run next.

    A shard of a sharded run leaves a completion record instead, and points at
    the launcher that merges the shards."""
    step = get(step_id)
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


def combine_command(step: Step, argv: list[str], n: int) -> str:
    """The launcher command that merges the ``n`` shards of ``step``."""
    config, paths, sets = split_args(argv)
    parts = ["python", "-m", "common", "launch", step.id, "--set", "launch.mode=combine",
             "--set", f"launch.num_shards={n}", "--"]
    if config:
        parts += ["--config", config]
    if paths:
        parts += ["--paths", paths]
    for s in sets:
        if not s.startswith("run."):
            parts += ["--set", s]
    return " ".join(shlex.quote(p) for p in parts)


def choose_run(english_id: str, final_id: str, cfg: Config, wanted: str) -> str:
    """Which run of a two-run generate script this is: ``wanted`` is auto,
    english or final. Auto gives final only when the English intermediate is
    done (its own inputs unchanged) and the translation step is done on it."""
    if wanted not in ("auto", "english", "final"):
        raise UserError(f"generate.step: {wanted!r} is not one of auto, english, final")
    english, final = get(english_id), get(final_id)
    translate = get(final.after[0])
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


def final_files(argv: list[str] | None = None) -> dict[Path, tuple[str, ...]]:
    """The training tasks each final file holds, by resolved path, from the steps
    that write them (their configs built from ``argv``'s --paths and --set; a
    step whose config cannot be built here is left out). A step that writes one
    file per task (in the order of its ``tasks``) gives each file its own task."""
    _, paths, sets = split_args(list(argv or []))
    args = (["--paths", paths] if paths else []) + [x for s in sets for x in ("--set", s)]
    out: dict[Path, tuple[str, ...]] = {}
    for step in STEPS:
        if not step.tasks:
            continue
        try:
            files = outputs(step, load_config(step, args))
        except UserError:
            continue
        for k, p in enumerate(files):
            out[p.resolve()] = (step.tasks[k],) if len(files) == len(step.tasks) else step.tasks
    return out


# -- status --------------------------------------------------------------------------------------
def status_rows(argv: list[str]) -> list[tuple[Step, State]]:
    rows = []
    for step in STEPS:
        try:
            cfg = load_config(step, argv)
            rows.append((step, state(step, cfg)))
        except UserError as e:
            rows.append((step, State("error", str(e))))
    return rows


def first_to_run(rows: list[tuple[Step, State]]) -> Step | None:
    for step, st in rows:
        if st.status != "done":
            return step
    return None


def markdown_steps() -> str:
    """The numbered steps as the README lists them (tests/test_readme.py checks it)."""
    lines = []
    for stage in STAGES:
        lines.append(f"{stage.number}. **{stage.title}**")
        for step in stage.steps:
            shard = " (shardable)" if step.shards else ""
            sets = "".join(f" --set {s}" for s in step.sets)
            lines.append(f"   {step.number}. `python {step.script}{sets}`: {step.title}{shard}")
    return "\n".join(lines)


# -- tools the launchers run too (common/shards.py, common/executors.py) ------------------------
# Shardable scripts outside the numbered pipeline: ``python -m common launch``
# runs them like any step (by id), but status, the demo and the README list
# STEPS only.
SCHEMAS["translate_file"] = "translate.translate_file:DEFAULTS"
TOOLS: tuple[Step, ...] = (
    Step("translate.file", "translate.translate_file", "translate_file", "translate fields of any JSONL file",
         reads=_s("${file.input}"), writes=_s("${file.output}"), shaped_by=_s("file", *_TRANSLATE_SHAPE),
         shards=True),
)
BY_ID.update({s.id: s for s in TOOLS})


def shard_files(step: Step, cfg: Config, index: int, num_shards: int) -> list[Path]:
    """The files shard ``index`` of ``step`` writes, by the step's SHARDS rule (common/shards.py)."""
    from .shards import rule_of
    return rule_of(step).files(cfg, index, num_shards)
