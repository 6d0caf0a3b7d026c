"""Per-client, per-tier request limits (fixed windows), with the numbers for the X-RateLimit-* headers.

Litestar's RateLimitConfig has one limit for everyone; the seed wants tiers (anonymous, authenticated,
premium, streaming), so this is a small limiter the edge middleware calls. A client's window opens at its
first request and resets ``window_s`` later; a fixed window can let through up to 2x the limit across a
boundary, accepted for hour-long windows. Memory is one small tuple per active client; expired windows are
swept when more than ``max_clients`` are tracked.
"""

from __future__ import annotations

import math
import time

import msgspec
from wdp.serve.settings import RateLimitSettings, RateTier


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

    @property
    def tracked(self) -> int:
        return len(self._windows)
