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
