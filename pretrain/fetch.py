"""Fetch one URL's bytes politely and within limits.

Retries (with exponential backoff, honouring Retry-After) only what may pass
on a second try: connection errors, 5xx and 429. A body is streamed and
abandoned as soon as it passes ``max_bytes`` or the whole response takes longer
than ``max_seconds`` (a read timeout alone is per socket read, so a server
trickling bytes could hold a worker forever; the body is read one socket
read at a time so that check runs between reads, not after a 64 KiB chunk).
``X-Robots-Tag: noai`` / ``noimageai`` is checked on the headers of every
redirect hop and the final response, before the body is read. A body sent as
``text/html`` is only read as far as its first bytes: image magic there means
the header lied (it happens) and the image is kept.

``download.max_seconds`` is a hard deadline per URL (every attempt, backoff,
DNS, connect, headers, redirects and body together), kept by a watchdog that
shuts the connection down (pretrain/fetch_guard.py); hosts that resolve to an
internal address are refused (``blocked_address``) on every hop.
"""
from __future__ import annotations

import http.cookiejar
import time
from dataclasses import dataclass
from typing import Callable

import requests
import urllib3.exceptions

from pretrain.fetch_guard import AddressPolicy, BlockedAddress, Deadline, GuardedAdapter
from pretrain.polite import ROBOTS_MAX_BYTES, Hosts

RETRY_STATUS = {429, 500, 502, 503, 504, 520, 521, 522, 523, 524}


@dataclass
class Fetched:
    data: bytes | None
    kind: str     # ok | http_<code> | timeout | connection_error | dns_error | too_large | opted_out | not_image
    #              | bad_url | too_many_redirects | request_error | blocked_address | robots_disallowed
    #              | rate_limited
    status: int | None = None
    detail: str = ""
    attempts: int = 1
    opt_out: bool = False   # kept although X-Robots-Tag opted out (download.honour_opt_out off)


def opted_out(header_values: list[str], tokens: set[str], agent: str) -> bool:
    """Does an X-Robots-Tag header forbid AI use for us?

    A value is a comma-separated list of directives; ``name: directive`` starts a
    group for that user agent which runs until the next ``name:``. Directives
    for ``*``, for ``agent``, or for no agent at all apply."""
    agent = agent.lower()
    for value in header_values:
        current = None
        for part in value.split(","):
            part = part.strip().lower()
            if ":" in part:
                current, part = (s.strip() for s in part.split(":", 1))
            if part in tokens and current in (None, "*", agent):
                return True
    return False


def _retry_after(resp: requests.Response, default: float) -> float:
    value = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def fetch(session: requests.Session, url: str, dc: dict, hosts: Hosts | None = None) -> Fetched:
    """GET ``url`` with the limits of the ``download`` config section, all of it
    (robots.txt, waits for the host and retries too) within ``download.max_seconds``.
    With ``hosts`` (one per run) robots.txt and the per-host limits apply."""
    with Deadline(dc["max_seconds"]) as deadline:
        result = _fetch_within(session, url, dc, deadline, hosts)
    if deadline.expired or deadline.remaining() <= 0:
        # The watchdog shut the connection: whatever came back is cut short.
        return Fetched(None, "timeout", result.status, f"over download.max_seconds={dc['max_seconds']:g} "
                       "(DNS, connect, headers, redirects and body together)", result.attempts)
    return result


