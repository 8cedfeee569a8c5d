"""What the downloader owes each host: its robots.txt, a limit on concurrent
requests and rate, and a pause when it says it is busy.

One ``Hosts`` per run, shared by the fetch threads; state per origin (scheme,
host, port), the most recently used ``MAX_HOSTS`` kept.

- robots.txt is fetched once per origin (the first URL waits for it, within its
  deadline; the others wait for the first) and checked for
  ``download.robots_agent``. As RFC 9309 says: 2xx rules apply; 4xx (none)
  allows all; 5xx, 429 or a body that never arrives (timeout) disallows all for
  this run. A host that cannot be reached at all fails the URL as the fetch
  would (connection_error, dns_error, blocked_address): transient, retried on a
  later run.
- At most ``download.per_host_connections`` requests to an origin at a time and,
  with ``download.per_host_rate`` > 0, at most that many starts per second.
- A 429 or 503 pauses the whole origin for its Retry-After (or the backoff), up
  to ``download.max_backoff``; a URL that cannot get its turn within
  ``download.max_seconds`` is ``rate_limited`` (retried on a later run).
"""
from __future__ import annotations

import collections
import threading
import time
import urllib.robotparser
from typing import Callable
from urllib.parse import urlsplit

from common.errors import UserError

MAX_HOSTS = 50000
ROBOTS_MAX_BYTES = 500 * 1024     # RFC 9309: at least 500 KiB are parsed


def check_config(dc: dict) -> None:
    if not isinstance(dc.get("robots_txt"), bool):
        raise UserError(f"download.robots_txt must be true or false, got {dc.get('robots_txt')!r}")
    n = dc.get("per_host_connections")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"download.per_host_connections must be an integer >= 1, got {n!r}")
    rate = dc.get("per_host_rate")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
        raise UserError(f"download.per_host_rate must be a number >= 0 (requests per second; 0: no limit), "
                        f"got {rate!r}")


def origin(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme.lower()}://{p.netloc.lower()}"


class Host:
    def __init__(self, connections: int, rate: float):
        self.slots = threading.BoundedSemaphore(connections)
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_start = 0.0        # monotonic time before which no request starts (rate, pauses)
        self.lock = threading.Lock()
        self.robots_lock = threading.Lock()
        self.robots = None           # RobotFileParser | "allow" | (kind, status, detail): disallow or failure

    def turn(self, seconds_left: float) -> bool:
        """Take a connection slot and a start time within ``seconds_left``; False if
        there is none in time (nothing is held then). Release with ``done``."""
        t0 = time.monotonic()
        if not self.slots.acquire(timeout=max(0.0, seconds_left)):
            return False
        with self.lock:
            start = max(time.monotonic(), self.next_start)
            if start - t0 > seconds_left:
                self.slots.release()
                return False
            self.next_start = start + self.interval
        time.sleep(max(0.0, start - time.monotonic()))
        return True

    def done(self) -> None:
        self.slots.release()

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.next_start = max(self.next_start, time.monotonic() + seconds)


class Hosts:
    def __init__(self, dc: dict):
        self.dc = dc
        self._hosts: collections.OrderedDict[str, Host] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.robots_fetches = 0

    def get(self, url: str) -> Host:
        key = origin(url)
        with self._lock:
            host = self._hosts.get(key)
            if host is None:
                host = self._hosts[key] = Host(self.dc["per_host_connections"], self.dc["per_host_rate"])
                if len(self._hosts) > MAX_HOSTS:
                    self._hosts.popitem(last=False)
            else:
                self._hosts.move_to_end(key)
            return host

    def robots_refusal(self, url: str, get_robots: Callable, seconds_left: float) -> tuple | None:
        """None when robots.txt lets ``download.robots_agent`` fetch ``url``, else
        (kind, http_status, detail). ``get_robots(robots_url)`` -> (kind, status, data)."""
        if not self.dc["robots_txt"]:
            return None
        host = self.get(url)
        if not host.robots_lock.acquire(timeout=max(0.0, seconds_left)):   # another URL is fetching it
            return "timeout", None, "waiting for the host's robots.txt ran past download.max_seconds"
        try:
            rules = host.robots
            if rules is None:
                with self._lock:
                    self.robots_fetches += 1
                rules = _rules(get_robots(origin(url) + "/robots.txt"))
                # An unreachable host is asked again by its next URL (it may be back).
                if not (isinstance(rules, tuple) and rules[0] != "robots_disallowed"):
                    host.robots = rules
        finally:
            host.robots_lock.release()
        if rules == "allow":
            return None
        if isinstance(rules, tuple):
            return rules
        if rules.can_fetch(self.dc["robots_agent"], url):
            return None
        return "robots_disallowed", None, f"robots.txt disallows {self.dc['robots_agent']}"


def _rules(got: tuple):
    kind, status, data = got
    if kind == "ok":
        rules = urllib.robotparser.RobotFileParser()
        rules.parse(data[:ROBOTS_MAX_BYTES].decode("utf-8", "replace").splitlines())
        return rules
    if status is not None and 400 <= status < 500 and status != 429:
        return "allow"
    if status is not None or kind == "timeout":
        return "robots_disallowed", status, f"robots.txt answered {kind}: the whole host is disallowed this run"
    return kind, None, "robots.txt unreachable: " + str(data)[:200]
