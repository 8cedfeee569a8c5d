"""Guards of every connection the downloader opens: a hard deadline per URL and
no internal addresses.

**Deadline.** ``Deadline`` covers one URL: DNS, connect, headers, redirects and
body together. Connects are given at most the time left, DNS lookups are waited
for at most that long (in a helper thread), and every socket the fetch uses
(new or kept alive) is registered with it; when it expires a watchdog thread
shuts those sockets down, so a read blocked on a server that trickles its
headers (a byte inside every read timeout) returns at once.

**Addresses.** Each connection resolves its host itself, checks every address
(``internal_reason``: loopback, private, link-local, multicast, reserved,
unspecified, shared, also IPv4 inside IPv6: mapped, 6to4, NAT64) and connects to
the address it checked, so there is no second lookup a DNS server could answer
differently. Host names in decimal, octal or hex (``2130706433``, ``0x7f.1``)
are resolved by the same lookup, so they are checked as the address they mean.
As the check sits in the connection, it runs on the first request and on every
redirect hop. ``download.allow_hosts`` (host names, addresses, networks) and
``download.allow_private`` let through what a user needs (the demo's loopback
server). With a proxy the proxy connects: the target host is checked before
the request, but the proxy looks it up again.
"""
from __future__ import annotations

import concurrent.futures as cf
import heapq
import ipaddress
import itertools
import os
import socket
import threading
import time
from urllib.parse import urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.utils import select_proxy
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError

from common.errors import UserError

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_local = threading.local()


class BlockedAddress(Exception):
    """A host that resolves to an internal address (not an OSError: urllib3 and
    requests let it through unchanged, and it is never retried)."""


# -- which addresses ------------------------------------------------------------------------------
def _embedded_v4(ip) -> ipaddress.IPv4Address | None:
    if ip.version == 4:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None


def internal_reason(ip) -> str | None:
    """Why an address must not be fetched from ("loopback", ...), or None."""
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    inner = _embedded_v4(ip)
    if inner is not None:
        why = internal_reason(inner)
        if why or ip.ipv4_mapped is not None or ip in _NAT64:   # these two are the IPv4 address
            return f"{why} (as {ip})" if why else None
    for name in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, "is_" + name):
            return name.replace("_", "-")
    return None if ip.is_global else "not globally routable"


class AddressPolicy:
    """``download.allow_private`` / ``download.allow_hosts`` applied to resolved addresses."""

    def __init__(self, allow_private: bool = False, allow_hosts: list[str] = ()):
        self.allow_private = allow_private
        self.names, self.networks = set(), []
        for entry in allow_hosts:
            net = _network(entry)
            if net is None:
                self.names.add(entry.lower().rstrip("."))
            else:
                self.networks.append(net)

    def check(self, host: str, addrs: list[str]) -> None:
        if self.allow_private or host.lower().rstrip(".") in self.names:
            return
        for a in addrs:
            ip = ipaddress.ip_address(a)
            if any(x in net for net in self.networks for x in (ip, _embedded_v4(ip)) if x is not None):
                continue
            why = internal_reason(ip)
            if why:
                raise BlockedAddress(f"{host} is {a}, {why}: refused (download.allow_hosts or "
                                     "download.allow_private allows it)")


def _network(entry: str):
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None


def check_config(dc: dict) -> None:
    """Exit 2 on a bad value, naming the key, before any work."""
    if not isinstance(dc.get("allow_private"), bool):
        raise UserError(f"download.allow_private must be true or false, got {dc.get('allow_private')!r}")
    hosts = dc.get("allow_hosts")
    if not isinstance(hosts, list):
        raise UserError(f"download.allow_hosts must be a list of host names, addresses or networks, got {hosts!r}")
    for h in hosts:
        if not isinstance(h, str) or not h.strip() or (_network(h) is None and any(c in h for c in " /:@")):
            raise UserError(f"download.allow_hosts: {h!r} is not a host name, an address or a network (a.b.c.d/n)")
    ms = dc.get("max_seconds")
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not ms > 0:
        raise UserError(f"download.max_seconds must be a number of seconds > 0, got {ms!r}")


# -- the deadline ---------------------------------------------------------------------------------
class Deadline:
    """One URL's time. ``with Deadline(s):`` makes it the thread's current one."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.expired = False
        self._done = False
        self._sockets: list = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def watch(self, sock) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        """From the watchdog: shut down (not close: the fd stays its owner's) every socket in use."""
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self) -> Deadline:
        self._previous = getattr(_local, "deadline", None)
        _local.deadline = self
        _WATCHDOG.add(self)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._done = True
            self._sockets.clear()
        _local.deadline = self._previous


