"""One config loader for every script.

A script declares its defaults (the schema: every allowed key and its type).
The loader reads configs/paths.yaml (the roots and model names), then the
stage's YAML, then repeatable ``--set dotted.key=value`` overrides. Strings may
refer to other values as ``${paths.raw_root}``. Unknown keys, wrong types and
missing required inputs stop the run before any work (UserError -> exit 2).

The three roots (``paths.raw_root``, ``paths.work_dir``, ``paths.out_root``) are
unset by default: a value that refers to an unset root, or ``Config.path()`` of
one, stops the run with one line naming the root to set. The paths section's own
derived entries (``paths.coco_images`` ...) wait until something uses them, so a
script needs only the roots its own values refer to.
"""
from __future__ import annotations

import argparse
import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATHS_FILE = REPO_ROOT / "configs" / "paths.yaml"

# Every root and model name lives here; stage configs refer to them as ${paths.x}.
# The three roots have no default: a run must say where its data lives.
PATHS_DEFAULTS: dict[str, Any] = {
    "raw_root": "",
    "work_dir": "",
    "out_root": "",
    "image_root": "${paths.work_dir}/images",
    "coco_images": "${paths.raw_root}/mscoco/images",
    "imagenet_root": "${paths.raw_root}/imagenet",
    "nllb_model": "facebook/nllb-200-distilled-1.3B",
    "ct2_model": "${paths.work_dir}/models/nllb-200-distilled-1.3B-ct2",
    "clip_model": "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K",
    "spacy_model": "en_core_web_sm",
}

# Sections shared by all stages, each read from its own file in configs/ (a
# stage reads the ones its schema has: decontam only the steps that write a
# final training file).
SHARED_SECTIONS = {"paths": "paths.yaml", "translation": "translation.yaml", "decontam": "decontam.yaml"}

_REF = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")

# Roots a run must set (configs/paths.yaml or --set); empty means unset.
ROOT_KEYS = ("paths.raw_root", "paths.work_dir", "paths.out_root")


class UnsetRootError(UserError):
    """A value needs one of ROOT_KEYS, which is empty."""

    def __init__(self, key: str):
        super().__init__(f"{key} is not set: edit configs/paths.yaml (or pass --set {key}=DIR)")
        self.key = key


class _Unset(str):
    """A paths.* entry built on an unset root (e.g. paths.coco_images with
    paths.raw_root empty): an empty string that remembers the root."""

    key: str = ""


def _unset(key: str) -> _Unset:
    u = _Unset("")
    u.key = key
    return u


class Config(dict):
    """A nested dict with dotted access: cfg.get_path("translation.backend")."""

    source: str = "<defaults>"

    def at(self, dotted: str) -> Any:
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise UserError(f"config key {dotted!r} is not set")
            node = node[part]
        return node

    def path(self, dotted: str) -> Path:
        """A path value, relative paths resolved against the current directory.
        An empty value is an error (Path("") would silently mean ".")."""
        value = self.at(dotted)
        if isinstance(value, _Unset):
            raise UnsetRootError(value.key)
        if value is None or str(value) == "":
            if dotted in ROOT_KEYS:
                raise UnsetRootError(dotted)
            raise UserError(f"{dotted} is not set: give it a path in the config (or pass --set {dotted}=PATH)")
        return Path(os.path.expanduser(str(value)))

    def require_file(self, dotted: str) -> Path:
        p = self.path(dotted)
        if not p.is_file():
            raise UserError(f"{dotted}: input file not found: {p}")
        return p

    def require_dir(self, dotted: str) -> Path:
        p = self.path(dotted)
        if not p.is_dir():
            raise UserError(f"{dotted}: input folder not found: {p}")
        return p


def _merge(base: dict, over: dict, schema: dict | None, where: str, prefix: str = "") -> None:
    """Merge ``over`` into ``base`` in place, checking keys and types against ``schema``."""
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if schema is not None and key not in schema:
            raise UserError(f"{where}: unknown config key {dotted!r}")
        expected = schema.get(key) if schema is not None else None
        if isinstance(expected, dict) and expected.get("__free__"):
            # A free-form mapping (e.g. per-task caps): any keys. Later layers add or
            # replace keys (so --set a.b.x=1 keeps a.b's other keys).
            if value is not None and not isinstance(value, dict):
                raise UserError(f"{where}: config key {dotted!r} must be a mapping, got {type(value).__name__}")
            base[key] = {**(base.get(key) or {}), **(value or {})}
            continue
        if isinstance(expected, dict):
            if value is None:
                value = {}  # a section whose keys are all commented out
            if not isinstance(value, dict):
                raise UserError(f"{where}: config key {dotted!r} must be a mapping, got {type(value).__name__}")
            base.setdefault(key, {})
            _merge(base[key], value, {k: v for k, v in expected.items()}, where, dotted + ".")
            continue
        base[key] = _check_type(value, expected, dotted, where)


