"""Per-client, per-tier request limits (fixed windows), with the numbers for the X-RateLimit-* headers, and
the sign-in throttle (failed attempts with exponential backoff).

Litestar's RateLimitConfig has one limit for everyone; the seed wants tiers (anonymous, authenticated,
premium, streaming), so this is a small limiter the edge middleware calls. A client's window opens at its
first request and resets ``window_s`` later (Retry-After is the time to that reset, so windows are short: a
minute by default); a fixed window can let through up to 2x the limit across a boundary, accepted. Memory is
one small tuple per active client; expired windows are swept when more than ``max_clients`` are tracked.

Callers with credentials are limited per identity (user or API key), never by address, so anonymous traffic
from a shared address (a NAT, a reverse proxy) cannot lock them out. Sign-in (``/auth/token`` and the first
use of an API key, which costs an argon2 hash) is kept out of the anonymous budget and throttled by
``SignInThrottle`` instead: only *failed* attempts count, per username or API key id and per address, and
past a free allowance each further failure locks that key for a doubling time.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from wdp.serve.settings import RateLimitSettings, RateTier, SignInLimits

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(scope: Any, trusted_proxies: Sequence[IPNetwork]) -> str:
    """The caller's address: the peer, or, when the peer is a trusted proxy, the nearest X-Forwarded-For hop
    that is not one (read right to left: the entries left of it are whatever the client claimed)."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    peer_ip = _ip(peer)
    if not trusted_proxies or peer_ip is None or not any(peer_ip in n for n in trusted_proxies):
        return peer
    forwarded = [
        part
        for key, value in scope["headers"]
        if key == b"x-forwarded-for"
        for part in value.decode("latin-1").split(",")
    ]
    hop = peer
    for entry in reversed(forwarded):
        ip = _ip(entry)
        if ip is None:  # garbage: the hop that handed it over is as far as we can trust
            return hop
        hop = str(ip)
        if not any(ip in n for n in trusted_proxies):
            return hop
    return hop


class RateDecision(msgspec.Struct, frozen=True):
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the window resets
    retry_after_s: int  # 0 when allowed

    def headers(self) -> dict[str, str]:
        h = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after_s)
        return h


class RateLimiter:
    def __init__(self, settings: RateLimitSettings) -> None:
        self._tiers: dict[str, RateTier] = dict(settings.tiers)
        self._max_clients = settings.max_tracked_clients
        self.trusted_proxies: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies
        )
        self.sign_in = SignInThrottle(settings.sign_in, settings.max_tracked_clients)
        # (tier, client) -> [window_start_monotonic, count]
        self._windows: dict[tuple[str, str], list[float]] = {}
        # wall clock = monotonic + offset, for the Reset header
        self._wall_offset = time.time() - time.monotonic()

    def hit(self, tier: str, client: str, now: float | None = None) -> RateDecision:
        """Count one request of ``client`` in ``tier``; the decision says whether it may proceed."""
        spec = self._tiers[tier]
        t = time.monotonic() if now is None else now
        key = (tier, client)
        window = self._windows.get(key)
        if window is None or t - window[0] >= spec.window_s:
            if window is None and len(self._windows) >= self._max_clients:
                self._sweep(t)
            window = [t, 0.0]
            self._windows[key] = window
        reset = window[0] + spec.window_s
        if window[1] >= spec.limit:
            return RateDecision(False, spec.limit, 0, reset + self._wall_offset, max(1, math.ceil(reset - t)))
        window[1] += 1
        return RateDecision(True, spec.limit, spec.limit - int(window[1]), reset + self._wall_offset, 0)

    def _sweep(self, t: float) -> None:
        expired = [k for k, (start, _) in self._windows.items() if t - start >= self._tiers[k[0]].window_s]
        for k in expired:
            del self._windows[k]

    def client_address(self, scope: Any) -> str:
        return client_address(scope, self.trusted_proxies)

    @property
    def tracked(self) -> int:
        return len(self._windows)


class SignInThrottle:
    """Failed sign-ins per key (``user:<name>``, ``key:<key_id>``, ``ip:<address>``). A key with ``free``
    failures or more is locked until ``backoff_base_s * 2**(failures - free)`` (at most ``backoff_max_s``)
    after its last failure; a key quiet for ``forget_after_s`` starts again from zero. A success clears the
    account's key, not the address's (else one valid account would reset an address's guessing budget)."""

    def __init__(self, limits: SignInLimits, max_keys: int) -> None:
        self._limits = limits
        self._max_keys = max_keys
        self._failures: dict[str, list[float]] = {}  # key -> [count, last failure (monotonic)]

    def keys(self, address: str, account: str | None) -> list[tuple[str, int]]:
        """The keys one attempt counts against, with their free allowance (``account``: ``user:...`` or
        ``key:...``, None when the attempt names no account, e.g. a malformed API key)."""
        out = [("ip:" + address, self._limits.free_failures_per_address)]
        if account is not None:
            out.append((account, self._limits.free_failures_per_account))
        return out

    def retry_after(self, keys: Iterable[tuple[str, int]], now: float | None = None) -> int:
        """Seconds until an attempt on ``keys`` may be made; 0: now."""
        t = time.monotonic() if now is None else now
        wait = 0.0
        for key, free in keys:
            entry = self._failures.get(key)
            if entry is None or t - entry[1] >= self._limits.forget_after_s:
                continue
            count, last = entry
            if count >= free:
                lock = min(self._limits.backoff_max_s, self._limits.backoff_base_s * 2.0 ** (count - free))
                wait = max(wait, last + lock - t)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, keys: Iterable[tuple[str, int]], now: float | None = None) -> None:
        t = time.monotonic() if now is None else now
        for key, _ in keys:
            entry = self._failures.get(key)
            if entry is None and len(self._failures) >= self._max_keys:
                self._sweep(t)
            if entry is None or t - entry[1] >= self._limits.forget_after_s:
                entry = self._failures[key] = [0.0, t]
            entry[0] += 1
            entry[1] = t

    def succeeded(self, account: str | None) -> None:
        if account is not None:
            self._failures.pop(account, None)

    def _sweep(self, t: float) -> None:
        forget = self._limits.forget_after_s
        for key in [k for k, (_, last) in self._failures.items() if t - last >= forget]:
            del self._failures[key]
        if len(self._failures) >= self._max_keys:  # all recent: drop the oldest half
            by_age = sorted(self._failures, key=lambda k: self._failures[k][1])
            for key in by_age[: len(by_age) // 2 + 1]:
                del self._failures[key]

    @property
    def tracked(self) -> int:
        return len(self._failures)
