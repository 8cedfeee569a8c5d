"""Steps 3 and 5 of BLIP Web CapFilt: the training examples. Run it twice.

First run (``generate.step=english``, or ``auto`` while no newer translations
exist): one English example per downloaded caption, written to
``generate.english`` as {id, image_id, caption, context, url}: ``context`` is
an English captioning instruction from ``generate.caption_templates``. Then run
``pretrain/translate_train.py``.

Second run (``final``, or ``auto`` once the translations are newer): the final
``train/capfilt.jsonl``. A non-English example's instruction is, for a
``translated_template_ratio`` share, a caption template translated into its
language, otherwise an English template naming the language; English examples
get an English template. Rows have exactly context, label, image_id, task, lang.

    python pretrain/generate_train.py [--set generate.step=final]
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Iterator

from common.config import REPO_ROOT, parse_args
from common.errors import UserError, entry_point
from common.jsonl import BadRows, load_json, read_jsonl, write_jsonl
from common.languages import load_languages
from common.report import Report
from common.sampling import stable_hash
from pretrain.capfilt_config import CONFIG_FILE, DEFAULTS, clean_text

TASK = "capfilt"


def pick(templates: list[str], seed: int, purpose: str, row_id: str) -> str:
    """A template chosen by the row's id: stable whatever the other rows are."""
    return templates[stable_hash(seed, purpose, row_id) % len(templates)]


def english_examples(rows: Iterable[dict], gc: dict, report: Report,
                     image_root: Path | None = None) -> Iterator[dict]:
    """Downloaded {id, url, caption, image_id} rows -> English intermediate rows."""
    for row in rows:
        rid, image_id = row.get("id"), row.get("image_id")
        caption = clean_text(row["caption"]) if isinstance(row.get("caption"), str) else ""
        if not isinstance(rid, str) or not rid:
            report.skip("missing id", str(row.get("url", ""))[:100])
            continue
        if not isinstance(image_id, str) or not image_id:
            report.skip("missing image_id", f"id {rid}")
            continue
        if not caption:
            report.skip("empty caption", f"id {rid}")
            continue
        if image_root is not None and not (image_root / image_id).is_file():
            report.skip("image file missing", f"id {rid}: {image_root / image_id}")
            continue
        yield {"id": rid, "image_id": image_id, "caption": caption,
               "context": pick(gc["caption_templates"], gc["seed"], "capfilt-en-context", rid),
               "url": row.get("url", "")}


def final_examples(rows: Iterable[dict], templates: dict[str, list[str]], gc: dict,
                   report: Report) -> Iterator[dict]:
    """Translated rows (with ``lang``) -> final training rows."""
    table = load_languages()
    ratio = gc["translated_template_ratio"]
    seed = gc["seed"]
    for row in rows:
        rid, lang, image_id = str(row.get("id", "")), row.get("lang"), row.get("image_id")
        label = clean_text(row["caption"]) if isinstance(row.get("caption"), str) else ""
        if lang not in table:
            report.skip("unknown lang", f"id {rid}: lang={lang!r}")
            continue
        if not label:
            report.skip("empty caption", f"id {rid}")
            continue
        if not isinstance(image_id, str) or not image_id:
            report.skip("missing image_id", f"id {rid}")
            continue
        if lang == "en":
            context = pick(gc["caption_templates"], seed, "capfilt-final-en", rid)
            report.count("context_english")
        else:
            draw = (stable_hash(seed, "capfilt-final-ratio", rid) % 1_000_000) / 1_000_000
            translated = templates.get(lang) or []
            if draw < ratio and translated:
                context = pick(translated, seed, "capfilt-final-translated", rid)
                report.count("context_translated_template")
            else:
                if draw < ratio:
                    report.count("context_no_translated_template_for_lang")
                context = pick(gc["language_templates"], seed, "capfilt-final-named", rid).format(table[lang].name)
                report.count("context_english_naming_language")
        report.count(f"lang:{lang}")
        yield {"context": context, "label": label, "image_id": image_id, "task": TASK, "lang": lang}


def check_templates(gc: dict) -> None:
    if not gc["caption_templates"] or not gc["language_templates"]:
        raise UserError("generate.caption_templates and generate.language_templates must not be empty")
    for t in gc["caption_templates"]:
        if "{" in t or "}" in t:
            raise UserError(f"generate.caption_templates: {t!r} must not contain braces (it is used as is)")
    for t in gc["language_templates"]:
        if t.count("{}") != 1:
            raise UserError(f"generate.language_templates: {t!r} needs exactly one {{}} for the language name")
    if not 0.0 <= gc["translated_template_ratio"] <= 1.0:
        raise UserError("generate.translated_template_ratio must be within 0..1")


def choose_step(gc: dict) -> str:
    step = gc["step"]
    if step not in ("auto", "english", "final"):
        raise UserError(f"generate.step: {step!r} is not one of auto, english, final")
    if step != "auto":
        return step
    english, translated, templates = Path(gc["english"]), Path(gc["translated"]), Path(gc["templates"])
    if (english.is_file() and translated.is_file() and templates.is_file()
            and translated.stat().st_mtime_ns >= english.stat().st_mtime_ns):
        return "final"
    return "english"


def load_templates(path: Path) -> dict[str, list[str]]:
    data = load_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise UserError(f"{path}: expected {{lang: [templates]}}")
    return {k: [t for t in v if isinstance(t, str) and t.strip()] for k, v in data.items()}


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, str(REPO_ROOT / "configs" / CONFIG_FILE), argv)
    gc = cfg["generate"]
    check_templates(gc)
    step = choose_step(gc)
    bad = BadRows(max_bad=gc["max_bad_rows"])
    if step == "english":
        src = cfg.require_file("generate.input")
        report = Report("capfilt.generate.english")
        image_root = cfg.path("generate.image_root") if gc["check_images"] else None
        n = write_jsonl(gc["english"], english_examples(read_jsonl(src, bad), gc, report, image_root))
        out, nxt = gc["english"], "python pretrain/translate_train.py, then this script again"
    else:
        src = cfg.require_file("generate.translated")
        templates = load_templates(cfg.require_file("generate.templates"))
        report = Report("capfilt.generate.final")
        n = write_jsonl(gc["output"], final_examples(read_jsonl(src, bad), templates, gc, report))
        out, nxt = gc["output"], "python pretrain/merge_train.py (with the other sources)"
    report.count("rows_in", bad.seen)
    report.count("rows_malformed", bad.count)
    report.count("rows_out", n)
    report.extra["step"] = step
    report.print()
    report_path = Path(gc["report"])
    report.save(report_path.with_name(f"{report_path.stem}_{step}{report_path.suffix}"))
    print(f"wrote {n} rows to {out}; next: {nxt}", file=sys.stderr)


if __name__ == "__main__":
    main()
