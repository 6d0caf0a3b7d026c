"""PostgreSQL specifics of the store: day partitions (rows land in their day, retention drops whole days), the
indexes, statement translation, reconnect after a server restart. The shared behaviour tests (writer, queries,
outbox, sensing) run on both backends in their own files."""

from __future__ import annotations

import time

from _store_frames import make_frames

from wdp.store import queries
from wdp.store.postgres import DAY_S, PgStore, drop_partitions_before, translate


def test_translate_parameters_and_types() -> None:
    assert translate("SELECT x FROM t WHERE a = ? AND b LIKE '%z'") == "SELECT x FROM t WHERE a = %s AND b LIKE '%%z'"
    assert translate("UPDATE t SET v = $now LIMIT $limit") == "UPDATE t SET v = %(now)s LIMIT %(limit)s"
    assert translate("CREATE TABLE x (a DOUBLE, b FLOAT[4], c BLOB)") == (
        "CREATE TABLE x (a DOUBLE PRECISION, b REAL[4], c BYTEA)"
    )
    assert translate("CREATE TABLE pose_frames (ts DOUBLE NOT NULL)").endswith("PARTITION BY RANGE (ts)")


def test_rows_land_in_day_partitions_and_retention_drops_days(postgres) -> None:
    now = time.time()
    with PgStore(postgres.fresh_database(), clock=lambda: now) as store:
        frames = make_frames(20, n_tracks=2, t0=now - 60)
        with store.writer() as w:
            for f in frames:
                w.append(f)
        con = store.cursor()
        where = con.execute("SELECT DISTINCT tableoid::regclass::text FROM pose_frames").fetchall()
        assert len(where) == 1 and where[0][0].startswith("pose_frames_d")  # not the DEFAULT partition
        rows = con.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'pose_frames'").fetchall()
        indexes = {r[0] for r in rows}
        assert "pose_frames_ts_brin" in indexes
        assert len(queries.pose_history(con, now - 120, now + 1, limit=100)) == 20
        dropped = drop_partitions_before(con, now + 2 * DAY_S)
        assert where[0][0] in dropped
        assert queries.pose_history(con, now - 120, now + 1, limit=100) == []


def test_connection_comes_back_after_a_server_restart(postgres) -> None:
    with PgStore(postgres.fresh_database()) as store:
        con = store.cursor()
        assert con.execute("SELECT 1").fetchone() == (1,)
        postgres.stop("fast")
        postgres.start()
        try:
            con.execute("SELECT 1")
        except Exception:  # the statement that finds the connection dead fails; the next one reconnects
            pass
        assert con.execute("SELECT 2").fetchone() == (2,)
        assert con.reconnects == 1


def test_binary_copy_matches_the_row_by_row_copy(postgres) -> None:
    """register() fills its TEMP table with a numpy-assembled binary COPY (wdp.store.pg_copy): every type the
    store registers, NULLs (NaN floats, None text) included, reads back exactly as the row-by-row COPY's."""
    import numpy as np

    from wdp.store.pg_copy import binary_copy

    rng = np.random.default_rng(0)
    n = 257
    f32 = rng.normal(size=n).astype(np.float32)
    f32[::7] = np.nan
    cols = {
        "a": f32,
        "b": np.where(np.arange(n) % 5 == 0, np.nan, rng.normal(size=n) * 1e9),
        "c": rng.integers(-(2**31), 2**31, size=n, dtype=np.int64),
        "d": rng.integers(-100, 100, size=n).astype(np.int32),
        "e": rng.integers(-100, 100, size=n).astype(np.int8),
        "f": rng.random(n) < 0.5,
        "g": np.array([None if i % 3 == 0 else f"zone-{i} é\t\\ ü" * (i % 4) for i in range(n)], dtype=object),
    }
    assert binary_copy(list(cols.values())) is not None
    assert binary_copy([np.array([1, "x"], dtype=object)]) is None  # not str/None: row-by-row instead
    with PgStore(postgres.fresh_database()) as store:
        con = store.cursor()
        con.register("_fast", cols)
        fast = con.execute("SELECT a, b, c, d, e, f, g FROM _fast").fetchall()
        con.register("_slow", {**cols, "g": np.array([*cols["g"].tolist()[:-1], 1], dtype=object)})
        slow = con.execute("SELECT a, b, c, d, e, f, g FROM _slow").fetchall()  # the row-by-row path
        empty = {k: v[:0] for k, v in cols.items()}
        con.register("_empty", empty)
        assert con.execute("SELECT count(*) FROM _empty").fetchone() == (0,)
    assert len(fast) == n
    assert fast[:-1] == slow[:-1]
    assert fast[0][0] is None and fast[0][1] is None and fast[0][6] is None  # NaN and None are NULL
    assert fast[1][6] == cols["g"][1]
