"""Write train/capfilt_match.jsonl: "does this caption fit the image?" examples.

Each row of the translated matching file becomes {context, label, image_id,
task: "capfilt_match", lang}: a question template from generate.templates with
the (translated) candidate caption inside, and that template's own yes or no
answer as the label. For a non-English row the question and both answers are
in the row's language: translate_match_train.py translated every template
into every language (``translate.templates_output``, a store keyed by the
templates, translation settings and languages; a stale one is refused here). A
template whose translation was rejected or lost its {caption} placeholder is
not used in that language; a language left with no template falls back to the
English template with the English candidate caption, and the row's lang
becomes "en".

    python match/generate_match_train.py
    # English only, no translation step: --set generate.input=<hard_match output>
"""
from __future__ import annotations

import collections
import sys
from pathlib import Path
from typing import NamedTuple

from common import lifecycle
from eval_data import decontam
from common.errors import UserError, entry_point
from common.jsonl import BadRows, atomic_open, dumps, read_jsonl, write_json
from common.languages import language_list, load_languages, table_inputs
from common.report import Report
from common.sampling import rng
from common.steptype import Step
from translate import source
from translate.shaping import step_values
from match.settings import DEFAULTS, load_config

TASK = "capfilt_match"


class Template(NamedTuple):
    question: str
    yes: str
    no: str


def parse_templates(raw: list) -> list[Template]:
    if not raw:
        raise UserError("generate.templates: at least one template is needed")
    out = []
    for i, t in enumerate(raw):
        where = f"generate.templates[{i}]"
        if not isinstance(t, dict) or set(t) != {"question", "answer_yes", "answer_no"}:
            raise UserError(f"{where}: needs exactly the keys question, answer_yes, answer_no")
        if not all(isinstance(v, str) and v.strip() for v in t.values()):
            raise UserError(f"{where}: question and answers must be non-empty strings")
        if t["question"].count("{caption}") != 1:
            raise UserError(f"{where}: the question must contain {{caption}} exactly once")
        out.append(Template(t["question"], t["answer_yes"], t["answer_no"]))
    return out


def template_sets(cfg) -> dict[str, list[str]]:
    """The store's template sets: one per template, [question, yes, no], so a
    language gets a template only when all three parts survived translation."""
    return {str(i): list(t) for i, t in enumerate(parse_templates(cfg.at("generate.templates")))}


def localise(templates: list[Template], store: dict[str, dict[str, list[str]]],
             languages: list[str]) -> tuple[dict[str, list[Template]], collections.Counter]:
    """lang -> the templates usable in it (question and both answers translated,
    placeholder intact), from the store. English keeps the originals."""
    by_lang: dict[str, list[Template]] = {"en": list(templates)}
    counts: collections.Counter = collections.Counter()
    others = [c for c in languages if c != "en"]
    for i, _ in enumerate(templates):
        done = store.get(str(i), {})
        for lang in others:
            parts = done.get(lang, [])
            if len(parts) == 3:
                by_lang.setdefault(lang, []).append(Template(*parts))
            else:
                counts["template_dropped_in_a_language"] += 1
    return by_lang, counts


def make_example(row: dict, by_lang: dict[str, list[Template]], seed: int) -> tuple[dict, bool]:
    """(the training row, whether it fell back to English)."""
    lang = row.get("lang", "en")
    caption = row["caption"]
    fallback = False
    if not by_lang.get(lang):
        fallback = True
        lang, caption = "en", row.get("caption_en") or caption
    choices = by_lang[lang]
    t = choices[rng(seed, "match-template", row["id"]).randrange(len(choices))]
    return {"context": t.question.replace("{caption}", caption),
            "label": t.yes if row["match"] == "yes" else t.no,
            "image_id": row["image_id"], "task": TASK, "lang": lang}, fallback


