"""/api/v1/system: status, health (503 when unhealthy), routers, performance, start/stop."""

from __future__ import annotations

import asyncio
import time

import msgspec
from litestar import Response, get, post
from litestar.controller import Controller
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from wdp.serve.api_types import (
    HealthReport,
    HealthState,
    Performance,
    PipelinePerformance,
    RouterReport,
    StreamStats,
    SystemStatus,
)
from wdp.serve.engine_view import ComponentHealth, EngineStatus
from wdp.serve.security import ADMIN_ALL, SYSTEM_READ
from wdp.serve.services import ServicesDep

STORE_CHECK_TIMEOUT_S = 2.0


def stream_stats(services: ServicesDep) -> StreamStats:
    clients, sent, dropped, slow = services.hub.stats()
    return StreamStats(clients=clients, messages_sent=sent, messages_dropped=dropped, slow_disconnects=slow)


async def check_health(services: ServicesDep) -> HealthReport:
    """Per-component checks; any ``failed`` component makes the whole unhealthy, any ``degraded`` degraded."""
    status = services.engine.status()
    components: dict[str, ComponentHealth] = {}
    try:
        await asyncio.wait_for(services.db(lambda con: con.execute("SELECT 1").fetchone()), STORE_CHECK_TIMEOUT_S)
        components["store"] = ComponentHealth(status="ok")
    except Exception as exc:  # any failure of the database is a failed component, reported not raised
        components["store"] = ComponentHealth(status="failed", detail=f"{type(exc).__name__}: {exc}"[:200])
    components["engine"] = (
        ComponentHealth(status="ok")
        if status.running
        else ComponentHealth(status="degraded", detail="pipeline stopped")
    )
    for name, health in status.components.items():
        components[f"engine.{name}"] = health
    routers = services.engine.routers()
    if routers:
        connected = sum(r.status == "connected" for r in routers)
        components["routers"] = ComponentHealth(
            status="ok" if connected == len(routers) else "degraded" if connected else "failed",
            detail=f"{connected}/{len(routers)} connected",
        )
    components["stream"] = ComponentHealth(status="ok", detail=f"{len(services.hub.clients)} clients")
    states = {c.status for c in components.values()}
    overall: HealthState = "unhealthy" if "failed" in states else "degraded" if "degraded" in states else "healthy"
    return HealthReport(status=overall, timestamp=time.time(), components=components)


class SystemController(Controller):
    path = "/api/v1/system"
    tags = ["system"]
    opt = {"scopes": (SYSTEM_READ,)}

    @get("/status", operation_id="getSystemStatus", summary="Pipeline, routers and stream status")
    async def status(self, services: ServicesDep) -> SystemStatus:
        engine = services.engine.status()
        routers = services.engine.routers()
        now = time.time()
        return SystemStatus(
            status="running" if engine.running else "stopped",
            server_time=now,
            uptime_s=now - services.started_at,
            engine=engine,
            active_routers=sum(r.status == "connected" for r in routers),
            total_routers=len(routers),
            stream=stream_stats(services),
            api_versions=services.versioning.versions,
            sensing=services.engine.sensing_links(),
        )

    @get(
        "/health",
        operation_id="getHealth",
        opt={"public": True, "no_rate_limit": True},
        summary="Health with per-component checks (503 when unhealthy)",
        responses={HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(data_container=HealthReport, description="Unhealthy")},
    )
    async def health(self, services: ServicesDep) -> Response[HealthReport]:
        report = await check_health(services)
        code = HTTP_503_SERVICE_UNAVAILABLE if report.status == "unhealthy" else HTTP_200_OK
        return Response(report, status_code=code)

    @get(
        "/routers",
        operation_id="getRouters",
        summary="Routers and their link status",
        description="`sensing` holds each router's sensing calibration and the input problems it absorbed "
        "(frame shape changes, timestamp jumps, bad frames) plus the counters its source reports.",
    )
    async def routers(self, services: ServicesDep) -> list[RouterReport]:
        links = {x.router_id: x for x in services.engine.sensing_links()}
        return [RouterReport(**msgspec.structs.asdict(r), sensing=links.get(r.id)) for r in services.engine.routers()]

    @get("/performance", operation_id="getPerformance", summary="Pipeline and stream throughput")
    async def performance(self, services: ServicesDep) -> Performance:
        s = services.engine.status()
        total = s.frames_total + s.frames_dropped
        return Performance(
            timestamp=time.time(),
            pipeline=PipelinePerformance(
                fps=s.fps,
                latency_ms_p50=s.latency_ms_p50,
                latency_ms_p99=s.latency_ms_p99,
                frames_total=s.frames_total,
                frames_dropped=s.frames_dropped,
                drop_ratio=s.frames_dropped / total if total else 0.0,
            ),
            stream=stream_stats(services),
            rate_limited_clients=services.limiter.tracked,
        )

    @post(
        "/start",
        operation_id="startSystem",
        status_code=HTTP_200_OK,
        opt={"scopes": (ADMIN_ALL,)},
        summary="Start the pipeline (no-op when running)",
    )
    async def start(self, services: ServicesDep) -> EngineStatus:
        return await services.engine.start()

    @post(
        "/stop",
        operation_id="stopSystem",
        status_code=HTTP_200_OK,
        opt={"scopes": (ADMIN_ALL,)},
        summary="Stop the pipeline (no-op when stopped)",
    )
    async def stop(self, services: ServicesDep) -> EngineStatus:
        return await services.engine.stop()
