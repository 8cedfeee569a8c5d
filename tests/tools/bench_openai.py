"""Requests/s of translation.backend=openai (through the engine: dedupe, cache
look-up, quality checks included) against a plain sequential client (one
keep-alive connection, one request at a time) on the same loopback server.

By default the server is tests/tools/fake_openai.py in a process of its own,
without faults, answering each request after ``--delay`` seconds (a model's
latency; 0: the client's own overhead); ``--base-url``/``--model`` measure a
real server instead (e.g. ``transformers serve``).

    python tests/tools/bench_openai.py [--requests 400] [--delay 0 0.02] [--concurrency 1 8 32]
"""
from __future__ import annotations

import argparse
import copy
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.tools.fake_openai import corpus_text
from translate.engine import TRANSLATION_DEFAULTS, Engine
from translate.openai_backend import PROMPTS


def sequential(base_url: str, model: str, texts: list[str]) -> float:
    """Requests/s of a plain loop: one request, wait for the reply, the next."""
    u = urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    system = PROMPTS["v1"].replace("<SRC>", "English").replace("<TGT>", "German")
    t0 = time.perf_counter()
    for text in texts:
        body = json.dumps({"model": model, "temperature": 0, "max_tokens": 64, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": text}]}).encode("utf-8")
        conn.request("POST", u.path + "/chat/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        json.loads(resp.read())["choices"][0]["message"]["content"]
    conn.close()
    return len(texts) / (time.perf_counter() - t0)


def backend(base_url: str, model: str, texts: list[str], concurrency: int) -> float:
    """Requests/s of the engine with the openai backend (no persistent cache)."""
    cfg = copy.deepcopy(TRANSLATION_DEFAULTS)
    cfg.update(backend="openai", cache="", progress=False)
    cfg["openai"].update(base_url=base_url, model=model, concurrency=concurrency, api_key_env="")
    eng = Engine(cfg)
    t0 = time.perf_counter()
    eng.translate(texts, ["de"] * len(texts))
    seconds = time.perf_counter() - t0
    requests = eng.backend.stats["requests"]
    eng.close()
    return requests / seconds


def start_fake(delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fake_openai.py")), "--delay", str(delay),
                             "--seconds", "900"], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--delay", type=float, nargs="+", default=[0.0, 0.02])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--base-url", default="", help="a running server instead of the fake one")
    ap.add_argument("--model", default="fake")
    args = ap.parse_args(argv)
    for delay in ([None] if args.base_url else args.delay):
        proc, url = (None, args.base_url) if args.base_url else start_fake(delay)
        try:
            # Distinct texts per measurement: nothing is deduplicated or cached away.
            batches = iter(range(0, 10 ** 9, args.requests))

            def texts():
                start = next(batches)
                return [corpus_text(i)[0] for i in range(start, start + args.requests)]
            seq = sequential(url, args.model, texts())
            where = url if args.base_url else f"fake server, {delay * 1000:g} ms per request"
            print(f"{where}: sequential client {seq:.0f} requests/s")
            for c in args.concurrency:
                rate = backend(url, args.model, texts(), c)
                print(f"{where}: backend concurrency={c}: {rate:.0f} requests/s ({rate / seq:.2f}x sequential)")
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
