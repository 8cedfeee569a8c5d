"""Translation through an OpenAI-compatible chat completions server (vLLM,
SGLang, ``transformers serve``, a hosted API): ``translation.backend: openai``.

One request per segment, ``translation.openai.concurrency`` of them in flight
at once, greedy (temperature 0). The engine does everything else exactly as for
the other backends: dedupe, the SQLite cache (keyed by the served model, the
prompt's version and text, and the length rule), resume, the quality and
off-target checks. What this module adds:

- the prompt (``PROMPTS``, by version; the version and a hash of its text are
  part of the cache key, so a new prompt never reuses old outputs);
- retries of 429, 5xx, timeouts, refused or cut-off connections and unreadable
  replies, waiting what ``Retry-After`` asks (capped by ``max_retry_wait``),
  else an exponential backoff with jitter;
- each segment's output length from the engine's length rule
  (``length_factor`` x its estimated tokens + ``length_extra``, at most the
  batch's cap); a reply the server cut at that length (``finish_reason:
  length``) is not used;
- a reply's preamble ("Here is the translation:"), code fence or wrapping
  quotes removed;
- a segment whose request still failed comes back as ``Failed(reason)``: the
  engine counts it as rejected (``rejected:request_failed``, ``truncated``)
  and does not cache it, so a rerun asks again.

The server's tokenizer is not known here: a segment counts as
ceil(characters / 3) tokens (about 1.3x English tokens of current LLM
tokenizers), for batching, for the length cap and for ``too_long``.
"""
from __future__ import annotations

import collections
import email.utils
import http.client
import json
import math
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple
from urllib.parse import urlsplit

from common.errors import UserError

from .shaping import cache_model_key

# Our own wording. Bump the version (a new entry) for any change: the version
# and the text's hash are part of the cache key either way.
PROMPTS = {
    "v1": ("You are a translation engine. Translate the user's message from <SRC> into <TGT>. "
           "Answer with the translation alone: no introduction, no explanation, no notes, and no "
           "quotation marks around it. Keep every placeholder in curly braces, such as {} or {answer}, "
           "exactly as it is written. Keep numbers and names as they are, and keep the meaning, tone "
           "and punctuation of the original."),
}

OPENAI_DEFAULTS: dict = {
    "base_url": "http://127.0.0.1:8000/v1",  # up to and including /v1
    "model": "",                 # the served model's name (required for this backend)
    "api_key_env": "OPENAI_API_KEY",  # environment variable with the key ("" or unset: none sent)
    "prompt": "v1",              # a version of translate/openai_backend.py PROMPTS
    "concurrency": 8,            # requests in flight at once
    "timeout": 120.0,            # seconds per request
    "retries": 5,                # further tries of a request after a 429, 5xx, timeout or cut-off reply
    "max_retry_wait": 60.0,      # longest wait before a retry (also caps Retry-After)
}

_RETRY_STATUS = {408, 409, 425, 429}   # and every 5xx
_CHARS_PER_TOKEN = 3


class Failed(NamedTuple):
    """A segment the server never answered usably: counted, not cached."""
    reason: str


def check_openai_settings(cfg: dict) -> None:
    """Refuse (UserError, one line naming the key) a bad ``translation.openai.*``
    value; the model name is required only when the backend is openai."""
    o = cfg.get("openai") or {}
    url = o.get("base_url", "")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise UserError(f"translation.openai.base_url: must be an http(s) URL, got {url!r}")
    if o.get("prompt") not in PROMPTS:
        raise UserError(f"translation.openai.prompt: {o.get('prompt')!r} is not one of {', '.join(PROMPTS)}")
    for key, low, kind in (("concurrency", 1, int), ("retries", 0, int), ("timeout", 0.001, float),
                           ("max_retry_wait", 0, float)):
        v = o.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < low or (kind is int and v != int(v)):
            raise UserError(f"translation.openai.{key}: must be {'an integer' if kind is int else 'a number'} "
                            f">= {low}, got {v!r}")
    if not isinstance(o.get("api_key_env", ""), str):
        raise UserError(f"translation.openai.api_key_env: must be a variable name, got {o.get('api_key_env')!r}")
    if cfg.get("backend") == "openai" and not (isinstance(o.get("model"), str) and o["model"].strip()):
        raise UserError("translation.openai.model: set the served model's name for translation.backend=openai")


_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|certainly|of course|okay|ok)\b[^\n:]*?[.!,]\s*)?"
    r"(?:here(?:'s| is| are)|below is|the following is)?[^\n:]{0,60}\btranslat\w*[^\n:]{0,60}:[ \t]*\n?\s*",
    re.I)
_FENCE = re.compile(r"^```[\w-]*\n(.*?)\n?```$", re.S)
_QUOTES = {'"': '"', "“": "”", "«": "»", "„": "“", "'": "'", "「": "」"}


