"""The per-app service objects, built once by the app factory and injected into handlers and middleware.

Nothing here is module-global: two apps in one process (tests do this) have separate stores, limiters,
token caches and metric registries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread
import duckdb
from litestar.di import NamedDependency

from wdp.integrations.webhooks import UrlGuard
from wdp.serve.engine_view import EngineView
from wdp.serve.metrics import ApiMetrics
from wdp.serve.ratelimit import RateLimiter
from wdp.serve.security import ApiKeyVerifier, CredentialRegistry, SecretHasher, TokenService
from wdp.serve.settings import ServeSettings
from wdp.serve.stream.hub import StreamHub
from wdp.serve.versioning import Versioning
from wdp.store import Store

T = TypeVar("T")


@dataclass(eq=False)
class Services:
    settings: ServeSettings
    store: Store
    engine: EngineView
    tokens: TokenService
    hasher: SecretHasher
    api_keys: ApiKeyVerifier
    limiter: RateLimiter
    versioning: Versioning
    metrics: ApiMetrics
    hub: StreamHub
    credentials: CredentialRegistry
    started_at: float = field(default_factory=time.time)
    config_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # serializes zone-set changes
    # webhook targets are checked with the delivery's own rule (conf webhooks.allowed_networks) at create/update
    webhook_guard: UrlGuard = field(default_factory=UrlGuard)

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(cursor, *args, **kwargs)`` on a worker thread with that thread's DuckDB cursor, so
        queries never block the event loop."""

        def call() -> T:
            return fn(self.store.cursor(), *args, **kwargs)

        return await anyio.to_thread.run_sync(call)

    async def credentials_changed(self) -> None:
        """After a user or API key changed: reload the registry every request checks against, and close the
        WebSockets whose credentials no longer hold (4001) or no longer grant stream:subscribe (4003)."""
        await self.db(self.credentials.reload)
        self.hub.recheck(self.credentials.check)

    def db_now(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Same, on the calling thread (for handlers that already run in a worker thread)."""
        return fn(self.store.cursor(), *args, **kwargs)


DuckCursor = duckdb.DuckDBPyConnection


# The handler parameter type for the injected services (Litestar 2.23+ wants dependencies marked).
ServicesDep = NamedDependency[Services]
