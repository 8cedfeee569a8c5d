"""The step type: what one step of the pipeline declares (``Step``), and a
numbered group of steps (``Stage``). The ordered list of steps is
``common/pipeline.py``; run records are ``common/records.py``; a step script's
lifecycle is ``common/lifecycle.py``; its command line ``common/cli.py``."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from .config import REPO_ROOT

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



def schema(step: Step) -> dict:
    module, attr = SCHEMAS[step.config].split(":")
    return getattr(importlib.import_module(module), attr)

