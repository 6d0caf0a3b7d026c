"""PostgreSQL backend of the history store (``store.backend=postgres``): the same interface, migrations and
queries as the DuckDB store, for several hubs sharing one history.

How the same code runs on both engines: every ``wdp.store`` function takes a connection and calls
``execute(sql, params)`` / ``fetchone`` / ``fetchall`` / ``fetchnumpy`` and, for batched appends,
``register(name, numpy_columns)`` then ``INSERT ... SELECT FROM name``. ``PgConnection`` gives a psycopg 3
connection that surface:

* SQL is written once, in the subset both engines read (``ARRAY[...]``, aliased subqueries, qualified upsert
  columns); ``translate`` maps the remaining spellings: ``?`` / ``$name`` parameters to psycopg's, DuckDB's
  ``FLOAT`` (4 bytes) to ``REAL``, ``DOUBLE`` to ``DOUBLE PRECISION``, ``BLOB`` to ``BYTEA``.
* ``register`` creates a session TEMP table and fills it with one ``COPY`` (no per-row INSERT); NaN in a float
  column becomes NULL, as in DuckDB's numpy scan.
* the connection is in autocommit mode, so ``wdp.store.transaction`` (BEGIN / COMMIT / ROLLBACK) works as is.

Time partitioning: the append-only, time-ordered tables (pose rows, zone rows, sensing states, DensePose,
delivery log) are ``PARTITION BY RANGE (ts)`` with one partition per UTC day, created ahead by
``ensure_partitions`` (at open and by the hub every hour) and a DEFAULT partition for anything outside them, so
no insert ever fails for want of a partition; a BRIN index on ``ts`` prunes range scans inside a partition.
TimescaleDB: a hypertable needs a timestamp or integer time column, and ``ts`` is DOUBLE epoch seconds (the
wire value, shared with DuckDB and every query), so hypertables are not used even where the extension exists;
``timescaledb_available`` reports it. Retention can drop whole day partitions (``drop_partitions_before``).

Webhook outbox: ``outbox.claim_due`` on a PostgreSQL connection selects due rows ``FOR UPDATE SKIP LOCKED``,
so hubs claiming at the same time get disjoint items without conflicts or retries.

Several processes may open the same database: migrations run under an advisory lock.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import pq

from wdp.store.base import StoreBase
from wdp.store.pg_copy import binary_copy

_log = logging.getLogger(__name__)

DIALECT = "postgres"
DAY_S = 86400.0
# Append-only tables with a ts column: partitioned by day.
PARTITIONED = ("pose_frames", "pose_persons", "person_zones", "zone_occupancy", "sensing_states", "pose_dense")
_MIGRATION_LOCK = 0x77647001  # pg_advisory_lock key for "wdp schema migration"

_CREATE = re.compile(r"^\s*CREATE TABLE (\w+) \(", re.IGNORECASE)
_NAMED = re.compile(r"\$([A-Za-z_]\w*)")
_FLOAT = re.compile(r"\bFLOAT\b")
_DOUBLE = re.compile(r"\bDOUBLE\b(?!\s+PRECISION)")
_BLOB = re.compile(r"\bBLOB\b")
_NAME = re.compile(r"^[A-Za-z_]\w*$")


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """DuckDB spelling -> PostgreSQL spelling of one statement (pure; cached)."""
    out = sql.replace("%", "%%")
    out = _NAMED.sub(r"%(\1)s", out)
    out = out.replace("?", "%s")
    out = _FLOAT.sub("REAL", out)
    out = _DOUBLE.sub("DOUBLE PRECISION", out)
    out = _BLOB.sub("BYTEA", out)
    out = out.replace("epoch(current_timestamp)", "extract(epoch FROM now())")
    out = out.replace("BEGIN TRANSACTION", "BEGIN")
    m = _CREATE.match(sql)
    if m and m.group(1) in PARTITIONED:
        out = out.rstrip() + " PARTITION BY RANGE (ts)"
    return out


def _pg_type(a: np.ndarray) -> str:
    kind, size = a.dtype.kind, a.dtype.itemsize
    if kind == "f":
        return "REAL" if size == 4 else "DOUBLE PRECISION"
    if kind in "iu":
        return {1: "SMALLINT", 2: "SMALLINT", 4: "INTEGER"}.get(size, "BIGINT")
    if kind == "b":
        return "BOOLEAN"
    if kind == "S":
        return "BYTEA"
    return "TEXT"


def _column_values(a: np.ndarray) -> list[Any]:
    values = a.tolist()
    if a.dtype.kind == "f" and np.isnan(a).any():
        values = [None if v != v else v for v in values]
    return values


_NP_TYPES = {700: np.float32, 701: np.float64, 20: np.int64, 23: np.int32, 21: np.int16, 16: np.bool_}


class PgResult:
    """The result of one statement: DuckDB's fetch methods over a psycopg cursor."""

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur

    def _count(self) -> list[tuple[Any, ...]]:
        # DuckDB answers INSERT/UPDATE/DELETE without RETURNING with one row: the number of rows changed
        verb = (self._cur.statusmessage or "").split(" ", 1)[0]
        return [(self._cur.rowcount,)] if verb in ("INSERT", "UPDATE", "DELETE") else []

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._cur.description:
            return self._cur.fetchone()
        rows = self._count()
        return rows[0] if rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cur.fetchall() if self._cur.description else self._count()

    def fetchnumpy(self) -> dict[str, np.ndarray]:
        desc = self._cur.description or []
        rows = self._cur.fetchall()
        out: dict[str, np.ndarray] = {}
        for i, col in enumerate(desc):
            values = [r[i] for r in rows]
            dtype = _NP_TYPES.get(col.type_code)
            if dtype is None:
                out[col.name] = np.array(values, dtype=object)
            elif None in values:  # DuckDB's fetchnumpy masks NULLs; so does this
                mask = np.array([v is None for v in values])
                data = np.array([0 if v is None else v for v in values], dtype=dtype)
                out[col.name] = np.ma.masked_array(data, mask=mask)
            else:
                out[col.name] = np.array(values, dtype=dtype)
        return out


