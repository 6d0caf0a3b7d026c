"""The realtime engine (wdp.engine) behind the API's EngineView protocol, and an app factory that runs both.

``EngineAdapter`` owns one ``Bus`` for its whole life and builds an ``Engine`` on it at every start (an Engine
runs once), so the stream hub's subscriptions survive a stop/start through the API. Status snapshots come
from ``Engine.metrics()`` (cached briefly: the REST layer asks on every request).

    python -m wdp.serve --port 8000 detector=ground_truth      # engine + API + dashboard (wdp.serve.__main__)
    app = create_engine_app(compose_serve_config([...]), settings)

Lifespan order (create_app plugins): the API opens the store and subscribes the hub, then the engine starts;
on shutdown the engine stops first (flushing its store sink), then the API closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from wdp.engine import Bus, Engine, Topic
from wdp.engine.bus import Subscription, SubscriptionClosed
from wdp.engine.config import room_warnings
from wdp.engine.metrics import EngineMetrics, PoseInputStatus
from wdp.schemas import ActivityLinkStatus, PoseFrame, Router, SensingLinkStatus, SensingState, Zone
from wdp.serve.engine_view import ComponentHealth, EngineStatus
from wdp.serve.engine_view import Topic as ViewTopic

log = logging.getLogger("wdp.serve.engine")

EngineFactory = Callable[[Bus], Engine]  # builds a fresh, unstarted Engine publishing on the given bus
STATUS_CACHE_S = 0.25
_TOPICS = {"poses": Topic.POSE, "events": Topic.EVENT, "sensing": Topic.SENSING, "dense": Topic.DENSE}


class BusStream:
    """A bus subscription as the async iterator of payloads EngineView.subscribe promises."""

    def __init__(self, sub: Subscription) -> None:
        self._sub = sub

    def __aiter__(self) -> BusStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return (await self._sub.aget()).payload
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    @property
    def dropped(self) -> int:
        return self._sub.dropped

    async def aclose(self) -> None:
        self._sub.close()


class EngineAdapter:
    """EngineView over wdp.engine.Engine (see wdp.serve.engine_view for the contract)."""

    def __init__(self, factory: EngineFactory, *, buffer: int = 256, status_interval_s: float = 1.0) -> None:
        self._factory = factory
        self.bus = Bus()
        self._buffer = buffer
        self._status_interval_s = status_interval_s
        self.engine: Engine | None = None
        self._zones: list[Zone] | None = None  # None: the engine's configured zones
        self._zone_listeners: list[Callable[[list[Zone]], None]] = []
        self._started_at: float | None = None
        self._lock = asyncio.Lock()
        self._status: tuple[float, EngineStatus] | None = None
        self.starts = 0

    # ------------------------------------------------------------------------------------------ EngineView
    def current_frame(self) -> PoseFrame | None:
        return self.engine.latest_frame if self.engine is not None else None

    def current_dense_frame(self) -> PoseFrame | None:
        return self.engine.latest_dense_frame if self.engine is not None else None

    def subscribe(self, topic: ViewTopic) -> Any:
        if topic == "status":
            return self._status_stream()
        if topic not in _TOPICS:
            raise ValueError(f"unknown topic {topic!r}")
        return BusStream(self.bus.subscribe({_TOPICS[topic]}, maxsize=self._buffer, name=f"api-{topic}"))

    async def _status_stream(self) -> AsyncIterator[EngineStatus]:
        while True:
            yield self.status()
            await asyncio.sleep(self._status_interval_s)

    def status(self) -> EngineStatus:
        now = time.monotonic()
        cached = self._status
        if cached is not None and now - cached[0] < STATUS_CACHE_S:
            return cached[1]
        status = self._snapshot()
        self._status = (now, status)
        return status

    def routers(self) -> list[Router]:
        return self.engine.routers.status() if self.engine is not None else []

    def sensing_current(self) -> list[SensingState]:
        engine = self.engine
        return engine.sensing.current() if engine is not None and engine.sensing is not None else []

    def sensing_links(self) -> list[SensingLinkStatus]:
        engine = self.engine
        return engine.sensing.links() if engine is not None and engine.sensing is not None else []

    async def start(self) -> EngineStatus:
        async with self._lock:
            if self.engine is None or not self.engine.running:
                engine = self._factory(self.bus)
                if self._zones is not None:
                    engine.set_zones(self._zones)
                await asyncio.to_thread(engine.start)
                first = self.engine is None and self._zones is None
                self.engine = engine
                if first:  # the zone set is now known: the engine's configured zones
                    self._zones_changed()
                self._started_at = time.time()
                self.starts += 1
            self._status = None
        return self.status()

    async def stop(self) -> EngineStatus:
        async with self._lock:
            if self.engine is not None and self.engine.running:
                await asyncio.to_thread(self.engine.stop, "api")
            self._status = None
        return self.status()

    def zones(self) -> list[Zone]:
        if self._zones is not None:
            return list(self._zones)
        return list(self.engine.pipeline.zones.zones) if self.engine is not None else []

    def set_zones(self, zones: Sequence[Zone]) -> None:
        zones = list(zones)
        ids = [z.id for z in zones]
        if len(set(ids)) != len(ids):
            raise ValueError("zone ids must be unique")
        if self.engine is not None:
            self.engine.set_zones(zones)  # validates the polygons (ValueError)
        self._zones = zones
        self._zones_changed()

    @property
    def zones_known(self) -> bool:
        """False until a zone set was given or the engine started with its configured zones."""
        return self._zones is not None or self.engine is not None

    def watch_zones(self, listener: Callable[[list[Zone]], None]) -> Callable[[], None]:
        """Call ``listener(zones)`` (on the event loop's thread) with the whole zone set after every change;
        returns the function that stops it."""
        self._zone_listeners.append(listener)
        return lambda: self._zone_listeners.remove(listener)

    def _zones_changed(self) -> None:
        zones = self.zones()
        for listener in list(self._zone_listeners):
            try:
                listener(zones)
            except Exception:  # a listener's bug must not undo a zone change that was stored
                log.exception("zone listener %r failed", listener)

    # ------------------------------------------------------------------------------------------ status
    def _snapshot(self) -> EngineStatus:
        engine = self.engine
        if engine is None:
            return EngineStatus(
                running=False, components={"engine": ComponentHealth(status="degraded", detail="not started")}
            )
        m = engine.metrics()
        e2e = m.stages.get("end_to_end")
        frame = engine.latest_frame
        return EngineStatus(
            running=m.running,
            source=engine.source_kind,
            started_at=self._started_at,
            fps=m.fps,
            latency_ms_p50=e2e.p50_ms if e2e is not None else 0.0,
            latency_ms_p99=e2e.p99_ms if e2e is not None else 0.0,
            frames_total=m.frames,
            frames_dropped=m.windows_dropped_overflow + m.windows_dropped_stale,
            persons=len(frame.persons) if frame is not None else 0,
            components=components_of(m, engine),
        )


def components_of(m: EngineMetrics, engine: Engine) -> dict[str, ComponentHealth]:
    out: dict[str, ComponentHealth] = {}
    connected = sum(r.status == "connected" for r in m.routers)
    if not m.running:
        out["capture"] = ComponentHealth(status="degraded", detail="engine stopped")
    elif engine.wait(0):
        out["capture"] = ComponentHealth(status="degraded", detail="sources exhausted")
    elif connected:
        out["capture"] = ComponentHealth(status="ok", detail=f"{connected}/{len(m.routers)} routers connected")
    else:
        out["capture"] = ComponentHealth(status="degraded", detail="no router is sending")
    if engine.error is not None:
        out["inference"] = ComponentHealth(
            status="failed", detail=f"{type(engine.error).__name__}: {engine.error}"[:200]
        )
    else:
        detail = f"{m.detector}" + (f" {m.model.name} ({m.model.backend})" if m.model is not None else "")
        dropped = m.windows_dropped_overflow + m.windows_dropped_stale
        detail += f", {dropped} windows dropped" if dropped else ""
        # a simulated room the model never trained in: it runs, but finds next to nobody
        unseen = room_warnings(engine.model, engine.sources) if m.detector == "model" else []
        out["inference"] = ComponentHealth(
            status="degraded" if unseen else "ok", detail=(detail + "; " + unseen[0])[:400] if unseen else detail
        )
    if m.detector == "model" and m.pose_input:
        out["pose_input"] = pose_input_health(m.pose_input)
    if engine.sensing is not None:
        out["sensing"] = sensing_health(m.sensing)
    if engine.activity is not None:
        out["activity"] = activity_health(m.activity)
    if m.store is not None:
        st = m.store
        out["history"] = ComponentHealth(
            status="degraded" if st.flush_errors or st.dropped else "ok",
            detail=f"{st.frames_written} frames, {st.flush_errors} flush errors, {st.dropped} dropped",
        )
    return out


def pose_input_health(links: list[PoseInputStatus]) -> ComponentHealth:
    """How each router's frames reach the pose model (wdp.engine.input_adapt): degraded while a router is
    refused, with the reason (e.g. an ESP32 on a 3x3 model that reads tx phase differences)."""
    parts = []
    for x in links:
        if x.state == "off":
            parts.append(f"{x.router_id}: refused ({x.reason})")
        elif x.state == "on":
            parts.append(f"{x.router_id}: on ({x.adaptation})")
    off = any(x.state == "off" for x in links)
    return ComponentHealth(status="degraded" if off else "ok", detail="; ".join(parts)[:400] or "deciding")


def sensing_health(links: list[SensingLinkStatus]) -> ComponentHealth:
    """Sensing is ok while it runs; the detail names each link's calibration and the input trouble it absorbed
    (a link that keeps changing shape or jumping in time is worth a look, but it keeps working)."""
    if not links:
        return ComponentHealth(status="ok", detail="no router has sent packets yet")
    parts = []
    for x in links:
        trouble = [
            f"{n} {what}"
            for n, what in (
                (x.shape_changes, "shape changes"),
                (x.time_jumps, "time jumps"),
                (x.bad_frames, "bad frames"),
                (x.recalibrations, "recalibrations"),
            )
            if n
        ]
        parts.append(f"{x.router_id}: {x.calibration}" + (f" ({', '.join(trouble)})" if trouble else ""))
    return ComponentHealth(status="ok", detail="; ".join(parts)[:400])


def activity_health(links: list[ActivityLinkStatus]) -> ComponentHealth:
    """The activity/fall model per router: on (its model, windows, trouble), or off and why (no model for the
    router's frame shape: the keypoint heuristic, if configured, still reports). Degraded when the model fails."""
    if not links:
        return ComponentHealth(status="ok", detail="no router has sent packets yet")
    parts = []
    for x in links:
        if x.state == "on":
            trouble = [
                f"{n} {what}"
                for n, what in (
                    (x.windows_dropped, "windows dropped"),
                    (x.errors, "errors"),
                    (x.bad_frames, "bad frames"),
                )
                if n
            ]
            parts.append(
                f"{x.router_id}: on ({Path(x.model or '').name}, {x.windows} windows"
                + "".join(f", {t}" for t in trouble)
                + ")"
            )
        else:
            parts.append(f"{x.router_id}: {x.state}" + (f" ({x.reason})" if x.reason else ""))
    failing = any(x.errors for x in links)
    return ComponentHealth(status="degraded" if failing else "ok", detail="; ".join(parts)[:400])


class EngineLifespanPlugin(InitPluginProtocol):
    """Starts the adapter's engine with the app and stops it on shutdown (pass to create_app(plugins=...))."""

    def __init__(self, adapter: EngineAdapter, *, autostart: bool = True) -> None:
        self.adapter = adapter
        self.autostart = autostart

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self.lifespan)
        return app_config

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        if self.autostart:
            await self.adapter.start()
        try:
            yield
        finally:
            await self.adapter.stop()


def create_engine_app(cfg: Any, settings: Any = None, *, autostart: bool = True) -> Litestar:
    """The API + dashboard over a live engine built from a composed serve config (conf/serve.yaml).

    The history store is ``cfg.store.path`` (shared by the engine's sink and the API); with no store path
    the API keeps users, keys and zones in ``settings.store_path``. ``settings`` default: the config's ``api``
    node if it has one, then the environment (WDP_API__*, WDP_JWT_SECRET, ...)."""
    from wdp.engine.config import build_engine, store_from_config
    from wdp.serve.app import create_app
    from wdp.serve.fleet import FleetEdgePlugin, create_hub_app, role_of
    from wdp.serve.settings import load_settings

    if settings is None:
        settings = load_settings(cfg.get("api"))
    role = role_of(cfg)  # all | edge | hub (wdp.serve.fleet)
    if role == "hub":
        return create_hub_app(cfg, settings)
    store = store_from_config(cfg.get("store"))  # DuckDB at store.path, or store.backend=postgres

    def factory(bus: Bus) -> Engine:
        return build_engine(cfg, store=store, bus=bus)  # type: ignore[no-any-return]

    from wdp.serve.integrations_plugin import IntegrationsPlugin

    adapter = EngineAdapter(factory, buffer=settings.stream.engine_buffer)
    sensing = cfg.get("sensing") or {}
    integrations = IntegrationsPlugin(
        adapter,
        store,
        mqtt=cfg.get("mqtt"),
        webhooks=None if role == "edge" else cfg.get("webhooks"),  # an edge's events are delivered by the hubs
        sensing_zones=[str(z) for z in (sensing.get("zones") or {})] if sensing.get("enabled", True) else [],
    )
    return create_app(
        settings,
        engine_view=adapter,
        store=store,
        # integrations first: their lifespan (MQTT bridge and its bus subscriptions) is up before the engine
        # starts, so system.started and the first router.connected reach MQTT, and still up when it stops
        plugins=[
            integrations,
            *([FleetEdgePlugin(adapter, cfg)] if role == "edge" else []),
            EngineLifespanPlugin(adapter, autostart=autostart),
        ],
        webhook_guard=integrations.url_guard,
    )
