"""The pipeline, declared once: every step, in order.

Each step module declares its own ``STEP`` (``common/steptype.py``: id, config
schema, reads and writes, shard rule, tasks); this module imports the step
modules and lists their steps in order in ``STAGES``. Everything that needs to
know the order (the ``status`` command, each script's closing ``next:`` hint,
``make demo``, the merge's task list, the launchers, the README check) reads it
from here, and only from here.

What a step reads and writes, its fingerprints and state are
``common/records.py``; a script's lifecycle (begin, report, finish)
``common/lifecycle.py``; its command line ``common/cli.py``.
"""
from __future__ import annotations

from pathlib import Path

from .cli import load_config, split_args
from .config import REPO_ROOT
from .errors import UserError
from .records import State, outputs, state
from .steptype import Stage, Step

from eval_data.chair import convert as chair
from eval_data.marvl import convert as marvl
from eval_data.maxm import convert as maxm
from eval_data.pope import convert as pope
from eval_data.xflickrco import convert as xflickrco
from eval_data.xgqa import convert as xgqa
from eval_data.xm3600 import convert as xm3600
from eval_data.xvnli import convert as xvnli
from match import generate_match_train, hard_match, translate_match_train
from pretrain import download_images, export_mix, merge_train
from pretrain import filter as capfilt_filter
from pretrain import generate_train as capfilt_generate
from pretrain import translate_train as capfilt_translate
from tasks.aokvqa import generate_train as aokvqa_generate
from tasks.imagenet import generate_train as imagenet_generate
from tasks.imagenet import translate_train as imagenet_translate
from tasks.llava import generate_train as llava_generate
from tasks.llava import translate_train as llava_translate
from tasks.mscoco import generate_eval as mscoco_eval
from tasks.mscoco import generate_train as mscoco_generate
from tasks.mscoco import translate_train as mscoco_translate
from tasks.vqa import generate_eval as vqa_eval
from tasks.vqa import generate_train as vqa_generate
from tasks.vqa import translate_train as vqa_translate
from translate import translate_file


# The stages in order, each step taken from its own module.
STAGES: tuple[Stage, ...] = (
    Stage(2, "BLIP Web CapFilt", (capfilt_filter.STEP, download_images.STEP, capfilt_generate.ENGLISH_STEP,
                                  capfilt_translate.STEP, capfilt_generate.FINAL_STEP)),
    Stage(3, "Image-caption matching with hard negatives",
          (hard_match.STEP, translate_match_train.STEP, generate_match_train.STEP)),
    Stage(4, "MSCOCO captions", (mscoco_generate.ENGLISH_STEP, mscoco_translate.STEP, mscoco_generate.FINAL_STEP,
                                 mscoco_eval.STEP)),
    Stage(5, "VQAv2", (vqa_generate.ENGLISH_STEP, vqa_translate.STEP, vqa_generate.FINAL_STEP, vqa_eval.STEP)),
    Stage(6, "A-OKVQA", (aokvqa_generate.STEP,)),
    Stage(7, "LLaVA-Instruct", (llava_generate.ENGLISH_STEP, llava_translate.STEP, llava_generate.FINAL_STEP)),
    Stage(8, "ImageNet with Babel-ImageNet names", (imagenet_translate.STEP, imagenet_generate.STEP)),
    Stage(9, "The task mix", (merge_train.STEP, export_mix.STEP)),
    Stage(10, "Evaluation sets", (xgqa.STEP, xvnli.STEP, marvl.STEP, xflickrco.STEP, xm3600.STEP, maxm.STEP,
                                  pope.STEP, chair.STEP)),
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
    """Each step's state; a done step built on a stale step upstream is stale too
    (its own run would refuse: common.lifecycle.check_upstream)."""
    from .lifecycle import check_upstream
    rows = []
    for step in STEPS:
        try:
            cfg = load_config(step, argv)
            st = state(step, cfg)
            if st.status == "done":
                try:
                    check_upstream(step, cfg, argv)
                except UserError as e:
                    st = State("stale", str(e).split("; this run")[0])
            rows.append((step, st))
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
TOOLS: tuple[Step, ...] = (translate_file.STEP,)
BY_ID.update({s.id: s for s in TOOLS})
