"""The edge's publisher: frames, sensing states and events of this edge's routers, in the fleet namespace, as
QoS 1 messages through the MQTT bridge's queue. That queue is the durable part: every QoS 1 message is in its
SQLite spool (``queue_path``) until the broker acknowledged it, survives a restart or crash of the edge, and is
sent in publish order after a reconnect (the spool is keyed by the publish sequence number).

The connection is MQTT 5 with a persistent session (clean_start off, ``session_expiry_s``) and
``hold_unrouted``: a message the broker acknowledges with "no matching subscribers" (no hub subscribed, e.g.
right after a broker restart, before the hubs' shared subscriptions are back) stays in the spool and the queue
is held, probing once a second, until a hub's subscription routes it; then the backlog follows in order.
"""

from __future__ import annotations

from types import TracebackType

import msgspec

from wdp.fleet import ids, wire
from wdp.integrations.mqtt import MqttBridge, MqttConfig
from wdp.schemas import EventBase, PoseFrame, SensingState


class FleetEdgeConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    site: str
    edge: str  # this node's name (a topic segment)
    edge_index: int  # unique in the fleet, 0..2047 (see wdp.fleet.ids)
    root: str = "wdp/fleet"
    sensing: bool = True
    session_expiry_s: int = 3600  # the broker keeps the edge's MQTT 5 session this long after a disconnect
    hold_unrouted: bool = True  # keep messages no hub was subscribed for (see the module docstring)


class FleetEdge:
    """``publish(item)`` from the event loop (PoseFrame | SensingState | event). Returns False when the queue is
    full (counted in ``bridge.stats.rejected_full``)."""

    def __init__(self, config: FleetEdgeConfig, mqtt: MqttConfig) -> None:
        ids.check_index(config.edge_index)
        self.config = config
        prefix = wire.edge_prefix(config.root, config.site, config.edge)
        self.bridge = MqttBridge(
            msgspec.structs.replace(
                mqtt,
                prefix=prefix,
                discovery=False,
                person_updates=False,
                event_topics=False,
                sensing=False,
                protocol="5",
                persistent_session=True,
                session_expiry_s=config.session_expiry_s,
                hold_unrouted=config.hold_unrouted,
            )
        )
        self.published = {kind: 0 for kind in wire.KINDS}
        self.rejected = 0

    def publish(self, item: PoseFrame | SensingState | EventBase) -> bool:
        try:
            return self._publish(item)
        except ValueError:  # an id outside the namespace's range: counted, the stream goes on
            self.rejected += 1
            raise

    def _publish(self, item: PoseFrame | SensingState | EventBase) -> bool:
        c = self.config
        if isinstance(item, PoseFrame):
            kind: wire.Kind = "frames"
            body = wire.ENCODER.encode(ids.scope_frame(item, c.site, c.edge, c.edge_index))
        elif isinstance(item, SensingState):
            if not c.sensing:
                return True
            kind, body = "sensing", wire.ENCODER.encode(ids.scope_sensing(item, c.site, c.edge))
        elif isinstance(item, EventBase):
            kind, body = "events", wire.ENCODER.encode(ids.scope_event(item, c.site, c.edge, c.edge_index))
        else:
            raise TypeError(f"cannot publish {type(item).__name__}")
        ok = self.bridge.publish(kind, body, qos=1)
        self.published[kind] += ok
        return ok

    async def start(self) -> FleetEdge:
        await self.bridge.start()
        return self

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        await self.bridge.stop(drain_timeout_s)

    async def flush(self, timeout: float | None = None) -> bool:
        return await self.bridge.flush(timeout)

    async def __aenter__(self) -> FleetEdge:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