def _shut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """One daemon thread that expires deadlines in time order."""

    def __init__(self):
        self._heap: list = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, d: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (d.expires, next(self._seq), d))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="download-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                d = heapq.heappop(self._heap)[2]
            d.expire()


_WATCHDOG = _Watchdog()
_RESOLVER: cf.ThreadPoolExecutor | None = None


def _after_fork_in_child() -> None:
    """A forked download worker has none of its parent's threads: a watchdog or
    resolver pool inherited as started would never run (and its lock may be held)."""
    global _WATCHDOG, _RESOLVER
    _WATCHDOG, _RESOLVER = _Watchdog(), None


os.register_at_fork(after_in_child=_after_fork_in_child)


def current_deadline() -> Deadline | None:
    return getattr(_local, "deadline", None)


def resolve(host: str, port: int, deadline: Deadline | None) -> list[str]:
    """The host's addresses, in the resolver's order; the lookup is waited for
    no longer than the deadline allows (TimeoutError)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    global _RESOLVER
    if _RESOLVER is None:
        _RESOLVER = cf.ThreadPoolExecutor(16, thread_name_prefix="download-dns")
    future = _RESOLVER.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    infos = future.result(timeout=max(0.0, deadline.remaining()) if deadline else None)
    return list(dict.fromkeys(info[4][0] for info in infos))


# -- the connections ------------------------------------------------------------------------------
class _Guarded:
    """Mixed into urllib3's connections: resolve, check, connect to the checked
    address within the deadline, and register the socket with it."""
    policy: AddressPolicy | None = None     # None: a proxy's connection (the target was checked in send)

    def _new_conn(self):
        deadline = current_deadline()
        if self.policy is None:
            sock = super()._new_conn()
        else:
            try:
                addrs = resolve(self._dns_host, self.port, deadline)
            except socket.gaierror as e:
                raise NameResolutionError(self.host, self, e) from e
            except TimeoutError:
                raise ConnectTimeoutError(self, f"DNS lookup of {self.host} ran past download.max_seconds") from None
            self.policy.check(self._dns_host, addrs)
            sock = self._connect_any(addrs, deadline)
        if deadline is not None:
            deadline.watch(sock)
        return sock

    def _connect_any(self, addrs: list[str], deadline: Deadline | None):
        host, timeout = self._dns_host, self.timeout
        try:
            for i, addr in enumerate(addrs):
                self._dns_host = addr      # urllib3 connects to _dns_host; Host header and TLS keep self.host
                if deadline is not None:
                    left = max(deadline.remaining(), 0.001)
                    self.timeout = left if timeout is None else min(timeout, left)
                try:
                    return super()._new_conn()
                except (urllib3.exceptions.NewConnectionError, ConnectTimeoutError):
                    if i == len(addrs) - 1:
                        raise
        finally:
            self._dns_host, self.timeout = host, timeout

    def request(self, *args, **kwargs):
        deadline = current_deadline()
        if deadline is not None and self.sock is not None:    # a kept-alive connection
            deadline.watch(self.sock)
        return super().request(*args, **kwargs)


def _pool_classes(policy: AddressPolicy | None) -> dict:
    out = {}
    for scheme, pool in (("http", urllib3.connectionpool.HTTPConnectionPool),
                         ("https", urllib3.connectionpool.HTTPSConnectionPool)):
        conn = type(f"Guarded{pool.ConnectionCls.__name__}", (_Guarded, pool.ConnectionCls), {"policy": policy})
        out[scheme] = type(f"Guarded{pool.__name__}", (pool,), {"ConnectionCls": conn})
    return out


class GuardedAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, policy: AddressPolicy, **kwargs):
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.policy)

    def proxy_manager_for(self, proxy, **kwargs):
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = _pool_classes(None)
        return manager

    def send(self, request, **kwargs):
        if select_proxy(request.url, kwargs.get("proxies")):
            parts = urlsplit(request.url)
            host = parts.hostname or ""
            try:
                addrs = resolve(host, parts.port or 80, current_deadline())
            except socket.gaierror as e:
                raise requests.exceptions.ConnectionError(f"getaddrinfo: {host}: {e}") from None
            except TimeoutError:
                raise requests.exceptions.ConnectTimeout(f"DNS lookup of {host} ran past download.max_seconds")
            self.policy.check(host, addrs)
        return super().send(request, **kwargs)
