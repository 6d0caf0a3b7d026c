"""Roles of ``wdp serve`` (conf/serve.yaml ``role``): ``all`` (default, one process), ``edge`` (the engine for
this node's routers, publishing to the fleet's broker) and ``hub`` (no engine: consumes the fleet into the
store, delivers webhooks, serves the API and dashboard over the whole fleet's history).

    wdp serve role=edge fleet.site=home fleet.edge=floor1 fleet.edge_index=1 mqtt.host=broker store.path=null
    wdp serve role=hub store.backend=postgres store.dsn=postgresql://wdp@db/wdp mqtt.host=broker fleet.hub_id=hub-a

``store.dsn`` falls back to the environment variable ``WDP_STORE_DSN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from wdp.engine import Topic
from wdp.engine.config import config_dict, store_from_config
from wdp.fleet.edge import FleetEdge, FleetEdgeConfig
from wdp.fleet.hub import FleetHub, FleetHubConfig
from wdp.integrations.mqtt import MqttConfig
from wdp.integrations.webhooks import UrlGuard, WebhookDispatcher, WebhookSettings

log = logging.getLogger("wdp.serve")
ROLES = ("all", "edge", "hub")


def role_of(cfg: Any) -> str:
    role = str(cfg.get("role") or "all")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def _mqtt(cfg: Any, client_id: str) -> MqttConfig:
    node = {k: v for k, v in config_dict(cfg.get("mqtt")).items() if k != "enabled"}
    node["client_id"] = client_id
    return MqttConfig(**node)


class FleetEdgePlugin(InitPluginProtocol):
    """role=edge: the engine's poses, events and sensing states go to the fleet's broker (FleetEdge)."""

    def __init__(self, adapter: Any, cfg: Any) -> None:
        fleet = config_dict(cfg.get("fleet"))
        self.adapter = adapter
        self.config = FleetEdgeConfig(
            site=str(fleet["site"]),
            edge=str(fleet["edge"]),
            edge_index=int(fleet["edge_index"]),
            root=str(fleet.get("root") or "wdp/fleet"),
            session_expiry_s=int(fleet.get("session_expiry_s") or 3600),
        )
        mqtt = _mqtt(cfg, f"wdp-edge-{self.config.site}-{self.config.edge}")
        if mqtt.queue_path is None:
            queue = fleet.get("queue_path") or f"wdp-edge-{self.config.edge}.queue.sqlite3"
            mqtt = msgspec.structs.replace(mqtt, queue_path=str(queue))
        self.edge = FleetEdge(self.config, mqtt)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self.lifespan)
        return app_config

    async def _pump(self, topic: str) -> None:
        stream = self.adapter.subscribe(topic)
        try:
            async for item in stream:
                try:
                    self.edge.publish(item)
                except (TypeError, ValueError) as exc:  # counted in edge.rejected; the stream goes on
                    log.warning("fleet edge: not published: %s", exc)
        finally:
            await stream.aclose()

    async def _pump_sensing(self) -> None:
        with self.adapter.bus.subscribe({Topic.SENSING}, maxsize=1024, name="fleet-sensing") as sub:
            async for msg in sub:
                try:
                    self.edge.publish(msg.payload)
                except (TypeError, ValueError) as exc:
                    log.warning("fleet edge: not published: %s", exc)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        await self.edge.start()
        tasks = [
            asyncio.create_task(self._pump("poses")),
            asyncio.create_task(self._pump("events")),
            asyncio.create_task(self._pump_sensing()),
        ]
        log.info("fleet edge %s/%s (index %d) publishing", self.config.site, self.config.edge, self.config.edge_index)
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.edge.stop()


class FleetHubPlugin(InitPluginProtocol):
    """role=hub: FleetHub consuming the fleet into ``store``, plus webhook delivery from the shared outbox."""

    def __init__(self, store: Any, cfg: Any) -> None:
        fleet = config_dict(cfg.get("fleet"))
        mqtt = config_dict(cfg.get("mqtt"))
        self.store = store
        self.config = FleetHubConfig(
            host=str(mqtt.get("host") or "localhost"),
            port=int(mqtt.get("port") or 1883),
            username=mqtt.get("username"),
            password=mqtt.get("password"),
            client_id=str(fleet.get("hub_id") or "wdp-hub"),
            root=str(fleet.get("root") or "wdp/fleet"),
            group=str(fleet.get("group") or "wdp-hubs"),
        )
        hooks = config_dict(cfg.get("webhooks"))
        # a hub records each delivery's outcome at once (not lingering to batch them): an attempt is sent
        # again only if the hub dies between the receiver's answer and that commit (README "Scaling out")
        hooks.setdefault("report_linger_s", 0.0)
        self.webhooks = (
            WebhookSettings(**{k: v for k, v in hooks.items() if k != "enabled"})
            if hooks.pop("enabled", False)
            else None
        )
        self.url_guard = UrlGuard(list(hooks.get("allowed_networks") or []))
        self.hub: FleetHub | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self.lifespan)
        return app_config

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        if not self.store.is_open:
            self.store.open()
        self.hub = FleetHub(self.config, self.store).start()
        dispatcher = None
        try:
            if self.webhooks is not None:
                dispatcher = await WebhookDispatcher(self.store, self.webhooks, guard=self.url_guard).start()
            log.info("fleet hub %s consuming %s", self.config.client_id, self.config.root)
            yield
        finally:
            if dispatcher is not None:
                await dispatcher.stop()
            await asyncio.to_thread(self.hub.stop)


def create_hub_app(cfg: Any, settings: Any) -> Litestar:
    """The API + dashboard over the fleet's history, with the hub consuming into it (no engine here)."""
    from wdp.serve.app import create_app

    store = store_from_config(cfg.get("store"))
    if store is None:
        raise ValueError("role=hub needs a history store (store.backend=postgres store.dsn=... for several hubs)")
    plugin = FleetHubPlugin(store, cfg)
    return create_app(settings, store=store, plugins=[plugin], webhook_guard=plugin.url_guard)