def _fetch_within(session: requests.Session, url: str, dc: dict, deadline: Deadline, hosts: Hosts | None) -> Fetched:
    tokens = {t.lower() for t in dc["opt_out_tokens"]}
    host = hosts.get(url) if hosts is not None else None
    if hosts is not None:
        refused = hosts.robots_refusal(url, lambda robots_url: _get_robots(session, robots_url, dc, deadline),
                                       deadline.remaining())
        if refused is not None:
            return Fetched(None, *refused)
    attempts = dc["retries"] + 1
    for attempt in range(attempts):
        wait = min(dc["backoff"] * (2 ** attempt), dc["max_backoff"])
        if host is not None and not host.turn(deadline.remaining()):
            return Fetched(None, "rate_limited", None, "no turn at this host within download.max_seconds "
                           "(per_host_connections / per_host_rate, or it asked us to wait)", attempt + 1)
        try:
            result, retry, final = _classified(lambda: _get_once(session, url, dc, tokens, deadline), dc)
        finally:
            if host is not None:
                host.done()
        if retry and result.detail.startswith("retry-after="):
            wait = min(float(result.detail.split("=", 1)[1]), dc["max_backoff"])
        paused = host is not None and result.status in (429, 503)
        if paused:
            host.pause(wait)     # the whole host waits (in host.turn), not only this URL
        result.attempts = attempt + 1
        # No retry that could not finish in time (nor a wait past the deadline).
        if final or not retry or attempt == attempts - 1 or wait >= deadline.remaining():
            return result
        if not paused:
            time.sleep(wait)
    return result


def _classified(call: Callable[[], Fetched], dc: dict) -> tuple[Fetched, bool, bool]:
    """``call()``'s result or its error as a kind: (result, worth a retry, final)."""
    try:
        result = call()
    except BlockedAddress as e:
        return Fetched(None, "blocked_address", detail=str(e)[:300]), False, True
    except requests.exceptions.Timeout as e:
        return Fetched(None, "timeout", detail=type(e).__name__), dc["retry_timeouts"], False
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema, UnicodeError, ValueError) as e:
        return Fetched(None, "bad_url", detail=str(e)[:200]), False, True
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError) as e:
        # A host that does not resolve will not resolve a second later either.
        dns = "NameResolutionError" in repr(e) or "getaddrinfo" in repr(e)
        return Fetched(None, "dns_error" if dns else "connection_error", detail=_short(e)), not dns, False
    except requests.exceptions.TooManyRedirects as e:
        return Fetched(None, "too_many_redirects", detail=_short(e)), False, True
    except requests.exceptions.RequestException as e:
        return Fetched(None, "request_error", detail=_short(e)), False, False
    return result, result.status in RETRY_STATUS, False


def _get_robots(session: requests.Session, url: str, dc: dict, deadline: Deadline) -> tuple:
    """(kind, http_status, body or detail) of a host's robots.txt."""
    def get() -> Fetched:
        with session.get(url, timeout=(dc["connect_timeout"], dc["read_timeout"]), stream=True) as resp:
            if resp.status_code != 200:
                return Fetched(None, f"http_{resp.status_code}", resp.status_code)
            data = b""
            for chunk in _body_reads(resp):
                data += chunk
                if len(data) > ROBOTS_MAX_BYTES or deadline.remaining() <= 0:
                    break
            return Fetched(data, "ok", 200)
    got = _classified(get, dc)[0]
    return got.kind, got.status, got.data if got.kind == "ok" else got.detail


def _short(e: Exception) -> str:
    text = str(e)
    # urllib3 nests the reason deep in a long repr; the tail says what happened.
    return (type(e).__name__ + ": " + text[-160:]) if text else type(e).__name__


