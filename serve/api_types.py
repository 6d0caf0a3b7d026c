"""Request and response bodies of the REST API that are not already wire types in ``wdp.schemas``.

Request bodies forbid unknown fields (a typo is a 422, not a silently ignored setting). Constraints sit in
``msgspec.Meta`` so they are both enforced on decode and published in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from wdp.schemas import (
    AlertRule,
    OccupancyBucket,
    PersonSummary,
    PoseFrame,
    RetryPolicy,
    Router,
    SensingLinkStatus,
    SensingState,
    Zone,
)
from wdp.serve.engine_view import ComponentHealth, EngineStatus
from wdp.serve.security import Scope

Identifier = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
Username = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error: the HTTP status, its name, and a reason a client can act on."""

    status_code: int
    error: str
    reason: str
    extra: list[dict[str, object]] | dict[str, object] | None = None


# ------------------------------------------------------------------------------------------------ pose


class PoseHistoryPage(msgspec.Struct, kw_only=True):
    frames: list[PoseFrame]
    total: int
    limit: int
    skip: int


class Trajectory(msgspec.Struct, kw_only=True):
    """Floor positions (metres) of one track as parallel columns."""

    timestamp: list[float]
    x: list[float]
    y: list[float]


class PersonDetails(msgspec.Struct, kw_only=True):
    person: PersonSummary
    trajectory: Trajectory | None = None


class ZoneOccupancy(msgspec.Struct, kw_only=True):
    zone_id: str
    name: str
    count: int
    track_ids: list[int]
    max_occupancy: int | None = None
    over_capacity: bool = False
    restricted: bool = False


class ZonesOccupancy(msgspec.Struct, kw_only=True):
    timestamp: float | None  # of the frame counted; None when no frame exists yet
    frame_id: int | None
    zones: list[ZoneOccupancy]


class ZoneOccupancySeries(msgspec.Struct, kw_only=True):
    zone_id: str
    start: float
    end: float
    bucket_s: float
    buckets: list[OccupancyBucket]


# ------------------------------------------------------------------------------------------------ system


class StreamStats(msgspec.Struct, kw_only=True):
    clients: int
    messages_sent: int
    messages_dropped: int
    slow_disconnects: int


class SystemStatus(msgspec.Struct, kw_only=True):
    status: Literal["running", "stopped"]
    server_time: float
    uptime_s: float  # API process uptime
    engine: EngineStatus
    active_routers: int
    total_routers: int
    stream: StreamStats
    api_versions: list[str]
    sensing: list[SensingLinkStatus] = []  # per router: sensing calibration and input problems


class RouterReport(Router, kw_only=True, frozen=True):
    """A router's link status (system/routers) with its sensing link's health (None: no sensing on it)."""

    sensing: SensingLinkStatus | None = None


HealthState = Literal["healthy", "degraded", "unhealthy"]


class HealthReport(msgspec.Struct, kw_only=True):
    status: HealthState
    timestamp: float
    components: dict[str, ComponentHealth]


class PipelinePerformance(msgspec.Struct, kw_only=True):
    fps: float
    latency_ms_p50: float
    latency_ms_p99: float
    frames_total: int
    frames_dropped: int
    drop_ratio: float


class Performance(msgspec.Struct, kw_only=True):
    timestamp: float
    pipeline: PipelinePerformance
    stream: StreamStats
    rate_limited_clients: int


# ------------------------------------------------------------------------------------------------ sensing


class SensingCurrent(msgspec.Struct, kw_only=True):
    server_time: float
    routers: list[SensingState]  # the latest state of each router (router_id set)
    zones: list[SensingState]  # the latest combined state of each zone (zone_id set)


class SensingHistoryPage(msgspec.Struct, kw_only=True):
    states: list[SensingState]
    total: int
    limit: int
    skip: int


