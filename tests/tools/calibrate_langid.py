"""Calibrate the off-target check (translate/quality.py ``off_target``) on real text.

    python tests/tools/calibrate_langid.py [--real ../shared/real] [--threshold 0.8]
        [--english-threshold 0.5] [--min-letters 12]

Human-written questions, captions and sentences of the multilingual
benchmarks in ``<real>/iglue/datasets`` (xGQA, xFlickrCO, XVNLI, MaRVL) are
treated as if each were a translation into its own language: every rejection
is a false reject. Their English originals (same ids; all of them for MaRVL's
languages, which have none) are then given as a "translation" into each of
those languages: every rejection is a catch. Prints both per-language tables
(Markdown) at the chosen setting, and the worst false-reject rate at other
thresholds. ``--sample FILE`` runs on a JSONL file of {"lang", "text", "en"}
rows instead (the bundled fixture, written from the real files with
``--write-sample FILE``: a few texts a language, evenly spaced). A
development tool: no product code imports it.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common.languages import nllb_code  # noqa: E402
from translate import quality  # noqa: E402

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_real(real: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """({lang: native texts}, {lang: English originals of them}), deduplicated."""
    ds = real / "iglue" / "datasets"
    native: dict[str, list[str]] = collections.defaultdict(list)
    english: dict[str, list[str]] = collections.defaultdict(list)
    gqa_en = json.loads((ds / "xGQA/annotations/few_shot/en/dev.json").read_text(encoding="utf-8"))
    for p in sorted((ds / "xGQA/annotations/few_shot").iterdir()):
        if p.name != "en" and (p / "dev.json").is_file():
            rows = json.loads((p / "dev.json").read_text(encoding="utf-8"))
            native[p.name] += [r["question"] for r in rows.values()]
            english[p.name] += [gqa_en[k]["question"] for k in rows if k in gqa_en]
    flickr_en = {r["id"]: r["sentences"] for r in _jsonl(ds / "xFlickrCO/annotations/en/test.jsonl")}
    for p in sorted((ds / "xFlickrCO/annotations").iterdir()):
        if p.name != "en" and (p / "test.jsonl").is_file():
            for r in _jsonl(p / "test.jsonl"):
                native[p.name] += r["sentences"]
                english[p.name] += flickr_en.get(r["id"], [])
    xvnli_en = {r["pairID"]: r for r in _jsonl(ds / "XVNLI/annotations/en/test.jsonl")}
    for p in sorted((ds / "XVNLI/annotations").iterdir()):
        if p.name != "en" and (p / "test.jsonl").is_file():
            for r in _jsonl(p / "test.jsonl"):
                native[p.name] += [r["sentence1"], r["sentence2"]]
                en = xvnli_en.get(r["pairID"])
                english[p.name] += [en["sentence1"], en["sentence2"]] if en else []
    for p in sorted((ds / "marvl/zero_shot/annotations").glob("marvl-*.jsonl")):
        native[p.stem.split("-", 1)[1]] += [r["caption"] for r in _jsonl(p)]
    pooled = [t for texts in english.values() for t in texts]
    for lang in native:
        english[lang] = english[lang] or pooled  # MaRVL-only languages: every English original
    return ({k: list(dict.fromkeys(v)) for k, v in sorted(native.items())},
            {k: list(dict.fromkeys(v)) for k, v in sorted(english.items())})


def load_sample(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    native: dict[str, list[str]] = collections.defaultdict(list)
    english: dict[str, list[str]] = collections.defaultdict(list)
    for r in _jsonl(path):
        native[r["lang"]].append(r["text"])
        english[r["lang"]].append(r["en"])
    return dict(sorted(native.items())), dict(sorted(english.items()))


def write_sample(native, english, path: Path, per_language: int) -> None:
    from common.jsonl import write_jsonl

    def spread(items):
        step = max(len(items) // per_language, 1)
        return items[::step][:per_language]
    rows = [{"lang": lang, "text": t, "en": e}
            for lang in native for t, e in zip(spread(native[lang]), spread(english[lang]))]
    write_jsonl(path, rows)
    print(f"wrote {len(rows)} rows -> {path}")


def rejected(texts: list[str], lang: str, setting: dict) -> list[tuple[str, str]]:
    """(text, detected label) of every text the check rejects as a translation into lang."""
    tgt = nllb_code(lang)
    out = []
    for t in texts:
        label = quality.off_target(t, tgt, **setting)
        if label:
            out.append((t, label))
    return out


def tables(native, english, setting: dict, show: int = 3) -> dict:
    """Print both Markdown tables; returns {lang: [false-reject %, English-caught %]}."""
    result = {}
    print(f"\nFalse rejects of real text in its own language ({_describe(setting)}):\n")
    print("| language | texts | rejected | % | detected as |")
    print("|---|---:|---:|---:|---|")
    examples = []
    for lang, texts in native.items():
        bad = rejected(texts, lang, setting)
        labels = collections.Counter(label for _, label in bad)
        pct = 100.0 * len(bad) / max(len(texts), 1)
        print(f"| {lang} | {len(texts)} | {len(bad)} | {pct:.2f} | "
              f"{', '.join(f'{k} {v}' for k, v in labels.most_common(4)) or '-'} |")
        examples += [(lang, t, label) for t, label in bad[:show]]
        result[lang] = [pct]
    print("\nEnglish originals given as a translation into each language (same threshold):\n")
    print("| language | texts | caught | % | too short to tell |")
    print("|---|---:|---:|---:|---:|")
    for lang, texts in english.items():
        caught = len(rejected(texts, lang, setting))
        short = sum(1 for t in texts if sum(ch.isalpha() for ch in t) < setting["min_letters"])
        pct = 100.0 * caught / max(len(texts), 1)
        print(f"| {lang} | {len(texts)} | {caught} | {pct:.1f} | {short} |")
        result.setdefault(lang, [0.0]).append(pct)
    if examples:
        print("\nSome false rejects: " + "; ".join(f"{lang} {t!r} -> {label}" for lang, t, label in examples[:12]))
    return result


def _describe(setting: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in setting.items())


def sweep(native, english, min_letters: int) -> None:
    print(f"\nSweep (min_letters {min_letters}): worst false-reject % over languages, "
          f"English caught % (every English original as a translation into German)\n")
    print("| threshold | english_threshold | worst false reject % (language) | English caught % |")
    print("|---:|---:|---|---:|")
    pooled = list(dict.fromkeys(t for texts in english.values() for t in texts))
    for th in THRESHOLDS:
        for en_th in sorted({th, 0.5}):
            setting = {"threshold": th, "english_threshold": en_th, "min_letters": min_letters}
            worst = max((100.0 * len(rejected(v, k, setting)) / len(v), k) for k, v in native.items())
            caught = 100.0 * len(rejected(pooled, "de", setting)) / len(pooled)
            print(f"| {th} | {en_th} | {worst[0]:.2f} ({worst[1]}) | {caught:.1f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "real")
    ap.add_argument("--sample", type=Path, help="JSONL rows {lang, text, en} instead of --real")
    ap.add_argument("--threshold", type=float, default=None, help="default: translation.quality.langid_threshold")
    ap.add_argument("--english-threshold", type=float, default=None,
                    help="default: translation.quality.langid_english_threshold")
    ap.add_argument("--min-letters", type=int, default=None, help="default: translation.quality.langid_min_letters")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--write-sample", type=Path, help="write a small {lang, text, en} sample of --real here")
    ap.add_argument("--per-language", type=int, default=8)
    args = ap.parse_args(argv)
    from translate.engine import TRANSLATION_DEFAULTS
    q = TRANSLATION_DEFAULTS["quality"]
    pick = lambda given, key: given if given is not None else q[key]  # noqa: E731
    setting = {"threshold": pick(args.threshold, "langid_threshold"),
               "english_threshold": pick(args.english_threshold, "langid_english_threshold"),
               "min_letters": pick(args.min_letters, "langid_min_letters")}
    if args.sample:
        native, english = load_sample(args.sample)
    elif (args.real / "iglue" / "datasets").is_dir():
        native, english = load_real(args.real)
    else:
        print(f"no real files at {args.real} (give --real DIR or --sample FILE)", file=sys.stderr)
        return 2
    if args.write_sample:
        write_sample(native, english, args.write_sample, args.per_language)
        return 0
    t0 = time.perf_counter()
    tables(native, english, setting)
    n = sum(len(v) for v in native.values()) + sum(len(v) for v in english.values())
    print(f"\n{n} texts checked in {time.perf_counter() - t0:.1f} s")
    if not args.no_sweep:
        sweep(native, english, setting["min_letters"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