# Leading bytes of the formats Pillow decodes that real hosts serve.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def looks_like_image(head: bytes) -> bool:
    if head.startswith(_MAGIC):
        return True
    # RIFF....WEBP, and ISO-BMFF (AVIF/HEIC): ....ftyp
    return (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[4:8] == b"ftyp"


def _get_once(session: requests.Session, url: str, dc: dict, tokens: set[str], deadline: Deadline) -> Fetched:
    with session.get(url, timeout=(dc["connect_timeout"], dc["read_timeout"]), stream=True,
                     allow_redirects=True) as resp:
        status = resp.status_code
        if status != 200:
            detail = ""
            if status in RETRY_STATUS and "Retry-After" in resp.headers:
                detail = f"retry-after={_retry_after(resp, dc['backoff'])}"
            return Fetched(None, f"http_{status}", status, detail)
        # Every hop: a host that opts out and redirects to a CDN that does not
        # repeat the header has still opted out.
        opt_out = bool(tokens) and any(opted_out(_header_values(r, "X-Robots-Tag"), tokens, dc["robots_agent"])
                                       for r in (*resp.history, resp))
        if opt_out and dc["honour_opt_out"]:
            return Fetched(None, "opted_out", status, "X-Robots-Tag")
        content_type = resp.headers.get("Content-Type", "")
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > dc["max_bytes"]:
            return Fetched(None, "too_large", status, f"Content-Length {length}")
        html = content_type.lower().startswith(("text/html", "application/xhtml"))
        chunks, size = [], 0
        for chunk in _body_reads(resp):
            size += len(chunk)
            if size > dc["max_bytes"]:
                return Fetched(None, "too_large", status, f"over {dc['max_bytes']} bytes")
            if deadline.remaining() <= 0:
                return Fetched(None, "timeout", status, f"body took over {dc['max_seconds']}s")
            chunks.append(chunk)
            if html and size >= 16:
                if not looks_like_image(b"".join(chunks)):
                    # An error or landing page served with 200: do not download the rest.
                    return Fetched(None, "not_image", status, f"Content-Type: {content_type[:80]}")
                html = False
        if html:   # a body shorter than 16 bytes
            return Fetched(None, "not_image", status, f"Content-Type: {content_type[:80]}")
        return Fetched(b"".join(chunks), "ok", status, content_type, opt_out=opt_out)


def _body_reads(resp: requests.Response):
    """The (decoded) body, one socket read at a time.

    requests' iter_content asks urllib3 for whole 64 KiB chunks, and a read of a
    Content-Length body blocks until the chunk is full: a server sending a byte
    per second keeps it waiting for hours, each read inside the read timeout.
    ``read1`` returns what one read got. Chunked bodies already come per chunk.
    urllib3's errors are mapped to requests' (as iter_content does), except
    that a read timeout in the body stays a timeout."""
    raw = resp.raw
    try:
        if raw.chunked or not hasattr(raw, "read1"):
            yield from raw.stream(65536, decode_content=True)
            return
        while True:
            chunk = raw.read1(65536, decode_content=True)
            if not chunk:
                return
            yield chunk
    except urllib3.exceptions.ReadTimeoutError as e:
        raise requests.exceptions.ReadTimeout(e) from None
    except urllib3.exceptions.ProtocolError as e:
        raise requests.exceptions.ChunkedEncodingError(e) from None
    except urllib3.exceptions.DecodeError as e:
        raise requests.exceptions.ContentDecodingError(e) from None
    except urllib3.exceptions.SSLError as e:
        raise requests.exceptions.SSLError(e) from None


def _header_values(resp: requests.Response, name: str) -> list[str]:
    """Every value of a possibly repeated header (requests joins repeats with ', ')."""
    raw = getattr(resp.raw, "headers", None)
    if raw is not None and hasattr(raw, "getlist"):
        return raw.getlist(name)
    value = resp.headers.get(name)
    return [value] if value else []


def _use_environment_once(s: requests.Session) -> None:
    """Read the environment once for the session instead of per URL (requests'
    per-request proxy / netrc / CA lookup is a third of its time per request on
    a loopback host). Only when no proxy is set (variables or system settings)
    and no netrc file exists; a CA bundle variable becomes the session's
    ``verify``, as requests would apply it to every request."""
    import os
    import urllib.request
    netrc = [os.environ["NETRC"]] if os.environ.get("NETRC") else [
        os.path.expanduser(f"~/{name}") for name in (".netrc", "_netrc")]
    if urllib.request.getproxies() or any(os.path.exists(path) for path in netrc):
        return
    s.trust_env = False
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        s.verify = bundle


def make_session(dc: dict) -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = dc["user_agent"]
    # No cookies: an image needs none, and a session's jar would grow with every
    # host that sets one (requests copies the whole jar into each request).
    s.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    _use_environment_once(s)
    s.max_redirects = dc["max_redirects"]   # a redirect loop ends as too_many_redirects
    # One connection pool per worker thread; keep-alive is where the speed comes from.
    # Every connection resolves, checks and connects to the checked address (fetch_guard).
    policy = AddressPolicy(dc["allow_private"], dc["allow_hosts"])
    adapter = GuardedAdapter(policy, pool_connections=4, pool_maxsize=4, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
