"""``make demo``: every pipeline step, in the order common/pipeline.py declares, on the fixtures.

    python tests/tools/demo.py --out demo_work [--raw tests/fixtures/raw] [--set key=value ...]

One driver over the steps (there is no per-stage demo script): each step's
script runs as a user would run it, with the paths given here, the demo's
small-data settings (``DEMO_SETS``) and any ``--set`` given here (last, so
they win). Before the steps it shows the translation engine on a small file
with each backend (the tiny NLLB of tests/tools/tiny_nllb.py, built on the spot: it
writes "[deu-Latn] " and the English); the pipeline
itself translates with the dry-run backend. A tiny CLIP stands in for the
real one, and the CapFilt download fetches from a loopback server that serves
``<raw>/web``. A development tool: no product code imports it.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import cli, pipeline, steptype  # noqa: E402

QUIET = ["translation.backend=dry-run", "translation.progress=false"]
# The demo's settings for small data, by config. The fixture file has a few
# dozen captions, so the CapFilt phrase thresholds are scaled down.
DEMO_SETS: dict[str, list[str]] = {
    "capfilt": ["filter.min_captions=3", "filter.max_captions=4", "filter.n_process=1", "download.threads=4",
                "download.backoff=0.05", "download.progress=false",
                # The loopback server below: internal addresses are refused unless allowed.
                "download.allow_hosts=[127.0.0.1]", *QUIET],
    "match": [*QUIET, "embed.progress=false"],
    "mscoco": QUIET, "vqav2": QUIET, "llava": QUIET, "imagenet": QUIET,
}
WEB_PORT = 18080


def run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd[1:]), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc != 0:
        sys.exit(f"demo: step failed (exit {rc}): {' '.join(cmd[1:])}")


@contextlib.contextmanager
def port_turn():
    """Demos running at once (two OUT folders, a test session's parallel workers)
    take turns at the fixed port: without this, the second one's server cannot
    bind and its download would fetch from the first one's server, which goes
    away mid-step."""
    import fcntl
    import tempfile
    with open(Path(tempfile.gettempdir()) / f"mblip-demo-web-{WEB_PORT}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # released when the file is closed (or the process dies)
        yield


@contextlib.contextmanager
def web_server(py: str, path_sets: list[str]):
    """Serve <raw_root>/web on the port the fixture URLs name, while the download runs."""
    with port_turn():
        proc = subprocess.Popen([py, "tests/tools/serve_web.py", *path_sets], cwd=ROOT)
        try:
            for _ in range(100):
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", WEB_PORT), 0.2).close()
                    break
                if proc.poll() is not None:
                    sys.exit(f"demo: the web server did not start (port {WEB_PORT} in use?)")
                time.sleep(0.1)
            yield
        finally:
            proc.terminate()
            proc.wait()


def engine_demo(py: str, out: Path) -> None:
    """translate/translate_file.py on a small file with every backend."""
    model = out / "work" / "models" / "tiny-nllb"
    run([py, "tests/tools/tiny_nllb.py", "--out", str(model), "--ct2"])
    for backend in ("dry-run", "hf", "ctranslate2"):
        run([py, "translate/translate_file.py",
             "--set", "file.input=tests/fixtures/translate/sample.jsonl",
             "--set", f"file.output={out}/work/translate_demo/sample.{backend}.jsonl",
             "--set", "file.fields=[text]", "--set", f"translation.backend={backend}",
             "--set", f"translation.model={model}", "--set", f"translation.ct2_model={model}/ct2",
             "--set", f"translation.cache={out}/work/translate_demo/cache.sqlite",
             "--set", "translation.progress=false",
             # The tiny model copies the English behind a marker: no language check.
             "--set", f"translation.quality.langid={'true' if backend == 'dry-run' else 'false'}"])


def step_command(py: str, step: steptype.Step, path_sets: list[str], extra: list[str]) -> list[str]:
    cmd = [py, step.script]
    for s in [*step.sets, *DEMO_SETS.get(step.config, []), *extra]:
        cmd += ["--set", s]
    return cmd + path_sets


def tiny_clip(py: str, path_sets: list[str]) -> str:
    """Build the tiny CLIP (vocabulary from the English CapFilt captions); its folder."""
    out = subprocess.run([py, "tests/tools/tiny_clip.py", *path_sets], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo_work", help="writes OUT/work and OUT/out")
    ap.add_argument("--raw", default="tests/fixtures/raw", help="raw root laid out as in common/FORMATS.md")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config value for every step that has the key (repeatable)")
    ap.add_argument("--only", default="", help="comma-separated step ids or prefixes, e.g. mscoco,eval "
                                               "(default: every step, the engine demo and a status check)")
    args = ap.parse_args(argv)
    py = sys.executable
    out = Path(args.out)
    path_sets = []
    for s in (f"paths.raw_root={args.raw}", f"paths.work_dir={out}/work", f"paths.out_root={out}/out"):
        path_sets += ["--set", s]
    only = set(filter(None, args.only.split(",")))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not only:
        print("== translation engine: translate/translate_file.py with each backend", flush=True)
        engine_demo(py, out)
    for step in pipeline.STEPS:
        if only and not any(step.id == o or step.id.startswith(o + ".") for o in only):
            continue
        print(f"== {step.number} {step.id}: {step.title}", flush=True)
        extra = cli.sets_for(step, args.overrides, same_config=True)
        if step.id == "match.mine":
            extra = [f"paths.clip_model={tiny_clip(py, path_sets)}", *extra]
        cmd = step_command(py, step, path_sets, extra)
        if step.id == "capfilt.download":
            with web_server(py, path_sets):
                run(cmd)
        else:
            run(cmd)
    if only:
        return
    # Every step must now be done for the settings the demo used.
    status_sets = list(path_sets)
    for s in dict.fromkeys([*(x for sets in DEMO_SETS.values() for x in sets), *args.overrides,
                            f"paths.clip_model={out}/work/models/tiny-clip"]):
        status_sets += ["--set", s]
    # The demo's settings, where `make status OUT=...` (python -m common status --args-file) finds them.
    (out / "status.args").write_text("".join(f"{a}\n" for a in status_sets), encoding="utf-8")
    print("== status", flush=True)
    status = subprocess.run([py, "-m", "common", "status", "--args-file", str(out / "status.args")], cwd=ROOT, capture_output=True, text=True)
    print(status.stdout.strip().splitlines()[-1] if status.stdout.strip() else status.stderr, flush=True)
    if status.returncode != 0 or "every step is done" not in status.stdout:
        sys.exit(f"demo: not every step is done afterwards:\n{status.stdout}{status.stderr}")
    print(f"demo finished: outputs under {out}/out (status: make status OUT={out})")


if __name__ == "__main__":
    main()