class PgConnection:
    """A psycopg 3 connection with the DuckDB connection methods ``wdp.store`` uses. One per thread."""

    dialect = DIALECT

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn = psycopg.connect(dsn, autocommit=True)
        self._closed = False
        self.reconnects = 0
        self._registered: set[str] = set()

    def _live(self) -> psycopg.Connection[Any]:
        """The connection, re-opened if the last statement found it broken (server restart, network). The
        statement that failed raised, so its transaction rolled back; nothing runs half on the old session."""
        if self._conn.broken or (self._conn.closed and not self._closed):
            _log.warning("PostgreSQL connection lost; reconnecting")
            self._conn = psycopg.connect(self.dsn, autocommit=True)
            self.reconnects += 1
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> PgResult:
        # binary results: a REAL comes back as the exact float32 value (text would round it to 9 digits)
        cur = self._live().cursor(binary=True)
        cur.execute(translate(sql), params if params else None)  # type: ignore[arg-type]
        return PgResult(cur)

    def register(self, name: str, columns: dict[str, Any]) -> None:
        """A TEMP table ``name`` holding ``columns`` (equal-length 1-D arrays), filled with one COPY."""
        if not _NAME.match(name):
            raise ValueError(f"bad table name {name!r}")
        cols = {k: np.asarray(v) for k, v in columns.items()}
        for key in cols:
            if not _NAME.match(key):
                raise ValueError(f"bad column name {key!r}")
        ddl = ", ".join(f"{k} {_pg_type(a)}" for k, a in cols.items())
        self._live().execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
        self._conn.execute(f"CREATE TEMP TABLE {name} ({ddl})")
        self._registered.add(name)
        data = binary_copy(list(cols.values()))  # numpy-assembled binary COPY (wdp.store.pg_copy)
        if data is not None:
            with self._conn.cursor() as cur, cur.copy(f"COPY {name} FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(data)
            return
        values = [_column_values(a) for a in cols.values()]
        with self._conn.cursor() as cur, cur.copy(f"COPY {name} FROM STDIN") as copy:
            for row in zip(*values, strict=True):
                copy.write_row(row)

    def unregister(self, name: str) -> None:
        self._registered.discard(name)
        if self._conn.broken or self._conn.info.transaction_status == pq.TransactionStatus.INERROR:
            return  # the ROLLBACK that follows undoes it (or the next register drops it)
        self._conn.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")

    def cursor(self) -> PgConnection:
        """A new connection to the same database (DuckDB's ``cursor()`` semantics)."""
        return PgConnection(self.dsn)

    def close(self) -> None:
        self._closed = True
        self._conn.close()

    @property
    def closed(self) -> bool:
        return self._conn.closed


def timescaledb_available(con: PgConnection) -> bool:
    row = con.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return bool(row and row[0])


def _day(t: float) -> float:
    return float(np.floor(t / DAY_S) * DAY_S)


def ensure_partitions(con: PgConnection, start: float, end: float) -> list[str]:
    """Create the DEFAULT partition and one partition per UTC day in [start, end) of every partitioned table
    (idempotent; a day whose rows already sit in DEFAULT is left there). Returns the partitions created."""
    created: list[str] = []
    for table in PARTITIONED:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table}_default PARTITION OF {table} DEFAULT")
        day = _day(start)
        while day < end:
            name = f"{table}_d{dt.datetime.fromtimestamp(day, dt.UTC):%Y%m%d}"
            exists = con.execute("SELECT to_regclass(?) IS NOT NULL", [name]).fetchone()
            if not (exists and exists[0]):
                try:
                    con.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ({day!r}) TO "
                        f"({day + DAY_S!r})"
                    )
                    created.append(name)
                except (psycopg.errors.CheckViolation, psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                    # rows of that day are in DEFAULT already, or another hub created it at the same moment
                    _log.info("partition %s not created (exists or rows in the default partition)", name)
            day += DAY_S
    return created


# Indexes DuckDB does without (its zonemaps prune time ranges): BRIN on ts of the append-ordered tables (a few
# pages per partition, cheap to maintain, prunes ranges like a zonemap), B-trees on the small keyed tables'
# range and claim columns. Created on the partitioned parents: every partition, present and future, gets them.
_INDEXES = (
    *(f"CREATE INDEX IF NOT EXISTS {t}_ts_brin ON {t} USING brin (ts)" for t in PARTITIONED),
    "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS delivery_log_ts ON delivery_log (ts)",
)


def ensure_indexes(con: PgConnection) -> None:
    for statement in _INDEXES:
        con.execute(statement)


def drop_partitions_before(con: PgConnection, before: float) -> list[str]:
    """Drop whole day partitions that end at or before ``before`` (retention without row deletes)."""
    dropped: list[str] = []
    for table in PARTITIONED:
        rows = con.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ?",
            [table],
        ).fetchall()
        for name, bound in rows:
            m = re.search(r"TO \('?([-0-9.e+]+)'?\)", bound or "")
            if m and float(m.group(1)) <= before:
                con.execute(f"DROP TABLE {name}")
                dropped.append(name)
    return dropped


