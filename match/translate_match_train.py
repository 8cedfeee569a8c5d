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

from common.errors import UserError, entry_point
from common.languages import language_list, table_inputs
from common.report import Report
from common.shards import ShardRule
from common.steptype import Step
from match.generate_match_train import template_sets
from match.settings import DEFAULTS, load_config
from translate import source
from translate.shaping import step_values

# Rows dealt round-robin into shard files of translate.output, interleaved back by the
# launcher (python -m common launch match.translate); shard 0 writes the templates.
SHARDS = ShardRule(device="translation", sharded=("${translate.output}",),
                   first_shard=("${translate.templates_output}",))


STEP = Step("match.translate", "match.translate_match_train", "match", "translate the candidate captions",
            reads=(table_inputs, "${translate.input}",), writes=("${translate.output}", "${translate.templates_output}"),
            after=("match.mine",), shaped_by=("translate", "generate.templates", step_values),
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
    # caption_en keeps the English candidate beside its translation (the engine rewrites caption).
    source.translate_step("match.translate", cfg, languages=languages, template_sets=sets,
                          store=cfg.path("translate.templates_output"), rows_in=src, rows_out=out,
                          fields=["caption"], seed=tc["seed"], max_bad_rows=tc["max_bad_rows"],
                          report=Report("match.translate"), argv=argv, keep={"caption": "caption_en"})


if __name__ == "__main__":
    main()
