"""``python -m wdp.serve [--host H] [--port P] [overrides ...]``: the realtime engine, the REST/WebSocket API
and the dashboard in one uvicorn process.

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
    parser.add_argument("--no-autostart", action="store_true", help="start the engine only through the API")
    parser.add_argument("overrides", nargs="*", help="serve config overrides, e.g. detector=ground_truth")
    args = parser.parse_args(argv)

    from wdp.process_memory import limit_malloc_arenas

    limit_malloc_arenas()  # before the engine's, DuckDB's and the thread pool's threads exist

    import uvicorn

    from wdp.engine.config import compose_serve_config
    from wdp.serve.engine_adapter import create_engine_app
    from wdp.serve.settings import InsecureSettingsError

    try:
        cfg = compose_serve_config(args.overrides)
        app = create_engine_app(cfg, autostart=not args.no_autostart)
    except (InsecureSettingsError, ValueError, FileNotFoundError) as exc:
        print(f"wdp.serve: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
