"""Step 1 of BLIP Web CapFilt: sample a diverse caption subset.

Streams ``blip/ccs_synthetic_filtered_large.json`` (a JSON array of
{url, caption}), extracts the noun phrases of every caption with spaCy (stop
words removed: NLTK's English list, as the original, or spaCy's with
``filter.stopwords: spacy``), keeps
phrases found in at least ``filter.min_captions`` captions and samples at most
``filter.max_captions`` captions per phrase; the union is written as
{id, url, caption} rows in input order. The phrase index is cached in
``filter.index_dir``: re-running with other thresholds or another seed does
not parse again.

    python pretrain/filter.py [--set filter.min_captions=10 --set filter.max_captions=30]
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from common import lifecycle
from common.config import REPO_ROOT, check_ranges, parse_args
from common.errors import UserError, entry_point
from common.jsonl import BadRows, atomic_open, dumps, iter_json_array
from common.report import Report
from common.sampling import rng, stable_hash
from common.steptype import Step
from pretrain import phrase_index as pix
from pretrain.capfilt_config import CONFIG_FILE, DEFAULTS, check_json_array_file, check_web_row, clean_text, \
    row_id, skip_key


def iter_valid(path: Path, bad: BadRows, report: Report | None = None) -> Iterator[tuple[int, str, str]]:
    """(array index, url, caption) of every usable element; others are counted."""
    for i, row in iter_json_array(path, bad):
        if not isinstance(row, dict):
            reason = f"expected an object, got {type(row).__name__}"
        else:
            reason = check_web_row(row)
        if reason:
            if report is not None:
                report.skip(skip_key(reason), f"{path.name}: element {i}: {reason}")
            continue
        yield i, row["url"].strip(), clean_text(row["caption"])


def get_index(path: Path, fc: dict, report: Report, extract=None, progress: bool = True,
              dedupe: bool = True) -> pix.PhraseIndex:
    """The cached phrase index, or a freshly built (and saved) one.

    A first pass over the input finds repeated captions (by a 64-bit key), so
    the parse pass parses each distinct caption once. ``extract`` replaces the
    spaCy extractor (tests count calls through it); ``dedupe=False`` parses
    every row (the benchmark's baseline; the index is the same)."""
    index_dir = Path(fc["index_dir"])
    key = pix.cache_key(path, fc["spacy_model"], fc["stopwords"])
    cached = pix.load_index(index_dir, key)
    if cached is not None and cached.n_phrases > 0:     # an empty index is never reused (nor saved)
        report.extra["index"] = f"cached ({index_dir})"
        return cached
    if extract is None:
        model = pix.resolve_spacy(fc["spacy_model"])     # a missing model stops the run before any reading
        extract = pix.spacy_extractor(model, fc["n_process"], fc["batch_size"], fc["stopwords"])

    last = -1

    def valid():
        nonlocal last
        # Bad rows are reported by the output pass, which runs every time; the budget
        # is enforced here too, so too many bad rows stop the run before any parsing.
        for i, _url, caption in iter_valid(path, BadRows(max_bad=fc["max_bad_rows"], quiet=True,
                                                         key="filter.max_bad_rows")):
            last = i
            yield i, caption

    if dedupe:
        rows, first = pix.find_repeats(valid())
        pairs = ((caption, i) for p, (i, caption) in enumerate(valid()) if first[p] == i)
        repeats, n_parse = (rows, first), int((first == rows).sum())
    else:   # every row parsed, no first pass: the benchmark's baseline
        pairs, repeats, n_parse = ((caption, i) for i, caption in valid()), None, None
    names, offsets, captions, parsed = pix.build_index(pairs, extract, n_total=n_parse, progress=progress,
                                                       repeats=repeats)
    meta = {"key": key, "captions_parsed": parsed, "max_index": last + 1}
    if names:
        pix.save_index(index_dir, names, offsets, captions, meta)
    report.extra["index"] = f"built ({index_dir})" if names else "built (empty: not cached)"
    report.extra["captions_parsed"] = parsed
    return pix.PhraseIndex(names, offsets, captions, meta)


def select(index: pix.PhraseIndex, min_captions: int, max_captions: int, seed: int) -> tuple[np.ndarray, dict]:
    """Caption indices (ascending) of the sample, and per-step counts.

    Phrases are visited in sorted order with one seeded generator, so the same
    index and seed give the same sample."""
    counts = index.counts()
    keep = np.flatnonzero(counts >= min_captions)
    r = rng(seed, "capfilt-filter")
    chosen = []
    for k in keep:
        ids = index.caption_ids(int(k))
        if len(ids) > max_captions:
            ids = ids[sorted(r.sample(range(len(ids)), max_captions))]
        chosen.append(ids)
    selected = np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.uint32)
    stats = {"phrases_total": index.n_phrases, "phrases_kept": int(len(keep)),
             "phrases_capped": int((counts[keep] > max_captions).sum()),
             "captions_with_a_phrase": int(len(np.unique(index.captions))) if len(index.captions) else 0,
             "captions_selected": int(len(selected))}
    return selected, stats


