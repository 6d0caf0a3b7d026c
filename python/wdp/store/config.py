"""Configuration tables: zones, alert rules, webhook subscriptions, routers (each a Struct stored as JSON
under its id), users and API keys (hashes only: the caller hashes; the store never sees a secret).

Webhook secrets are stored as given, because signing needs them in clear; protect the database file.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Generic, TypeVar

import duckdb
import msgspec

from wdp.schemas import (
    ALERT_RULE_JSON,
    JSON_ENCODER,
    ROUTER_JSON,
    WEBHOOK_JSON,
    ZONE_JSON,
    AlertRule,
    Router,
    WebhookSubscription,
    Zone,
)

T = TypeVar("T", Zone, AlertRule, WebhookSubscription, Router)


class ConfigTable(Generic[T]):
    """CRUD over one ``(id, body, updated_at)`` table holding Structs with an ``id`` field."""

    def __init__(self, table: str, decoder: msgspec.json.Decoder[T]) -> None:
        self.table = table
        self._decoder = decoder

    def put(self, con: duckdb.DuckDBPyConnection, item: T, *, now: float | None = None) -> T:
        """Insert or replace by id."""
        con.execute(
            f"INSERT INTO {self.table} VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            [item.id, JSON_ENCODER.encode(item).decode(), time.time() if now is None else now],
        )
        return item

    def get(self, con: duckdb.DuckDBPyConnection, item_id: str) -> T | None:
        row = con.execute(f"SELECT body FROM {self.table} WHERE id = ?", [item_id]).fetchone()
        return None if row is None else self._decoder.decode(row[0])

    def list(self, con: duckdb.DuckDBPyConnection) -> list[T]:
        rows = con.execute(f"SELECT body FROM {self.table} ORDER BY id").fetchall()
        return [self._decoder.decode(body) for (body,) in rows]

    def delete(self, con: duckdb.DuckDBPyConnection, item_id: str) -> bool:
        rows = con.execute(f"DELETE FROM {self.table} WHERE id = ? RETURNING id", [item_id]).fetchall()
        return bool(rows)


ZONES: ConfigTable[Zone] = ConfigTable("zones", ZONE_JSON)
ALERT_RULES: ConfigTable[AlertRule] = ConfigTable("alert_rules", ALERT_RULE_JSON)
WEBHOOKS: ConfigTable[WebhookSubscription] = ConfigTable("webhooks", WEBHOOK_JSON)
ROUTERS: ConfigTable[Router] = ConfigTable("routers", ROUTER_JSON)


def active_webhooks(con: duckdb.DuckDBPyConnection, event_type: str | None = None) -> list[WebhookSubscription]:
    """Active subscriptions, optionally only those that want ``event_type``."""
    subs = [s for s in WEBHOOKS.list(con) if s.active]
    return subs if event_type is None else [s for s in subs if s.wants(event_type)]


# ------------------------------------------------------------------------------------------------ users


class UserRecord(msgspec.Struct, kw_only=True, frozen=True):
    username: str
    password_hash: str
    scopes: list[str]
    disabled: bool
    created_at: float


class ApiKeyRecord(msgspec.Struct, kw_only=True, frozen=True):
    key_id: str
    key_hash: str
    owner: str
    scopes: list[str]
    created_at: float
    revoked: bool
    last_used: float | None


def put_user(
    con: duckdb.DuckDBPyConnection,
    username: str,
    password_hash: str,
    scopes: Sequence[str],
    *,
    disabled: bool = False,
    now: float | None = None,
) -> UserRecord:
    """Create or update a user (created_at is kept on update)."""
    t = time.time() if now is None else now
    row = con.execute(
        "INSERT INTO users VALUES (?, ?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET "
        "password_hash = excluded.password_hash, scopes = excluded.scopes, disabled = excluded.disabled "
        "RETURNING *",
        [username, password_hash, list(scopes), disabled, t],
    ).fetchone()
    assert row is not None
    return UserRecord(username=row[0], password_hash=row[1], scopes=list(row[2]), disabled=row[3], created_at=row[4])


def get_user(con: duckdb.DuckDBPyConnection, username: str) -> UserRecord | None:
    row = con.execute("SELECT * FROM users WHERE username = ?", [username]).fetchone()
    if row is None:
        return None
    return UserRecord(username=row[0], password_hash=row[1], scopes=list(row[2]), disabled=row[3], created_at=row[4])


def list_users(con: duckdb.DuckDBPyConnection) -> list[UserRecord]:
    rows = con.execute("SELECT * FROM users ORDER BY username").fetchall()
    return [
        UserRecord(username=r[0], password_hash=r[1], scopes=list(r[2]), disabled=r[3], created_at=r[4]) for r in rows
    ]


def delete_user(con: duckdb.DuckDBPyConnection, username: str) -> bool:
    return bool(con.execute("DELETE FROM users WHERE username = ? RETURNING username", [username]).fetchall())


def _key(row: Sequence[object]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row[0],
        key_hash=row[1],
        owner=row[2],
        scopes=list(row[3]),  # type: ignore[arg-type]
        created_at=row[4],
        revoked=row[5],
        last_used=row[6],
    )  # type: ignore[arg-type]


def add_api_key(
    con: duckdb.DuckDBPyConnection,
    key_id: str,
    key_hash: str,
    owner: str,
    scopes: Sequence[str],
    *,
    now: float | None = None,
) -> ApiKeyRecord:
    row = con.execute(
        "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, false, NULL) RETURNING *",
        [key_id, key_hash, owner, list(scopes), time.time() if now is None else now],
    ).fetchone()
    assert row is not None
    return _key(row)


def find_api_key(con: duckdb.DuckDBPyConnection, key_hash: str) -> ApiKeyRecord | None:
    """The non-revoked key with this hash, if any."""
    row = con.execute("SELECT * FROM api_keys WHERE key_hash = ? AND NOT revoked", [key_hash]).fetchone()
    return None if row is None else _key(row)


def touch_api_key(con: duckdb.DuckDBPyConnection, key_id: str, *, now: float | None = None) -> None:
    con.execute("UPDATE api_keys SET last_used = ? WHERE key_id = ?", [time.time() if now is None else now, key_id])


def revoke_api_key(con: duckdb.DuckDBPyConnection, key_id: str) -> bool:
    rows = con.execute(
        "UPDATE api_keys SET revoked = true WHERE key_id = ? AND NOT revoked RETURNING key_id", [key_id]
    ).fetchall()
    return bool(rows)


def list_api_keys(con: duckdb.DuckDBPyConnection, owner: str | None = None) -> list[ApiKeyRecord]:
    if owner is None:
        rows = con.execute("SELECT * FROM api_keys ORDER BY created_at, key_id").fetchall()
    else:
        rows = con.execute("SELECT * FROM api_keys WHERE owner = ? ORDER BY created_at, key_id", [owner]).fetchall()
    return [_key(r) for r in rows]
