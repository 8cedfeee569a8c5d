"""Development code stays out of product code: no pipeline module imports from
tests/, and the development tools live in tests/tools/, not in the stage folders."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ["common", "pretrain", "match", "tasks", "eval_data", "translate"]

# Old home -> new home of each tool moved out of the stage folders.
MOVED = {
    "translate/tiny_model.py": "tests/tools/tiny_nllb.py",
    "match/tiny_clip.py": "tests/tools/tiny_clip.py",
    "tasks/make_fixtures.py": "tests/tools/make_task_fixtures.py",
    "eval_data/make_demo_fixtures.py": "tests/tools/make_eval_fixtures.py",
    "pretrain/serve_web.py": "tests/tools/serve_web.py",
    "pretrain/bench_download.py": "tests/tools/bench_download.py",
    "match/bench_search.py": "tests/tools/bench_search.py",
    "translate/bench.py": "tests/tools/bench_translate.py",
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import, including those inside functions;
    a relative import is given as its dots plus the module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, "." * node.level + (node.module or "")))
    return out


def imports_tests(module: str) -> bool:
    return module == "tests" or module.startswith("tests.")


def product_files() -> list[Path]:
    return sorted(f for d in PRODUCT for f in (REPO / d).rglob("*.py"))


def test_product_code_never_imports_tests():
    assert product_files(), "no product modules found"
    bad = []
    for f in product_files():
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        bad += [f"{f.relative_to(REPO)}:{line}: {mod}" for line, mod in imported_modules(tree)
                if imports_tests(mod)]
    assert not bad, "product code imports from tests/:\n" + "\n".join(bad)


def test_the_import_check_sees_nested_and_aliased_imports():
    src = ("import tests.tools.tiny_nllb as t\n"
           "def f():\n    from tests.tools import tiny_clip\n"
           "from testsuite import x\nimport tests\n")
    found = sorted(m for _, m in imported_modules(ast.parse(src)) if imports_tests(m))
    assert found == ["tests", "tests.tools", "tests.tools.tiny_nllb"]


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_moved_tools_are_only_in_tests_tools(old, new):
    assert not (REPO / old).exists(), f"{old} should live at {new}"
    assert (REPO / new).is_file(), f"{new} is missing"


def test_tools_package_is_importable():
    assert (REPO / "tests" / "__init__.py").is_file()
    assert (REPO / "tests" / "tools" / "__init__.py").is_file()


def test_the_map_of_each_modules_tests_is_current():
    """docs/testing.md lists, for every product module, the test files that import it
    (tests/tools/module_map.py makes the table; rerun it with --write after adding a module)."""
    from tests.tools import module_map
    assert module_map.current() == module_map.table(), "run: python tests/tools/module_map.py --write"
    assert all(f"`{m}`" in module_map.current() for m in module_map.product_modules())


STAGE_PACKAGES = ("pretrain", "match", "tasks", "eval_data")


def test_common_imports_no_stage_folder_but_the_ordered_list():
    """common/ is plumbing and orchestration: only common/pipeline.py (the ordered
    list of steps, at the top) imports the stage folders; the domain code (the
    evaluation sets, the decontamination filter) lives in them."""
    bad = []
    for f in sorted((REPO / "common").rglob("*.py")):
        if f.name == "pipeline.py" and f.parent == REPO / "common":
            continue
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        bad += [f"{f.relative_to(REPO)}:{line}: {mod}" for line, mod in imported_modules(tree)
                if mod.split(".")[0] in STAGE_PACKAGES]
    assert not bad, "common/ imports a stage folder:\n" + "\n".join(bad)


def test_each_raw_evaluation_format_has_one_reader():
    """The evaluation sets' keys come from the benchmarks' own readers (eval_data/<bench>/convert.py,
    tasks/mscoco/karpathy.py, tasks/vqa/raw.py): eval_data/sets.py parses no file itself."""
    from eval_data import sets
    tree = ast.parse((REPO / "eval_data" / "sets.py").read_text(encoding="utf-8"))
    readers = {m for _, m in imported_modules(tree) if m.startswith("common.jsonl") or m == "json"}
    assert not readers, f"eval_data/sets.py reads files itself: {readers}"
    owners = {s.read.__module__ for s in sets.SETS}
    assert owners <= {"tasks.mscoco.karpathy", "tasks.vqa.raw"} | {f"eval_data.{b}.convert" for b in (
        "pope", "xflickrco", "xvnli", "marvl", "xgqa", "xm3600", "maxm")}, owners
    assert not (REPO / "common" / "eval_sets.py").exists() and not (REPO / "common" / "decontam.py").exists()


def test_every_product_module_imports_first_without_a_cycle():
    """Each product module imports in a fresh interpreter as the first module (no import-time cycle)."""
    import subprocess
    import sys
    mods = [".".join(f.relative_to(REPO).with_suffix("").parts) for f in product_files()
            if f.name != "__main__.py" and "slurm" not in f.parts]
    code = ("import importlib, subprocess, sys\n"
            "bad = [m for m in sys.argv[1:] if subprocess.run([sys.executable, '-c', 'import ' + m],"
            " capture_output=True).returncode]\n"
            "print('\\n'.join(bad))")
    r = subprocess.run([sys.executable, "-c", code, *mods], cwd=REPO, capture_output=True, text=True,
                       env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert r.stdout.strip() == "", "modules that fail to import first:\n" + r.stdout
