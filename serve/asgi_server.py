"""Run the ASGI app under the configured server (``api.server``):

- ``uvicorn`` (default): HTTP/1.1 + WebSocket, the fastest on HTTP/1.1 (httptools, uvloop);
- ``hypercorn``: adds HTTP/2 (h2 over TLS by ALPN; cleartext h2c by prior knowledge or Upgrade) for REST and
  GraphQL, beside HTTP/1.1 and WebSocket. Chosen because it is the maintained ASGI server that speaks h2
  (the pallets/django-adjacent ``hypercorn``, built on the python-hyper ``h2`` state machine); uvicorn has
  no HTTP/2, and granian/daphne would add a Rust toolchain or Twisted.

``serve(app, ...)`` is a coroutine so tests run the same code on a loop of their own (stopping it through the
``shutdown`` event).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

ServerKind = Literal["uvicorn", "hypercorn"]


async def serve(
    app: Any,
    *,
    host: str,
    port: int,
    server: ServerKind = "uvicorn",
    log_level: str = "info",
    shutdown: asyncio.Event | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or until ``shutdown`` is set, when given)."""
    if server == "hypercorn":
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"{host}:{port}"]
        config.loglevel = log_level.upper()
        config.accesslog = None
        config.alpn_protocols = ["h2", "http/1.1"]
        if certfile and keyfile:
            config.certfile, config.keyfile = certfile, keyfile
        # without a trigger hypercorn shuts down gracefully on SIGINT/SIGTERM by itself
        trigger = shutdown.wait if shutdown is not None else None
        await hypercorn_serve(app, config, shutdown_trigger=trigger)  # type: ignore[arg-type]
        return
    if server != "uvicorn":
        raise ValueError(f"unknown server {server!r} (uvicorn or hypercorn)")
    import uvicorn

    config_kw: dict[str, Any] = {}
    if certfile and keyfile:
        config_kw = {"ssl_certfile": certfile, "ssl_keyfile": keyfile}
    uv = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on", **config_kw)
    )
    if shutdown is None:
        await uv.serve()
        return

    async def stop_on_event() -> None:
        await shutdown.wait()
        uv.should_exit = True

    stopper = asyncio.create_task(stop_on_event())
    try:
        await uv.serve()
    finally:
        stopper.cancel()
