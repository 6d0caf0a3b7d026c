"""MQTT and webhook delivery wired to the served engine (conf/serve.yaml `mqtt:` and `webhooks:`).

The MQTT bridge publishes every pose frame, event and sensing state from the engine's bus and answers
command/system/{start,stop,status} and command/zone/{id}/{configure,delete} through the engine adapter. It
follows the adapter's zone set (every change, from REST or MQTT, re-announces or clears the zone's Home
Assistant discovery at once) and publishes the engine's state on system/status: at once when it changes
(running, stopped), with its details (fps, persons, ...) refreshed every ``mqtt.status_interval_s``. The webhook
dispatcher delivers the store's outbox: the engine's history sink commits each event together with its
webhook deliveries before any delivery is tried, and deliveries left unfinished by a previous run go out on
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from wdp.engine import Topic
from wdp.engine.config import config_dict
from wdp.integrations.mqtt import CommandHandlers, MqttBridge, MqttConfig
from wdp.integrations.mqtt.commands import CommandError, ZonePatch
from wdp.integrations.webhooks import UrlGuard, WebhookDispatcher, WebhookSettings
from wdp.schemas import Zone
from wdp.serve.engine_adapter import EngineAdapter
from wdp.serve.engine_view import EngineStatus
from wdp.serve.services import Services
from wdp.store import Store
from wdp.store import config as store_config

log = logging.getLogger("wdp.serve")


def _zone_handlers(adapter: EngineAdapter, services: Services) -> CommandHandlers:
    async def configure_zone(zone_id: str, patch: ZonePatch) -> Zone:
        # Like a REST zone edit: under the config lock, into the config store the REST API reads (so it is in
        # GET /config/zones and survives a restart), and the engine gets the whole stored set.
        async with services.config_lock:
            stored = {z.id: z for z in await services.db(store_config.ZONES.list)}
            current = stored.get(zone_id) or next((z for z in adapter.zones() if z.id == zone_id), None)
            zone = patch.apply(zone_id, current)  # the REST API's zone rule (wdp.config_checks)
            stored[zone_id] = zone
            previous = adapter.zones()
            adapter.set_zones(list(stored.values()))  # validates the polygons (ValueError) before storing
            try:
                await services.db(store_config.ZONES.put, zone)
            except BaseException:
                adapter.set_zones(previous)
                raise
        return zone

    async def delete_zone(zone_id: str) -> dict[str, str]:
        # Like DELETE /api/v1/config/zones/{id}: out of the store, and the engine gets the remaining set.
        async with services.config_lock:
            stored = {z.id: z for z in await services.db(store_config.ZONES.list)}
            if zone_id not in stored:
                raise CommandError(f"unknown zone {zone_id!r}")
            await services.db(store_config.ZONES.delete, zone_id)
            del stored[zone_id]
            adapter.set_zones(list(stored.values()))
        return {"deleted": zone_id}

    async def stop(reason: str) -> Any:
        return await adapter.stop()

    return CommandHandlers(
        configure_zone=configure_zone,
        delete_zone=delete_zone,
        start=adapter.start,
        stop=stop,
        status=adapter.status,
    )


def engine_state(status: EngineStatus) -> tuple[str, dict[str, Any]]:
    """system/status's ``state`` and ``details`` from the adapter's status."""
    if status.running:
        state = "running"
    elif status.started_at is None and status.source is None:
        state = "not_started"
    else:
        state = "stopped"
    details: dict[str, Any] = {
        "source": status.source,
        "fps": round(status.fps, 2),
        "persons": status.persons,
        "frames_total": status.frames_total,
        "frames_dropped": status.frames_dropped,
        "latency_ms_p50": round(status.latency_ms_p50, 2),
        "started_at": status.started_at,
        "components": {name: c.status for name, c in status.components.items()},
    }
    return state, details


async def publish_engine_state(
    adapter: EngineAdapter, bridge: MqttBridge, interval_s: float, poll_s: float = 0.5
) -> None:
    """Publish system/status when the engine's state changes (checked every ``poll_s``) and refresh its
    details every ``interval_s``."""
    last_state: str | None = None
    last_sent = 0.0
    loop = asyncio.get_running_loop()
    while True:
        state, details = engine_state(adapter.status())
        now = loop.time()
        if state != last_state or now - last_sent >= interval_s:
            bridge.publish_status(state, details)
            last_state, last_sent = state, now
        await asyncio.sleep(poll_s)


def default_queue_path(store: Store) -> str:
    """The MQTT durable queue's file beside the store's database ("": in memory, for an in-memory store)."""
    if store.path in ("", ":memory:"):
        return ""
    db = Path(store.path)
    return str(db.with_name(db.name + ".mqtt-queue.sqlite3"))


class IntegrationsPlugin(InitPluginProtocol):
    """Runs the MQTT bridge and/or the webhook dispatcher for the app's lifetime (each only if enabled)."""

    def __init__(
        self,
        adapter: EngineAdapter,
        store: Store | None,
        mqtt: Any = None,
        webhooks: Any = None,
        *,
        sensing_zones: list[str] | None = None,
    ) -> None:
        """``sensing_zones``: the zones the engine's sensing stage reports on (``sensing.zones``; None: not
        known, their Home Assistant entities then appear with their first state)."""
        self.adapter = adapter
        self.store = store
        self.sensing_zones = sensing_zones
        mqtt_cfg = config_dict(mqtt)
        hook_cfg = config_dict(webhooks)
        self.mqtt_config = (
            MqttConfig(**{k: v for k, v in mqtt_cfg.items() if k != "enabled"})
            if mqtt_cfg.pop("enabled", False)
            else None
        )
        self.webhook_settings = (
            WebhookSettings(**{k: v for k, v in hook_cfg.items() if k != "enabled"})
            if hook_cfg.pop("enabled", False)
            else None
        )
        # One SSRF rule for the API's create/update checks and for delivery (webhooks.allowed_networks).
        self.url_guard = UrlGuard(list(hook_cfg.get("allowed_networks") or []))
        if self.webhook_settings is not None and store is None:
            raise ValueError("webhooks need the history store (store.path): the outbox lives there")
        self.bridge: MqttBridge | None = None
        self.dispatcher: WebhookDispatcher | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self.lifespan)
        return app_config

    async def _pump(self, topic: str, sink: Any) -> None:
        stream = self.adapter.subscribe(topic)  # type: ignore[arg-type]
        try:
            async for item in stream:
                sink(item)
        finally:
            await stream.aclose()

    async def _pump_bus(self, topic: Topic, sink: Any) -> None:
        """Straight from the adapter's bus (which outlives engine restarts), for topics the API does not
        stream to the bridge."""
        with self.adapter.bus.subscribe({topic}, maxsize=1024, name=f"mqtt-{topic}") as sub:
            async for msg in sub:
                sink(msg.payload)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        unwatch: Any = None
        try:
            if self.mqtt_config is not None:
                services: Services = app.state["services"]
                config = self.mqtt_config
                if config.queue_path is None:  # default: the durable queue beside the store
                    config = msgspec.structs.replace(
                        config, queue_path=default_queue_path(self.store or services.store)
                    )
                bridge = self.bridge = await MqttBridge(config, handlers=_zone_handlers(self.adapter, services)).start()
                # every zone change (REST, MQTT command, the engine's configured zones at start) re-announces
                unwatch = self.adapter.watch_zones(bridge.set_zones)
                if self.adapter.zones_known:
                    bridge.set_zones(self.adapter.zones())
                if self.sensing_zones is not None:
                    bridge.set_sensing_zones(self.sensing_zones)
                tasks.append(asyncio.create_task(publish_engine_state(self.adapter, bridge, config.status_interval_s)))
                tasks.append(asyncio.create_task(self._pump("poses", self.bridge.publish_frame)))
                tasks.append(asyncio.create_task(self._pump("events", self.bridge.publish_event)))
                tasks.append(asyncio.create_task(self._pump_bus(Topic.SENSING, self.bridge.publish_sensing)))
                log.info(
                    "MQTT bridge to %s:%d (prefix %r)",
                    self.mqtt_config.host,
                    self.mqtt_config.port,
                    self.mqtt_config.prefix,
                )
            if self.webhook_settings is not None:
                assert self.store is not None
                self.dispatcher = await WebhookDispatcher(
                    self.store, self.webhook_settings, guard=self.url_guard
                ).start()
                # The engine's history sink commits each event with its deliveries (the outbox); the
                # dispatcher polls it (poll_interval_s) and delivers, and replays what a crash left behind.
                log.info("webhook dispatcher started")
            yield
        finally:
            if unwatch is not None:
                unwatch()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.dispatcher is not None:
                await self.dispatcher.stop()
            if self.bridge is not None:
                await self.bridge.stop()
