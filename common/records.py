"""Run records: what a step reads and writes, fingerprints, manifests, and the
done / stale / missing state they give.

A step names config *values*, not paths: ``reads``/``writes`` are strings with
``${section.key}`` references resolved with the step's own config (its YAML,
``configs/paths.yaml`` and the user's ``--set``), so the same declaration
serves every layout. ``shaped_by`` lists the config keys or sections whose
values shape the output (keys that only change speed or logging are left out,
see ``NOT_SHAPING``), or functions of the config that give {dotted key: value}
themselves: the domain that knows which of its settings shape an output says
so (``translate.shaping.step_values``, the translation settings).

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
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .config import Config, resolve_value
from .errors import UserError
from .jsonl import read_json_object, write_json
from .shards import shard_name
from .steptype import Step

# Leaf keys that change speed, logging or bookkeeping, not what a step writes, in the
# sections a step names in ``shaped_by``. The translation settings are not walked here:
# translate/shaping.py says which of them shape an output (``step_values``).
NOT_SHAPING = frozenset({
    "progress", "threads", "n_process", "batch_size", "report", "report_dir", "max_bad_rows", "device",
    "log_dir", "index_dir", "text_batch", "image_batch", "image_workers",
    "query_batch", "chunk_rows", "cache_dir", "only", "step", "connect_timeout", "read_timeout",
    "max_seconds", "retries", "backoff", "max_backoff", "retry_timeouts", "retry_failed", "user_agent",
    "skipped_images", "num_shards", "shard_index", "processes", "image_processes", "image_threads",
    "min_success_rate",   # a check of an outcome, not what is written
})



# -- what a step reads and writes ---------------------------------------------------------------
def expand(cfg: Config, item) -> list[Path]:
    """The paths one reads/writes entry names.

    ``${a.b}/x`` is resolved with the config; a bare ``a.b`` names a config
    value that is a list of paths or of {path: ...} entries; ``section.*``
    is every input file of a section (string values under ``paths.raw_root``),
    ``{lang}``/``{split}`` filled from the section's language and split lists;
    a function of the config lists the files itself (``eval_data.decontam.coco_inputs``:
    the raw evaluation files)."""
    if callable(item):
        return [Path(p) for p in item(cfg)]
    if "${" in item:
        return [Path(os.path.expanduser(str(resolve_value(item, cfg))))]
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


def flatten(prefix: str, node: Any, skip: frozenset = frozenset()) -> dict[str, Any]:
    """{dotted key: leaf value} of a config value (``prefix.a.b``), leaving out
    the keys named in ``skip`` at any depth."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k not in skip:
            out.update(flatten(f"{prefix}.{k}", v, skip))
    return out


def shaping_values(step: Step, cfg: Config) -> dict[str, Any]:
    """The resolved config values that shape the step's output, by dotted key:
    a key or section of ``shaped_by`` walked (less ``NOT_SHAPING``), a function called."""
    out: dict[str, Any] = {}
    for key in step.shaped_by:
        if callable(key):   # a function of the config gives its values itself (translate.shaping.step_values)
            out.update(key(cfg))
            continue
        try:
            out.update(flatten(key, cfg.at(key), NOT_SHAPING))
        except UserError:
            continue  # a key this config does not have
    return out


def config_fingerprint(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


# -- manifests ---------------------------------------------------------------------------------
def record_dir(cfg: Config) -> Path:
    return cfg.path("paths.work_dir") / "pipeline"


def manifest_path(step: Step | str, cfg: Config, shard: tuple[int, int] | None = None) -> Path:
    """The run record of a step (or step id), or of one shard of it."""
    sid = step if isinstance(step, str) else step.id
    name = sid if shard is None else shard_name(sid, *shard)
    return record_dir(cfg) / f"{name}.json"


def _known(step: Step, cfg: Config) -> dict[str, dict]:
    """Fingerprints recorded by this step and the steps it reads from, by path."""
    known: dict[str, dict] = {}
    for sid in (*step.after, step.id):
        m = read_json_object(manifest_path(sid, cfg))
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


