"""The schema: Query mirrors REST's reads, Mutation its zone/webhook writes and the admins' model swap,
Subscription the WebSocket's poses, sensing and event topics. Every field checks the scope its REST route
needs (wdp.serve.graphql.auth.require); the REST helpers do the validation, so both APIs refuse the same
input the same way."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import anyio.to_thread
import msgspec
import strawberry
from strawberry.types import Info

from wdp.schemas import Zone as ZoneStruct
from wdp.serve.api_types import WebhookCreate
from wdp.serve.controllers.config import _create, _delete, sync_zones
from wdp.serve.controllers.system import stream_stats
from wdp.serve.controllers.webhooks import _out, _subscription
from wdp.serve.graphql import types as t
from wdp.serve.graphql.auth import check_range, error, require, rest, services_of
from wdp.serve.security import (
    ADMIN_ALL,
    ANALYTICS_READ,
    CONFIG_WRITE,
    POSE_READ,
    STREAM_SUBSCRIBE,
    SYSTEM_READ,
    ZONE_WRITE,
)
from wdp.serve.stream.hub import event_matches, filter_frame, topics_of
from wdp.serve.stream.protocol import Filters
from wdp.serve.validation import check_zone
from wdp.store import config as store_config
from wdp.store import queries

EVENT_TOPICS = ("system_alerts", "zone_events", "person_tracking", "sensing_events")
RECHECK_S = 1.0  # a subscription re-checks its credentials (revocation) at most this often


def _filters(f: t.StreamFilters | None) -> Filters:
    if f is None:
        return Filters()
    try:
        return msgspec.convert({k: v for k, v in vars(f).items() if v is not None}, Filters)
    except msgspec.ValidationError as exc:
        raise error(f"invalid filters: {exc}", "BAD_USER_INPUT") from None


def _limit(info: Info, limit: int) -> int:
    ceiling = services_of(info).settings.graphql.max_history_limit
    if not 1 <= limit <= ceiling:
        raise error(f"limit must be in 1..{ceiling}", "BAD_USER_INPUT")
    return limit


@strawberry.type
class Query:
    @strawberry.field(description="The most recent pose frame (REST GET /api/v1/pose/current)")
    def current_pose(self, info: Info, filters: t.StreamFilters | None = None) -> t.PoseFrame | None:
        require(info, POSE_READ)
        frame = services_of(info).engine.current_frame()
        return None if frame is None else filter_frame(frame, _filters(filters))  # type: ignore[return-value]

    @strawberry.field(description="Stored frames in [startTime, endTime) (REST GET /api/v1/pose/history)")
    async def pose_history(
        self,
        info: Info,
        start_time: float,
        end_time: float,
        person_id: int | None = None,
        zone_id: str | None = None,
        min_confidence: float | None = None,
        limit: int = 100,
        skip: int = 0,
    ) -> t.PoseHistoryPage:
        require(info, POSE_READ)
        check_range(start_time, end_time)
        _limit(info, limit)
        if skip < 0:
            raise error("skip must be >= 0", "BAD_USER_INPUT")
        kw = {"track_id": person_id, "zone_id": zone_id, "min_confidence": min_confidence}

        def page(con: Any) -> tuple[list[Any], int]:
            frames = queries.pose_history(con, start_time, end_time, limit=limit, offset=skip, **kw)
            return frames, queries.count_history(con, start_time, end_time, **kw)

        frames, total = await services_of(info).db(page)
        # the stored Structs resolve as they are (same attribute names): no per-frame copy
        return t.PoseHistoryPage(frames=frames, total=total, limit=limit, skip=skip)  # type: ignore[arg-type]

    @strawberry.field(description="One person's summary and trajectory (REST GET /api/v1/pose/persons/{id})")
    async def person(
        self, info: Info, person_id: int, include_trajectory: bool = False, bucket_s: float | None = None
    ) -> t.PersonDetails | None:
        require(info, POSE_READ)
        s = services_of(info)
        summary = await s.db(queries.person_summary, person_id)
        if summary is None:
            return None
        trajectory = None
        if include_trajectory:
            if bucket_s is not None and not 0.01 <= bucket_s <= 86400.0:
                raise error("bucketS must be in 0.01..86400", "BAD_USER_INPUT")
            cols = await s.db(queries.trajectory_arrays, person_id, bucket_s=bucket_s)
            trajectory = [
                t.TrajectoryPoint(timestamp=a, x=b, y=c)
                for a, b, c in zip(cols["timestamp"].tolist(), cols["x"].tolist(), cols["y"].tolist(), strict=True)
            ]
        return t.PersonDetails(
            track_id=summary.track_id,
            first_seen=summary.first_seen,
            last_seen=summary.last_seen,
            frames=summary.frames,
            average_confidence=summary.average_confidence,
            activities=dict(summary.activities),
            current_zone_ids=list(summary.current_zone_ids),
            last_position=list(summary.last_position) if summary.last_position is not None else None,
            trajectory=trajectory,
        )

    @strawberry.field(description="Configured zones (REST GET /api/v1/config/zones)")
    async def zones(self, info: Info) -> list[t.Zone]:
        require(info, SYSTEM_READ, CONFIG_WRITE, ZONE_WRITE)
        return [t.Zone.of(z) for z in await services_of(info).db(store_config.ZONES.list)]

    @strawberry.field(description="Persons per zone in the current frame (REST GET /api/v1/pose/zones)")
    async def zone_occupancy(self, info: Info) -> list[t.ZoneOccupancy]:
        require(info, POSE_READ)
        s = services_of(info)
        zones = await s.db(store_config.ZONES.list)
        frame = s.engine.current_frame()
        members: dict[str, list[int]] = {}
        for p in frame.persons if frame is not None else ():
            for z in p.zone_ids:
                members.setdefault(z, []).append(p.track_id)
        out = []
        for z in zones:
            ids = sorted(members.get(z.id, []))
            over = z.max_occupancy is not None and len(ids) > z.max_occupancy
            out.append(
                t.ZoneOccupancy(
                    zone_id=z.id,
                    name=z.name,
                    count=len(ids),
                    track_ids=ids,
                    max_occupancy=z.max_occupancy,
                    over_capacity=over,
                    restricted=z.restricted,
                )
            )
        return out

    @strawberry.field(description="Stored events in [startTime, endTime), newest first")
    async def events(
        self,
        info: Info,
        start_time: float,
        end_time: float,
        types: list[str] | None = None,
        person_id: int | None = None,
        zone_id: str | None = None,
        limit: int = 100,
    ) -> list[t.Event]:
        require(info, ANALYTICS_READ, POSE_READ)
        check_range(start_time, end_time)
        _limit(info, limit)
        rows = await services_of(info).db(
            queries.events, start_time, end_time, types=types, track_id=person_id, zone_id=zone_id, limit=limit
        )
        return [t.Event.of(e) for e in rows]

    @strawberry.field(description="Person-frames per activity (REST GET /api/v1/analytics/activity)")
    async def activity(
        self, info: Info, start_time: float, end_time: float, zone_id: str | None = None
    ) -> t.ActivitySummary:
        from wdp.serve import analytics_queries

        require(info, ANALYTICS_READ)
        check_range(start_time, end_time)
        total, counts = await services_of(info).db(analytics_queries.activity_counts, start_time, end_time, zone_id)
        return t.ActivitySummary(
            start=start_time,
            end=end_time,
            zone_id=zone_id,
            person_frames=total,
            activities=[
                t.ActivityCount(activity=c.activity, person_frames=c.person_frames, persons=c.persons) for c in counts
            ],
        )

    @strawberry.field(description="Latest sensing state of every router and zone (REST GET /api/v1/sensing/current)")
    def sensing(self, info: Info) -> list[t.SensingState]:
        require(info, POSE_READ)
        return [t.SensingState.of(s) for s in services_of(info).engine.sensing_current()]

    @strawberry.field(description="Routers and their link status (REST GET /api/v1/system/routers)")
    def routers(self, info: Info) -> list[t.Router]:
        require(info, SYSTEM_READ)
        return [t.Router.of(r) for r in services_of(info).engine.routers()]

    @strawberry.field(description="Pipeline, routers and stream status (REST GET /api/v1/system/status)")
    def system_status(self, info: Info) -> t.SystemStatus:
        require(info, SYSTEM_READ)
        s = services_of(info)
        st = s.engine.status()
        routers = s.engine.routers()
        now = time.time()
        return t.SystemStatus(
            status="running" if st.running else "stopped",
            server_time=now,
            uptime_s=now - s.started_at,
            running=st.running,
            source=st.source,
            fps=st.fps,
            latency_ms_p50=st.latency_ms_p50,
            latency_ms_p99=st.latency_ms_p99,
            frames_total=st.frames_total,
            frames_dropped=st.frames_dropped,
            persons=st.persons,
            active_routers=sum(r.status == "connected" for r in routers),
            total_routers=len(routers),
            stream_clients=stream_stats(s).clients,
            api_versions=list(s.versioning.versions),
        )

    @strawberry.field(description="Webhook subscriptions (REST GET /api/v1/webhooks); secrets are never shown")
    async def webhooks(self, info: Info) -> list[t.Webhook]:
        require(info, CONFIG_WRITE)
        subs = await services_of(info).db(store_config.WEBHOOKS.list)
        return [_webhook(_out(x)) for x in subs]


def _webhook(w: Any) -> t.Webhook:
    return t.Webhook(id=w.id, url=w.url, events=list(w.events), has_secret=w.has_secret, active=w.active)


def _zone(data: t.ZoneInput) -> ZoneStruct:
    raw = {k: v for k, v in vars(data).items() if v is not None}
    try:
        return msgspec.convert(raw, ZoneStruct)
    except msgspec.ValidationError as exc:
        raise error(f"invalid zone: {exc}", "BAD_USER_INPUT") from None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a zone (REST POST /api/v1/config/zones); goes live at once")
    async def create_zone(self, info: Info, zone: t.ZoneInput) -> t.Zone:
        require(info, ZONE_WRITE, CONFIG_WRITE)
        s = services_of(info)
        z = _zone(zone)
        await rest(_checked(check_zone, z))
        async with s.config_lock:
            await rest(_create(s, store_config.ZONES, z, "zone"))
            await rest(sync_zones(s))
        return t.Zone.of(z)

    @strawberry.mutation(description="Replace a zone (REST PUT /api/v1/config/zones/{id})")
    async def replace_zone(self, info: Info, zone: t.ZoneInput) -> t.Zone:
        require(info, ZONE_WRITE, CONFIG_WRITE)
        s = services_of(info)
        z = _zone(zone)
        await rest(_checked(check_zone, z))
        async with s.config_lock:
            await s.db(store_config.ZONES.put, z)
            await rest(sync_zones(s))
        return t.Zone.of(z)

    @strawberry.mutation(description="Delete a zone (REST DELETE /api/v1/config/zones/{id})")
    async def delete_zone(self, info: Info, zone_id: str) -> bool:
        require(info, ZONE_WRITE, CONFIG_WRITE)
        s = services_of(info)
        async with s.config_lock:
            await rest(_delete(s, store_config.ZONES, zone_id, "zone"))
            await rest(sync_zones(s))
        return True

    @strawberry.mutation(description="Subscribe a URL to events (REST POST /api/v1/webhooks)")
    async def create_webhook(self, info: Info, webhook: t.WebhookInput) -> t.Webhook:
        from wdp.schemas import new_id

        require(info, CONFIG_WRITE)
        s = services_of(info)
        try:
            body = msgspec.convert({k: v for k, v in vars(webhook).items() if v is not None}, WebhookCreate)
        except msgspec.ValidationError as exc:
            raise error(f"invalid webhook: {exc}", "BAD_USER_INPUT") from None
        sub = await rest(_subscription(s, new_id(), body))
        return _webhook(_out(await s.db(store_config.WEBHOOKS.put, sub)))

    @strawberry.mutation(description="Delete a webhook subscription (REST DELETE /api/v1/webhooks/{id})")
    async def delete_webhook(self, info: Info, webhook_id: str) -> bool:
        require(info, CONFIG_WRITE)
        if not await services_of(info).db(store_config.WEBHOOKS.delete, webhook_id):
            raise error(f"webhook {webhook_id!r} not found", "NOT_FOUND")
        return True

    @strawberry.mutation(description="Switch the engine's pose model without a restart (admin:all only)")
    async def swap_model(self, info: Info, model: str) -> t.ModelSwapped:
        require(info, ADMIN_ALL)
        engine = getattr(services_of(info).engine, "engine", None)  # EngineAdapter -> the running Engine
        if engine is None or not hasattr(engine, "swap_model"):
            raise error("this server runs no model engine (or it is stopped)", "UNAVAILABLE")
        try:
            model_info = await anyio.to_thread.run_sync(engine.swap_model, model)
        except (FileNotFoundError, ValueError) as exc:
            raise error(f"cannot load model {model!r}: {exc}", "BAD_USER_INPUT") from None
        return t.ModelSwapped(name=str(model_info.name), path=str(model_info.path))


async def _checked(fn: Any, *args: Any) -> None:
    fn(*args)


async def _drain(info: Info, topic: str, scope: str) -> AsyncGenerator[Any, None]:
    """Items of an engine topic for one subscription, re-checking the caller's credentials (revocation)."""
    s = services_of(info)
    principal = require(info, scope)
    sub = s.engine.subscribe(topic)  # type: ignore[arg-type]
    checked = time.monotonic()
    try:
        async for item in sub:
            if time.monotonic() - checked >= RECHECK_S:
                checked = time.monotonic()
                try:
                    s.credentials.check(principal)
                except Exception as exc:  # AuthError: the subscription ends with the reason
                    raise error(str(exc), "UNAUTHENTICATED") from None
            yield item
    finally:
        await sub.aclose()


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Pose frames with the WebSocket's filters (topic pose_updates)")
    async def poses(
        self, info: Info, filters: t.StreamFilters | None = None, max_fps: float | None = None
    ) -> AsyncGenerator[t.PoseFrame, None]:
        f = _filters(filters)
        ceiling = services_of(info).settings.stream.max_fps
        fps = min(max_fps, ceiling) if max_fps else ceiling
        if fps <= 0:
            raise error("maxFps must be > 0", "BAD_USER_INPUT")
        interval = 1.0 / fps if fps < ceiling else 0.0
        last = -1e18
        async for frame in _drain(info, "poses", STREAM_SUBSCRIBE):
            now = time.monotonic()
            if interval and now - last < interval * 0.9:
                continue
            last = now
            yield filter_frame(frame, f)  # type: ignore[misc]

    @strawberry.subscription(description="Sensing states (topic sensing_updates), optionally one router/zone")
    async def sensing(
        self, info: Info, router_id: str | None = None, zone_id: str | None = None
    ) -> AsyncGenerator[t.SensingState, None]:
        async for state in _drain(info, "sensing", STREAM_SUBSCRIBE):
            if router_id is not None and state.router_id != router_id:
                continue
            if zone_id is not None and state.zone_id != zone_id:
                continue
            yield t.SensingState.of(state)

    @strawberry.subscription(
        description="Events of one WebSocket topic: system_alerts, zone_events, person_tracking, sensing_events"
    )
    async def events(
        self, info: Info, topic: str, filters: t.StreamFilters | None = None
    ) -> AsyncGenerator[t.Event, None]:
        if topic not in EVENT_TOPICS:
            raise error(f"topic must be one of {', '.join(EVENT_TOPICS)}", "BAD_USER_INPUT")
        f = _filters(filters)
        async for event in _drain(info, "events", STREAM_SUBSCRIBE):
            if topic in topics_of(event) and event_matches(event, f):
                yield t.Event.of(event)
