"""Step 4 of BLIP Web CapFilt: translate the English intermediate.

Every row of ``translate.input`` (generate_train.py's first output) gets a
language drawn by mC4 share (counts exact by largest remainder, positions
seeded, over the whole file so shards agree); its caption is translated by the
one engine (a rejected translation keeps English with lang "en"). The caption
templates (``generate.caption_templates``) are translated into every language
too, for the second run of generate_train.py.

Sharding: ``--set run.num_shards=N --set run.shard_index=i`` translates rows
i, i+N, ... into a shard file; the run that finds all N shards present merges
them into ``translate.output``. Shard 0 also translates the templates.

    python pretrain/translate_train.py [--set translation.backend=ctranslate2]
"""
from __future__ import annotations

import sys
from pathlib import Path

from common.config import REPO_ROOT, parse_args
from common.errors import UserError, entry_point
from common.languages import load_languages
from common.report import Report
from pretrain.capfilt_config import CONFIG_FILE, DEFAULTS
from translate.engine import Engine
from translate.stage import check_shard_args, combine_shards, save_templates, shard_path, \
    translate_jsonl, translate_templates


def check_languages(codes: list[str]) -> list[str] | None:
    table = load_languages()
    unknown = [c for c in codes if c not in table]
    if unknown:
        raise UserError(f"translate.languages: unknown code(s) {', '.join(map(str, unknown))} (see common/languages.tsv)")
    return list(codes) or None


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, str(REPO_ROOT / "configs" / CONFIG_FILE), argv)
    src = cfg.require_file("translate.input")
    tc = cfg["translate"]
    languages = check_languages(tc["languages"])
    num_shards, shard_index = check_shard_args(cfg["run"])
    report = Report("capfilt.translate")
    engine = Engine(cfg["translation"])
    try:
        counts = translate_jsonl(engine, src, tc["output"], fields=["caption"], lang_field="lang",
                                 assign_seed=tc["seed"], languages=languages, run=cfg["run"],
                                 chunk_rows=tc["chunk_rows"], max_bad_rows=tc["max_bad_rows"])
        for k, v in counts.items():
            report.count(k, v)
        if shard_index == 0:
            templates, tcounts = translate_templates(engine, cfg.at("generate.caption_templates"),
                                                     languages or list(load_languages()))
            save_templates(tc["templates_output"], templates)
            report.extra["templates"] = tcounts
            langs_without = sorted(c for c in (languages or load_languages()) if c != "en" and not templates.get(c))
            report.extra["languages_without_a_translated_template"] = len(langs_without)
        engine.print_summary()
    finally:
        engine.close()
    if num_shards > 1:
        missing = [i for i in range(num_shards) if not shard_path(tc["output"], i, num_shards).is_file()]
        if missing:
            print(f"shard {shard_index}/{num_shards} done; waiting for shard(s) {missing[:10]} "
                  "(the last one to finish merges them)", file=sys.stderr)
        else:
            n = combine_shards(tc["output"], num_shards, tc["input"])
            report.count("rows_merged_from_shards", n)
    report.print()
    report.save(Path(tc["report"]).with_name(f"{Path(tc['report']).stem}_shard{shard_index}.json")
                if num_shards > 1 else tc["report"])
    print(f"wrote {tc['output'] if num_shards == 1 else shard_path(tc['output'], shard_index, num_shards)}; "
          "next: python pretrain/generate_train.py (second run)", file=sys.stderr)


if __name__ == "__main__":
    main()
