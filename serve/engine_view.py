"""What the API needs from the realtime engine, as a Protocol, plus a store-backed implementation.

The API never imports the engine: ``create_app`` is handed an ``EngineView`` and the lead binds the real
engine (wdp.engine) to it. ``StoreBackedEngineView`` serves the latest frame from the history store and an
in-process pub/sub that tests, benchmarks and the demo feed publish into.

Contract for implementations:
- ``current_frame``/``status``/``routers``/``sensing_current``/``sensing_links`` are cheap, non-blocking
  snapshots (called on every request).
- ``subscribe(topic)`` returns an async iterator that the caller drains; a subscriber that falls behind loses
  its oldest items (the engine is never slowed by a consumer) and ``aclose()`` ends it.
- ``set_zones`` replaces the whole zone set and takes effect at the engine's next frame; it raises
  ValueError for a zone set the engine cannot use.
- Everything is called from the server's event loop thread.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, Protocol, overload, runtime_checkable

import msgspec

from wdp.schemas import (
    EventBase,
    FrameSource,
    PoseFrame,
    Router,
    SensingLinkStatus,
    SensingState,
    SystemStarted,
    SystemStopped,
    Zone,
)
from wdp.store import Store, config, queries
from wdp.store import sensing as store_sensing

Topic = Literal["poses", "events", "status", "sensing", "dense"]
ComponentState = Literal["ok", "degraded", "failed"]


class ComponentHealth(msgspec.Struct, kw_only=True, frozen=True):
    status: ComponentState
    detail: str = ""


class EngineStatus(msgspec.Struct, kw_only=True, frozen=True):
    """A snapshot of the pipeline (REST system/status and performance, /metrics, health)."""

    running: bool
    source: FrameSource | None = None
    started_at: float | None = None  # epoch seconds of the last start
    fps: float = 0.0  # frames published per second over the recent window
    latency_ms_p50: float = 0.0  # CSI arrival -> frame published
    latency_ms_p99: float = 0.0
    frames_total: int = 0
    frames_dropped: int = 0  # windows the pipeline skipped (overload) since start
    persons: int = 0  # persons in the current frame
    components: dict[str, ComponentHealth] = {}  # e.g. capture, inference, tracking


@runtime_checkable
class EngineView(Protocol):
    def current_frame(self) -> PoseFrame | None: ...

    def current_dense_frame(self) -> PoseFrame | None:
        """The latest frame with its persons' DensePose output (``Person.dense``), None when the pipeline
        makes none (engine.dense off) or has not yet; topic "dense" streams these frames."""
        ...

    @overload
    def subscribe(self, topic: Literal["poses"]) -> AsyncIterator[PoseFrame]: ...
    @overload
    def subscribe(self, topic: Literal["events"]) -> AsyncIterator[EventBase]: ...
    @overload
    def subscribe(self, topic: Literal["status"]) -> AsyncIterator[EngineStatus]: ...
    @overload
    def subscribe(self, topic: Literal["sensing"]) -> AsyncIterator[SensingState]: ...
    @overload
    def subscribe(self, topic: Literal["dense"]) -> AsyncIterator[PoseFrame]: ...
    def subscribe(self, topic: Topic) -> AsyncIterator[Any]: ...

    def status(self) -> EngineStatus: ...

    def routers(self) -> list[Router]: ...

    def sensing_current(self) -> list[SensingState]:
        """The latest sensing state of every router (router_id set), then of every zone (zone_id set)."""
        ...

    def sensing_links(self) -> list[SensingLinkStatus]:
        """Per router: sensing calibration and the input problems counted (shape changes, time jumps...)."""
        ...

    async def start(self) -> EngineStatus: ...

    async def stop(self) -> EngineStatus: ...

    def set_zones(self, zones: Sequence[Zone]) -> None: ...


# ------------------------------------------------------------------------------------------------ pub/sub


class Subscription:
    """One subscriber's bounded buffer; iterate it, ``aclose()`` it. Oldest items go first on overflow."""

    def __init__(self, broker: Broadcast, maxsize: int) -> None:
        self._broker = broker
        self._items: collections.deque[Any] = collections.deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def push(self, item: Any) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1  # deque(maxlen) discards the oldest on append
        self._items.append(item)
        self._ready.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    async def aclose(self) -> None:
        self._closed = True
        self._ready.set()
        self._broker.discard(self)


