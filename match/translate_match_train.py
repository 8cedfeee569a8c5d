"""Translate the matching rows: each row gets a language by mC4 share (seeded,
over the whole file) and its candidate ``caption`` is translated into it by the
translation engine. ``caption_en`` keeps the English candidate so a row whose
template cannot be used in its language can fall back to English later; a row
whose translation was rejected keeps English and gets lang "en".

    python match/translate_match_train.py [--set translation.backend=ctranslate2]

Sharded (rows i % N == I), then merged:
    python match/translate_match_train.py --set run.num_shards=N --set run.shard_index=I
    python match/translate_match_train.py --set run.num_shards=N --set translate.combine_shards=true
Next: generate_match_train.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

from common.errors import entry_point
from common.jsonl import BadRows, atomic_open, dumps, read_jsonl
from translate.engine import Engine
from translate.stage import check_shard_args, combine_shards, translate_jsonl
from match.settings import load_config


def with_english_copy(in_path: Path, out_path: Path, max_bad: int) -> tuple[int, int]:
    """Copy the English rows adding ``caption_en`` (the field the engine leaves
    alone). Returns (rows copied, bad rows skipped)."""
    n = 0
    bad = BadRows(max_bad=max_bad)
    with atomic_open(out_path) as f:
        for row in read_jsonl(in_path, bad):
            row["caption_en"] = row.get("caption")
            f.write(dumps(row) + "\n")
            n += 1
    return n, bad.count


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = load_config(__doc__, argv)
    tc = cfg["translate"]
    num_shards, shard_index = check_shard_args(cfg["run"])
    out = cfg.path("translate.output")
    if tc["combine_shards"]:
        n = combine_shards(out, num_shards, cfg.path("translate.input"))
        print(f"[translate_match_train] merged {num_shards} shards: {n} rows -> {out}", file=sys.stderr)
        return
    src = cfg.require_file("translate.input")
    staged = out.with_name(out.name + ".english.jsonl")
    # Every shard writes the same staged copy; the rename is atomic, so racing shards are harmless.
    _, bad_rows = with_english_copy(src, staged, tc["max_bad_rows"])
    engine = Engine(cfg["translation"])
    counts = translate_jsonl(engine, staged, out, fields=["caption"], lang_field="lang",
                             assign_seed=tc["seed"], run=cfg["run"], max_bad_rows=tc["max_bad_rows"])
    counts["bad_rows"] += bad_rows
    engine.print_summary()
    engine.close()
    print("[translate_match_train] " + ", ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)
    if num_shards > 1:
        print(f"[translate_match_train] shard {shard_index} of {num_shards} done; when all are, merge with "
              f"--set translate.combine_shards=true", file=sys.stderr)
    else:
        print(f"[translate_match_train] wrote {out}; next: python match/generate_match_train.py", file=sys.stderr)


if __name__ == "__main__":
    main()
