"""Where a module's tests are: every product module and the test files that
import it (directly, by name). Prints the markdown table of docs/testing.md
("Where a module's tests are"); tests/test_layout.py checks that the page
holds exactly what this prints, so the map stays current.

    python tests/tools/module_map.py          # print the table
    python tests/tools/module_map.py --write  # rewrite it in docs/testing.md
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ["common", "pretrain", "match", "tasks", "eval_data", "translate"]
BEGIN, END = "<!-- test-map:begin -->", "<!-- test-map:end -->"
DOC = REPO / "docs" / "testing.md"


def product_modules() -> list[str]:
    mods = []
    for pkg in PRODUCT:
        for p in sorted((REPO / pkg).rglob("*.py")):
            if p.name != "__init__.py":
                mods.append(".".join(p.relative_to(REPO).with_suffix("").parts))
    return mods


def imports_of(path: Path) -> set[str]:
    """Every module a test file names in an import (``from a.b import c`` names a.b and a.b.c)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def table() -> str:
    tests = {p.name: imports_of(p) for p in sorted((REPO / "tests").glob("test_*.py"))}
    lines = ["| module | tests that import it |", "|---|---|"]
    for mod in product_modules():
        users = [name for name, imps in tests.items() if mod in imps]
        shown = ", ".join(f"`{u}`" for u in users) or "none directly (run through its step script or a caller)"
        lines.append(f"| `{mod}` | {shown} |")
    return "\n".join(lines)


def current() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip() if BEGIN in text else ""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="rewrite the table in docs/testing.md")
    args = ap.parse_args(argv)
    t = table()
    if not args.write:
        print(t)
        return
    text = DOC.read_text(encoding="utf-8")
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + BEGIN + "\n" + t + "\n" + END + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Where a module's tests are\n\nTest files are named for what they check " \
            "(`test_<stage>_<part>.py`); this table, made by `python tests/tools/module_map.py --write`, lists " \
            "for each product module the test files that import it.\n\n" + BEGIN + "\n" + t + "\n" + END + "\n"
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote the map of {len(product_modules())} modules into {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