def write_selected(path: Path, selected: np.ndarray, out_path: Path, bad: BadRows, report: Report) -> int:
    """Stream the input again and write the selected rows in input order.
    A URL selected twice (with two captions) keeps its first row only.

    Lean at 10M rows: the selection is a bit mask over the array (1 byte an
    element), the URLs seen a set of 64-bit hashes (not the URL strings)."""
    wanted = np.zeros(int(selected[-1]) + 1 if len(selected) else 0, dtype=bool)
    wanted[selected] = True
    seen_urls: set[int] = set()
    n = 0
    with atomic_open(out_path) as f:
        for i, url, caption in iter_valid(path, bad, report):
            report.count("rows_valid")
            if i >= len(wanted) or not wanted[i]:
                continue
            key = stable_hash("url", url)
            if key in seen_urls:
                report.skip("duplicate url", f"{path.name}: element {i}: {url[:100]}")
                continue
            seen_urls.add(key)
            f.write(dumps({"id": row_id(url, caption), "url": url, "caption": caption}) + "\n")
            n += 1
    report.count("rows_in", bad.seen)
    report.count("rows_malformed", bad.count)
    return n


def check_config(fc: dict) -> None:
    """Before any work (an empty phrase index built from batch_size=0 would be cached)."""
    at_least_one = (1, None, "an integer >= 1")
    check_ranges(fc, "filter", {"min_captions": at_least_one, "max_captions": at_least_one,
                                "n_process": at_least_one, "batch_size": at_least_one})


def run(fc: dict, report: Report, extract=None, progress: bool = True, dedupe: bool = True) -> int:
    path = Path(fc["input"])
    check_config(fc)
    pix.check_stopwords(fc["stopwords"])
    check_json_array_file(path)
    index = get_index(path, fc, report, extract, progress, dedupe)
    selected, stats = select(index, fc["min_captions"], fc["max_captions"], fc["seed"])
    report.extra.update(stats)
    n = write_selected(path, selected, Path(fc["output"]), BadRows(max_bad=fc["max_bad_rows"],
                                                                   key="filter.max_bad_rows"), report)
    report.count("rows_out", n)
    return n



STEP = Step("capfilt.filter", "pretrain.filter", "capfilt", "noun-phrase filter of the CapFilt captions",
            reads=("${filter.input}",), writes=("${filter.output}",), shaped_by=("filter",), defaults=DEFAULTS)


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, str(REPO_ROOT / "configs" / CONFIG_FILE), argv)
    cfg.require_file("filter.input")
    fc = cfg["filter"]

    def work() -> lifecycle.Done:
        report = Report("capfilt.filter")
        n = run(fc, report)
        report.print()

        def then() -> None:
            print(f"wrote {n} rows to {fc['output']}", file=sys.stderr)
            if n == 0:   # every later step would only pass nothing along
                raise UserError(f"nothing was selected: no noun phrase is in at least filter.min_captions="
                                f"{fc['min_captions']} captions (lower it for a small input: "
                                "--set filter.min_captions=2)")
        return lifecycle.Done(report, then)

    lifecycle.run_step(STEP, cfg, argv, work, [("filter.index_dir", cfg.path("filter.index_dir"), True)])


if __name__ == "__main__":
    main()