def clean_reply(reply: str, source: str) -> str:
    """The translation in a chat reply: without a reasoning block, an English
    preamble ("Here is the translation into German:"), a code fence, or quotes
    around the whole of it that the source did not have."""
    out = re.sub(r"^\s*<think>.*?</think>", "", reply, flags=re.S).strip()
    m = _PREAMBLE.match(out)
    if m and m.end() < len(out) and not _PREAMBLE.match(source):
        out = out[m.end():].strip()
    m = _FENCE.match(out)
    if m:
        out = m.group(1).strip()
    s = source.strip()
    if len(out) >= 2 and _QUOTES.get(out[0]) == out[-1] and not (s[:1] == out[0] and s[-1:] == out[-1]):
        out = out[1:-1].strip()
    return out


def _retry_after(value: str | None) -> float | None:
    """Seconds asked for by a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class _Retry(Exception):
    """A try that may succeed when repeated; wait: what the server asked for."""

    def __init__(self, kind: str, wait: float | None = None, final: bool = False):
        super().__init__(kind)
        self.kind, self.wait, self.final = kind, wait, final


class OpenAIBackend:
    name = "openai"
    writes_language = True
    keeps_placeholders = True   # the engine rejects an output whose {} placeholders differ

    def __init__(self, cfg: dict):
        check_openai_settings(cfg)
        o = {**OPENAI_DEFAULTS, **cfg["openai"]}
        parts = urlsplit(o["base_url"].rstrip("/"))
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.path = parts.path + "/chat/completions"
        self.model = o["model"].strip()
        self.prompt = PROMPTS[o["prompt"]]
        self.concurrency, self.retries = int(o["concurrency"]), int(o["retries"])
        self.timeout, self.max_wait = float(o["timeout"]), float(o["max_retry_wait"])
        key = os.environ.get(o["api_key_env"], "") if o["api_key_env"] else ""
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        self.length_factor, self.length_extra = float(cfg["length_factor"]), int(cfg["length_extra"])
        self.model_key = cache_model_key({**cfg, "backend": self.name})
        self.calls = 0
        self.stats: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="openai")

    def count_tokens(self, texts, src=None):
        return [max(1, math.ceil(len(t) / _CHARS_PER_TOKEN)) for t in texts]

    def translate_batch(self, texts, src, tgts, max_new_tokens):
        from common.languages import load_languages
        names = {lang.nllb: lang.name for lang in load_languages().values()}
        jobs = [(t, names.get(src, src), names.get(g, g) + (" (Simplified Chinese characters)" if g == "zho_Hans"
                                                           else ""), max_new_tokens) for t, g in zip(texts, tgts)]
        self.calls += 1
        return list(self._pool.map(lambda job: self._translate_one(*job), jobs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- one segment --------------------------------------------------------
    def _translate_one(self, text: str, src_name: str, tgt_name: str, cap: int):
        own_cap = min(cap, int(self.length_factor * self.count_tokens([text])[0] + self.length_extra))
        body = json.dumps({"model": self.model, "temperature": 0, "max_tokens": own_cap, "stream": False,
                           "messages": [{"role": "system", "content": self.prompt.replace("<SRC>", src_name)
                                         .replace("<TGT>", tgt_name)},
                                        {"role": "user", "content": text}]}).encode("utf-8")
        for attempt in range(self.retries + 1):
            try:
                reply, finish = self._post(body)
            except _Retry as e:
                self._count(e.kind)
                if e.final:
                    self._count("failed")
                    return Failed(e.kind)
                if attempt == self.retries:
                    break
                wait = e.wait if e.wait is not None else 0.25 * 2 ** attempt * random.uniform(0.5, 1.0)
                self._count("retries")
                time.sleep(min(wait, self.max_wait))
                continue
            if finish == "length":
                self._count("truncated")
                return Failed("truncated")
            return clean_reply(reply, text)
        self._count("failed")
        return Failed("request_failed")

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = self._local.conn = cls(self.host, self.port, timeout=self.timeout)
        return conn

    def _post(self, body: bytes) -> tuple[str, str | None]:
        """(reply text, finish_reason) of one request; _Retry for what may pass
        on a second try; UserError for what no retry can fix (key, URL, model)."""
        conn = self._connection()
        self._count("requests")
        try:
            conn.request("POST", self.path, body, self.headers)
            resp = conn.getresponse()
            data = resp.read()
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            conn.close()
            self._local.conn = None
            kind = ("timeouts" if isinstance(e, TimeoutError) else
                    "cut_off" if isinstance(e, http.client.IncompleteRead) else "connection_errors")
            raise _Retry(kind) from None
        if resp.status in _RETRY_STATUS or resp.status >= 500:
            raise _Retry(f"http_{resp.status}", _retry_after(resp.getheader("Retry-After")))
        if resp.status in (401, 403, 404):
            what = "api_key_env" if resp.status != 404 else "base_url / translation.openai.model"
            raise UserError(f"translation.openai.{what}: the server at {self.host}:{self.port} answered "
                            f"HTTP {resp.status} ({data[:200].decode('utf-8', 'replace')!r})")
        if resp.status != 200:   # e.g. 400 for a too long prompt: asking again cannot help
            raise _Retry(f"http_{resp.status}", final=True)
        try:
            choice = json.loads(data)["choices"][0]
            return str(choice["message"]["content"] or ""), choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Retry("bad_replies") from None