class SensingRouterDetails(msgspec.Struct, kw_only=True):
    router_id: str
    state: SensingState | None  # None: no state yet (still collecting its first second of packets)
    link: SensingLinkStatus | None  # None: the engine has no sensing link for it (sensing off, or history only)


# ------------------------------------------------------------------------------------------------ analytics


class ActivityCount(msgspec.Struct, kw_only=True):
    activity: str
    person_frames: int
    persons: int


class ActivitySummary(msgspec.Struct, kw_only=True):
    start: float
    end: float
    zone_id: str | None
    person_frames: int  # all person-frames in range (with or without an activity)
    activities: list[ActivityCount]
    occupancy: list[OccupancyBucket] | None = None  # with zone_id: persons in the zone per bucket


class ZoneReport(msgspec.Struct, kw_only=True):
    zone_id: str
    person_frames: int
    mean_occupancy: float
    peak_occupancy: int


class AnalyticsReport(msgspec.Struct, kw_only=True):
    report_id: str
    generated_at: float
    start: float
    end: float
    frames: int
    person_frames: int
    distinct_tracks: int
    mean_persons: float
    events_by_type: dict[str, int]
    activities: list[ActivityCount]
    zones: list[ZoneReport]


# ------------------------------------------------------------------------------------------------ config


class ConfigTemplate(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A named bundle of zones, alert rules and routers applied in one step (e.g. one room layout)."""

    id: Identifier
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    zones: Annotated[list[Zone], msgspec.Meta(max_length=256)] = []
    alert_rules: Annotated[list[AlertRule], msgspec.Meta(max_length=256)] = []
    routers: Annotated[list[Router], msgspec.Meta(max_length=256)] = []
    replace: bool = False  # apply: delete zones/alert rules/routers not in the template


class TemplateApplied(msgspec.Struct, kw_only=True):
    template_id: str
    zones: int
    alert_rules: int
    routers: int
    removed: int


# ------------------------------------------------------------------------------------------------ auth


class TokenRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``grant_type=password`` with username/password, or ``grant_type=api_key`` with api_key. ``scopes``
    narrows the token to a subset of what the user or key holds."""

    grant_type: Literal["password", "api_key"]
    username: Username | None = None
    password: Password | None = None
    api_key: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=16)] | None = None


class TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    expires_at: float
    scope: str  # space-separated, as in OAuth 2.0


class Identity(msgspec.Struct, kw_only=True):
    subject: str
    kind: Literal["jwt", "api_key"]
    scopes: list[str]
    tier: str
    expires_at: float | None = None
    key_id: str | None = None


class UserCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Username
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=256)]
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=16)] = []
    disabled: bool = False


class UserOut(msgspec.Struct, kw_only=True):
    username: str
    scopes: list[str]
    disabled: bool
    created_at: float


class ApiKeyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    owner: Username
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=16)] = []


class ApiKeyOut(msgspec.Struct, kw_only=True):
    key_id: str
    owner: str
    scopes: list[str]
    created_at: float
    revoked: bool
    last_used: float | None = None


class ApiKeyCreated(ApiKeyOut, kw_only=True):
    api_key: str  # shown once; only its hash is stored


# ------------------------------------------------------------------------------------------------ webhooks


WebhookUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/$.?#][^\s]*$", max_length=2048)]


class WebhookCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: WebhookUrl
    events: Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(min_length=1, max_length=32)]
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=256)] | None = None
    headers: Annotated[dict[str, Annotated[str, msgspec.Meta(max_length=1024)]], msgspec.Meta(max_length=32)] = {}
    retry: RetryPolicy = RetryPolicy()
    active: bool = True


class WebhookOut(msgspec.Struct, kw_only=True):
    """A subscription as the API shows it: the signing secret is write-only."""

    id: str
    url: str
    events: list[str]
    has_secret: bool
    headers: dict[str, str]
    retry: RetryPolicy
    active: bool


class Redelivered(msgspec.Struct, kw_only=True):
    delivery_id: str
    status: Literal["pending"] = "pending"
