"""``wdp.v1.WdpService``: the servicer. Every call authenticates from metadata with the REST credentials
(``authorization: Bearer <JWT>`` or ``x-api-key: wdp_...``, checked by wdp.serve.edge.verify_credentials, so
revocation and the sign-in throttle apply) and the same scopes; unary calls count against the caller's
rate-limit tier, stream openings against the streaming tier (RESOURCE_EXHAUSTED, ``retry-after`` in the
trailing metadata).

Status codes: UNAUTHENTICATED (no, bad, expired or revoked credentials), PERMISSION_DENIED (scope missing),
INVALID_ARGUMENT (bad filters or ranges), NOT_FOUND (no frame yet), FAILED_PRECONDITION (CSI ingest on a
server whose engine has no push source), RESOURCE_EXHAUSTED (rate limit, too many streams, oversize message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np

from wdp.csi.push_source import PushSource
from wdp.serve.edge import verify_credentials
from wdp.serve.rpc import convert
from wdp.serve.rpc.stubs import Stubs
from wdp.serve.security import (
    API_KEY_PREFIX,
    POSE_READ,
    STREAM_PUBLISH,
    STREAM_SUBSCRIBE,
    SYSTEM_READ,
    AuthError,
    Principal,
    split_api_key,
)
from wdp.serve.services import Services
from wdp.serve.stream.hub import event_matches, filter_frame, topics_of
from wdp.store import queries

log = logging.getLogger("wdp.serve.rpc")

EVENT_TOPICS = ("system_alerts", "zone_events", "person_tracking", "sensing_events")
RECHECK_S = 1.0  # a stream re-checks its credentials (revocation) at most this often
MAX_INGEST_ERRORS = 8  # reasons kept in an IngestSummary


def _peer_address(context: grpc.aio.ServicerContext) -> str:
    peer = context.peer() or "unknown"  # "ipv4:127.0.0.1:5555", "ipv6:[::1]:5555", "unix:..."
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


class Malformed:
    """A request that did not parse (see server.tolerant_deserializer)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class WdpServicer:
    """Built once per server; holds nothing per client but a small cache of converted frames."""

    def __init__(self, services: Services, stubs: Stubs) -> None:
        self.s = services
        self.pb2 = stubs.pb2
        self.settings = services.settings.grpc
        self.streams = 0
        self.ingested = 0
        self.ingest_rejected = 0
        self.malformed = 0  # requests and ingest frames that did not parse
        # (frame_id, timestamp, filters.key) -> the serialized PoseFrame: encoded once per filter set
        self._frame_cache: dict[tuple[int, float, Any], bytes] = {}

    # ------------------------------------------------------------------------------------------ auth
    async def _principal(self, context: grpc.aio.ServicerContext, scope: str, *, stream: bool = False) -> Principal:
        md = {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        token: str | None = None
        api_key: str | None = None
        if "authorization" in md:
            scheme, _, value = md["authorization"].partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unsupported authorization (use: Bearer <token>)")
            token = value.strip()
            if token.startswith(API_KEY_PREFIX):
                token, api_key = None, token
        elif "x-api-key" in md:
            api_key = md["x-api-key"]
        if token is None and api_key is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "authentication required")
        limits = self.s.settings.rate_limit
        throttle = self.s.limiter.sign_in
        parts = split_api_key(api_key) if api_key is not None else None
        account = "key:" + parts[0] if parts else None
        attempt = throttle.keys(_peer_address(context), account)
        paid = False

        async def before_argon2() -> None:
            nonlocal paid
            wait = throttle.retry_after(attempt) if limits.enabled else 0
            if wait:
                self.s.metrics.rate_limited.labels("sign_in").inc()
                raise AuthError(f"too many failed sign-ins; retry in {wait} s")
            paid = True

        try:
            principal = await verify_credentials(self.s, token=token, api_key=api_key, before_argon2=before_argon2)
        except AuthError as exc:
            if paid:
                throttle.failed(attempt)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.reason)
            raise  # unreachable: abort raises
        if paid:
            throttle.succeeded(account)
        if not principal.allows(scope):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"requires scope {scope} (or admin:all)")
        if limits.enabled:
            tier = limits.stream_tier if stream else principal.tier
            decision = self.s.limiter.hit(tier, principal.rate_key)
            if not decision.allowed:
                self.s.metrics.rate_limited.labels(tier).inc()
                context.set_trailing_metadata((("retry-after", str(decision.retry_after_s)),))
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit of the {tier!r} tier exceeded")
        return principal

    async def _parsed(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        if isinstance(request, Malformed):
            self.malformed += 1
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)

    async def _still_valid(self, principal: Principal, context: grpc.aio.ServicerContext, scope: str) -> None:
        try:
            self.s.credentials.check(principal)
        except AuthError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.reason)
        if not principal.allows(scope):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"requires scope {scope}")

    async def _filters(self, msg: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return convert.filters_from_pb(msg)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    # ------------------------------------------------------------------------------------------ unary
    async def GetCurrentPose(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        await self._parsed(request, context)
        await self._principal(context, POSE_READ)
        filters = await self._filters(request.filters, context)
        frame = self.s.engine.current_frame()
        if frame is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no pose data available")
        return convert.frame_to_pb(self.pb2, filter_frame(frame, filters))

    async def GetPoseHistory(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        await self._parsed(request, context)
        await self._principal(context, POSE_READ)
        filters = await self._filters(request.filters, context)
        start, end = request.start_time, request.end_time
        limit = request.limit or 100
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "need finite start_time <= end_time")
        if not 1 <= limit <= 1000:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "limit must be in 1..1000")
        kw = {"track_id": filters.person_id, "zone_id": filters.zone_id, "min_confidence": filters.min_confidence}

        def page(con: Any) -> tuple[list[Any], int]:
            frames = queries.pose_history(con, start, end, limit=limit, offset=request.skip, **kw)
            return frames, queries.count_history(con, start, end, **kw)

        frames, total = await self.s.db(page)
        pb = self.pb2
        return pb.PoseHistoryPage(
            frames=[convert.frame_to_pb(pb, f) for f in frames], total=total, limit=limit, skip=request.skip
        )

    async def GetSystemStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        await self._parsed(request, context)
        await self._principal(context, SYSTEM_READ)
        st = self.s.engine.status()
        return self.pb2.SystemStatus(
            running=st.running,
            source=st.source or "",
            fps=st.fps,
            latency_ms_p50=st.latency_ms_p50,
            latency_ms_p99=st.latency_ms_p99,
            frames_total=st.frames_total,
            frames_dropped=st.frames_dropped,
            persons=st.persons,
            router_ids=[r.id for r in self.s.engine.routers()],
        )

    # ------------------------------------------------------------------------------------------ streams
    @contextlib.asynccontextmanager
    async def _stream(self, context: grpc.aio.ServicerContext, topic: str) -> AsyncIterator[Any]:
        if self.streams >= self.settings.max_concurrent_streams:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "server is at its stream limit")
        sub = self.s.engine.subscribe(topic)  # type: ignore[arg-type]
        self.streams += 1
        try:
            yield sub
        finally:
            self.streams -= 1
            await sub.aclose()

    def _frame_bytes(self, frame: Any, filters: Any) -> bytes:
        key = (frame.frame_id, frame.timestamp, filters.key)
        data = self._frame_cache.get(key)
        if data is None:
            if len(self._frame_cache) > 256:
                self._frame_cache.clear()
            msg = convert.frame_to_pb(self.pb2, filter_frame(frame, filters))
            data = self._frame_cache[key] = msg.SerializeToString()
        return data

    async def StreamPoses(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:  # noqa: N802
        await self._parsed(request, context)
        principal = await self._principal(context, STREAM_SUBSCRIBE, stream=True)
        filters = await self._filters(request.filters, context)
        ceiling = self.s.settings.stream.max_fps
        fps = min(request.max_fps, ceiling) if request.max_fps > 0 else ceiling
        min_interval = 1.0 / fps if fps < ceiling else 0.0
        last_sent = -1e18
        checked = time.monotonic()
        async with self._stream(context, "poses") as sub:
            async for frame in sub:
                now = time.monotonic()
                if now - checked >= RECHECK_S:
                    checked = now
                    await self._still_valid(principal, context, STREAM_SUBSCRIBE)
                if min_interval and now - last_sent < min_interval * 0.9:
                    continue
                last_sent = now
                yield self._frame_bytes(frame, filters)  # bytes: the server's serializer passes them through

    async def StreamEvents(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:  # noqa: N802
        await self._parsed(request, context)
        principal = await self._principal(context, STREAM_SUBSCRIBE, stream=True)
        if request.topic not in EVENT_TOPICS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"topic must be one of {', '.join(EVENT_TOPICS)}")
        filters = await self._filters(request.filters, context)
        checked = time.monotonic()
        async with self._stream(context, "events") as sub:
            async for event in sub:
                if time.monotonic() - checked >= RECHECK_S:
                    checked = time.monotonic()
                    await self._still_valid(principal, context, STREAM_SUBSCRIBE)
                if request.topic in topics_of(event) and event_matches(event, filters):
                    yield convert.event_to_pb(self.pb2, event)

    async def StreamSensing(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:  # noqa: N802
        await self._parsed(request, context)
        principal = await self._principal(context, STREAM_SUBSCRIBE, stream=True)
        f = await self._filters(request.filters, context)
        checked = time.monotonic()
        async with self._stream(context, "sensing") as sub:
            async for state in sub:
                if time.monotonic() - checked >= RECHECK_S:
                    checked = time.monotonic()
                    await self._still_valid(principal, context, STREAM_SUBSCRIBE)
                if f.router_id is not None and state.router_id != f.router_id:
                    continue
                if f.zone_id is not None and state.zone_id != f.zone_id:
                    continue
                yield convert.sensing_to_pb(self.pb2, state)

    # ------------------------------------------------------------------------------------------ ingest
    def _push_source(self) -> PushSource | None:
        engine = getattr(self.s.engine, "engine", None)  # EngineAdapter -> the running wdp.engine.Engine
        for source in getattr(engine, "sources", None) or ():
            if isinstance(source, PushSource):
                return source
        return None

    async def IngestCsi(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Frames of a capture box into the engine's push source (conf source=push), batched per router as
        they arrive. A malformed frame is counted, its reason kept (first few), and skipped."""
        await self._principal(context, STREAM_PUBLISH, stream=True)
        if self._push_source() is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "this server's engine has no push source (run it with source=push)"
            )
        accepted = rejected = 0
        errors: list[str] = []
        max_values = self.settings.ingest_max_frame_values
        async for frame in request_iterator:
            source = self._push_source()  # the engine may have been restarted (a new source) meanwhile
            try:
                if isinstance(frame, Malformed):
                    self.malformed += 1
                    raise ValueError(frame.reason)
                if source is None:
                    raise ValueError("the engine is stopped")
                if not frame.router_id or len(frame.router_id) > 64:
                    raise ValueError("router_id must be 1..64 characters")
                csi = convert.csi_from_pb(frame, max_values)
                t = frame.timestamp if frame.timestamp > 0 else time.time()
                if not math.isfinite(t):
                    raise ValueError("timestamp must be finite")
                source.push(frame.router_id, [t], [np.ascontiguousarray(csi)])
                accepted += 1
            except ValueError as exc:
                rejected += 1
                if len(errors) < MAX_INGEST_ERRORS:
                    errors.append(f"frame {accepted + rejected - 1}: {exc}")
            if (accepted + rejected) % 256 == 0:
                await asyncio.sleep(0)  # a fast pusher must not starve the loop's other streams
        self.ingested += accepted
        self.ingest_rejected += rejected
        return self.pb2.IngestSummary(accepted=accepted, rejected=rejected, errors=errors)
