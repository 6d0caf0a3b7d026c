"""MqttBridge: one broker connection that publishes poses, events and state, and answers commands.

Delivery model (call the publish methods from the event loop's thread):

* pose/current (qos0, retained) goes through ``current_slots`` drop-oldest slot(s): a frame not yet sent when
  the next one arrives is replaced and counted (``stats.current_dropped``), connected or not.
* Events, person updates and command responses (qos1/2) wait in one FIFO bounded by ``max_queued`` (queued
  plus unacknowledged). A full queue rejects the new message (``publish_*`` returns False, counted in
  ``stats.rejected_full``); nothing already accepted is dropped. Person updates (one per person per frame)
  may hold at most ``max_queued_person_updates`` of it, so an outage at frame rate leaves room for events.
* Durable queue (``queue_path``, wdp.integrations.mqtt.spool): that FIFO is mirrored to a SQLite file,
  synced at most ``queue_sync_interval_s`` after a change and on stop; a message is deleted there once the
  broker acknowledged it (PUBACK/PUBCOMP: aiomqtt's publish returned). A bridge started on the same file
  sends what an earlier process left (stopped, crashed, or cut off from the broker) first, in its order. If
  it holds more than ``max_queued``, the oldest are dropped and counted (``stats.restored_dropped``).
* Retained state (system/status, zone occupancy, sensing states, discovery configs) is latest-value per topic
  and is republished on every (re)connect, so a broker that lost its retained store is repaired.
* Zones: ``set_zones`` is the zone set (call it on every change: created, renamed, deleted); new zones are
  announced and deleted ones cleared (empty retained payloads) at once. Once it was called, frames naming
  other zones (in flight while a zone was deleted) announce nothing. At every connect the bridge reads back the
  retained discovery configs of its node and the retained per-zone states, and clears those of zones that are
  not in the set (deleted while it was not running, or by another process). A sensing
  state (once a second per router and zone) replaces the unsent previous one of its topic.
* QoS1/2 publishes are pipelined (``inflight_window`` awaiting acks). A message leaves the queue only when the
  broker acknowledged it; on a disconnect the unacknowledged ones go back to the head of the queue in their
  original order, so after a reconnect the backlog arrives in order, at least once (a message whose ack was
  lost with the connection is sent again).
* Protocol (``protocol``): MQTT 3.1.1 with a clean session by default (Home Assistant's); "5" and
  ``persistent_session`` give an MQTT 5 session the broker keeps ``session_expiry_s`` across reconnects
  (``stats.session_present``: the last connect resumed one). ``hold_unrouted`` (v5): a queued QoS 1 message
  acknowledged "no matching subscribers" (0x10: dropped by the broker, nobody subscribed) is not done: it goes
  back to the head of the queue, and the queue is held (probed one message at a time, every
  ``unrouted_retry_s``) until the broker routes one. After every connect such a bridge probes the same way
  before it opens its in-flight window, so a replay cannot overtake itself when consumers subscribe mid-way.
* Reconnect: exponential backoff with jitter. The last will (system/status, retained, availability offline)
  covers a crash or a lost connection; ``stop()`` drains, then publishes offline itself and disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import aiomqtt
import msgspec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from wdp.integrations.mqtt import discovery
from wdp.integrations.mqtt.client import NO_MATCHING_SUBSCRIBERS, ReasonClient
from wdp.integrations.mqtt.commands import CommandHandlers, CommandProcessor
from wdp.integrations.mqtt.config import (
    QOS_ALERT,
    QOS_COMMAND_SUBSCRIPTION,
    QOS_CURRENT,
    QOS_DISCOVERY,
    QOS_EVENT,
    QOS_PERSON,
    QOS_RESPONSE,
    QOS_SENSING,
    QOS_STATUS,
    QOS_ZONE,
    MqttConfig,
    SensingKind,
    Topics,
    topic_id,
    valid_segment,
)
from wdp.integrations.mqtt.payloads import (
    PersonUpdate,
    SystemStatusMessage,
    ZoneOccupancy,
    alert_category,
    alert_message,
    current_pose,
    zone_members,
)
from wdp.integrations.mqtt.spool import MessageSpool, SpooledMessage
from wdp.schemas import EventBase, PoseFrame, SensingState, Zone, event_type

_log = logging.getLogger(__name__)
_ENCODER = msgspec.json.Encoder()
Kind = Literal["queued", "current", "state"]


@dataclass
class MqttStats:
    connected: bool = False
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0  # connections lost or closed after being established
    published: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0, 2: 0})  # acknowledged, per qos
    current_dropped: int = 0  # pose/current frames replaced before they were sent (drop-oldest)
    rejected_full: int = 0  # qos1/2 messages refused because the queue was full
    rejected_person_updates: int = 0  # person updates refused because they reached their share of the queue
    requeued: int = 0  # unacknowledged messages put back at the head of the queue after a disconnect
    invalid_ids: int = 0  # zone ids that cannot be a topic level (skipped)
    unknown_zones: int = 0  # zone memberships in frames for zones not in the zone set (skipped)
    stale_cleared: int = 0  # retained topics of zones no longer configured, cleared after a connect
    commands_ok: int = 0
    commands_error: int = 0
    commands_dropped: int = 0  # incoming commands dropped because the command queue was full
    queued: int = 0  # qos1/2 messages queued or unacknowledged (at the time stats were read)
    restored: int = 0  # messages read back from the durable queue at start (sent before anything new)
    restored_dropped: int = 0  # oldest restored messages dropped because there were more than max_queued
    spooled: int = 0  # messages in the durable queue file after its last sync
    spool_errors: int = 0  # failed syncs of the durable queue (retried)
    session_present: bool = False  # the last connect resumed a session the broker kept (persistent_session)
    unrouted: int = 0  # QoS 1 acks "no matching subscribers" held and sent again (hold_unrouted)
    broker_refused: int = 0  # v5 acks with a failure reason code (>= 0x80): the broker did not take the message


@dataclass(slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: Kind
    seq: int = 0
    person: bool = False  # a person update (counted against max_queued_person_updates)
    once: bool = False  # state message to forget after it was sent once (an empty "delete" payload)


class MqttBridge:
    """Publisher + command subscriber + Home Assistant discovery over one reconnecting MQTT connection."""

    def __init__(
        self,
        config: MqttConfig,
        *,
        handlers: CommandHandlers | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.topics = Topics(config.prefix)
        self.clock = clock
        self._processor = CommandProcessor(
            self.topics, handlers or CommandHandlers(), max_bytes=config.max_command_bytes, clock=clock
        )
        self._stats = MqttStats()
        self._seq = itertools.count(1)
        self._queue: deque[_Outgoing] = deque()
        self._current: deque[_Outgoing] = deque(maxlen=max(1, config.current_slots))
        self._unacked: dict[int, _Outgoing] = {}  # seq -> message, in send order
        self._unrouted: dict[int, _Outgoing] = {}  # acked "no matching subscribers", to send again (hold_unrouted)
        self._probing = False  # hold_unrouted: one queued message in flight until the broker routes one
        self._hold_until = 0.0  # monotonic time of the next probe after an unrouted ack
        self._queued_person = 0  # person updates queued or unacknowledged
        self._state: dict[str, _Outgoing] = {}  # retained state by topic, in first-set order
        self._dirty: dict[str, None] = {}  # state topics to (re)publish, ordered
        self._zone_members: dict[str, list[int] | None] = {}  # None: announced but no occupancy sent yet
        self._zone_names: dict[str, str | None] = {}
        self._zones_known = False  # set_zones was called: the zone set is authoritative
        # (occupancy | sensing, zone topic level) -> retained topics read back from the broker at connect
        self._retained_zone_topics: dict[tuple[Literal["occupancy", "sensing"], str], set[str]] = {}
        self._sensing_labels: dict[tuple[SensingKind, str], str] = {}  # announced (kind, id) -> entity label
        self._sensing_zones: set[str] | None = None  # zones the sensing stage reports (None: not told)
        self._engine_state = "unknown"
        self._status_details: dict[str, Any] = {}
        self._incoming: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=1000)
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._connected = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._send_error: BaseException | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._command_task: asyncio.Task[None] | None = None
        self._spool: MessageSpool | None = None
        self._spool_task: asyncio.Task[None] | None = None
        self._spool_dirty = asyncio.Event()
        if config.queue_path:
            self._restore(MessageSpool(config.queue_path))
        self._set_status()
        if config.discovery:
            for topic, payload in discovery.static_entities(config, self.topics).items():
                self._set_state(topic, _ENCODER.encode(payload), *QOS_DISCOVERY)

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> MqttBridge:
        if self._task is not None:
            raise RuntimeError("bridge already started")
        self._stopping = False
        self._stop_requested.clear()
        self._task = asyncio.create_task(self._run(), name="mqtt-bridge")
        self._command_task = asyncio.create_task(self._command_worker(), name="mqtt-commands")
        if self._spool is not None:
            self._spool_task = asyncio.create_task(self._sync_spool(), name="mqtt-spool")
        return self

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Send what is queued (up to ``drain_timeout_s``), publish offline status, disconnect."""
        if self._task is None:
            return
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(asyncio.shield(task), drain_timeout_s)
        except TimeoutError:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self._command_task is not None:
            self._command_task.cancel()
            await asyncio.gather(self._command_task, return_exceptions=True)
            self._command_task = None
        if self._spool_task is not None:
            self._spool_task.cancel()
            await asyncio.gather(self._spool_task, return_exceptions=True)
            self._spool_task = None
        if self._spool is not None:  # what is still unacknowledged stays on disk for the next start
            await asyncio.to_thread(self._spool.close)
            self._stats.spooled = self._spool.stored

    async def __aenter__(self) -> MqttBridge:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def stats(self) -> MqttStats:
        self._stats.queued = len(self._queue) + len(self._unacked) + len(self._unrouted)
        if self._spool is not None:
            self._stats.spooled = self._spool.stored
        return self._stats

    def has_room(self) -> bool:
        """Would a QoS 1/2 message be accepted now (the queue is not full)?"""
        return len(self._queue) + len(self._unacked) + len(self._unrouted) < self.config.max_queued

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message, state update and pose/current was acknowledged/sent. False on
        timeout."""

        async def drained() -> None:
            while self._queue or self._unacked or self._unrouted or self._dirty or self._current:
                self._progress.clear()
                await self._progress.wait()

        try:
            await asyncio.wait_for(drained(), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------------------------------ publish API
    def publish_frame(self, frame: PoseFrame) -> bool:
        """pose/current, one pose/person/{id}/update per person, and zone occupancy where it changed.
        Returns False when person updates were rejected by a full queue."""
        if len(self._current) == self._current.maxlen:
            self._stats.current_dropped += 1
        self._current.append(
            _Outgoing(self.topics.current, _ENCODER.encode(current_pose(frame)), *QOS_CURRENT, kind="current")
        )
        ok = True
        if self.config.person_updates:
            for person in frame.persons:
                update = PersonUpdate(
                    timestamp=frame.timestamp, frame_id=frame.frame_id, source=frame.source, person=person
                )
                ok &= self._enqueue(
                    self.topics.person(person.track_id), _ENCODER.encode(update), *QOS_PERSON, person=True
                )
        members = zone_members(frame)
        for zone_id in members.keys() - self._zone_members.keys():
            if self._zones_known:  # a frame still naming a zone that was just deleted (or never configured)
                self._stats.unknown_zones += 1
                continue
            self._add_zone(zone_id, None)
        for zone_id, previous in self._zone_members.items():
            ids = members.get(zone_id, [])
            if ids != previous:
                self._set_zone_occupancy(zone_id, ids, frame.timestamp, frame.frame_id)
        self._wake.set()
        return ok

    def publish_event(self, event: EventBase) -> bool:
        """system/alerts/{category} (qos2) for alerts and falls, events/{type} (qos1) for every event.
        Returns False when a full queue rejected it."""
        ok = True
        category = alert_category(event)
        if category is not None:
            ok &= self._enqueue(
                self.topics.alert(category), _ENCODER.encode(alert_message(event, category)), *QOS_ALERT
            )
        if self.config.event_topics:
            ok &= self._enqueue(self.topics.event(event_type(event)), _ENCODER.encode(event), *QOS_EVENT)
        return ok

    def publish_status(self, state: str, details: dict[str, Any] | None = None) -> None:
        """system/status (retained): the engine's state (running, stopped...) plus details (fps...)."""
        self._engine_state = state
        self._status_details = dict(details or {})
        self._set_status()

    def publish(self, relative_topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        """Any other message under the prefix (qos0 too goes through the FIFO)."""
        return self._enqueue(self.topics(relative_topic), payload, qos, retain)

    def publish_sensing(self, state: SensingState) -> None:
        """sensing/router/{router_id}/state for a link's state (one with a router_id, whatever its zone), else
        sensing/zone/{zone_id}/state; retained, latest value per topic. The first state of a router or zone
        announces its Home Assistant entities."""
        if not self.config.sensing:
            return
        if state.router_id is not None:
            kind: SensingKind = "router"
            ident = state.router_id
        elif state.zone_id is not None:
            kind, ident = "zone", state.zone_id
        else:
            self._stats.invalid_ids += 1
            return
        if (kind, ident) not in self._sensing_labels:
            name = self._zone_names.get(ident) if kind == "zone" else None
            self._announce_sensing(kind, ident, name)
        self._set_state(self.topics.sensing(kind, topic_id(ident)), _ENCODER.encode(state), *QOS_SENSING)

    def set_zones(self, zones: Iterable[Zone | str]) -> None:
        """The configured zones (the whole set, after every change): each gets an occupancy topic (0 until
        someone enters), a discovery sensor and the sensing entities; zones no longer listed, and zones whose
        retained topics were read back from the broker but are not listed, have their retained occupancy and
        sensing state and their discovery configs deleted."""
        self._zones_known = True
        wanted: dict[str, str | None] = {}
        for zone in zones:
            zone_id, name = (zone, None) if isinstance(zone, str) else (zone.id, zone.name)
            wanted[zone_id] = name
        for zone_id in list(self._zone_members):
            if zone_id not in wanted:
                self._remove_zone(zone_id)
        sensing_zones = self._sensing_zones or set()
        for kind, zone_id in list(self._sensing_labels):
            if kind == "zone" and zone_id not in wanted:
                if zone_id in sensing_zones:  # still sensed: only its name goes
                    self._announce_sensing(kind, zone_id, None)
                else:
                    self._remove_sensing(kind, zone_id)
        for zone_id, name in wanted.items():
            if zone_id not in self._zone_members or self._zone_names.get(zone_id) != name:
                self._add_zone(zone_id, name)
            if self.config.sensing and (("zone", zone_id) in self._sensing_labels or zone_id in sensing_zones):
                self._announce_sensing("zone", zone_id, name)  # (re)named after the zone
        if self.config.sensing:  # sensing zones that are no configured zone: named by their id
            for zone_id in sorted(sensing_zones - wanted.keys()):
                if ("zone", zone_id) not in self._sensing_labels:
                    self._announce_sensing("zone", zone_id, None)
        self._clear_stale_zones()
        self._wake.set()

    def set_sensing_zones(self, zone_ids: Iterable[str]) -> None:
        """The zones the sensing stage reports on (its ``sensing.zones``): their sensing entities are announced,
        named after the zone when it is a configured zone (so only once the zone set is known: a name announced
        first and corrected later stays in Home Assistant's entity registry); sensing entities of other zones
        are deleted. Zones not listed get sensing entities only if a sensing state for them arrives."""
        self._sensing_zones = set(zone_ids)
        for kind, zone_id in list(self._sensing_labels):
            if kind == "zone" and zone_id not in self._sensing_zones:
                self._remove_sensing(kind, zone_id)
        if self.config.sensing and self._zones_known:
            for zone_id in sorted(self._sensing_zones):
                self._announce_sensing("zone", zone_id, self._zone_names.get(zone_id))
        self._clear_stale_zones()
        self._wake.set()

    async def consume(self, source: AsyncIterable[PoseFrame | EventBase | SensingState]) -> None:
        """Publish everything an async iterator yields (PoseFrames, Events, SensingStates) until it ends."""
        async for item in source:
            if isinstance(item, PoseFrame):
                self.publish_frame(item)
            elif isinstance(item, EventBase):
                self.publish_event(item)
            elif isinstance(item, SensingState):
                self.publish_sensing(item)
            else:
                raise TypeError(f"expected PoseFrame, Event or SensingState, got {type(item).__name__}")

    # ------------------------------------------------------------------------------------------ internals
    def _enqueue(self, topic: str, payload: bytes, qos: int, retain: bool, *, person: bool = False) -> bool:
        if person and self._queued_person >= self.config.max_queued_person_updates:
            # frame-rate person updates must not crowd events out of the queue during a long outage
            self._stats.rejected_person_updates += 1
            return False
        if not self.has_room():
            self._stats.rejected_full += 1
            if self._stats.rejected_full == 1 or self._stats.rejected_full % 1000 == 0:
                _log.warning(
                    "MQTT queue full (%d): rejected %d messages so far",
                    self.config.max_queued,
                    self._stats.rejected_full,
                )
            return False
        msg = _Outgoing(topic, payload, qos, retain, "queued", next(self._seq), person=person)
        self._queue.append(msg)
        self._queued_person += person
        if self._spool is not None:
            self._spool.add(SpooledMessage(msg.seq, topic, payload, qos, retain, person))
            self._spool_dirty.set()
        self._wake.set()
        return True

    def _restore(self, spool: MessageSpool) -> None:
        """Queue what an earlier bridge on this file left unacknowledged, oldest first, within max_queued."""
        self._spool = spool
        restored = spool.load()
        excess = max(0, len(restored) - self.config.max_queued)
        if excess:
            _log.warning(
                "MQTT durable queue holds %d messages, over max_queued: dropping the oldest %d", len(restored), excess
            )
            for m in restored[:excess]:
                spool.remove(m.seq)
            self._stats.restored_dropped = excess
        for m in restored[excess:]:
            self._queue.append(_Outgoing(m.topic, m.payload, m.qos, m.retain, "queued", m.seq, person=m.person))
            self._queued_person += m.person
        self._stats.restored = len(restored) - excess
        if restored:
            self._seq = itertools.count(restored[-1].seq + 1)
            _log.info("MQTT durable queue: %d messages from the previous run to send", self._stats.restored)

    async def _sync_spool(self) -> None:
        """Write the durable queue's changes, batched: at most queue_sync_interval_s after the first one."""
        assert self._spool is not None
        while True:
            await self._spool_dirty.wait()
            await asyncio.sleep(self.config.queue_sync_interval_s)
            self._spool_dirty.clear()
            try:
                await asyncio.to_thread(self._spool.sync)
            except Exception:
                self._stats.spool_errors += 1
                _log.exception("MQTT durable queue: sync failed (retried)")
                self._spool_dirty.set()

    def _set_state(self, topic: str, payload: bytes, qos: int, retain: bool, *, once: bool = False) -> None:
        self._state[topic] = _Outgoing(topic, payload, qos, retain, "state", once=once)
        self._dirty.pop(topic, None)  # to the end: state changes go out in the order they were made
        self._dirty[topic] = None
        self._wake.set()

    def _set_status(self) -> None:
        status = SystemStatusMessage(
            availability="online",
            state=self._engine_state,
            timestamp=self.clock(),
            details=self._status_details,
        )
        self._set_state(self.topics.status, _ENCODER.encode(status), *QOS_STATUS)

    def _add_zone(self, zone_id: str, name: str | None) -> None:
        if not valid_segment(zone_id):
            self._stats.invalid_ids += 1
            _log.warning("zone id %r cannot be an MQTT topic level; not published", zone_id)
            self._zone_members.setdefault(zone_id, [])  # remember it so it is not reported every frame
            return
        self._zone_names[zone_id] = name
        if zone_id not in self._zone_members:
            self._zone_members[zone_id] = None
            self._set_zone_occupancy(zone_id, [], self.clock(), None)
        if self.config.discovery:
            topic, payload = discovery.zone_entity(self.config, self.topics, zone_id, name)
            self._set_state(topic, _ENCODER.encode(payload), *QOS_DISCOVERY)

    def _remove_zone(self, zone_id: str) -> None:
        self._zone_members.pop(zone_id, None)
        self._zone_names.pop(zone_id, None)
        if not valid_segment(zone_id):
            return
        # An empty retained message deletes the retained value (and, for a discovery config, the entity): the
        # entity first, so Home Assistant does not read the empty state as a value
        if self.config.discovery:
            topic = discovery.config_topic(self.config, "sensor", discovery.zone_object_id(zone_id))
            self._set_state(topic, b"", *QOS_DISCOVERY, once=True)
        self._set_state(self.topics.zone_occupancy(zone_id), b"", *QOS_ZONE, once=True)

    def _announce_sensing(self, kind: SensingKind, ident: str, name: str | None) -> None:
        """Remember the router/zone and (re)publish its discovery configs when new or renamed."""
        label = f"Router {ident}" if kind == "router" else (name or ident)
        if self._sensing_labels.get((kind, ident)) == label:
            return
        self._sensing_labels[(kind, ident)] = label
        if self.config.discovery:
            entities = discovery.sensing_entities(self.config, self.topics, kind, topic_id(ident), label)
            for topic, payload in entities.items():
                self._set_state(topic, _ENCODER.encode(payload), *QOS_DISCOVERY)

    def _remove_sensing(self, kind: SensingKind, ident: str) -> None:
        del self._sensing_labels[(kind, ident)]
        segment = topic_id(ident)
        if self.config.discovery:  # the entities first (see _remove_zone)
            for topic in discovery.sensing_config_topics(self.config, kind, segment):
                self._set_state(topic, b"", *QOS_DISCOVERY, once=True)
        self._set_state(self.topics.sensing(kind, segment), b"", *QOS_SENSING, once=True)

    def _zone_level(self, topic: str) -> tuple[Literal["occupancy", "sensing"], str] | None:
        """(what, zone topic level) of a retained per-zone topic of ours: a discovery config, an occupancy or
        a sensing state."""
        if self.config.discovery:
            found = discovery.zone_of_config_topic(self.config, topic)
            if found is not None:
                return found
        relative = self.topics.relative(topic)
        if relative is None:
            return None
        parts = relative.split("/")
        if len(parts) == 4 and parts[1] == "zone":
            if (parts[0], parts[3]) == ("pose", "occupancy"):
                return "occupancy", parts[2]
            if (parts[0], parts[3]) == ("sensing", "state"):
                return "sensing", parts[2]
        return None

    def _note_retained(self, topic: str) -> None:
        """A retained message read back from the broker (at subscribe time): remember it if it is per-zone."""
        found = self._zone_level(topic)
        if found is not None:
            self._retained_zone_topics.setdefault(found, set()).add(topic)
            self._clear_stale_zones()

    def _clear_stale_zones(self) -> None:
        """Delete the retained topics read back for zones that are not configured: occupancy ones once the zone
        set is known, sensing ones once the sensing zones are known too (a sensing zone need not be a
        configured zone)."""
        if not self._zones_known or not self._retained_zone_topics:
            return
        wanted = {
            "occupancy": {level for z in self._zone_members for level in (z, topic_id(z))},
            "sensing": {topic_id(z) for k, z in self._sensing_labels if k == "zone"}
            | {topic_id(z) for z in self._sensing_zones or ()},
        }
        for (what, zone), topics in list(self._retained_zone_topics.items()):
            if what == "sensing" and self._sensing_zones is None:
                continue  # not told which zones are sensed: keep them until we are
            del self._retained_zone_topics[(what, zone)]
            if zone in wanted[what]:
                continue
            for topic in sorted(topics):
                if topic not in self._state:  # not one of ours being published right now
                    self._set_state(topic, b"", 1, True, once=True)
                    self._stats.stale_cleared += 1
            _log.info("MQTT: cleared the retained %s topics of zone %r, which is no longer configured", what, zone)
        self._wake.set()

    def _set_zone_occupancy(self, zone_id: str, ids: list[int], timestamp: float, frame_id: int | None) -> None:
        self._zone_members[zone_id] = ids
        if not valid_segment(zone_id):
            return
        message = ZoneOccupancy(
            timestamp=timestamp, zone_id=zone_id, occupancy_count=len(ids), person_ids=ids, frame_id=frame_id
        )
        self._set_state(self.topics.zone_occupancy(zone_id), _ENCODER.encode(message), *QOS_ZONE)

    def _queue_open(self) -> bool:
        """May a queued message be sent now? Always, unless hold_unrouted is probing: then only one at a time,
        after the in-flight ones came back (the unrouted ones return to the head of the queue first) and not
        before the hold time."""
        if not self._probing:
            return True
        if self._unacked:
            return False
        if self._unrouted:
            self._queue.extendleft(reversed([self._unrouted[k] for k in sorted(self._unrouted)]))
            self._unrouted.clear()
        return time.monotonic() >= self._hold_until

    def _take(self) -> _Outgoing | None:
        """Next message to send: state first (status leads), then the latest pose, then the FIFO."""
        if self._dirty:
            topic = next(iter(self._dirty))
            del self._dirty[topic]
            return self._state[topic]
        if self._current:
            return self._current.popleft()
        if (self._queue or self._unrouted) and self._queue_open() and self._queue:
            msg = self._queue.popleft()
            self._unacked[msg.seq] = msg
            return msg
        return None

    def _requeue_unacked(self) -> None:
        if self._unacked or self._unrouted:
            self._stats.requeued += len(self._unacked)
            back = self._unacked | self._unrouted
            self._queue.extendleft(reversed([back[k] for k in sorted(back)]))  # in seq (publish) order
            self._unacked.clear()
            self._unrouted.clear()

    def _will(self) -> aiomqtt.Will:
        payload = _ENCODER.encode(SystemStatusMessage(availability="offline", state="unknown"))
        return aiomqtt.Will(self.topics.status, payload, qos=QOS_STATUS[0], retain=True)

    def _client(self) -> ReasonClient:
        cfg = self.config
        session: dict[str, Any]
        if cfg.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = cfg.session_expiry_s if cfg.persistent_session else 0
            session = dict(
                protocol=aiomqtt.ProtocolVersion.V5, clean_start=not cfg.persistent_session, properties=props
            )
        else:
            session = dict(clean_session=not cfg.persistent_session)
        client = ReasonClient(
            cfg.host,
            cfg.port,
            identifier=cfg.client_id,
            username=cfg.username,
            password=cfg.password,
            will=self._will(),
            **session,
            keepalive=cfg.keepalive_s,
            timeout=cfg.connect_timeout_s,
            tls_context=cfg.tls.context() if cfg.tls is not None else None,
            max_inflight_messages=cfg.inflight_window,
            logger=_log,
        )
        client.pending_calls_threshold = cfg.inflight_window + 64  # our window is deliberate: no warning
        return client

    def _backoff_s(self, failures: int) -> float:
        cfg = self.config
        return min(cfg.reconnect_max_s, cfg.reconnect_min_s * 2.0 ** min(failures, 30)) * random.uniform(0.5, 1.0)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            established = False
            try:
                client = self._client()
                async with client:
                    established = True
                    failures = 0
                    self._stats.connects += 1
                    self._stats.connected = True
                    self._stats.session_present = client.session_present
                    self._probing = self.config.hold_unrouted  # probe before opening the window
                    self._connected.set()
                    _log.info(
                        "MQTT connected to %s:%d as %s",
                        self.config.host,
                        self.config.port,
                        self.config.client_id,
                    )
                    await self._session(client)
            except (aiomqtt.MqttError, OSError) as exc:
                if established:
                    _log.warning("MQTT connection lost: %s", exc)
                else:
                    self._stats.connect_failures += 1
                    _log.info("MQTT connect to %s:%d failed: %s", self.config.host, self.config.port, exc)
            except Exception:  # a bug here must not end publishing for good: log, back off, reconnect
                _log.exception("MQTT session failed")
                if not established:
                    self._stats.connect_failures += 1
            finally:
                if established:
                    self._stats.disconnects += 1
                self._stats.connected = False
                self._connected.clear()
                self._requeue_unacked()
            if self._stopping:
                break
            delay = self._backoff_s(failures)
            failures += 1
            try:
                await asyncio.wait_for(self._stop_requested.wait(), delay)
            except TimeoutError:
                pass

    async def _session(self, client: ReasonClient) -> None:
        for topic_filter in self.topics.command_filters:
            await client.subscribe(topic_filter, qos=QOS_COMMAND_SUBSCRIPTION)
        # read back the retained per-zone topics, to clear those of zones that no longer exist
        retained_filters = list(self.topics.retained_zone_filters)
        if self.config.discovery:
            retained_filters.append(f"{self.config.discovery_prefix}/+/{self.config.node_id}/+/config")
        for topic_filter in retained_filters:
            await client.subscribe(topic_filter, qos=1)
        self._set_status()  # fresh timestamp; goes first
        self._dirty = dict.fromkeys(itertools.chain([self.topics.status], self._state))
        self._send_error = None
        receiver = asyncio.create_task(self._receive(client))
        sender = asyncio.create_task(self._send(client))
        try:
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                sender.result()  # raises the publish error that ended the session
                # stopping and drained: announce offline ourselves (a clean DISCONNECT suppresses the will)
                offline = SystemStatusMessage(
                    availability="offline",
                    state=self._engine_state,
                    timestamp=self.clock(),
                    details=self._status_details,
                )
                await client.publish(
                    self.topics.status,
                    _ENCODER.encode(offline),
                    qos=QOS_STATUS[0],
                    retain=True,
                    timeout=self.config.publish_timeout_s,
                )
            else:
                receiver.result()
                raise aiomqtt.MqttError("message stream ended")
        finally:
            for task in (receiver, sender):
                task.cancel()
            await asyncio.gather(receiver, sender, return_exceptions=True)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            topic = message.topic.value
            relative = self.topics.relative(topic)
            if relative is None or not relative.startswith("command/"):
                # our own retained topics: those the broker held when we subscribed come with the retain flag
                # (our later publishes come back without it and are ignored)
                if message.retain and payload:
                    self._note_retained(topic)
                continue
            try:
                self._incoming.put_nowait((topic, payload))
            except asyncio.QueueFull:
                self._stats.commands_dropped += 1

    async def _send(self, client: ReasonClient) -> None:
        window = asyncio.Semaphore(self.config.inflight_window)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                if self._send_error is not None:
                    raise self._send_error
                msg = self._take()
                if msg is None:
                    if self._stopping and not tasks:
                        return
                    self._wake.clear()
                    if self._stopping and tasks:
                        # wait for the in-flight publishes themselves: their wake-up comes before they leave
                        # `tasks`, and nothing else would wake a stopping sender afterwards
                        await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
                    elif self._probing and (self._queue or self._unrouted) and not self._unacked:
                        # holding unrouted messages: wake for the next probe
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), max(0.0, self._hold_until - time.monotonic()))
                    else:
                        await self._wake.wait()
                    continue
                await window.acquire()
                task = asyncio.create_task(self._publish_one(client, msg, window))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _publish_one(self, client: ReasonClient, msg: _Outgoing, window: asyncio.Semaphore) -> None:
        try:
            reason = await client.publish_acked(
                msg.topic, msg.payload, qos=msg.qos, retain=msg.retain, timeout=self.config.publish_timeout_s
            )
        except aiomqtt.MqttError as exc:
            if self._send_error is None:
                self._send_error = exc
            if msg.kind == "state" and msg.topic in self._state:
                self._dirty[msg.topic] = None
            return
        finally:
            window.release()
            self._wake.set()
        if reason == NO_MATCHING_SUBSCRIBERS and msg.kind == "queued" and self.config.hold_unrouted:
            # dropped by the broker, nobody subscribed: not done; hold the queue and probe again later
            if self._unacked.pop(msg.seq, None) is not None:
                self._unrouted[msg.seq] = msg
            self._stats.unrouted += 1
            if not self._probing or self._stats.unrouted == 1:
                _log.info("MQTT: %s has no subscriber; holding the queue until one subscribes", msg.topic)
            self._probing = True
            self._hold_until = time.monotonic() + self.config.unrouted_retry_s
            return
        if reason >= 0x80:
            self._stats.broker_refused += 1
            _log.warning("MQTT: the broker refused a message on %s (reason code 0x%02x)", msg.topic, reason)
        if msg.kind == "queued":
            if self.config.hold_unrouted and not self._unrouted:
                self._probing = False  # routed: open the window
            self._unacked.pop(msg.seq, None)
            self._queued_person -= msg.person
            if self._spool is not None:  # acknowledged: off the durable queue (at the next sync)
                self._spool.remove(msg.seq)
                self._spool_dirty.set()
        elif msg.once and self._state.get(msg.topic) is msg:
            del self._state[msg.topic]
        self._stats.published[msg.qos] += 1
        self._progress.set()

    async def _command_worker(self) -> None:
        while True:
            topic, payload = await self._incoming.get()
            try:
                result = await self._processor.process(topic, payload)
            except Exception:  # CommandProcessor already turns errors into responses; belt and braces
                _log.exception("MQTT command on %s crashed", topic)
                continue
            if result is None:
                continue
            response_topic, response = result
            if response.status == "ok":
                self._stats.commands_ok += 1
            else:
                self._stats.commands_error += 1
            self._enqueue(response_topic, _ENCODER.encode(response), *QOS_RESPONSE)
