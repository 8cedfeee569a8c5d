import subprocess
import sys

import pytest

from common.config import build_config, free_mapping
from common.errors import UserError
from tests.conftest import REPO, root_sets

DEFAULTS = {"stage": {"input": "${paths.raw_root}/x.json", "n": 3, "ratio": 0.5, "flag": True,
                      "names": ["a"], "caps": free_mapping()}}


def test_defaults_paths_and_references(tmp_path):
    (tmp_path / "paths.yaml").write_text("paths:\n  raw_root: /data/raw\n  work_dir: work\n")
    (tmp_path / "s.yaml").write_text("stage:\n  n: 5\n  caps: {vqav2_vqa: 10}\n")
    cfg = build_config(DEFAULTS, tmp_path / "s.yaml", ["stage.ratio=1", "stage.names=[x, y]"])
    assert cfg.at("stage.input") == "/data/raw/x.json"
    assert cfg.at("stage.n") == 5 and cfg.at("stage.ratio") == 1.0
    assert cfg.at("stage.names") == ["x", "y"]
    assert cfg.at("stage.caps") == {"vqav2_vqa": 10}
    assert cfg.at("paths.image_root") == "work/images"


@pytest.mark.parametrize("override, message", [
    ("stage.nope=1", "unknown config key 'stage.nope'"),
    ("stage.n=abc", "'stage.n' must be an integer"),
    ("stage.flag=3", "'stage.flag' must be true/false"),
    ("stage.names=5", "'stage.names' must be a list"),
    ("stage=3", "'stage' must be a mapping"),
    ("bad", "expected dotted.key=value"),
])
def test_bad_overrides_name_the_key(tmp_path, override, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        build_config(DEFAULTS, None, [override])


def test_unknown_key_in_file_names_file(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("stage:\n  n: 1\n  typo_key: 2\n")
    with pytest.raises(UserError, match=r"s.yaml: unknown config key 'stage.typo_key'"):
        build_config(DEFAULTS, f)


def test_invalid_yaml_names_line(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("stage:\n  n: [1,\n")
    with pytest.raises(UserError, match=r"s.yaml:\d+: invalid YAML"):
        build_config(DEFAULTS, f)


def test_require_file(tmp_path):
    cfg = build_config(DEFAULTS, None, [f"paths.raw_root={tmp_path}"])
    with pytest.raises(UserError, match=r"stage.input: input file not found: .*x.json"):
        cfg.require_file("stage.input")


@pytest.mark.parametrize("args, needle", [
    (["--set", "file.bogus=1"], "unknown config key 'file.bogus'"),
    (["--set", "translation.beam_size=x"], "'translation.beam_size' must be an integer"),
    (["--set", "file.input=/nonexistent/in.jsonl", "--set", "file.output=OUT/x.jsonl"],
     "file.input: input file not found: /nonexistent/in.jsonl"),
    (["--config", "/nonexistent.yaml"], "config file not found: /nonexistent.yaml"),
])
def test_script_exits_2_with_one_line(args, needle, tmp_path):
    args = [a.replace("OUT/", f"{tmp_path}/") for a in args]
    p = subprocess.run([sys.executable, "translate/translate_file.py", *root_sets(tmp_path), *args], cwd=REPO,
                       capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr


def test_help_works():
    p = subprocess.run([sys.executable, "translate/translate_file.py", "--help"], cwd=REPO,
                       capture_output=True, text=True)
    assert p.returncode == 0 and "--set" in p.stdout


DEFAULTS2 = {"stage": {"input": "${paths.raw_root}/x.json", "names": ["a"], "sub": {"k": 1, "s": "v"},
                       "n": 3}}


@pytest.mark.parametrize("raw, expected", [
    ("a #b", "a #b"),            # YAML would cut a comment
    ("C: x", "C: x"),            # YAML would make a mapping
    ("010", "010"),              # YAML would read octal 8
    ("1.10", "1.10"),            # YAML would read 1.1
    ("yes", "yes"),              # YAML would read true
    ("[a]", "[a]"),
    ("a=b", "a=b"),              # only the first '=' separates the key
    ("'quoted # text'", "quoted # text"),
    ("", ""),
])
def test_set_string_keys_take_the_text_as_typed(raw, expected):
    assert build_config(DEFAULTS2, None, [f"stage.input={raw}"]).at("stage.input") == expected


def test_set_parses_yaml_for_other_types_and_keeps_references():
    cfg = build_config(DEFAULTS2, None, ["stage.names=[${paths.raw_root}/a, b]", "stage.sub={k: 5}",
                                         "paths.raw_root=/R"])
    assert cfg.at("stage.names") == ["/R/a", "b"]
    assert cfg.at("stage.sub") == {"k": 5, "s": "v"}  # a nested mapping merges into the defaults
    with pytest.raises(UserError, match="unknown config key 'stage.sub.zz'"):
        build_config(DEFAULTS2, None, ["stage.sub={zz: 1}"])


def test_empty_section_and_paths_file(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("stage:\n  # every key commented out\n")
    assert build_config(DEFAULTS2, f, ["paths.raw_root=/R"]).at("stage.n") == 3
    p = tmp_path / "p.yaml"
    p.write_text("paths:\n  raw_root: /P\n")
    assert build_config(DEFAULTS2, None, [], p).at("stage.input") == "/P/x.json"
    with pytest.raises(UserError, match="--paths: paths file not found"):
        build_config(DEFAULTS2, None, [], tmp_path / "nope.yaml")
    f.write_text("stage: [1, 2]\n")
    with pytest.raises(UserError, match="'stage' must be a mapping, got list"):
        build_config(DEFAULTS2, f, ["paths.raw_root=/R"])


@pytest.mark.parametrize("value", ["gpu", "cuda:x", "tpu", "CPU"])
def test_bad_device_is_one_line_exit_2(value, tmp_path):
    p = subprocess.run([sys.executable, "translate/translate_file.py", *root_sets(tmp_path),
                        "--set", "file.input=tests/fixtures/translate/sample.jsonl",
                        "--set", f"file.output={tmp_path / 'never-written.jsonl'}",
                        "--set", "translation.backend=hf", "--set", "translation.model=/nonexistent",
                        "--set", f"translation.device={value}"], cwd=REPO, capture_output=True, text=True)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert "translation.device" in lines[0] and "auto, cpu, cuda, cuda:N" in lines[0]


def test_unloadable_model_is_one_line_exit_2(tmp_path):
    p = subprocess.run([sys.executable, "translate/translate_file.py", *root_sets(tmp_path),
                        "--set", "file.input=tests/fixtures/translate/sample.jsonl",
                        "--set", f"file.output={tmp_path / 'never-written.jsonl'}",
                        "--set", "translation.backend=hf", "--set", "translation.model=/nonexistent/model",
                        "--set", "translation.device=cpu"], cwd=REPO, capture_output=True, text=True,
                       env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    lines = [line for line in p.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert p.returncode == 2 and len(lines) == 1 and "translation.model" in lines[0], p.stderr


# ---- the roots have no default: an unset one stops the run naming the key ------------------------
def unset(key: str) -> str:
    return f"{key} is not set: edit configs/paths.yaml (or pass --set {key}=DIR)"


def test_roots_are_unset_by_default():
    import yaml

    from common.config import PATHS_DEFAULTS
    shipped = yaml.safe_load((REPO / "configs" / "paths.yaml").read_text(encoding="utf-8"))["paths"]
    for key in ("raw_root", "work_dir", "out_root"):
        assert PATHS_DEFAULTS[key] == "" and shipped[key] == "", key


@pytest.mark.parametrize("defaults, key", [
    ({"stage": {"input": "${paths.raw_root}/x.json"}}, "paths.raw_root"),
    ({"stage": {"files": ["a", "${paths.out_root}/b"]}}, "paths.out_root"),
    ({"stage": {"images": "${paths.image_root}"}}, "paths.work_dir"),       # through a derived path
    ({"stage": {"a": "${stage.b}/x", "b": "${paths.coco_images}"}}, "paths.raw_root"),  # two hops
])
def test_a_value_referring_to_an_unset_root_names_the_root(defaults, key):
    with pytest.raises(UserError) as e:
        build_config(defaults, None, [], REPO / "configs" / "paths.yaml")
    assert str(e.value) == unset(key)


def test_set_to_empty_is_unset_too():
    with pytest.raises(UserError, match=r"^paths.raw_root is not set"):
        build_config(DEFAULTS2, None, ["paths.raw_root=/R", "paths.raw_root="])


def test_unused_derived_paths_wait_until_used():
    # Only paths.*: nothing refers to a root yet, so the config builds ...
    cfg = build_config({"stage": {"n": 1}}, None, ["paths.work_dir=/W"])
    assert cfg.at("paths.image_root") == "/W/images"
    # ... and reading an unset root, or a path built on one, is the error.
    for dotted, key in [("paths.raw_root", "paths.raw_root"), ("paths.coco_images", "paths.raw_root"),
                        ("paths.out_root", "paths.out_root")]:
        with pytest.raises(UserError) as e:
            cfg.path(dotted)
        assert str(e.value) == unset(key)
    with pytest.raises(UserError, match=r"^stage.n"):
        build_config({"stage": {"n": ""}}, None, []).path("stage.n")


def test_a_real_script_without_roots_exits_2_with_one_line(tmp_path):
    """An unedited configs/paths.yaml and no --set: the run stops before any work
    (it used to process tests/fixtures/raw silently)."""
    p = subprocess.run([sys.executable, str(REPO / "tasks" / "aokvqa" / "generate_train.py")],
                       cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [f"error: {unset('paths.raw_root')}"]
    assert list(tmp_path.iterdir()) == []   # nothing written
