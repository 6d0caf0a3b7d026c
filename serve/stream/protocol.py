"""The /ws/v1/stream message protocol (JSON text frames, ``type`` tag on every message).

Authentication (a JWT or an API key), in order of preference; a URL is written to access logs and proxy
logs and browser history, headers and messages are not:

1. the first message, within ``stream.auth_timeout_s`` (5 s) of connecting with no credentials::

       {"type": "auth", "token": "<JWT or wdp_ API key>"}

   (the browser dashboard does this);
2. a header: ``Authorization: Bearer <JWT>`` or ``X-API-Key: <key>`` (non-browser clients);
3. the subprotocol form, for browsers that cannot set headers: ``new WebSocket(url, ["bearer", token])``,
   i.e. ``Sec-WebSocket-Protocol: bearer, <token>``; the server answers with subprotocol ``bearer``;
4. discouraged, kept for old clients: ``/ws/v1/stream?token=<token>`` (ends up in logs).

Close codes: 4001 authentication failed (missing, invalid or expired credentials, no ``auth`` message in
time) or credentials revoked while connected (user deleted or disabled, API key revoked, the token's scopes
taken away), 4003 missing stream:subscribe scope (also when it is taken away while connected), 4029
connection rate limit, 1013 server full, 1008 client too slow or flooding, 1001 server shutdown.

Client -> server (validated; unknown types or fields get an ``error`` message, the connection stays open)::

    {"type": "subscribe", "topic": "pose_updates", "filters": {"zone_id": "kitchen", "min_confidence": 0.6}}
    {"type": "unsubscribe", "topic": "pose_updates"}
    {"type": "ping", "timestamp": 1700000000.0}
    {"type": "configure", "config": {"max_fps": 10}}

Server -> client: ``connection`` (welcome, with client_id), ``subscription``, ``pong``, ``configured``,
``error``, ``dropped`` (messages lost to overflow since the last notice), and data: ``pose_update``
(a PoseFrame, persons filtered), ``person_update`` (one person of a frame), ``event`` (a wdp event),
``sensing_update`` (a SensingState).

Topics: pose_updates (frames), person_tracking (per-person updates and person.* events), zone_events
(zone entries/exits and zone alerts, plus the sensing events of zones), system_alerts (alert.*, system.*,
router.*, falls), sensing_updates (training-free sensing: one state per router and per zone per second),
sensing_events (motion.started, motion.stopped, presence.changed, breathing.updated of routers and zones),
dense_poses (``dense_pose_update``: the frame with every person's DensePose body parts and U/V in
``person.dense``, see wdp.schemas.DensePose; sent only when the server's engine.dense is on; same filters
and rate ceiling as pose_updates).

Sensing: a router's states and events carry ``router_id``, a zone's carry ``zone_id`` (the zone combines the
routers placed in it). Filter ``router_id`` keeps one router's, ``zone_id`` one zone's::

    {"type": "subscribe", "topic": "sensing_updates", "filters": {"router_id": "esp-livingroom"}}
    {"type": "subscribe", "topic": "zone_events", "filters": {"zone_id": "bedroom"}}  # motion/presence too
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from wdp.schemas import Event, Person, PoseFrame, SensingState, Severity

TopicName = Literal[
    "pose_updates",
    "system_alerts",
    "zone_events",
    "person_tracking",
    "sensing_updates",
    "sensing_events",
    "dense_poses",
]
TOPICS: tuple[TopicName, ...] = (
    "pose_updates",
    "system_alerts",
    "zone_events",
    "person_tracking",
    "sensing_updates",
    "sensing_events",
    "dense_poses",
)
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
CLOSE_AUTH_FAILED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_RATE_LIMITED = 4029
BEARER_SUBPROTOCOL = "bearer"


class Filters(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    zone_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    min_confidence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    person_id: int | None = None  # a track id
    min_severity: Severity | None = None  # system_alerts / zone_events
    router_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None  # sensing_* (and router.* events)

    @property
    def key(self) -> tuple[str | None, float | None, int | None, str | None, str | None]:
        return (self.zone_id, self.min_confidence, self.person_id, self.min_severity, self.router_id)


NO_FILTERS = Filters()


class ClientConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    max_fps: Annotated[float, msgspec.Meta(gt=0.0, le=1000.0)] | None = None  # pose_updates rate ceiling


# ------------------------------------------------------------------------------------------------ inbound


class _In(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    pass


class Subscribe(_In, tag="subscribe", kw_only=True):
    topic: TopicName
    filters: Filters | None = None


class Unsubscribe(_In, tag="unsubscribe", kw_only=True):
    topic: TopicName


class Ping(_In, tag="ping", kw_only=True):
    timestamp: float | None = None


class Configure(_In, tag="configure", kw_only=True):
    config: ClientConfig


Inbound = Subscribe | Unsubscribe | Ping | Configure
INBOUND = msgspec.json.Decoder(Inbound)


class Auth(_In, tag="auth", kw_only=True):
    """The first message of a connection that presented no credentials (see the module docstring)."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]


AUTH = msgspec.json.Decoder(Auth)


# ------------------------------------------------------------------------------------------------ outbound


class _Out(msgspec.Struct, kw_only=True, frozen=True, tag_field="type"):
    pass


class Welcome(_Out, tag="connection", kw_only=True):
    status: Literal["connected"] = "connected"
    client_id: str
    server_time: float
    subject: str
    topics: list[str]
    queue_size: int
    max_fps: float


class Subscription(_Out, tag="subscription", kw_only=True):
    topic: TopicName
    status: Literal["subscribed", "unsubscribed"]
    filters: Filters | None = None


class Pong(_Out, tag="pong", kw_only=True):
    timestamp: float  # server time
    echo: float | None = None  # the ping's timestamp


class Configured(_Out, tag="configured", kw_only=True):
    config: ClientConfig


class Error(_Out, tag="error", kw_only=True):
    reason: str


class Dropped(_Out, tag="dropped", kw_only=True):
    count: int  # since the previous notice
    total: int


class PoseUpdate(_Out, tag="pose_update", kw_only=True):
    topic: Literal["pose_updates"] = "pose_updates"
    frame: PoseFrame


class DensePoseUpdate(_Out, tag="dense_pose_update", kw_only=True):
    topic: Literal["dense_poses"] = "dense_poses"
    frame: PoseFrame  # persons carry ``dense``


class PersonUpdate(_Out, tag="person_update", kw_only=True):
    topic: Literal["person_tracking"] = "person_tracking"
    timestamp: float
    frame_id: int
    person: Person


class SensingUpdate(_Out, tag="sensing_update", kw_only=True):
    topic: Literal["sensing_updates"] = "sensing_updates"
    state: SensingState


class EventMessage(_Out, tag="event", kw_only=True):
    topic: TopicName
    event: Event
