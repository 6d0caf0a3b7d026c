"""Prometheus metrics of one app, in the app's own CollectorRegistry.

Litestar's PrometheusPlugin registers its metrics in prometheus_client's process-global registry (and keeps
them in a class-level dict), so two apps in one process would share counters; here every app owns its
registry and the pipeline gauges are read from the EngineView at scrape time by a custom collector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from wdp.serve.engine_view import EngineStatus

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _PipelineCollector(Collector):
    def __init__(self, status: Callable[[], EngineStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self._status()
        yield GaugeMetricFamily("wdp_pipeline_running", "1 while the pipeline runs", value=float(s.running))
        yield GaugeMetricFamily("wdp_pipeline_fps", "Frames published per second", value=s.fps)
        lat = GaugeMetricFamily("wdp_pipeline_latency_ms", "CSI arrival to frame published", labels=["quantile"])
        lat.add_metric(["0.5"], s.latency_ms_p50)
        lat.add_metric(["0.99"], s.latency_ms_p99)
        yield lat
        yield CounterMetricFamily("wdp_pipeline_frames", "Frames published", value=s.frames_total)
        yield CounterMetricFamily("wdp_pipeline_drops", "Windows dropped by the pipeline", value=s.frames_dropped)
        yield GaugeMetricFamily("wdp_pipeline_persons", "Persons in the current frame", value=s.persons)


class ApiMetrics:
    def __init__(self, engine_status: Callable[[], EngineStatus]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("wdp_http_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "wdp_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter("wdp_http_rate_limited", "Requests refused with 429", ["tier"], registry=r)
        self.auth_failures = Counter("wdp_auth_failures", "Rejected credentials", ["kind"], registry=r)
        self.ws_connections = Gauge("wdp_ws_connections", "Open WebSocket stream connections", registry=r)
        self.ws_messages = Counter("wdp_ws_messages", "WebSocket messages", ["direction", "type"], registry=r)
        self.ws_dropped = Counter("wdp_ws_dropped", "Outbound messages dropped for slow clients", registry=r)
        self.ws_disconnects = Counter("wdp_ws_disconnects", "Stream disconnections", ["reason"], registry=r)
        r.register(_PipelineCollector(engine_status))
        # labels() costs a lock and a dict lookup per call; children are cached per label tuple
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
