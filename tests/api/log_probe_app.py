"""``uvicorn log_probe_app:create_probe_app --factory``: the real app plus one public route that writes
request-derived text into the log the two ways code does (a log call with the input as an argument, and an
exception whose message embeds it), for tests of the log sanitizer against a real server's log."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, get
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from wdp.serve.app import create_app
from wdp.serve.settings import load_settings

log = logging.getLogger("wdp.serve.probe")


@get("/probe/{rest:path}", operation_id="logProbe", opt={"public": True, "no_rate_limit": True})
async def log_probe(request: Request[Any, Any, Any], rest: str) -> None:
    log.warning("probe %s query=%s headers=%s", rest, request.url.query, dict(request.headers))
    raise RuntimeError(f"cannot open {rest}")


class LogProbePlugin(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.append(log_probe)
        return app_config


def create_probe_app() -> Any:
    return create_app(load_settings(), plugins=[LogProbePlugin()])
