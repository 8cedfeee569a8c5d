"""The translated-source workflow, written once: CapFilt, matching, MSCOCO,
VQAv2, LLaVA and ImageNet all go through it.

* Which run of a two-run ``generate_train.py`` this is: ``generate()`` asks
  ``common.lifecycle.choose_run`` (recorded fingerprints, never file mtimes),
  runs the English or the final part, prints and saves the report and ends with
  ``lifecycle.finish`` (the run record and the ``next:`` command).
* The translate step: ``translate_step()`` translates the rows of the English
  intermediate (``translate.stage.translate_jsonl``, a language per row by mC4
  share) and the template sets into every configured language, once.
* The store of translated templates: one JSON file per source,
  ``{"key", "fingerprint", "counts", "translated": {set: {lang: [texts]}}}``.
  The key is what the translations depend on (the English templates, the
  translation settings that shape the output: ``translate/shaping.py``, the
  languages and their model codes). The translate
  step rebuilds a store whose key differs; a final run refuses one (exit 2,
  naming the step to rerun), so stale translations are never used.
* ``InstructionPicker``: an instruction per row, chosen by a hash of (seed,
  stage, purpose, row id), so the choice depends neither on the other rows, nor
  on their order, nor on the shard count.
* ``fill``: the one way a template's ``{}`` / ``{lang}`` slots are filled.

The language list is checked by ``common.languages.language_list``.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from common import cli, lifecycle
from common.errors import UserError
from common.jsonl import atomic_open, dumps, read_json_object, write_json
from common.templates import fill
from common.languages import check_split, get_language, model_code, target_percent
from common.report import Report
from common.sampling import stable_hash
from common.shards import check_shard_args
from .engine import Engine, check_settings
from .families import check_model_codes, resolve_family
from .shaping import shaping_settings
from .stage import translate_jsonl, translate_templates


# -- the two runs of generate_train.py ------------------------------------------------------------
@dataclass
class Written:
    """What one run of a generate script did: its report (saved where every
    report goes, ``lifecycle.report_path``), the files written with their row
    counts, and the error for writing none."""
    report: Report
    files: dict[str, int] = field(default_factory=dict)
    empty_error: str | None = None


def generate(source: str, cfg, english: Callable[[], Written], final: Callable[[], Written],
             wanted: str = "auto", argv: list[str] | None = None) -> str:
    """Run the English (``english()``) or the final (``final()``) part of the
    two-run generate script of ``source`` (steps ``<source>.english`` and
    ``<source>.final``), as ``lifecycle.choose_run`` decides; returns which."""
    from common import pipeline   # the ordered list, above the step modules: read at call time
    run = lifecycle.choose_run(f"{source}.english", f"{source}.final", cfg, wanted)

    def work() -> lifecycle.Done:
        done = (english if run == "english" else final)()
        for path, n in done.files.items():
            print(f"wrote {n} rows -> {path}", file=sys.stderr)
        done.report.extra["run"] = run
        done.report.print(file=sys.stderr)

        def then() -> None:
            if done.empty_error and not sum(done.files.values()):
                raise UserError(done.empty_error)
        return lifecycle.Done(done.report, then)

    lifecycle.run_step(pipeline.get(f"{source}.{run}"), cfg, argv, work)
    return run


# A row's prompt language where it differs from its target's (``lang``): set by the
# generator, counted and removed by ``write_by_key`` (never written).
PROMPT_LANG = "_prompt_lang"


def write_by_key(paths: dict[str, Path], pairs: Iterable[tuple[str, dict]],
                 prompts: dict[str, collections.Counter] | None = None) -> dict[str, collections.Counter]:
    """Write (key, row) pairs, in one pass, to one file per key, each
    atomically. Returns {key: Counter of row["lang"]} (the target's language);
    ``prompts`` gets {key: Counter of the prompt's language} (``PROMPT_LANG``
    where the generator set it, else the row's ``lang``)."""
    langs = {key: collections.Counter() for key in paths}
    if prompts is not None:
        prompts.update({key: collections.Counter() for key in paths})
    with contextlib.ExitStack() as stack:
        files = {key: stack.enter_context(atomic_open(path)) for key, path in paths.items()}
        for key, row in pairs:
            prompt = row.pop(PROMPT_LANG, None) or row.get("lang")
            files[key].write(dumps(row) + "\n")
            langs[key][row.get("lang")] += 1
            if prompts is not None:
                prompts[key][prompt] += 1
    return langs


def rerun_hint(step_id: str, argv: list[str] | None = None) -> str:
    """'step 4.2 (mscoco.translate): python ...' for a message that says what to run."""
    from common import pipeline   # the ordered list, above the step modules: read at call time
    step = pipeline.get(step_id)
    argv = list(sys.argv[1:] if argv is None else argv)
    return f"step {step.number} ({step.id}): {cli.command(step, argv, step)}"


# -- the translate step ---------------------------------------------------------------------------
def translate_step(step_id: str, cfg, *, languages: list[str], template_sets: dict[str, list[str]],
                   store: Path, rows_in: Path | None = None, rows_out: Path | None = None,
                   fields: list[str] = (), seed: int = 0, max_bad_rows: int = 1000, chunk_rows: int = 20000,
                   engine: Engine | None = None, after: Callable | None = None, report: Report | None = None,
                   argv: list[str] | None = None, keep: dict[str, str] | None = None) -> dict:
    """The translate step of a source: the rows of ``rows_in`` (each gets a
    language of ``languages`` by mC4 share, seeded over the whole file) into
    ``rows_out``, then, in shard 0 only, the template sets into the store and
    ``after(engine, languages)`` (extra work, returns counts). ``report``: one
    the caller started (counts of its own). Warns loudly about languages (or
    templates) whose translations were all rejected and stops at
    ``translation.max_reject_rate``. ``keep``: English copies of translated
    fields kept in the rows (translate_jsonl). Runs in ``lifecycle.run_step``; the
    report is saved also when the translation fails. Returns the counts."""
    from common import pipeline   # the ordered list, above the step modules: read at call time
    split = drawing_split(step_id, cfg, languages) if rows_in is not None else None
    if rows_in is not None and not rows_in.is_file():
        raise UserError(f"input not found: {rows_in}; run {rerun_hint(pipeline.get(step_id).after[0], argv)}")
    check_settings(cfg.at("translation"))
    check_model_codes(cfg.at("translation"), languages)   # each has a code in the model family
    run = cfg.get("run") or {"num_shards": 1, "shard_index": 0}
    _, shard_index = check_shard_args(run)
    report = report or Report(step_id)
    bad_key = "translate.max_bad_rows" if "translate" in cfg else f"{pipeline.get(step_id).config}.max_bad_rows"

    job = TranslateJob(languages=languages, template_sets=template_sets, store=store, rows_in=rows_in,
                       rows_out=rows_out, fields=list(fields), seed=seed, max_bad_rows=max_bad_rows,
                       bad_key=bad_key, chunk_rows=chunk_rows, after=after, run=run, shard_index=shard_index,
                       keep=keep, split=split)

    def work() -> Report:
        _translate(engine or Engine(cfg.at("translation")), step_id, cfg, report, job)
        return report

    lifecycle.run_step(pipeline.get(step_id), cfg, argv, work, partial=report)
    return dict(report.counts)


@dataclass(frozen=True)
class TranslateJob:
    """What one translate step does, from ``translate_step``'s arguments: the rows
    (``rows_in`` -> ``rows_out``, ``fields`` of them, a language per row by
    ``split``), the template sets into ``store``, and ``after``."""
    languages: list[str]
    template_sets: dict[str, list[str]]
    store: Path
    rows_in: Path | None
    rows_out: Path | None
    fields: list[str]
    seed: int
    max_bad_rows: int
    bad_key: str                    # the config key named when max_bad_rows is reached
    chunk_rows: int
    after: Callable | None
    run: dict                       # the run section: num_shards, shard_index
    shard_index: int
    keep: dict[str, str] | None
    split: dict | None              # the language-split policy (drawing_split), None without rows


def _translate(engine: Engine, step_id: str, cfg, report: Report, job: TranslateJob) -> None:
    """The rows, then (shard 0) the template store and ``after``; the engine's summary in the report."""
    try:
        if job.rows_in is not None:
            counts = translate_jsonl(engine, job.rows_in, job.rows_out, fields=job.fields, lang_field="lang",
                                     assign_seed=job.seed, languages=job.languages, run=job.run,
                                     chunk_rows=job.chunk_rows, max_bad_rows=job.max_bad_rows,
                                     max_bad_rows_key=job.bad_key, assign_stage=step_id, keep=job.keep,
                                     language_split=job.split)
            # {language: {reason: rows}}: what the mix report explains per language
            report.extra["fallback_to_english"] = counts.pop("fallback_to_english")
            # the draws and their policy: the mix report's "drawn vs target" (pretrain/mix_card.py)
            report.extra["language_split"] = {**job.split,
                                              "target_percent": target_percent(job.languages, job.split)}
            report.extra["drawn"] = counts.pop("drawn")
            report.counts.update(counts)
        if job.shard_index == 0:
            translated = build_store(engine, job.store, job.template_sets, cfg.at("translation"), job.languages)
            _check_templates(translated, job.template_sets, job.languages, report)
            if job.after is not None:
                report.counts.update(job.after(engine, job.languages))
        engine.print_summary()
        engine.check_rejections(step_id)
    finally:
        engine.close()
        report.extra["translation"] = engine.summary()
        report.print(file=sys.stderr)


def split_key(step_id: str, cfg) -> str:
    """The config key of a translate step's language split: ``translate.language_split``
    (CapFilt, matching) or ``<source>.language_split``, beside the step's ``languages``."""
    from common import pipeline   # the ordered list, above the step modules: read at call time
    return "translate.language_split" if "translate" in cfg else f"{pipeline.get(step_id).config}.language_split"


def drawing_split(step_id: str, cfg, languages: list[str]) -> dict:
    """The step's language-split policy, checked before any work (one line naming the key)."""
    key = split_key(step_id, cfg)
    try:
        value = cfg.at(key)
    except UserError:
        value = {"policy": "mc4"}   # a config without the key draws by mC4 share
    return check_split(value, key, languages)


def _check_templates(translated: dict, template_sets: dict, languages: list[str], report: Report) -> None:
    """Count (and warn loudly about) languages left without any translated template."""
    wanted = [c for c in languages if c != "en"]
    missing = [c for c in wanted if not any(v.get(c) for v in translated.values())]
    report.extra["languages_without_a_translated_template"] = len(missing) if template_sets else 0
    if template_sets and missing:
        every = "every language" if len(missing) == len(wanted) else f"{len(missing)} of {len(wanted)} languages"
        print(f"WARNING: no translated template for {every} ({', '.join(missing[:12])}"
              f"{' ...' if len(missing) > 12 else ''}): every translation was rejected or lost a placeholder; "
              "those rows get an English instruction naming the language", file=sys.stderr)


# -- the store of translated templates ------------------------------------------------------------
def store_key(template_sets: dict[str, list[str]], tcfg: dict, languages: list[str]) -> dict:
    # model_codes: what the model receives for each language (the code of the table of its
    # family: NLLB or MADLAD), so an edit of the table, or another family, makes the store stale.
    family = resolve_family(tcfg)
    key = {"templates": template_sets, "translation": shaping_settings(tcfg), "languages": list(languages),
           "model_codes": {c: model_code(c, family) for c in languages}}
    return json.loads(json.dumps(key))  # as it reads back from the file (tuples -> lists)


def fingerprint(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _changed(old: dict | None, new: dict) -> str:
    """What differs between a stored key and the wanted one, in a few words."""
    if not isinstance(old, dict):
        return "the file has no key"
    out = []
    for part in ("templates", "languages", "model_codes"):
        if old.get(part) != new[part]:
            out.append(part)
    old_t = old.get("translation") if isinstance(old.get("translation"), dict) else {}
    out += [f"translation.{k}" for k in sorted(set(old_t) | set(new["translation"]))
            if old_t.get(k) != new["translation"].get(k)]
    return ", ".join(out[:5]) or "the fingerprint"


def _read_store(path: Path) -> dict | None:
    data = read_json_object(path)
    return data if data is not None and isinstance(data.get("translated"), dict) else None


def build_store(engine: Engine, path: Path, template_sets: dict[str, list[str]], tcfg: dict,
                languages: list[str]) -> dict[str, dict[str, list[str]]]:
    """The translate step's part: {set: {lang: [templates]}}, reused from
    ``path`` while its key is this one, else translated (again) and written."""
    key = store_key(template_sets, tcfg, languages)
    data = _read_store(path) if path.is_file() else None
    if data is not None and data.get("key") == key:
        print(f"templates: up to date in {path}", file=sys.stderr)
        return data["translated"]
    if data is not None:
        print(f"templates: {path} is stale ({_changed(data.get('key'), key)} changed): translating again",
              file=sys.stderr)
    out, counts = {}, {}
    for name, items in template_sets.items():
        out[name], counts[name] = translate_templates(engine, list(items), languages)
    write_json(path, {"key": key, "fingerprint": fingerprint(key), "counts": counts, "translated": out}, indent=1)
    print(f"templates: translated into {len(languages)} languages -> {path} ({counts})", file=sys.stderr)
    return out


def load_store(path: Path, template_sets: dict[str, list[str]], tcfg: dict, languages: list[str],
               step_id: str, argv: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """The final run's part: the translated templates of ``path``, refusing
    (UserError, exit 2) a missing, unreadable or stale store and naming the
    translate step ``step_id`` to rerun."""
    if not path.is_file():
        raise UserError(f"translated templates not found: {path}; run {rerun_hint(step_id, argv)}")
    data = _read_store(path)
    if data is None:
        raise UserError(f"{path}: not a translated-templates file; rerun {rerun_hint(step_id, argv)}")
    key = store_key(template_sets, tcfg, languages)
    if data.get("key") != key:
        raise UserError(f"{path}: stale translated templates ({_changed(data.get('key'), key)} changed since "
                        f"they were translated); rerun {rerun_hint(step_id, argv)}")
    return data["translated"]


# -- instructions ---------------------------------------------------------------------------------
def row_unit(seed: int, purpose: str, row_id: object) -> float:
    """A draw in [0, 1) that depends only on the seed, the purpose and the row id."""
    return (stable_hash(seed, purpose, row_id) % 1_000_000) / 1_000_000


def row_choice(items: list, seed: int, purpose: str, row_id: object):
    """An item chosen by the row id: stable whatever the other rows are."""
    return items[stable_hash(seed, purpose, row_id) % len(items)]


class InstructionPicker:
    """Chooses, per row, between a template translated into the row's language
    (a ``translated_ratio`` share, where one exists) and an English template
    naming the language (``{lang}``); English rows get a plain English template.

    Every draw is keyed by (seed, ``<stage>-<purpose>``, row id), so a row's
    instruction is the same whatever the other rows, their order or the shards.
    """

    def __init__(self, seed: int, stage: str, english: list[str], naming: list[str],
                 translated: dict[str, list[str]] | None, translated_ratio: float):
        self.seed, self.stage = seed, stage
        self.english, self.naming = english, naming
        self.translated = translated or {}
        self.ratio = translated_ratio
        self.counts = collections.Counter({"english": 0, "translated_template": 0, "english_naming_language": 0})

    def coin(self, row_id: object) -> float:
        """The row's draw against ``translated_ratio`` (also for callers' own shares)."""
        return row_unit(self.seed, f"{self.stage}-ratio", row_id)

    def _choose(self, items: list[str], purpose: str, row_id: object) -> str:
        return row_choice(items, self.seed, f"{self.stage}-{purpose}", row_id)

    def pick(self, row_id: object, lang: str, text: str = "", name_language: bool = False) -> str:
        """An instruction for output in ``lang`` (``text`` fills ``{}``);
        ``name_language`` forces a naming template (e.g. English output asked
        for after a translated question)."""
        if not name_language and lang == "en":
            self.counts["english"] += 1
            return fill(self._choose(self.english, "en", row_id), text)
        if not name_language and self.coin(row_id) < self.ratio:
            own = self.translated.get(lang) or []
            if own:
                self.counts["translated_template"] += 1
                return fill(self._choose(own, "translated", row_id), text)
            self.counts["no_translated_template_for_lang"] += 1
        self.counts["english_naming_language"] += 1
        return fill(self._choose(self.naming, "named", row_id), text, lang=get_language(lang).name)
