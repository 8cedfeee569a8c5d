"""The docs name only things that exist.

Every command in README.md and docs/*.md (inside code: `spans`, fenced and
indented blocks) is checked against the tree: ``python PATH.py`` scripts exist,
``python -m common SUB`` subcommands are in ``common/__main__.py``, ``make
TARGET`` targets are in the Makefile, ``--set a.b.c=...`` (and bare ``a.b=v``
spans) name a config key of some ``configs/*.yaml`` or some module's
``DEFAULTS``, and repository paths in code (``common/...``, ``tests/...``) exist.
Relative links resolve, anchors included. The checker itself is tested on
planted typos, so a stale doc cannot pass by the checker finding nothing.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ["common", "pretrain", "match", "tasks", "eval_data", "translate"]
REPO_DIRS = (*PRODUCT, "configs", "tests", "docs")
# Generic forms the docs use to describe the syntax, not real keys.
PLACEHOLDER_KEYS = {"dotted.key"}


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


# ---------------------------------------------------------------- what exists

def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return {t for line in text.splitlines() if (m := re.match(r"^([\w.$()/ -]+?)\s*:(?!=)", line))
            for t in m.group(1).split()}


def common_commands() -> set[str]:
    return set(importlib.import_module("common.__main__").COMMANDS)


def _merge(into: dict, tree: dict) -> None:
    for k, v in tree.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        elif isinstance(v, dict):
            into[k] = {}
            _merge(into[k], v)
        elif k not in into:
            into[k] = v


def config_tree() -> dict:
    """The union of every configs/*.yaml and every product module's DEFAULTS
    (found by scanning for a module-level ``DEFAULTS =``, so it follows the code
    wherever the schemas live)."""
    tree: dict = {}
    for f in sorted((REPO / "configs").glob("*.yaml")):
        _merge(tree, yaml.safe_load(f.read_text(encoding="utf-8")) or {})
    for d in PRODUCT:
        for f in sorted((REPO / d).rglob("*.py")):
            if re.search(r"^DEFAULTS\s*(?::[^=]*)?=", f.read_text(encoding="utf-8"), re.M):
                module = ".".join(f.relative_to(REPO).with_suffix("").parts)
                defaults = getattr(importlib.import_module(module), "DEFAULTS", None)
                if isinstance(defaults, dict):
                    _merge(tree, defaults)
    return tree


def key_exists(tree: dict, key: str) -> bool:
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict):
            return False
        if part in node:
            node = node[part]
        elif not node or node.get("__free__"):   # a mapping whose keys are data (free_mapping, {})
            return True
        else:
            return False
    return True


# ------------------------------------------------------------- what the docs say

def _strip_comments(text: str) -> str:
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def code_texts(text: str) -> list[str]:
    """Fenced blocks, indented blocks and inline spans, in that order."""
    text = _strip_comments(text)
    out = []

    def fence(m):
        out.append(m.group(1))
        return "\n"
    text = re.sub(r"^```[^\n]*\n(.*?)^```", fence, text, flags=re.S | re.M)
    block, prev_blank = [], True
    for line in text.splitlines():
        if line.startswith("    ") and line.strip() and (prev_blank or block):
            block.append(line)
        else:
            if block:
                out.append("\n".join(block))
            block = []
        prev_blank = not line.strip()
    if block:
        out.append("\n".join(block))
    out += [m.group(1) for m in re.finditer(r"`([^`]+)`", text)]
    return out


def expand_braces(path: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", path)
    if not m:
        return [path]
    return [p for alt in m.group(1).split(",") for p in expand_braces(path[:m.start()] + alt + path[m.end():])]


def mentions(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"script": [], "common": [], "make": [], "key": [], "path": []}
    for code in code_texts(text):
        code = code.replace("\\\n", " ")
        found["script"] += re.findall(r"(?<![\w/.-])python3?\s+([\w./-]+\.py)\b", code)
        found["common"] += re.findall(r"(?<![\w/.-])python3?\s+-m\s+common\s+([\w-]+)", code)
        found["make"] += re.findall(r"(?<![\w/.$-])make\s+([A-Za-z][\w-]*)(?![\w=])", code)
        found["key"] += re.findall(r"--set\s+['\"]?([\w.]+)=", code)
        if re.fullmatch(r"[a-z_]+(?:\.[\w]+)+=\S*", code.strip()):
            found["key"].append(code.split("=", 1)[0])
        for m in re.finditer(r"(?<![\w./-])((?:%s)/[\w./{},*<>-]*)" % "|".join(REPO_DIRS), code):
            found["path"] += expand_braces(m.group(1).split("::")[0].rstrip(".,;:"))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    text = re.sub(r"^```.*?^```", "", md.read_text(encoding="utf-8"), flags=re.S | re.M)
    for m in re.finditer(r"^#+\s+(.*?)\s*#*$", text, re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        out.add(s if n == 0 else f"{s}-{n}")
        seen[s] = n + 1
    return out


def links(text: str) -> list[str]:
    text = _strip_comments(text)
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


# ------------------------------------------------------------------- the check

def problems(md: Path, text: str | None = None, *, tree: dict | None = None, targets: set[str] | None = None,
             commands: set[str] | None = None) -> list[str]:
    """Every name in ``md`` (or ``text``, read as if it were ``md``) that does not exist."""
    text = md.read_text(encoding="utf-8") if text is None else text
    tree = config_tree() if tree is None else tree
    targets = make_targets() if targets is None else targets
    commands = common_commands() if commands is None else commands
    where = md.relative_to(REPO) if md.is_relative_to(REPO) else md
    found, bad = mentions(text), []
    bad += [f"{where}: python {s}: no such script" for s in found["script"] if not (REPO / s).is_file()]
    bad += [f"{where}: python -m common {c}: no such subcommand (common/__main__.py)"
            for c in found["common"] if c not in commands]
    bad += [f"{where}: make {t}: no such target in the Makefile" for t in found["make"] if t not in targets]
    bad += [f"{where}: --set {k}=: no such config key (configs/*.yaml, DEFAULTS)"
            for k in found["key"] if k not in PLACEHOLDER_KEYS and not any(p.isupper() for p in k.split("."))
            and not key_exists(tree, k)]
    bad += [f"{where}: {p}: no such file or folder" for p in found["path"]
            if not any(c in p for c in "*<>") and p not in found["script"] and not (REPO / p).exists()]
    for link in links(text):
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        dest = (md.parent / target).resolve() if target else md
        if not dest.exists():
            bad.append(f"{where}: link {link}: {target} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{where}: link {link}: no heading #{anchor} in {dest.name}")
    return bad


def test_docs_exist_and_the_readme_is_short():
    assert len(doc_files()) > 10
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 220
    assert (REPO / "common" / "FORMATS.md").is_file()


@pytest.mark.parametrize("md", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_and_link_in_the_docs_names_something_that_exists(md):
    bad = problems(md)
    assert not bad, "\n".join(bad)


def test_every_docs_page_is_in_the_index():
    index = links((REPO / "docs" / "README.md").read_text(encoding="utf-8"))
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"README.md"}
    assert pages <= {link.partition("#")[0] for link in index}, "docs/README.md does not link every page"


def test_the_checker_finds_planted_typos():
    """A typo of each kind is caught (and the correct spelling is not)."""
    md = REPO / "docs" / "running.md"
    good = ("`python pretrain/filter.py --set filter.min_captions=2`, `python -m common status`, "
            "`make demo OUT=x`, `download.retry_failed=true`, `common/FORMATS.md`\n\n"
            "    python -m common launch mscoco.translate --set 'launch.devices=[cpu]' -- \\\n"
            "        --set translation.backend=ctranslate2\n\n"
            "See [scaling](scaling.md#full-run-arithmetic-assumptions-marked) and [x](../common/FORMATS.md).\n")
    assert problems(md, good) == []
    typos = {
        "`python pretrain/filtr.py`": "no such script",
        "`python -m common stauts`": "no such subcommand",
        "`make dmeo`": "no such target",
        "`--set paths.raw_roots=/data`": "no such config key",
        "    python -m common launch x --set 'launch.device=[cpu]'\n": "no such config key",
        "`download.retry_faild=true`": "no such config key",
        "`commom/FORMATS.md`": None,   # not a repository folder: not checked
        "`common/FORMAT.md`": "no such file",
        "[s](scalling.md)": "does not exist",
        "[s](scaling.md#full-run)": "no heading",
    }
    for typo, message in typos.items():
        bad = problems(md, good + "\n" + typo + "\n")
        if message is None:
            assert bad == [], (typo, bad)
        else:
            assert len(bad) == 1 and message in bad[0], (typo, bad)


def test_config_keys_come_from_the_yaml_files_and_the_defaults():
    tree = config_tree()
    for key in ("paths.raw_root", "translation.max_batch_tokens", "launch.slurm.shard_args",   # launch: DEFAULTS only
                "decontam.exclude.vqav2", "file.fields", "run.num_shards"):
        assert key_exists(tree, key), key
    for key in ("paths.raw", "launch.slurm.shard_arg", "translation.max_batch_tokens.x"):
        assert not key_exists(tree, key), key
