"""Migrations: versioned, idempotent, upgrade an old database in place, refuse a newer one."""

from __future__ import annotations

import duckdb
import pytest
from _store_frames import make_frames

from wdp.schemas import Zone
from wdp.store import Store, config, ids, queries, schema


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def test_fresh_database_is_at_latest_version(tmp_path):
    with Store(tmp_path / "h.duckdb") as store:
        con = store.cursor()
        assert store.schema_version() == schema.LATEST_VERSION == 7
        versions = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [v for (v,) in versions] == [1, 2, 3, 4, 5, 6, 7]
        assert {
            "pose_frames",
            "pose_persons",
            "person_zones",
            "zone_occupancy",
            "tracks",
            "events",
            "zones",
            "alert_rules",
            "webhooks",
            "routers",
            "users",
            "api_keys",
            "outbox",
            "delivery_log",
            "config_templates",
            "sensing_states",
            "id_sequences",
            "pose_dense",
        } <= _tables(con)


def test_reopening_applies_nothing_and_keeps_data(tmp_path):
    path = tmp_path / "h.duckdb"
    frames = make_frames(20)
    with Store(path) as store:
        with store.writer() as w:
            for f in frames:
                w.append(f)
    with Store(path) as store:
        con = store.cursor()
        assert schema.migrate(con) == []  # idempotent
        assert con.execute("SELECT count(*) FROM schema_version").fetchone() == (schema.LATEST_VERSION,)
        assert queries.pose_history(con, 0, 2e9, limit=1000) == frames


def test_upgrade_from_v1_keeps_history(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    assert schema.migrate(con, target=1) == [1]
    assert schema.current_version(con) == 1
    assert "zones" not in _tables(con) and "outbox" not in _tables(con)
    from wdp.store.writer import PoseWriter

    frames = make_frames(15, seed=4)
    with PoseWriter(con) as w:  # the v1 tables are all the writer needs
        for f in frames:
            w.append(f)
    con.close()

    with Store(path) as store:
        con = store.cursor()
        assert store.schema_version() == schema.LATEST_VERSION
        assert queries.pose_history(con, 0, 2e9, limit=1000) == frames
        zone = Zone(id="z", name="Z", polygon=[(0, 0), (1, 0), (1, 1)])
        config.ZONES.put(con, zone)
        assert config.ZONES.get(con, "z") == zone


def test_failed_migration_rolls_back(tmp_path, monkeypatch):
    def broken(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE half_done (i INTEGER)")
        raise RuntimeError("boom")

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS[:1], (2, "broken", broken)))
    monkeypatch.setattr(schema, "LATEST_VERSION", 2)
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    with pytest.raises(RuntimeError, match="boom"):
        schema.migrate(con)
    assert schema.current_version(con) == 1
    assert "half_done" not in _tables(con)
    con.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.duckdb"
    with Store(path) as store:
        store.cursor().execute("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    with pytest.raises(schema.SchemaTooNewError):
        Store(path).open()
    with pytest.raises(ValueError):
        schema.migrate(duckdb.connect(), target=42)


def test_read_only_open_does_not_migrate(tmp_path):
    path = tmp_path / "ro.duckdb"
    with Store(path):
        pass
    with Store(path, read_only=True) as store:
        assert store.schema_version() == schema.LATEST_VERSION
        with pytest.raises(duckdb.Error):
            store.cursor().execute("DELETE FROM events")


def test_v4_adopts_a_templates_table_made_by_an_older_server(tmp_path):
    """Servers before migration 4 created config_templates themselves; upgrading keeps its rows."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    schema.migrate(con, target=3)
    con.execute(
        "CREATE TABLE config_templates (id VARCHAR PRIMARY KEY, body VARCHAR NOT NULL, updated_at DOUBLE NOT NULL)"
    )
    con.execute("INSERT INTO config_templates VALUES ('t', '{}', 1.0)")
    assert schema.migrate(con, target=4) == [4]
    assert con.execute("SELECT id FROM config_templates").fetchall() == [("t",)]
    con.close()


def test_v5_adds_sensing_states_to_an_existing_history(tmp_path):
    path = tmp_path / "v4.duckdb"
    con = duckdb.connect(str(path))
    schema.migrate(con, target=4)
    con.close()
    with Store(path) as store:
        assert store.schema_version() == schema.LATEST_VERSION and "sensing_states" in _tables(store.cursor())


def test_v6_id_sequences_start_after_the_stored_history(tmp_path):
    """A history from before v6 (ids restarted at 1 every run) seeds the sequences past its highest ids, so the
    next engine run cannot reuse one of them."""
    path = tmp_path / "v5.duckdb"
    con = duckdb.connect(str(path))
    schema.migrate(con, target=5)
    from wdp.store.writer import PoseWriter

    frames = make_frames(15, seed=4)
    with PoseWriter(con) as w:
        for f in frames:
            w.append(f)
    con.close()
    top_frame = max(f.frame_id for f in frames)
    top_track = max(p.track_id for f in frames for p in f.persons)
    with Store(path) as store:
        con = store.cursor()
        assert store.schema_version() == schema.LATEST_VERSION
        assert ids.reserve(con, ids.FRAME, 10) == top_frame + 1
        assert ids.reserve(con, ids.FRAME, 10) == top_frame + 11  # blocks never overlap
        assert ids.reserve(con, ids.TRACK, 5) == top_track + 1
    with Store(path) as store:  # the reservation survived the restart
        assert ids.next_unreserved(store.cursor(), ids.FRAME) == top_frame + 21