class Broadcast:
    """Fan-out of one topic to any number of Subscriptions. ``publish`` never blocks."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._subs: set[Subscription] = set()

    def subscribe(self, maxsize: int | None = None) -> Subscription:
        sub = Subscription(self, maxsize or self.maxsize)
        self._subs.add(sub)
        return sub

    def discard(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, item: Any) -> None:
        for sub in self._subs:
            sub.push(item)

    @property
    def subscribers(self) -> int:
        return len(self._subs)


# ----------------------------------------------------------------------------------------------- store-backed


class StoreBackedEngineView:
    """An EngineView without a pipeline: the latest stored frame until something is published, routers from
    the store's config, start/stop/set_zones recorded. ``publish_frame``/``publish_event`` feed subscribers
    the way the engine would (a frame whose persons carry ``dense`` goes to "dense" as it is and to "poses"
    without it, like the engine's two topics)."""

    def __init__(self, store: Store, *, source: FrameSource = "replay", running: bool = True) -> None:
        self._store = store
        self._source: FrameSource = source
        self._running = running
        self._started_at: float | None = time.time() if running else None
        self._frame: PoseFrame | None = None
        self._dense: PoseFrame | None = None
        self._loaded = False
        self._topics: dict[str, Broadcast] = {t: Broadcast() for t in ("poses", "events", "status", "sensing", "dense")}
        self._sensing: dict[tuple[str | None, str | None], SensingState] = {}
        self._sensing_loaded = False
        self.links: list[SensingLinkStatus] = []  # what sensing_links() reports (tests set it)
        self._publish_times: collections.deque[float] = collections.deque(maxlen=256)
        self._latencies: collections.deque[float] = collections.deque(maxlen=1024)
        self._frames_total = 0
        self.frames_dropped = 0
        self.zones: list[Zone] = []
        self.zone_updates = 0
        self.components: dict[str, ComponentHealth] = {"pipeline": ComponentHealth(status="ok")}

    # --------------------------------------------------------------------------------------- EngineView
    def current_frame(self) -> PoseFrame | None:
        if self._frame is None and not self._loaded:
            self._loaded = True  # look once; afterwards only published frames change it
            self._frame = queries.latest_frame(self._store.cursor())
        return self._frame

    def current_dense_frame(self) -> PoseFrame | None:
        return self._dense

    def subscribe(self, topic: Topic) -> Subscription:  # type: ignore[override]
        if topic not in self._topics:
            raise ValueError(f"unknown topic {topic!r}")
        return self._topics[topic].subscribe()

    def status(self) -> EngineStatus:
        frame = self._frame
        lat = sorted(self._latencies)
        return EngineStatus(
            running=self._running,
            source=self._source,
            started_at=self._started_at,
            fps=self._fps(),
            latency_ms_p50=lat[len(lat) // 2] if lat else 0.0,
            latency_ms_p99=lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else 0.0,
            frames_total=self._frames_total,
            frames_dropped=self.frames_dropped,
            persons=len(frame.persons) if frame is not None else 0,
            components=dict(self.components),
        )

    def routers(self) -> list[Router]:
        return config.ROUTERS.list(self._store.cursor())

    def sensing_current(self) -> list[SensingState]:
        if not self._sensing and not self._sensing_loaded:
            self._sensing_loaded = True  # look once, like current_frame
            for s in store_sensing.latest(self._store.cursor()):
                self._sensing.setdefault((s.router_id, s.zone_id), s)
        return sorted(self._sensing.values(), key=lambda s: (s.router_id is None, s.router_id or "", s.zone_id or ""))

    def sensing_links(self) -> list[SensingLinkStatus]:
        return list(self.links)

    async def start(self) -> EngineStatus:
        if not self._running:
            self._running = True
            self._started_at = time.time()
            self.publish_event(SystemStarted(timestamp=self._started_at, version="0.1.0", source=self._source))
        return self.status()

    async def stop(self) -> EngineStatus:
        if self._running:
            now = time.time()
            uptime = now - self._started_at if self._started_at is not None else 0.0
            self._running = False
            self.publish_event(SystemStopped(timestamp=now, reason="api", uptime_s=uptime))
        return self.status()

    def set_zones(self, zones: Sequence[Zone]) -> None:
        ids = [z.id for z in zones]
        if len(set(ids)) != len(ids):
            raise ValueError("zone ids must be unique")
        self.zones = list(zones)
        self.zone_updates += 1

    # --------------------------------------------------------------------------------------- feeding
    def publish_frame(self, frame: PoseFrame) -> None:
        if any(p.dense is not msgspec.UNSET for p in frame.persons):
            self._dense = frame
            self._topics["dense"].publish(frame)
            frame = msgspec.structs.replace(
                frame, persons=[msgspec.structs.replace(p, dense=msgspec.UNSET) for p in frame.persons]
            )
        self._frame = frame
        self._frames_total += 1
        self._publish_times.append(time.monotonic())
        self._latencies.append(frame.latency_ms)
        self._topics["poses"].publish(frame)

    def publish_event(self, event: EventBase) -> None:
        self._topics["events"].publish(event)

    def publish_sensing(self, state: SensingState) -> None:
        self._sensing[(state.router_id, state.zone_id)] = state
        self._topics["sensing"].publish(state)

    def publish_status(self) -> None:
        self._topics["status"].publish(self.status())

    def subscribers(self, topic: Topic) -> int:
        return self._topics[topic].subscribers

    def _fps(self) -> float:
        times = self._publish_times
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0  # nothing published recently: the pipeline is idle
        return (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else 0.0
