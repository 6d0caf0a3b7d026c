"""``python -m wdp.serve [--host H] [--port P] [overrides ...]``: the realtime engine, the REST/WebSocket API
and the dashboard in one process, under uvicorn or hypercorn (HTTP/2): ``--server`` or the API setting
``server`` (WDP_API__SERVER). With ``WDP_API__GRPC__ENABLED=true`` the gRPC API runs in the same process.

Overrides are the serve config's (conf/serve.yaml, Hydra style), e.g.
``python -m wdp.serve --port 8000 detector=ground_truth source=demo_fall``. API settings come from the
environment (WDP_JWT_SECRET, WDP_ADMIN_PASSWORD, WDP_API__SECTION__KEY=...); see wdp.serve.settings.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wdp.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--server", choices=("uvicorn", "hypercorn"), default=None, help="default: api.server")
    parser.add_argument("--certfile", default=None, help="TLS certificate (PEM): HTTPS, and h2 by ALPN on hypercorn")
    parser.add_argument("--keyfile", default=None)
    parser.add_argument("--no-autostart", action="store_true", help="start the engine only through the API")
    parser.add_argument("overrides", nargs="*", help="serve config overrides, e.g. detector=ground_truth")
    args = parser.parse_args(argv)

    from wdp.process_memory import limit_malloc_arenas

    limit_malloc_arenas()  # before the engine's, DuckDB's and the thread pool's threads exist

    import asyncio

    from wdp.engine.config import compose_serve_config
    from wdp.serve.asgi_server import serve
    from wdp.serve.engine_adapter import create_engine_app
    from wdp.serve.settings import InsecureSettingsError, load_settings

    try:
        cfg = compose_serve_config(args.overrides)
        settings = load_settings(cfg.get("api"))
        app = create_engine_app(cfg, settings, autostart=not args.no_autostart)
    except (InsecureSettingsError, ValueError, FileNotFoundError) as exc:
        print(f"wdp.serve: {exc}", file=sys.stderr)
        return 2
    kind = args.server or settings.server
    main_coro = serve(
        app,
        host=args.host,
        port=args.port,
        server=kind,
        log_level=args.log_level,
        certfile=args.certfile,
        keyfile=args.keyfile,
    )
    try:  # uvloop as uvicorn.run would pick it, except under gRPC (grpc.aio supports the stock asyncio loop)
        import uvloop
    except ImportError:
        uvloop = None
    if uvloop is not None and not settings.grpc.enabled:
        uvloop.run(main_coro)
    else:
        asyncio.run(main_coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
