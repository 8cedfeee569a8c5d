"""Translate a JSONL file on a Ray cluster: Ray Data ``map_batches`` over a pool
of actors, each holding one Engine (one model), ``ray.num_gpus_per_actor``
GPUs each. Output equals translate/translate_file.py's run on the same config.

    pip install -e '.[ray]'
    python translate/ray_translate.py --set file.input=in.jsonl --set file.output=out.jsonl \\
        --set 'file.fields=[caption]' --set file.assign_languages=true \\
        --set ray.address=auto --set ray.actors=8 --set ray.num_gpus_per_actor=1

The driver reads the input, draws the languages (over the whole file, as the
other stages do), and ships rows as their JSON text with their position; the
actors translate whole batches; the driver writes results back in input order
(order is preserved by Ray and checked by position). ``ray.address`` empty
starts a local Ray instance (``ray.num_cpus``); ``auto`` or ``ray://host:port``
joins a running cluster, whose nodes need this repository installed and a
``translation.cache`` path that is local to each node (or "").
"""
from __future__ import annotations

import collections
import json
import sys
import time
from pathlib import Path

from common.config import parse_args
from common.errors import UserError, entry_point
from common.jsonl import BadRows, atomic_open, dumps, read_jsonl, write_jsonl
from common.languages import assign_languages, load_languages
from translate.engine import TRANSLATION_DEFAULTS
from translate.stage import count_rows
from translate.translate_file import DEFAULTS as FILE_DEFAULTS

DEFAULTS = {
    # translate_file.py's keys (chunk_rows aside: Ray batches by ray.batch_rows).
    "file": {k: v for k, v in FILE_DEFAULTS["file"].items() if k != "chunk_rows"},
    "ray": {
        "address": "",               # "": start a local instance | auto | ray://head:10001
        "num_cpus": 0,               # local instance only (0: all cores)
        "actors": 1,                 # concurrency: actors (models) running at once
        "num_gpus_per_actor": 0.0,
        "num_cpus_per_actor": 1.0,
        "batch_rows": 2000,          # rows per map_batches call (the engine batches by tokens inside)
    },
    "translation": TRANSLATION_DEFAULTS,
}


def prepare(in_path: Path, lang_field: str, assign_seed: int | None, languages: list[str] | None,
            max_bad: int) -> tuple[list[str], int]:
    """Every usable row as JSON text, languages drawn as translate_jsonl draws them."""
    table = load_languages()
    assigned = assign_languages(count_rows(in_path), assign_seed, languages) if assign_seed is not None else None
    bad = BadRows(max_bad=max_bad)
    rows = []
    for i, row in enumerate(read_jsonl(in_path, bad)):
        if assigned is not None:
            row[lang_field] = assigned[i]
        if row.get(lang_field) not in table:
            bad.add(f"{in_path}: row {i + 1}", f"{lang_field}={row.get(lang_field)!r} is not in the language table")
            continue
        rows.append(dumps(row))
    return rows, bad.count


class TranslateActor:
    """One model per actor, loaded once; each call translates one batch of rows."""

    def __init__(self, tcfg: dict, fields: list[str], lang_field: str):
        from translate.engine import Engine
        self.tcfg = {**tcfg, "progress": False}
        self.engine = Engine(self.tcfg)
        self.fields, self.lang_field = fields, lang_field

    def __call__(self, batch: dict) -> dict:
        import numpy as np
        from translate.stage import translate_rows
        counts: collections.Counter = collections.Counter()
        first_reject = len(self.engine.rejects)
        rows = [json.loads(s) for s in batch["row"]]
        out = translate_rows(self.engine, rows, self.fields, self.lang_field, counts=counts)
        # Per-batch side results ride on the batch's first row (columns must be equally long).
        side = [""] * len(out)
        if side:
            side[0] = json.dumps({"counts": dict(counts), "rejects": self.engine.rejects[first_reject:]},
                                 ensure_ascii=False)
        del self.engine.rejects[first_reject:]
        return {"pos": batch["pos"], "row": np.array([dumps(r) for r in out], dtype=object),
                "side": np.array(side, dtype=object)}


def translate_on_ray(rows: list[str], fields: list[str], lang_field: str, tcfg: dict, rc: dict):
    """Yield translated rows (JSON text) in input order, then the side results as a dict."""
    import ray
    import ray.data

    if not ray.is_initialized():
        if rc["address"]:
            try:
                ray.init(address=rc["address"], log_to_driver=False)
            except ConnectionError as e:   # e.g. address=auto with no cluster running here
                raise UserError(f"ray.address={rc['address']}: cannot connect ({str(e).splitlines()[0]}); "
                                "empty starts a local instance") from None
        else:
            ray.init(num_cpus=rc["num_cpus"] or None, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = bool(tcfg.get("progress"))
    ds = ray.data.from_items([{"pos": k, "row": r} for k, r in enumerate(rows)])
    ds = ds.map_batches(TranslateActor, fn_constructor_kwargs={"tcfg": tcfg, "fields": fields,
                                                               "lang_field": lang_field},
                        batch_size=rc["batch_rows"], batch_format="numpy", concurrency=rc["actors"],
                        num_gpus=rc["num_gpus_per_actor"] or None, num_cpus=rc["num_cpus_per_actor"])
    pending: dict[int, str] = {}
    want = 0
    counts: collections.Counter = collections.Counter()
    rejects: list[dict] = []
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for pos, row, side in zip(batch["pos"], batch["row"], batch["side"]):
            pending[int(pos)] = str(row)
            if side:
                s = json.loads(side)
                counts.update(s["counts"])
                rejects += s["rejects"]
        while want in pending:       # in order already; the buffer only guards the assumption
            yield pending.pop(want)
            want += 1
    if pending or want != len(rows):
        raise RuntimeError(f"ray returned {want} of {len(rows)} rows in order")
    yield {"counts": dict(counts), "rejects": rejects}


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, None, argv)
    fc, rc = cfg["file"], cfg["ray"]
    for key in ("file.input", "file.output"):
        if not cfg.at(key):
            raise UserError(f"{key}: not set")
    src = cfg.require_file("file.input")
    table = load_languages()
    unknown = [c for c in fc["languages"] if c not in table]
    if unknown:
        raise UserError(f"file.languages: unknown code(s) {', '.join(map(str, unknown))}")
    if rc["actors"] < 1 or rc["batch_rows"] < 1:
        raise UserError("ray.actors and ray.batch_rows must be >= 1")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError("ray is not installed: pip install -e '.[ray]'") from None
    t0 = time.monotonic()
    rows, bad = prepare(src, fc["lang_field"], fc["seed"] if fc["assign_languages"] else None,
                        [str(c) for c in fc["languages"]] or None, fc["max_bad_rows"])
    side: dict = {}
    out = Path(fc["output"])
    with atomic_open(out) as f:
        for item in translate_on_ray(rows, list(fc["fields"]), fc["lang_field"], dict(cfg["translation"]), rc):
            if isinstance(item, dict):
                side = item
            else:
                f.write(item + "\n")
    write_jsonl(Path(str(out) + ".rejects.jsonl"), side.get("rejects", []))
    counts = {**side.get("counts", {}), "bad_rows": bad, "seconds": round(time.monotonic() - t0, 1)}
    print("[ray_translate] " + ", ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
