"""GET /metrics: Prometheus text exposition of this app's registry."""

from __future__ import annotations

from litestar import Response, get
from litestar.controller import Controller
from prometheus_client import CONTENT_TYPE_LATEST
from wdp.serve.services import ServicesDep


class MetricsController(Controller):
    path = "/metrics"
    tags = ["system"]
    # scraped by Prometheus on the internal network; exposes counts and timings only
    opt = {"public": True, "no_rate_limit": True}

    @get("/", operation_id="getMetrics", media_type=CONTENT_TYPE_LATEST, summary="Prometheus metrics")
    async def metrics(self, services: ServicesDep) -> Response[bytes]:
        return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