def _check_type(value: Any, expected: Any, dotted: str, where: str) -> Any:
    if value is None and isinstance(expected, (bool, int, float, list)):
        kind = {bool: "true/false", int: "an integer", float: "a number"}.get(type(expected), "a list")
        raise UserError(f"{where}: config key {dotted!r} must be {kind}, got null")
    if expected is None or value is None:
        return value
    if isinstance(expected, bool):
        if not isinstance(value, bool):
            raise UserError(f"{where}: config key {dotted!r} must be true/false, got {value!r}")
        return value
    if isinstance(expected, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: config key {dotted!r} must be an integer, got {value!r}")
        return value
    if isinstance(expected, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: config key {dotted!r} must be a number, got {value!r}")
        return float(value)
    if isinstance(expected, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise UserError(f"{where}: config key {dotted!r} must be a string, got {value!r}")
        return value
    if isinstance(expected, list):
        if not isinstance(value, list):
            raise UserError(f"{where}: config key {dotted!r} must be a list, got {value!r}")
        return value
    return value


def _resolve(node: Any, root: dict, dotted: str = "", depth: int = 0) -> Any:
    """Fill ``${a.b}`` references. A reference to an unset root (ROOT_KEYS), directly
    or through other values, raises UnsetRootError naming the root; only the paths
    section's own entries are kept instead, as empty markers (_Unset), so that a
    script fails on the roots it uses, not on every derived path."""
    if depth > 20:
        raise UserError(f"config key {dotted!r}: ${{...}} references form a cycle")
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            key = f"{dotted}.{k}" if dotted else k
            try:
                out[k] = _resolve(v, root, key, depth)
            except UnsetRootError as e:
                if depth > 0 or not key.startswith("paths."):
                    raise
                out[k] = _unset(e.key)
        return out
    if isinstance(node, list):
        return [_resolve(v, root, dotted, depth) for v in node]
    if isinstance(node, str) and "${" in node:
        def sub(m: re.Match) -> str:
            ref = m.group(1)
            target: Any = root
            for part in ref.split("."):
                if not isinstance(target, dict) or part not in target:
                    raise UserError(f"config key {dotted!r} refers to unknown key ${{{ref}}}")
                target = target[part]
            value = _resolve(target, root, ref, depth + 1)
            if isinstance(value, _Unset):
                raise UnsetRootError(value.key)
            if ref in ROOT_KEYS and (value is None or str(value) == ""):
                raise UnsetRootError(ref)
            return str(value)

        return _REF.sub(sub, node)
    return node


# A config is a few hundred values: more, counting every alias's copy, is an
# alias bomb ("billion laughs": 430 bytes that expand to gigabytes).
MAX_YAML_NODES = 100_000


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once every alias is expanded
    (each node's size is computed once, so the walk itself stays small)."""
    if id(node) not in memo:
        memo[id(node)] = 0      # a node inside itself (a recursive alias) adds nothing more
        children = node.value if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) else []
        items = [n for pair in children for n in pair] if isinstance(node, yaml.MappingNode) else children
        memo[id(node)] = min(1 + sum(_expanded_size(n, memo) for n in items), MAX_YAML_NODES + 1)
    return memo[id(node)]


def safe_yaml(text: str, where: str) -> Any:
    """yaml.safe_load, refusing in one line a document that expands to more than
    MAX_YAML_NODES values or nests too deeply for the parser."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise UserError(f"{where}: the YAML expands to more than {MAX_YAML_NODES} values (aliases of "
                            "aliases?): not a config")
        return loader.construct_document(node)
    except RecursionError:
        raise UserError(f"{where}: the YAML is nested too deeply to be a config") from None
    finally:
        loader.dispose()


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = safe_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level must be a mapping")
    return data


def build_config(defaults: dict, config_file: str | Path | None = None,
                 overrides: list[str] | None = None,
                 paths_file: str | Path | None = None) -> Config:
    """Defaults <- paths.yaml <- stage YAML <- --set overrides, then ${} resolution."""
    schema = copy.deepcopy(defaults)
    schema.setdefault("paths", {})
    schema["paths"] = {**PATHS_DEFAULTS, **schema["paths"]}
    merged: dict = copy.deepcopy(schema)
    _strip_free_markers(merged)

    config_dir = Path(config_file).parent if config_file is not None else DEFAULT_PATHS_FILE.parent
    loaded = set()
    for section, filename in SHARED_SECTIONS.items():
        if section not in schema:
            continue
        if section == "paths" and paths_file:
            shared = Path(paths_file)
            if not shared.is_file():
                raise UserError(f"--paths: paths file not found: {shared}")
        else:
            shared = config_dir / filename
            if not shared.is_file():
                shared = DEFAULT_PATHS_FILE.parent / filename
        if shared.is_file():
            data = _read_yaml(shared)
            _merge(merged, {section: data.get(section, data)}, schema, str(shared))
            loaded.add(shared.resolve())
    if config_file is not None and Path(config_file).resolve() not in loaded:
        _merge(merged, _read_yaml(Path(config_file)), schema, str(config_file))
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected dotted.key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        value = _parse_override(raw, _schema_type(schema, key))
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        _merge(merged, nested, schema, "--set")
    cfg = Config(_resolve(merged, merged))
    cfg.source = str(config_file) if config_file else "<defaults>"
    return cfg


_NO_VALUE = object()


def _schema_type(schema: dict, dotted: str) -> Any:
    """The default at ``dotted`` in the schema (its type is the key's type), or
    _NO_VALUE where the schema does not fix one (free mapping, unknown key)."""
    node: Any = schema
    for part in dotted.split("."):
        if not isinstance(node, dict) or node.get("__free__") or part not in node:
            return _NO_VALUE
        node = node[part]
    return node


def _parse_override(raw: str, expected: Any) -> Any:
    """A --set value. For a string key the text is taken as typed (no YAML: a
    '#', ': ', 'yes', '010' or '1.10' stays what it is), except a quoted string
    or null/~. Other keys are parsed as YAML, with ${...} references kept whole
    (a flow list like [${paths.raw_root}/a, b] is valid)."""
    if raw == "":
        return ""
    if isinstance(expected, str):
        if raw in ("null", "~") or (len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""):
            try:
                return safe_yaml(raw, f"--set {raw!r}")
            except yaml.YAMLError:
                return raw
        return raw
    refs: list[str] = []

    def hide(m: re.Match) -> str:
        refs.append(m.group(0))
        return f"CFGREF{len(refs) - 1}X"

    try:
        value = safe_yaml(_REF.sub(hide, raw), f"--set {raw[:40]!r}")
    except yaml.YAMLError:
        return raw
    if not refs:
        return value

    def show(node: Any) -> Any:
        if isinstance(node, str):
            return re.sub(r"CFGREF(\d+)X", lambda m: refs[int(m.group(1))], node)
        if isinstance(node, list):
            return [show(v) for v in node]
        if isinstance(node, dict):
            return {show(k): show(v) for k, v in node.items()}
        return node
    return show(value)


def _strip_free_markers(node: dict) -> None:
    for k, v in list(node.items()):
        if isinstance(v, dict):
            if v.get("__free__"):
                node[k] = {kk: vv for kk, vv in v.items() if kk != "__free__"}
            else:
                _strip_free_markers(v)


def free_mapping(**defaults) -> dict:
    """Schema marker for a mapping whose keys are data, not config keys."""
    return {"__free__": True, **defaults}


def parse_args(description: str, defaults: dict, default_config: str | None = None,
               argv: list[str] | None = None, extra_args=None) -> Config:
    """The command line every script shares: --config FILE, repeatable --set k=v."""
    ap = argparse.ArgumentParser(description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=default_config,
                    help=f"stage YAML config (default: {default_config})")
    ap.add_argument("--paths", default=None,
                    help="paths YAML (default: paths.yaml next to --config, else configs/paths.yaml)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set paths.raw_root=/data/raw (repeatable)")
    if extra_args:
        extra_args(ap)
    args = ap.parse_args(argv)
    cfg = build_config(defaults, args.config, args.overrides, args.paths)
    cfg.args = args  # type: ignore[attr-defined]
    return cfg


def resolve_value(template: str, cfg: dict) -> Any:
    """A string with ``${section.key}`` references, resolved against a built config."""
    return _resolve(template, cfg, "<pipeline>")


def check_ranges(section: dict, name: str, rules: dict[str, tuple]) -> None:
    """Value checks the type schema cannot express, before any work: ``rules``
    maps a key of ``section`` to (least, most, what); ``least`` is inclusive,
    or exclusive when given as ``(">", x)``; None bounds nothing."""
    for key, (least, most, what) in rules.items():
        value = section.get(key)
        above = isinstance(least, tuple)
        low = least[1] if above else least
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (low is not None and (value <= low if above else value < low)) \
                or (most is not None and value > most):
            raise UserError(f"{name}.{key} must be {what}, got {value!r}")
