"""The command line of a step script as the pipeline reads it back: the options
a run was given, the command for another step with the same options, and a
step's config built from them."""
from __future__ import annotations

import shlex
from pathlib import Path

from .config import Config, build_config
from .steptype import Step, schema

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

