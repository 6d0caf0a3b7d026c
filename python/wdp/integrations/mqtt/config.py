"""MQTT settings and the topic tree (seed section 4.1), with QoS and retain per topic.

Topics, relative to ``prefix`` (default ``wdp``):

    pose/current                  qos0 retained   latest frame summary (person count, persons)
    pose/person/{track_id}/update qos1            one person per frame
    pose/zone/{zone_id}/occupancy qos1 retained   published when the count or the set of persons changes
    system/status                 qos1 retained   availability online/offline (offline is the last will)
    system/alerts/{category}      qos2            alert.* events and falls
    events/{event_type}           qos1            every event (an addition to the seed tree; can be disabled)
    sensing/router/{router_id}/state  qos1 retained   training-free sensing of one link (SensingState JSON),
    sensing/zone/{zone_id}/state      qos1 retained   ... and of one zone; once a second each (additions too)
    command/zone/{zone_id}/{configure|delete}, command/system/{start|stop|status}   subscribed at qos2
    response/zone/{zone_id}/{configure|delete}, response/system/{cmd}    qos1 answers with correlation id

Home Assistant discovery configs go to ``{discovery_prefix}/{component}/{node_id}/{object_id}/config``
(retained, qos1), outside ``prefix`` because Home Assistant listens there.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from typing import Literal

import msgspec

_TOPIC_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def valid_segment(value: str) -> bool:
    """True for ids that are safe as one topic level (no '/', '+', '#', spaces or control characters)."""
    return bool(_TOPIC_SEGMENT.match(value))


def topic_id(value: str) -> str:
    """``value`` as one topic level: itself when valid, else its invalid characters replaced by '_' plus a short
    hash of the original, so ids such as ``udp-192.168.1.5:5500`` stay distinct and readable."""
    if valid_segment(value):
        return value
    digest = hashlib.sha1(value.encode()).hexdigest()[:8]
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", value)[:55]
    return f"{cleaned}-{digest}"


class TlsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    ca_file: str | None = None  # None: the system trust store
    cert_file: str | None = None  # client certificate (mutual TLS)
    key_file: str | None = None
    insecure: bool = False  # skip hostname verification (self-signed test brokers only)

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure:
            ctx.check_hostname = False
        return ctx


class MqttConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    host: str = "localhost"
    port: int = 1883
    client_id: str = "wdp"
    prefix: str = "wdp"  # topic prefix; "" publishes at the root
    username: str | None = None
    password: str | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    # MQTT protocol: "3.1.1" (the default: what Home Assistant and every broker speak) or "5" (`protocol: 5` in
    # YAML reads as a number; both are accepted). The fleet's edges speak 5 (wdp.fleet.edge).
    protocol: Literal["3.1.1", "5", 5] = "3.1.1"
    # Persistent session: clean_start (v5) / clean_session (3.1.1) off, so the broker keeps this client's
    # session (its subscriptions, QoS 1/2 messages for it) across reconnects; v5 asks it to keep the session
    # session_expiry_s after a disconnect. The durable queue below stays the publisher's own buffer either way.
    persistent_session: bool = False
    session_expiry_s: int = 3600
    # v5 only: a queued QoS 1 message acknowledged with "no matching subscribers" (0x10: the broker dropped it,
    # nobody subscribed) stays queued and is tried again every unrouted_retry_s, one at a time, before anything
    # after it; the queue is released once one is routed. For publishers whose consumers must get everything
    # (a fleet edge and its hubs); off for Home Assistant topics, where nobody listening is normal.
    hold_unrouted: bool = False
    unrouted_retry_s: float = 1.0
    # Reconnect backoff: min * 2**n, capped, times a random factor in [0.5, 1] so a fleet does not reconnect
    # in lockstep after a broker restart.
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    # QoS1/2 messages waiting (queued or unacknowledged). Full: new ones are rejected and counted; nothing
    # already accepted is dropped. pose/current (qos0) has its own drop-oldest slot(s).
    max_queued: int = 10_000
    max_queued_person_updates: int = 5_000  # the person updates' share of max_queued
    # Durable queue: a SQLite file mirroring the qos1/2 queue, so a restart or crash while the broker is away
    # loses nothing (None or "": memory only). `wdp serve` defaults it to a file beside the history store.
    queue_path: str | None = None
    queue_sync_interval_s: float = 0.05  # the longest a queued message waits before it is on disk
    current_slots: int = 1
    inflight_window: int = 64  # QoS1/2 publishes awaiting PUBACK/PUBCOMP at once
    publish_timeout_s: float = 30.0  # an ack slower than this counts as a dead connection
    person_updates: bool = True
    event_topics: bool = True  # events/{type} for every event
    max_command_bytes: int = 65_536
    sensing: bool = True  # sensing/{router|zone}/{id}/state and their Home Assistant entities
    # Home Assistant marks a sensing entity unavailable when its state is older than this (the engine sends one
    # a second, so a stopped engine or a silent router shows as unavailable, not as its last value); 0: never.
    sensing_expire_after_s: int = 30
    # system/status: published at once when the engine's state changes (running, stopped...), and its details
    # (fps, persons, frames...) refreshed this often while it does not
    status_interval_s: float = 10.0
    # Home Assistant discovery
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    node_id: str = "wdp"
    device_name: str = "WiFi DensePose"

    def __post_init__(self) -> None:
        if str(self.protocol) not in ("3.1.1", "5"):
            raise ValueError(f"mqtt protocol must be 3.1.1 or 5, got {self.protocol!r}")
        if self.hold_unrouted and not self.v5:
            raise ValueError("hold_unrouted needs protocol 5 (3.1.1 acknowledgements carry no reason code)")
        if self.session_expiry_s < 0:
            raise ValueError("session_expiry_s must be >= 0")

    @property
    def v5(self) -> bool:
        return str(self.protocol) == "5"


QoS = Literal[0, 1, 2]
SensingKind = Literal["router", "zone"]


class Topics:
    """Topic names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.strip("/")
        self._base = f"{self.prefix}/" if self.prefix else ""

    def __call__(self, relative: str) -> str:
        return self._base + relative

    @property
    def current(self) -> str:
        return self("pose/current")

    def person(self, track_id: int) -> str:
        return self(f"pose/person/{track_id}/update")

    def zone_occupancy(self, zone_id: str) -> str:
        return self(f"pose/zone/{zone_id}/occupancy")

    @property
    def status(self) -> str:
        return self("system/status")

    def alert(self, category: str) -> str:
        return self(f"system/alerts/{category}")

    def event(self, event_type: str) -> str:
        return self(f"events/{event_type}")

    def sensing(self, kind: SensingKind, segment: str) -> str:
        """sensing/router/{id}/state or sensing/zone/{id}/state (``segment``: a valid topic level)."""
        return self(f"sensing/{kind}/{segment}/state")

    @property
    def command_filters(self) -> tuple[str, str]:
        return self("command/zone/+/+"), self("command/system/+")

    @property
    def retained_zone_filters(self) -> tuple[str, str]:
        """The retained per-zone state topics (read back at connect to clear those of zones that are gone)."""
        return self("pose/zone/+/occupancy"), self("sensing/zone/+/state")

    def response_for(self, command_topic: str) -> str:
        """command/... -> response/... (same levels after the verb)."""
        relative = command_topic[len(self._base) :]
        return self("response/" + relative.removeprefix("command/"))

    def relative(self, topic: str) -> str | None:
        """The topic without the prefix, or None when it is not under the prefix."""
        if not topic.startswith(self._base):
            return None
        return topic[len(self._base) :]


# (qos, retain) per topic kind, from the seed's broker configuration
QOS_CURRENT: tuple[QoS, bool] = (0, True)
QOS_PERSON: tuple[QoS, bool] = (1, False)
QOS_ZONE: tuple[QoS, bool] = (1, True)
QOS_STATUS: tuple[QoS, bool] = (1, True)
QOS_ALERT: tuple[QoS, bool] = (2, False)
QOS_EVENT: tuple[QoS, bool] = (1, False)
QOS_SENSING: tuple[QoS, bool] = (1, True)
QOS_RESPONSE: tuple[QoS, bool] = (1, False)
QOS_DISCOVERY: tuple[QoS, bool] = (1, True)
QOS_COMMAND_SUBSCRIPTION: QoS = 2
