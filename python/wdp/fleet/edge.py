"""The edge's publisher: frames, sensing states and events of this edge's routers, in the fleet namespace, as
QoS 1 messages through the MQTT bridge's queue. That queue is the durable part: every QoS 1 message is in its
SQLite spool (``queue_path``) until the broker acknowledged it, survives a restart or crash of the edge, and is
sent in publish order after a reconnect (the spool is keyed by the publish sequence number).

The connection is MQTT 5 with a persistent session (clean_start off, ``session_expiry_s``) and
``hold_unrouted``: a message the broker acknowledges with "no matching subscribers" (no hub subscribed, e.g.
right after a broker restart, before the hubs' shared subscriptions are back) stays in the spool and the queue
is held, probing once a second, until a hub's subscription routes it; then the backlog follows in order.

Frames are batched: those published within ``batch_linger_s`` (up to ``batch_max``) go out as one message (a
msgpack array; ``wire.decode`` reads both forms). An MQTT message costs ~0.1 ms of CPU at each end (the client,
the acks, the queue), some 50 times a frame's encoding, and an edge's 4 routers at 20 FPS make ~4 frames per
50 ms. Frames waiting for their batch are in memory only, like the spool's own sync interval (a crash of the
edge loses at most that much); ``batch_linger_s=0`` sends one frame per message.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

import msgspec

from wdp.fleet import ids, wire
from wdp.integrations.mqtt import MqttBridge, MqttConfig
from wdp.schemas import EventBase, PoseFrame, SensingState

_log = logging.getLogger(__name__)


class FleetEdgeConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    site: str
    edge: str  # this node's name (a topic segment)
    edge_index: int  # unique in the fleet, 0..2047 (see wdp.fleet.ids)
    root: str = "wdp/fleet"
    sensing: bool = True
    session_expiry_s: int = 3600  # the broker keeps the edge's MQTT 5 session this long after a disconnect
    hold_unrouted: bool = True  # keep messages no hub was subscribed for (see the module docstring)
    batch_linger_s: float = 0.05  # frames wait at most this long to share a message (0: one frame a message)
    batch_max: int = 64  # frames per message at most


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
        self.published = {kind: 0 for kind in wire.KINDS}  # frames: accepted into a batch
        self.rejected = 0
        self.messages = 0  # frame messages (batches) handed to the bridge
        self._batch: list[PoseFrame] = []
        self._timer: asyncio.TimerHandle | None = None

    def publish(self, item: PoseFrame | SensingState | EventBase) -> bool:
        try:
            return self._publish(item)
        except ValueError:  # an id outside the namespace's range: counted, the stream goes on
            self.rejected += 1
            raise

    def _publish(self, item: PoseFrame | SensingState | EventBase) -> bool:
        c = self.config
        if isinstance(item, PoseFrame):
            frame = ids.scope_frame(item, c.site, c.edge, c.edge_index)
            if c.batch_linger_s > 0:
                return self._add_to_batch(frame)
            kind: wire.Kind = "frames"
            body = wire.ENCODER.encode(frame)
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

    def _add_to_batch(self, frame: PoseFrame) -> bool:
        if not self.bridge.has_room():  # the batch will need one place in the queue
            self.bridge.stats.rejected_full += 1
            return False
        self._batch.append(frame)
        self.published["frames"] += 1
        if len(self._batch) >= self.config.batch_max:
            self.send_batch()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.config.batch_linger_s, self.send_batch)
        return True

    def send_batch(self) -> None:
        """Hand the frames waiting for their batch to the bridge as one message (now)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        if self.bridge.publish("frames", wire.ENCODER.encode(batch), qos=1):
            self.messages += 1
        else:  # the queue filled up since these frames were accepted (events took the last places)
            self.rejected += len(batch)
            _log.warning("fleet edge: queue full, %d batched frames dropped", len(batch))

    async def start(self) -> FleetEdge:
        await self.bridge.start()
        return self

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        self.send_batch()
        await self.bridge.stop(drain_timeout_s)

    async def flush(self, timeout: float | None = None) -> bool:
        self.send_batch()
        return await self.bridge.flush(timeout)

    async def __aenter__(self) -> FleetEdge:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
