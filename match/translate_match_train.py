"""Translate the matching rows: each row gets a language by mC4 share (seeded,
over the whole file) and its candidate ``caption`` is translated into it by the
translation engine. ``caption_en`` keeps the English candidate so a row whose
template cannot be used in its language can fall back to English later; a row
whose translation was rejected keeps English and gets lang "en". The question
templates and their yes/no answers (``generate.templates``) are translated into
every language too, into the store ``translate.templates_output`` (kept while
the templates, translation settings and languages are unchanged).

    python match/translate_match_train.py [--set translation.backend=ctranslate2]

Sharded (rows i % N == I; shard 0 also translates the templates):
    python match/translate_match_train.py --set run.num_shards=N --set run.shard_index=I
"""
from __future__ import annotations

from pathlib import Path

from common.errors import UserError, entry_point
from common.jsonl import BadRows, atomic_open, dumps, read_jsonl
from common.languages import language_list, table_inputs
from common.report import Report
from common.shards import ShardRule
from common.steptype import Step
from match.generate_match_train import template_sets
from match.settings import DEFAULTS, load_config
from translate import source

# Rows dealt round-robin into shard files of translate.output, interleaved back by the
# launcher (python -m common launch match.translate); shard 0 writes the templates.
SHARDS = ShardRule(device="translation", sharded=("${translate.output}",),
                   first_shard=("${translate.templates_output}",))


def with_english_copy(in_path: Path, out_path: Path, max_bad: int) -> tuple[int, int]:
    """Copy the English rows adding ``caption_en`` (the field the engine leaves
    alone). Returns (rows copied, bad rows skipped)."""
    n = 0
    bad = BadRows(max_bad=max_bad, key="translate.max_bad_rows")
    with atomic_open(out_path) as f:
        for row in read_jsonl(in_path, bad):
            row["caption_en"] = row.get("caption")
            f.write(dumps(row) + "\n")
            n += 1
    return n, bad.count



STEP = Step("match.translate", "match.translate_match_train", "match", "translate the candidate captions",
            reads=(table_inputs, "${translate.input}",), writes=("${translate.output}", "${translate.templates_output}"),
            after=("match.mine",), shaped_by=("translate", "generate.templates", "translation"),
            defaults=DEFAULTS, rule=SHARDS)


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = load_config(__doc__, argv)
    tc = cfg["translate"]
    languages = language_list(tc["languages"], "translate.languages")
    sets = template_sets(cfg)
    src, out = cfg.path("translate.input"), cfg.path("translate.output")
    if not src.is_file():
        raise UserError(f"translate.input: input file not found: {src}; run {source.rerun_hint('match.mine', argv)}")
    staged = out.with_name(out.name + ".english.jsonl")

    def prepare(report: Report) -> None:
        # Every shard writes the same staged copy; the rename is atomic, so racing shards are harmless.
        report.count("bad_rows", with_english_copy(src, staged, tc["max_bad_rows"])[1])

    source.translate_step("match.translate", cfg, languages=languages, template_sets=sets,
                          store=cfg.path("translate.templates_output"), rows_in=staged, rows_out=out,
                          fields=["caption"], seed=tc["seed"], max_bad_rows=tc["max_bad_rows"],
                          report=Report("match.translate"), argv=argv, prepare=prepare,
                          extra=(("translate.output", staged, False),))


if __name__ == "__main__":
    main()
