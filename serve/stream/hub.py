"""Fan-out of engine frames and events to WebSocket clients, where a slow client never slows the others.

The hub holds ONE subscription per engine topic and pushes each item to every interested client's bounded
queue; each client has its own sender task that drains its queue into its socket. So:

- a message is encoded once per distinct filter set, not once per client (the text is shared);
- ``offer`` never awaits: dispatch to 500 clients is 500 deque appends, whatever the sockets do;
- a client whose queue is full loses its OLDEST message (for live poses the newest is what matters), is told
  how many it lost (a ``dropped`` notice), and is disconnected (1008) if its queue keeps overflowing for
  ``overflow_disconnect_s``;
- control replies (pong, errors, acks) use a separate small queue that is never dropped, and are sent first.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from wdp.schemas import JSON_ENCODER, EventBase, PoseFrame, SensingState, event_type
from wdp.serve.engine_view import EngineView
from wdp.serve.metrics import ApiMetrics
from wdp.serve.security import STREAM_SUBSCRIBE, AuthError, Principal
from wdp.serve.settings import StreamSettings
from wdp.serve.stream import protocol as p

log = logging.getLogger("wdp.serve.stream")

SendText = Callable[[str], Awaitable[None]]
CONTROL_LIMIT = 256  # control replies buffered per client; a client spamming pings past this is closed
SENSING_EVENTS = ("motion.started", "motion.stopped", "presence.changed", "breathing.updated")


def _encode(msg: Any) -> str:
    return JSON_ENCODER.encode(msg).decode()


def topics_of(event: EventBase) -> tuple[p.TopicName, ...]:
    """Which stream topics carry an event."""
    name = event_type(event)
    topics: list[p.TopicName] = []
    if name.startswith(("alert.", "system.", "router.")) or name in (
        "person.fall_detected",
        "analytics.threshold_exceeded",
    ):
        topics.append("system_alerts")
    if name in (
        "person.entered_zone",
        "person.left_zone",
        "alert.high_occupancy",
        "alert.restricted_zone_breach",
    ):
        topics.append("zone_events")
    if name in SENSING_EVENTS:
        topics.append("sensing_events")
        if getattr(event, "zone_id", None) is not None:  # a zone's motion/presence is a zone event
            topics.append("zone_events")
    if name.startswith("person."):
        topics.append("person_tracking")
    return tuple(topics)


def event_matches(event: EventBase, f: p.Filters) -> bool:
    if f.zone_id is not None and getattr(event, "zone_id", None) != f.zone_id:
        return False
    if f.person_id is not None and getattr(event, "track_id", None) != f.person_id:
        return False
    if f.router_id is not None and getattr(event, "router_id", None) != f.router_id:
        return False
    if f.min_confidence is not None:
        conf = getattr(event, "confidence", None)
        if conf is not None and conf < f.min_confidence:
            return False
    if f.min_severity is not None:
        sev = getattr(event, "severity", None)
        if sev is not None and p.SEVERITY_RANK[sev] < p.SEVERITY_RANK[f.min_severity]:
            return False
    return True


def filter_frame(frame: PoseFrame, f: p.Filters) -> PoseFrame:
    """The frame with only the persons that pass ``f`` (zone, confidence, track)."""
    if f.zone_id is None and f.min_confidence is None and f.person_id is None:
        return frame
    persons = [
        q
        for q in frame.persons
        if (f.zone_id is None or f.zone_id in q.zone_ids)
        and (f.min_confidence is None or q.confidence >= f.min_confidence)
        and (f.person_id is None or q.track_id == f.person_id)
    ]
    return PoseFrame(
        frame_id=frame.frame_id,
        timestamp=frame.timestamp,
        source=frame.source,
        persons=persons,
        router_ids=frame.router_ids,
        latency_ms=frame.latency_ms,
    )


class StreamClient:
    def __init__(self, hub: StreamHub, principal: Principal, send: SendText) -> None:
        self.id = uuid.uuid4().hex
        self.principal = principal
        self._hub = hub
        self._send = send
        settings = hub.settings
        self._maxsize = settings.queue_size
        self._overflow_limit_s = settings.overflow_disconnect_s
        self.subs: dict[p.TopicName, p.Filters] = {}
        self.max_fps = settings.max_fps
        self._min_interval = 0.0  # only a client-configured rate below the frame rate throttles
        self._last_pose_at = -1e18
        self._last_dense_at = -1e18
        self._queue: collections.deque[str] = collections.deque()
        self._control: collections.deque[str] = collections.deque()
        self._wake = asyncio.Event()
        self.kicked = asyncio.Event()  # set when the hub wants this client gone; close_reason says why
        self.close_code = 1000
        self.close_reason = ""
        self._overflow_since: float | None = None
        self._dropped_unreported = 0
        self.dropped = 0
        self.sent = 0

    # ------------------------------------------------------------------------------------------ queueing
    def offer(self, text: str, now: float) -> None:
        """Queue a data message; never blocks. Drops the oldest on overflow."""
        if self.kicked.is_set():
            return
        queue = self._queue
        if len(queue) >= self._maxsize:
            queue.popleft()
            self.dropped += 1
            self._dropped_unreported += 1
            self._hub.on_dropped()
            if self._overflow_since is None:
                self._overflow_since = now
            elif now - self._overflow_since >= self._overflow_limit_s:
                self.kick(1008, f"client too slow: outbound queue overflowed for {self._overflow_limit_s:g} s")
                return
        queue.append(text)
        self._wake.set()

    def control(self, msg: Any) -> None:
        if len(self._control) >= CONTROL_LIMIT:
            self.kick(1008, "too many unanswered control messages")
            return
        self._control.append(_encode(msg))
        self._wake.set()

    def kick(self, code: int, reason: str) -> None:
        if not self.kicked.is_set():
            self.close_code, self.close_reason = code, reason
            self.kicked.set()
            self._wake.set()

    def wants_pose(self, now: float) -> bool:
        if self._min_interval and now - self._last_pose_at < self._min_interval * 0.9:
            return False  # 0.9: frame-time jitter must not halve a client asking for exactly the frame rate
        self._last_pose_at = now
        return True

    def wants_dense(self, now: float) -> bool:
        if self._min_interval and now - self._last_dense_at < self._min_interval * 0.9:
            return False
        self._last_dense_at = now
        return True

    def configure(self, config: p.ClientConfig) -> p.ClientConfig:
        ceiling = self._hub.settings.max_fps
        if config.max_fps is not None:
            self.max_fps = min(config.max_fps, ceiling)
            self._min_interval = 1.0 / self.max_fps if self.max_fps < ceiling else 0.0
        return p.ClientConfig(max_fps=self.max_fps)

    # ------------------------------------------------------------------------------------------ sending
    async def run_sender(self) -> None:
        """Drain control then data messages into the socket until kicked or cancelled."""
        queue, control = self._queue, self._control
        half = self._maxsize // 2
        while not self.kicked.is_set():
            await self._wake.wait()
            self._wake.clear()
            while (control or queue) and not self.kicked.is_set():
                if control:
                    text = control.popleft()
                elif self._dropped_unreported:
                    text = _encode(p.Dropped(count=self._dropped_unreported, total=self.dropped))
                    self._dropped_unreported = 0
                else:
                    text = queue.popleft()
                await self._send(text)
                self.sent += 1
                if self._overflow_since is not None and len(queue) <= half:
                    self._overflow_since = None  # caught up: the overflow was not sustained
        self._hub.on_sent(self.sent)

    @property
    def queued(self) -> int:
        return len(self._queue)


class StreamHub:
    def __init__(self, engine: EngineView, settings: StreamSettings, metrics: ApiMetrics) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        self.clients: dict[str, StreamClient] = {}
        self._by_topic: dict[p.TopicName, set[StreamClient]] = {t: set() for t in p.TOPICS}
        self._tasks: list[asyncio.Task[None]] = []
        self.messages_dropped = 0
        self.messages_sent = 0  # by clients that have disconnected, plus live clients' counts at read time
        self.slow_disconnects = 0
        self._out_pose = metrics.ws_messages.labels("out", "pose_update")
        self._out_person = metrics.ws_messages.labels("out", "person_update")
        self._out_event = metrics.ws_messages.labels("out", "event")
        self._out_sensing = metrics.ws_messages.labels("out", "sensing_update")
        self._out_dense = metrics.ws_messages.labels("out", "dense_pose_update")
        self._dropped_counter = metrics.ws_dropped

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        # Subscribe here, not inside the tasks: an item published before a task first runs must not be lost.
        poses = self.engine.subscribe("poses")
        events = self.engine.subscribe("events")
        sensing = self.engine.subscribe("sensing")
        dense = self.engine.subscribe("dense")
        self._tasks = [
            asyncio.create_task(self._pump(dense, self.dispatch_dense), name="wdp-hub-dense"),
            asyncio.create_task(self._pump(poses, self.dispatch_frame), name="wdp-hub-poses"),
            asyncio.create_task(self._pump(events, self.dispatch_event), name="wdp-hub-events"),
            asyncio.create_task(self._pump(sensing, self.dispatch_sensing), name="wdp-hub-sensing"),
        ]

    async def stop(self) -> None:
        for client in list(self.clients.values()):
            client.kick(1001, "server shutting down")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []

    async def _pump(self, sub: AsyncIterator[Any], dispatch: Callable[[Any], None]) -> None:
        try:
            async for item in sub:
                try:
                    dispatch(item)
                except Exception:  # one bad item must not end the stream for everyone
                    log.exception("stream dispatch failed for %r", type(item).__name__)
        finally:
            aclose = getattr(sub, "aclose", None)
            if aclose is not None:
                await aclose()

    # ------------------------------------------------------------------------------------------ clients
    def connect(self, principal: Principal, send: SendText) -> StreamClient:
        client = StreamClient(self, principal, send)
        self.clients[client.id] = client
        self.metrics.ws_connections.inc()
        return client

    def disconnect(self, client: StreamClient, reason: str) -> None:
        if self.clients.pop(client.id, None) is None:
            return
        for members in self._by_topic.values():
            members.discard(client)
        self.metrics.ws_connections.dec()
        self.metrics.ws_disconnects.labels(reason).inc()
        if client.close_code == 1008 and client.close_reason.startswith("client too slow"):
            self.slow_disconnects += 1

    def recheck(self, check: Callable[[Principal], Principal]) -> int:
        """Re-check every client's credentials (after a user or API key changed): a client whose
        credentials ``check`` refuses is closed with 4001, one that lost stream:subscribe with 4003.
        Returns how many were closed."""
        closed = 0
        for client in list(self.clients.values()):
            try:
                principal = check(client.principal)
            except AuthError as exc:
                client.kick(p.CLOSE_AUTH_FAILED, f"credentials revoked: {exc.reason}")
                closed += 1
                continue
            if not principal.allows(STREAM_SUBSCRIBE):
                client.kick(p.CLOSE_FORBIDDEN, "requires scope stream:subscribe")
                closed += 1
        return closed

    @property
    def full(self) -> bool:
        return len(self.clients) >= self.settings.max_clients

    def handle(self, client: StreamClient, msg: p.Inbound) -> None:
        """Apply one validated inbound message."""
        self.metrics.ws_messages.labels("in", type(msg).__struct_config__.tag).inc()  # type: ignore[attr-defined]
        if isinstance(msg, p.Subscribe):
            filters = msg.filters or p.NO_FILTERS
            client.subs[msg.topic] = filters
            self._by_topic[msg.topic].add(client)
            client.control(p.Subscription(topic=msg.topic, status="subscribed", filters=msg.filters))
        elif isinstance(msg, p.Unsubscribe):
            client.subs.pop(msg.topic, None)
            self._by_topic[msg.topic].discard(client)
            client.control(p.Subscription(topic=msg.topic, status="unsubscribed"))
        elif isinstance(msg, p.Ping):
            client.control(p.Pong(timestamp=time.time(), echo=msg.timestamp))
        elif isinstance(msg, p.Configure):
            client.control(p.Configured(config=client.configure(msg.config)))

    def on_dropped(self) -> None:
        self.messages_dropped += 1
        self._dropped_counter.inc()

    def on_sent(self, n: int) -> None:
        self.messages_sent += n

    def stats(self) -> tuple[int, int, int, int]:
        """(clients, messages sent, messages dropped, slow disconnects)."""
        live = sum(c.sent for c in self.clients.values())
        return len(self.clients), self.messages_sent + live, self.messages_dropped, self.slow_disconnects

    # ------------------------------------------------------------------------------------------ dispatch
    def dispatch_frame(self, frame: PoseFrame) -> None:
        now = time.monotonic()
        subs = self._by_topic["pose_updates"]
        if subs:
            texts: dict[tuple[Any, ...], str] = {}
            n = 0
            for client in tuple(subs):
                if not client.wants_pose(now):
                    continue
                f = client.subs["pose_updates"]
                text = texts.get(f.key)
                if text is None:
                    text = texts[f.key] = _encode(p.PoseUpdate(frame=filter_frame(frame, f)))
                client.offer(text, now)
                n += 1
            self._out_pose.inc(n)
        tracking = self._by_topic["person_tracking"]
        if tracking and frame.persons:
            per_person = [
                (q, _encode(p.PersonUpdate(timestamp=frame.timestamp, frame_id=frame.frame_id, person=q)))
                for q in frame.persons
            ]
            n = 0
            for client in tuple(tracking):
                f = client.subs["person_tracking"]
                for q, text in per_person:
                    if (
                        (f.person_id is None or q.track_id == f.person_id)
                        and (f.zone_id is None or f.zone_id in q.zone_ids)
                        and (f.min_confidence is None or q.confidence >= f.min_confidence)
                    ):
                        client.offer(text, now)
                        n += 1
            self._out_person.inc(n)

    def dispatch_dense(self, frame: PoseFrame) -> None:
        """A dense twin frame (persons with ``dense``) to the dense_poses subscribers, filtered like poses."""
        subs = self._by_topic["dense_poses"]
        if not subs:
            return
        now = time.monotonic()
        texts: dict[tuple[Any, ...], str] = {}
        n = 0
        for client in tuple(subs):
            if not client.wants_dense(now):
                continue
            f = client.subs["dense_poses"]
            text = texts.get(f.key)
            if text is None:
                text = texts[f.key] = _encode(p.DensePoseUpdate(frame=filter_frame(frame, f)))
            client.offer(text, now)
            n += 1
        self._out_dense.inc(n)

    def dispatch_sensing(self, state: SensingState) -> None:
        subs = self._by_topic["sensing_updates"]
        if not subs:
            return
        now = time.monotonic()
        text = _encode(p.SensingUpdate(state=state))
        n = 0
        for client in tuple(subs):
            f = client.subs["sensing_updates"]
            if (f.router_id is None or f.router_id == state.router_id) and (
                f.zone_id is None or f.zone_id == state.zone_id
            ):
                client.offer(text, now)
                n += 1
        if n:
            self._out_sensing.inc(n)

    def dispatch_event(self, event: EventBase) -> None:
        now = time.monotonic()
        n = 0
        for topic in topics_of(event):
            subs = self._by_topic[topic]
            if not subs:
                continue
            text = _encode(p.EventMessage(topic=topic, event=event))  # type: ignore[arg-type]
            for client in tuple(subs):
                if event_matches(event, client.subs[topic]):
                    client.offer(text, now)
                    n += 1
        if n:
            self._out_event.inc(n)
