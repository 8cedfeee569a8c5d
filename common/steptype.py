"""The step type: what one step of the pipeline declares (``Step``), and a
numbered group of steps (``Stage``).

Each step module declares its own ``STEP`` (a two-run script: ``ENGLISH_STEP``
and ``FINAL_STEP``): id, config schema (``defaults``) and YAML, what it reads
and writes, the config that shapes its output, its shard rule, the training
tasks it feeds. The ordered list of steps is ``common/pipeline.py``, which
imports the step modules; nothing below it imports a step module. Run records
are ``common/records.py``; a step script's lifecycle ``common/lifecycle.py``;
its command line ``common/cli.py``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union

from .config import REPO_ROOT

if TYPE_CHECKING:
    from .shards import ShardRule

CONFIG_DIR = REPO_ROOT / "configs"

# A reads/writes entry: "${section.key}" (a path template), "section.key" (a
# config list of paths), "section.*" (every raw input of a section), or a
# function of the config that lists the files.
Item = Union[str, Callable[[Any], list]]
# A shaped_by entry: "section" or "section.key" (its values, less records.NOT_SHAPING), or a
# function of the config that gives {dotted key: value} (translate.shaping.step_values).
Shaping = Union[str, Callable[[Any], dict]]


@dataclass(frozen=True)
class Step:
    id: str                          # "capfilt.filter"
    module: str                      # "pretrain.filter" (the script is pretrain/filter.py)
    config: str                      # its YAML is configs/<config>.yaml
    title: str                       # what the step does, in a few words
    reads: tuple[Item, ...] = ()     # input files ("${filter.input}"); see records.expand()
    writes: tuple[str, ...] = ()     # output files or folders
    after: tuple[str, ...] = ()      # steps whose outputs this one reads
    shaped_by: tuple[Shaping, ...] = ()  # config keys/sections (or functions) whose values shape the outputs
    sets: tuple[str, ...] = ()       # --set this run of the script needs (two-run scripts)
    tasks: tuple[str, ...] = ()      # training tasks in the output (the merge's task list)
    defaults: dict = field(default_factory=dict, compare=False, repr=False)   # the config schema
    rule: "ShardRule | None" = field(default=None, compare=False, repr=False)  # how it is sharded
    tool: bool = False               # a tool outside the numbered pipeline (translate_file.py)
    number: str = ""                 # "2.1", filled in by common/pipeline.py

    @property
    def shards(self) -> bool:
        return self.rule is not None

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
    """The config schema (DEFAULTS) of a step's config."""
    return step.defaults