def validate(row: dict) -> str | None:
    for key in ("id", "image_id", "caption"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            return f"field {key!r} missing or empty"
    if row.get("match") not in ("yes", "no"):
        return f"match must be 'yes' or 'no', got {row.get('match')!r}"
    if row.get("lang", "en") not in load_languages():
        return f"lang {row.get('lang')!r} is not in the language table"
    return None


def read_store(cfg, languages: collections.Counter, argv) -> dict:
    """The translated templates (none needed when every row is English)."""
    if not set(languages) - {"en"}:
        return {}
    wanted = language_list(cfg.at("translate.languages"), "translate.languages")
    return source.load_store(cfg.path("generate.translated_templates"), template_sets(cfg), cfg["translation"],
                             wanted, "match.translate", argv)


def web_images(cfg, dec: decontam.Decontaminator, report: Report) -> dict[str, list[str]]:
    """image_id -> image keys of the rows whose image is an evaluation image,
    by the URLs of the CapFilt English file the matching rows were mined from
    (``match.input``): a matching row names only its image."""
    path = cfg.path("match.input")
    if not path.is_file():
        report.extra["decontamination_note"] = f"{path} not found: web images could not be checked by URL"
        print(f"WARNING: match.input {path} not found: the images' URLs are unknown, so web images of the "
              "evaluation sets (NLVR2, Flickr30k) cannot be recognised", file=sys.stderr)
        return {}
    return decontam.web_images(path, dec)


def write_examples(cfg, src: Path, by_lang: dict[str, list[Template]], report: Report,
                   dec: decontam.Decontaminator | None = None, web: dict | None = None, rerun: str = "") -> None:
    """The examples of ``src``; with ``dec``, the assertion that none is on an
    evaluation image (``web``: image_id -> keys): hard_match.py dropped them
    before translation, so one here stops the run, naming ``rerun``."""
    gc = cfg["generate"]
    bad = BadRows(max_bad=gc["max_bad_rows"], key="generate.max_bad_rows")
    per_lang: collections.Counter = collections.Counter()
    with atomic_open(cfg.path("generate.output")) as f:
        for row in read_jsonl(src, bad, validate=validate):
            report.count("rows_in")
            example, fallback = make_example(row, by_lang, gc["seed"])
            if dec is not None:
                dec.check_final(TASK, (web or {}).get(row["image_id"], ()), example, rerun)
            if fallback:
                report.count("rows_fallback_to_english_template")
            f.write(dumps(example) + "\n")
            report.count("rows_out")
            report.count(f"label_{row['match']}")
            per_lang[example["lang"]] += 1
    if bad.count:
        report.skip("bad input row", n=bad.count)
        report.examples["bad input row"] = bad.examples[:5]
    report.extra["rows_per_language"] = dict(per_lang.most_common())
    report.extra["output"] = str(cfg.path("generate.output"))



STEP = Step("match.final", "match.generate_match_train", "match", "final training file",
            reads=(table_inputs, "${generate.input}", "${generate.translated_templates}", "${match.input}", decontam.web_inputs),
            writes=("${generate.output}",), after=("match.translate",),
            shaped_by=("generate", "decontam", step_values), tasks=("capfilt_match",), defaults=DEFAULTS)


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = load_config(__doc__, argv)
    templates = parse_templates(cfg.at("generate.templates"))
    src = cfg.path("generate.input")
    if not src.is_file():
        raise UserError(f"generate.input: input file not found: {src}; run "
                        f"{source.rerun_hint('match.translate', argv)} (or point generate.input at the English "
                        "hard_match output)")
    lifecycle.run_step(STEP, cfg, argv, lambda: generate(cfg, src, templates, argv),
                       [("generate.templates_out", cfg.path("generate.templates_out"), False)])


def generate(cfg, src: Path, templates, argv) -> lifecycle.Done:
    """The final file: localised templates, then the examples (no evaluation image)."""
    report = Report("generate_match_train")
    languages = collections.Counter(row.get("lang", "en") for row in
                                    read_jsonl(src, BadRows(max_bad=None, quiet=True), validate=validate))
    by_lang, tcounts = localise(templates, read_store(cfg, languages, argv), sorted(languages))
    write_json(cfg.path("generate.templates_out"),
               {k: [{"question": t.question, "answer_yes": t.yes, "answer_no": t.no} for t in v]
                for k, v in by_lang.items()}, indent=1)
    report.extra["template_translation"] = dict(tcounts)
    report.extra["languages_without_template"] = sorted(set(languages) - set(by_lang))
    rerun = source.rerun_hint("match.mine", argv)
    dec = decontam.english_counts(cfg, "web", "match.mine", rerun)  # hard_match.py dropped them
    write_examples(cfg, src, by_lang, report, dec, web_images(cfg, dec, report), rerun)
    dec.record(report)
    report.print()
    return lifecycle.Done(report, lambda: print(f"[generate_match_train] wrote {cfg.path('generate.output')}",
                                                file=sys.stderr))


if __name__ == "__main__":
    main()
