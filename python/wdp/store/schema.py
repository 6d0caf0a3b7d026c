"""Versioned schema migrations for the history store.

``schema_version`` holds one row per applied migration. Each migration runs in its own transaction together
with the insert of its version row, so a crash mid-migration leaves the previous version intact.

Layout notes (why there are no indexes on the hot tables): pose rows are appended in time order, so DuckDB's
per-row-group min/max (zonemaps) on ``ts`` already prune time-range scans; an ART index would slow appends and
DuckDB does not use it for range predicates. Small keyed tables (tracks, events, config, outbox) have primary
keys for upserts and point lookups. Timestamps are DOUBLE epoch seconds (UTC), exactly the wire value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb

from wdp.store.connection import transaction

_V1_POSE_HISTORY = [
    """CREATE TABLE pose_frames (
        ts DOUBLE NOT NULL,
        frame_id BIGINT NOT NULL,
        source VARCHAR NOT NULL,          -- simulator | replay | live
        n_persons SMALLINT NOT NULL,
        latency_ms FLOAT,
        router_ids VARCHAR[] NOT NULL
    )""",
    """CREATE TABLE pose_persons (
        ts DOUBLE NOT NULL,
        frame_id BIGINT NOT NULL,
        track_id INTEGER NOT NULL,
        confidence FLOAT NOT NULL,
        box FLOAT[4] NOT NULL,            -- x0, y0, x1, y1 normalized
        x FLOAT,                          -- floor position, metres (NULL: not localized)
        y FLOAT,
        activity VARCHAR,
        keypoints FLOAT[51] NOT NULL      -- 17 x (x, y, score), row-major
    )""",
    # One row per (person, zone) membership: the zone filter of history queries.
    """CREATE TABLE person_zones (
        ts DOUBLE NOT NULL,
        frame_id BIGINT NOT NULL,
        track_id INTEGER NOT NULL,
        zone_id VARCHAR NOT NULL
    )""",
    # Persons per zone per frame, written at flush (only zones with >= 1 person; frames give the zeros).
    """CREATE TABLE zone_occupancy (
        ts DOUBLE NOT NULL,
        frame_id BIGINT NOT NULL,
        zone_id VARCHAR NOT NULL,
        count SMALLINT NOT NULL
    )""",
    """CREATE TABLE tracks (
        track_id INTEGER PRIMARY KEY,
        first_seen DOUBLE NOT NULL,
        last_seen DOUBLE NOT NULL,
        frames BIGINT NOT NULL,
        sum_confidence DOUBLE NOT NULL,
        last_x FLOAT,
        last_y FLOAT
    )""",
    """CREATE TABLE events (
        event_id VARCHAR PRIMARY KEY,
        ts DOUBLE NOT NULL,
        type VARCHAR NOT NULL,
        track_id INTEGER,
        zone_id VARCHAR,
        severity VARCHAR,
        payload VARCHAR NOT NULL          -- the event as msgspec JSON (tagged)
    )""",
]

_V2_CONFIG = [
    *(
        f"""CREATE TABLE {name} (
            id VARCHAR PRIMARY KEY,
            body VARCHAR NOT NULL,        -- the Struct as msgspec JSON
            updated_at DOUBLE NOT NULL
        )"""
        for name in ("zones", "alert_rules", "webhooks", "routers")
    ),
    # Hashes only: the caller hashes passwords and API keys; the store never sees a secret it could leak.
    """CREATE TABLE users (
        username VARCHAR PRIMARY KEY,
        password_hash VARCHAR NOT NULL,
        scopes VARCHAR[] NOT NULL,
        disabled BOOLEAN NOT NULL,
        created_at DOUBLE NOT NULL
    )""",
    """CREATE TABLE api_keys (
        key_id VARCHAR PRIMARY KEY,
        key_hash VARCHAR NOT NULL UNIQUE,
        owner VARCHAR NOT NULL,
        scopes VARCHAR[] NOT NULL,
        created_at DOUBLE NOT NULL,
        revoked BOOLEAN NOT NULL,
        last_used DOUBLE
    )""",
]

_V3_OUTBOX = [
    """CREATE TABLE outbox (
        delivery_id VARCHAR PRIMARY KEY,
        event_id VARCHAR NOT NULL,
        subscription_id VARCHAR NOT NULL,
        event_type VARCHAR NOT NULL,
        payload VARCHAR NOT NULL,
        status VARCHAR NOT NULL,          -- pending | in_flight | delivered | failed
        attempts INTEGER NOT NULL,        -- attempts started (incremented by claim)
        max_attempts INTEGER NOT NULL,
        backoff_base_s DOUBLE NOT NULL,
        backoff_max_s DOUBLE NOT NULL,
        created_at DOUBLE NOT NULL,
        next_attempt_at DOUBLE NOT NULL,
        claimed_until DOUBLE,
        last_error VARCHAR,
        UNIQUE (event_id, subscription_id)
    )""",
    """CREATE TABLE delivery_log (
        delivery_id VARCHAR NOT NULL,
        event_id VARCHAR NOT NULL,
        subscription_id VARCHAR NOT NULL,
        attempt INTEGER NOT NULL,
        ts DOUBLE NOT NULL,
        ok BOOLEAN NOT NULL,
        status_code INTEGER,
        latency_ms DOUBLE,
        error VARCHAR
    )""",
]


# IF NOT EXISTS: servers before v4 created this table themselves at start (same layout).
_V4_TEMPLATES = [
    """CREATE TABLE IF NOT EXISTS config_templates (
        id VARCHAR PRIMARY KEY,
        body VARCHAR NOT NULL,
        updated_at DOUBLE NOT NULL
    )""",
]


# Training-free sensing (wdp.sensing): one row per router and per zone per second, appended in time order
# (no index, like the pose tables). A router's row has router_id, a zone's zone_id (the other is NULL).
_V5_SENSING = [
    """CREATE TABLE sensing_states (
        ts DOUBLE NOT NULL,
        router_id VARCHAR,
        zone_id VARCHAR,
        source VARCHAR NOT NULL,          -- simulator | replay | live
        motion BOOLEAN NOT NULL,
        motion_score DOUBLE NOT NULL,
        threshold DOUBLE NOT NULL,
        presence BOOLEAN NOT NULL,
        still BOOLEAN NOT NULL,
        breathing_bpm DOUBLE,             -- NULL: no breathing rate (nobody still, or no clear rhythm)
        breathing_confidence DOUBLE NOT NULL,
        calibration VARCHAR NOT NULL,     -- calibrating | auto | baseline
        packet_rate DOUBLE NOT NULL
    )""",
]


# Id sequences (wdp.store.ids): the next unreserved frame and track id, so ids stay unique across engine runs.
# Seeded from the history already stored (databases from before v6 hold ids that restarted at 1 every run).
_V6_ID_SEQUENCES = [
    """CREATE TABLE id_sequences (
        name VARCHAR PRIMARY KEY,         -- frame | track
        next_id BIGINT NOT NULL
    )""",
    "INSERT INTO id_sequences SELECT 'frame', coalesce(max(frame_id), 0) + 1 FROM pose_frames",
    """INSERT INTO id_sequences SELECT 'track', greatest(
        (SELECT coalesce(max(track_id), 0) FROM tracks), (SELECT coalesce(max(track_id), 0) FROM pose_persons)) + 1""",
]


# DensePose output stored on demand (store.dense, wdp.store.dense): one row per person and frame, the
# schemas.DensePose as msgpack; appended in time order like the pose tables.
_V7_POSE_DENSE = [
    """CREATE TABLE pose_dense (
        ts DOUBLE NOT NULL,
        frame_id BIGINT NOT NULL,
        track_id INTEGER NOT NULL,
        dense BLOB NOT NULL               -- msgpack of schemas.DensePose (RLE parts, uint8 U/V)
    )""",
]


def _sql(statements: Sequence[str]) -> Callable[[duckdb.DuckDBPyConnection], None]:
    def apply(con: duckdb.DuckDBPyConnection) -> None:
        for statement in statements:
            con.execute(statement)

    return apply


# (version, description, apply). Append only: never edit a released migration, add a new one.
MIGRATIONS: tuple[tuple[int, str, Callable[[duckdb.DuckDBPyConnection], None]], ...] = (
    (1, "pose history, tracks, zone occupancy, events", _sql(_V1_POSE_HISTORY)),
    (2, "config: zones, alert rules, webhooks, routers, users, api keys", _sql(_V2_CONFIG)),
    (3, "webhook outbox and delivery log", _sql(_V3_OUTBOX)),
    (4, "config templates", _sql(_V4_TEMPLATES)),
    (5, "sensing states", _sql(_V5_SENSING)),
    (6, "frame and track id sequences", _sql(_V6_ID_SEQUENCES)),
    (7, "DensePose output per person (on demand)", _sql(_V7_POSE_DENSE)),
)
LATEST_VERSION = MIGRATIONS[-1][0]


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer wdp than this one."""


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """Highest applied migration (0 for an empty database)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()
    if not exists or exists[0] == 0:
        return 0
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def check_version(con: duckdb.DuckDBPyConnection) -> int:
    version = current_version(con)
    if version > LATEST_VERSION:
        raise SchemaTooNewError(f"database schema version {version} is newer than this wdp supports ({LATEST_VERSION})")
    return version


def migrate(con: duckdb.DuckDBPyConnection, target: int | None = None) -> list[int]:
    """Apply pending migrations up to ``target`` (default: latest). Returns the versions applied."""
    target = LATEST_VERSION if target is None else target
    if not 0 <= target <= LATEST_VERSION:
        raise ValueError(f"unknown schema version {target}")
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at DOUBLE NOT NULL)"
    )
    version = check_version(con)
    applied: list[int] = []
    for number, description, apply in MIGRATIONS:
        if version < number <= target:
            with transaction(con):
                apply(con)
                con.execute(
                    "INSERT INTO schema_version VALUES (?, ?, epoch(current_timestamp))",
                    [number, description],
                )
            applied.append(number)
    return applied