class PgStore(StoreBase):
    """The history store on PostgreSQL; the same methods as ``wdp.store.Store``.

    ``dsn``: a libpq connection string or URI. ``path``: the local state directory file the API keeps next to
    the store (its JWT secret); defaults to none. ``partition_days``: day partitions created ahead at open.
    """

    backend = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        migrate: bool = True,
        partition_days: int = 7,
        state_path: str | None = None,
        clock: Any = None,
    ) -> None:
        import time

        super().__init__()
        self.dsn = dsn
        self.path = state_path or ":memory:"
        self.read_only = False
        self._migrate = migrate
        self._partition_days = partition_days
        self._clock = clock or time.time

    def open(self) -> PgStore:
        from wdp.store import schema

        if self._con is not None:
            raise RuntimeError("store already open")
        con = PgConnection(self.dsn)
        try:
            con.execute("SELECT pg_advisory_lock(?)", [_MIGRATION_LOCK])
            try:
                if self._migrate:
                    schema.migrate(con)  # type: ignore[arg-type]
                else:
                    schema.check_version(con)  # type: ignore[arg-type]
                now = self._clock()
                ensure_partitions(con, now - DAY_S, now + self._partition_days * DAY_S)
                if self._migrate:
                    ensure_indexes(con)
            finally:
                con.execute("SELECT pg_advisory_unlock(?)", [_MIGRATION_LOCK])
        except BaseException:
            con.close()
            raise
        self._con = con
        return self

    def checkpoint(self) -> None:
        """Nothing to fold: PostgreSQL checkpoints on its own (kept for the Store interface)."""

    def maintain(self) -> list[str]:
        """Create the coming days' partitions (call about hourly; the hub does)."""
        now = self._clock()
        return ensure_partitions(self.cursor(), now - DAY_S, now + self._partition_days * DAY_S)


def open_store(target: str, **options: Any) -> Any:
    """A closed Store for ``target``: a ``postgresql://`` / ``postgres://`` URI or ``key=value`` DSN gives a
    PgStore, anything else a DuckDB file path (":memory:" for tests). ``options`` go to the constructor."""
    from wdp.store.connection import Store

    if is_dsn(target):
        return PgStore(target, **options)
    return Store(target, **options)


def is_dsn(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://")) or ("=" in target and "dbname" in target)
