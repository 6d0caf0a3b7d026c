"""The hub's consumer: MQTT 5 client with a persistent session (clean_start off, session expiry) subscribed to
``$share/{group}/{root}/+/+/{frames|sensing|events}``, so the broker splits the fleet's messages between the
hubs of the group. Messages are acknowledged by hand (paho ``manual_ack``) only after the batch holding them is
committed to the store, so a hub killed at any moment leaves each message either committed or unacknowledged
(the broker sends it again). A message committed but not yet acknowledged comes again and is de-duplicated:
frame ids are fleet-unique (``wdp.fleet.ids``) and the writer drops ids already stored; an event id is a primary
key (ON CONFLICT DO NOTHING) and its webhook deliveries are unique per (event, subscription).
A sensing state is identified by (router_id, zone_id, ts): one already stored is dropped before the insert.

Messages that do not decode are counted and acknowledged (skipped); a failing commit keeps the batch and
retries it (nothing is acknowledged meanwhile).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from wdp.fleet import wire
from wdp.schemas import EventBase, PoseFrame, SensingState
from wdp.store import config as store_config
from wdp.store import events as store_events
from wdp.store import sensing as store_sensing

_log = logging.getLogger(__name__)


class FleetHubConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    host: str = "localhost"
    port: int = 1883
    client_id: str = "wdp-hub"  # unique per hub: it names the persistent session
    root: str = "wdp/fleet"
    group: str = "wdp-hubs"  # the shared subscription group all hubs join
    session_expiry_s: int = 3600  # the broker keeps an absent hub's session (and its unacked messages) this long
    keepalive_s: int = 10
    max_batch: int = 2000  # messages per commit
    batch_interval_s: float = 0.05  # the longest a received message waits for its commit
    receive_maximum: int = 4000  # unacknowledged QoS 1 messages the broker may have in flight to this hub
    username: str | None = None
    password: str | None = None


@dataclass
class HubStats:
    received: int = 0
    frames: int = 0  # frames offered to the store (repeats included; the writer counts those it dropped)
    events: int = 0
    sensing: int = 0
    invalid: int = 0
    repeats: int = 0  # sensing states dropped as already stored (frames: the writer counts frames_rejected)
    commits: int = 0
    commit_errors: int = 0
    acked: int = 0
    connects: int = 0
    # when the first message arrived and the last batch was committed (epoch s), and this process's CPU time
    # (all threads) at those moments: a hub's busy span and cost, apart from its start-up (benchmarks)
    first_message_at: float = 0.0
    last_commit_at: float = 0.0
    cpu_first_message_s: float = 0.0
    cpu_last_commit_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # frame timestamp -> committed (bounded)


@dataclass
class _Msg:
    mid: int
    qos: int
    topic: str
    payload: bytes


class FleetHub:
    """``start()`` connects and starts the commit thread; ``stop()`` commits what it holds and disconnects."""

    def __init__(self, config: FleetHubConfig, store: Any, *, writer_options: dict[str, Any] | None = None) -> None:
        self.config = config
        self.store = store
        self.stats = HubStats()
        self._pending: list[_Msg] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._writer = store.writer(max_frames=1_000_000, flush_interval_s=3600.0, **(writer_options or {}))
        self._con = store.new_cursor()
        self._thread: threading.Thread | None = None
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        if config.username:
            self._client.username_pw_set(config.username, config.password)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.reconnect_delay_set(0.05, 2.0)

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> FleetHub:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        self._client.connect_async(
            self.config.host, self.config.port, keepalive=self.config.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()
        self._thread = threading.Thread(target=self._commit_loop, name="wdp-hub-commit", daemon=True)
        self._thread.start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._client.disconnect()
        self._client.loop_stop()
        self._writer.close()
        self._con.close()

    # ------------------------------------------------------------------------------------------ MQTT callbacks
    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            _log.warning("hub %s: connect refused: %s", self.config.client_id, reason)
            return
        self.stats.connects += 1
        opts = paho.SubscribeOptions(qos=1)
        client.subscribe([(f, opts) for f in wire.shared_filters(self.config.root, self.config.group)])
        self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self._pending.append(_Msg(message.mid, message.qos, message.topic, bytes(message.payload)))
            n = len(self._pending)
        self.stats.received += 1
        if self.stats.received == 1:
            self.stats.first_message_at = time.time()
            self.stats.cpu_first_message_s = time.process_time()
        if n >= self.config.max_batch:
            self._wake.set()

    # ------------------------------------------------------------------------------------------ commits
    def _commit_loop(self) -> None:
        batch: list[_Msg] = []
        while True:
            stopping = self._stop.is_set()
            self._wake.wait(self.config.batch_interval_s)
            self._wake.clear()
            with self._lock:
                take = self.config.max_batch - len(batch)
                batch += self._pending[:take]
                del self._pending[:take]
            if batch:
                try:
                    self._commit(batch)
                except Exception:  # keep the batch, unacknowledged; try again next round
                    self.stats.commit_errors += 1
                    _log.exception("hub %s: commit failed; retrying", self.config.client_id)
                    time.sleep(0.2)
                    if stopping:
                        return
                    continue
                for m in batch:
                    if m.qos > 0:
                        self._client.ack(m.mid, m.qos)
                self.stats.acked += len(batch)
                batch = []
            if stopping:
                with self._lock:
                    if not self._pending:
                        return

    def _new_states(self, states: list[SensingState]) -> list[SensingState]:
        """Drop sensing states already stored (a redelivery) or repeated in this batch: a state is one per
        router or zone and timestamp, so (router_id, zone_id, ts) identifies it."""
        if not states:
            return states
        lo = min(s.timestamp for s in states)
        hi = max(s.timestamp for s in states)
        rows = self._con.execute(
            "SELECT router_id, zone_id, ts FROM sensing_states WHERE ts >= ? AND ts <= ?", [lo, hi]
        ).fetchall()
        seen = {(r[0], r[1], r[2]) for r in rows}
        out = []
        for state in states:
            key = (state.router_id, state.zone_id, state.timestamp)
            if key not in seen:
                seen.add(key)
                out.append(state)
        self.stats.repeats += len(states) - len(out)
        return out

    def _commit(self, batch: list[_Msg]) -> None:
        frames: list[PoseFrame] = []
        states: list[SensingState] = []
        evs: list[EventBase] = []
        for m in batch:
            kind = wire.kind_of(m.topic)
            try:
                if kind is None:
                    raise ValueError(f"unknown topic {m.topic}")
                items = wire.decode(kind, m.payload)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                self.stats.invalid += 1
                _log.warning("hub %s: skipping a bad message on %s: %s", self.config.client_id, m.topic, exc)
                continue
            for item in items:
                if isinstance(item, PoseFrame):
                    frames.append(item)
                elif isinstance(item, SensingState):
                    states.append(item)
                else:
                    evs.append(item)
        now = time.time()
        if evs:
            subs = store_config.active_webhooks(self._con)
            store_events.record_events(self._con, evs, subs, now=now)
        states = self._new_states(states)
        if states:
            store_sensing.append_states(self._con, states)
        for f in frames:
            try:
                self._writer.append(f)
            except ValueError as exc:
                self.stats.invalid += 1
                _log.warning("hub %s: skipping frame %d: %s", self.config.client_id, f.frame_id, exc)
        self._writer.flush()
        done = time.time()
        self.stats.last_commit_at = done
        self.stats.cpu_last_commit_s = time.process_time()
        self.stats.commits += 1
        self.stats.frames += len(frames)
        self.stats.events += len(evs)
        self.stats.sensing += len(states)
        if len(self.stats.latencies_ms) < 200_000:
            self.stats.latencies_ms.extend((done - f.timestamp) * 1000.0 for f in frames)
