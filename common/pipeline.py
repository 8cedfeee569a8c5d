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

The step type is ``common/step.py``; what a step reads and writes, its
fingerprints and state ``common/records.py``; a script's lifecycle (begin,
report, finish) ``common/lifecycle.py``; its command line ``common/cli.py``.
"""
from __future__ import annotations

from pathlib import Path

from .cli import load_config, split_args
from .config import REPO_ROOT
from .errors import UserError
from .records import State, outputs, state
from .steptype import SCHEMAS, Stage, Step

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

