"""The language-split policies on a 100,000-row mix: target vs realised share per language.

    python tests/tools/language_split_table.py [--n 100000] [--seed 0] [--english 0.5] [--alpha 0.3]

Draws ``--n`` rows once per policy with the drawing code of the translate steps
(``common.languages.assign_languages``, the policy checked by ``check_split``
as a step checks it), over every language of the table, and prints a markdown
table (the one in docs/languages.md) of each language's target and realised
share. Exits 1 if a language with at least 1,000 rows is more than 10% (relative)
off its target, or English more than 0.5 points off. A development tool.
"""
from __future__ import annotations

import argparse
import collections
import sys

from common.languages import assign_languages, check_split, load_languages, target_percent


def policies(english: float, alpha: float) -> dict[str, dict]:
    codes = list(load_languages())
    return {"mc4": check_split({"policy": "mc4"}, "mc4", codes),
            f"english_share {english}": check_split({"policy": "english_share", "english": english}, "en", codes),
            f"temperature {alpha}": check_split({"policy": "temperature", "alpha": alpha}, "t", codes)}


def realised(n: int, seed: int, split: dict) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """(target %, realised %, rows) per language for one policy."""
    codes = list(load_languages())
    rows = collections.Counter(assign_languages(n, seed, codes, stage="language-split-table", split=split))
    return target_percent(codes, split), {c: 100 * rows[c] / n for c in codes}, dict(rows)


def failures(name: str, target: dict, got: dict, rows: dict) -> list[str]:
    out = [f"{name}: en {got['en']:.3f} vs {target['en']:.3f}"] if abs(got["en"] - target["en"]) > 0.5 else []
    out += [f"{name}: {c} {got[c]:.3f} vs {target[c]:.3f}" for c in target
            if rows[c] >= 1000 and abs(got[c] - target[c]) > 0.1 * target[c]]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--english", type=float, default=0.5)
    ap.add_argument("--alpha", type=float, default=0.3)
    args = ap.parse_args(argv)
    table = load_languages()
    results = {name: realised(args.n, args.seed, split) for name, split in policies(args.english, args.alpha).items()}
    head = " | ".join(f"{name}: target % | realised % | rows" for name in results)
    print(f"| lang | name | {head} |")
    print("|---|---|" + "---:|---:|---:|" * len(results))
    for c, lang in sorted(table.items(), key=lambda kv: -kv[1].mc4_percent):
        cells = " | ".join(f"{t[c]:.3f} | {g[c]:.3f} | {r[c]}" for t, g, r in results.values())
        print(f"| {c} | {lang.name} | {cells} |")
    bad = [f for name, res in results.items() for f in failures(name, *res)]
    print(f"\n{args.n} rows per policy; {'every language within tolerance' if not bad else 'OFF: ' + '; '.join(bad)}",
          file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
