"""Sensing through the engine: real ESP32 / ESP32-C3 / Intel 5300 recordings and a synthetic quiet -> motion ->
quiet stream go through the engine at speed; states come once a second per router and per zone, calibration
goes calibrating -> auto (or starts from a baseline), motion events bracket the change, the history stores the
states, and input trouble (a frame shape change, a timestamp jump) is counted in the link status."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from engine_fixtures import cached_tiny_model
from sensing_fixtures import (
    D1_WALKING,
    D3_TEST,
    D5_NORMAL,
    MOTION_FROM_S,
    MOTION_UNTIL_S,
    ListSource,
    real_fixtures,
    synthetic_stream,
)

from wdp import schemas
from wdp.csi.sources import ArraySource, ReplaySource
from wdp.engine import Engine, EngineConfig, ModelRunner, Topic
from wdp.engine.config import compose_serve_config, engine_config
from wdp.engine.sensing_stage import SensingSettings
from wdp.sensing import SensingConfig
from wdp.store import Store
from wdp.store import sensing as store_sensing

SENSING_ONLY = EngineConfig(detector="none")


def _run(engine: Engine, timeout: float = 120.0) -> tuple[list[schemas.SensingState], list[schemas.EventBase]]:
    """Run a finite engine to the end; every sensing state and event it published, in order."""
    sub = engine.bus.subscribe({Topic.SENSING, Topic.EVENT}, maxsize=1_000_000, name="test")
    with engine:
        assert engine.wait(timeout), "engine did not finish"
    msgs = sub.drain()
    assert sub.dropped == 0
    states = [m.payload for m in msgs if m.topic is Topic.SENSING]
    events = [m.payload for m in msgs if m.topic is Topic.EVENT]
    return states, events


def _sensing_events(events: list[schemas.EventBase]) -> list[tuple[str, str | None, str | None, float]]:
    names = ("motion.started", "motion.stopped", "presence.changed", "breathing.updated")
    return [
        (schemas.event_type(e), getattr(e, "router_id", None), getattr(e, "zone_id", None), e.timestamp)
        for e in events
        if schemas.event_type(e) in names
    ]


def _once_a_second(states: list[schemas.SensingState]) -> None:
    t = np.array([s.timestamp for s in states])
    assert len(t) > 5 and np.allclose(np.diff(t), 1.0), np.diff(t)


def _calibrates(states: list[schemas.SensingState], to: str = "auto") -> None:
    cal = [s.calibration for s in states]
    first = cal.index(to)
    assert set(cal[:first]) <= {"calibrating"} and set(cal[first:]) == {to}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> ModelRunner:
    return ModelRunner.load(cached_tiny_model(tmp_path_factory))


def test_real_esp32_recording_beside_the_pose_model_is_stored(tiny: ModelRunner) -> None:
    """An ESP32 64x1x1 capture through the whole engine (pose model on): sensing runs on every packet, the
    states land in the history."""
    path = real_fixtures() / D5_NORMAL
    with Store(":memory:") as store:
        engine = Engine([ReplaySource(path, router_id="esp", realtime=False)], model=tiny, store=store)
        states, events = _run(engine)
        assert {s.router_id for s in states} == {"esp"} and {s.zone_id for s in states} == {None}
        assert all(s.source == "replay" for s in states)
        _once_a_second(states)
        assert 55 <= len(states) <= 61  # a 60 s recording
        _calibrates(states)
        link = {x.router_id: x for x in engine.metrics().sensing}["esp"]
        assert link.packets == 615 and link.shape == [64, 1, 1] and link.calibration == "auto"
        assert link.shape_changes == link.time_jumps == link.bad_frames == 0
        assert link.last_state_at == states[-1].timestamp
        m = engine.metrics()
        assert m.sensing_states == len(states) and m.store is not None and m.store.sensing_written == len(states)
        # history: the same states, by router and time range, with a limit
        con = store.cursor()
        t0, t1 = states[0].timestamp, states[-1].timestamp + 1
        assert store_sensing.history(con, t0, t1, router_id="esp", limit=1000) == states
        assert store_sensing.history(con, t0, t1, limit=5) == states[:5]
        assert store_sensing.history(con, t0, t1, zone_id="esp", limit=10) == []
        # sensing events were stored like every other event
        stored = con.execute("SELECT type FROM events WHERE type LIKE 'presence.%' OR type LIKE 'motion.%'").fetchall()
        assert len(stored) == len([e for e in _sensing_events(events) if e[0] != "breathing.updated"])


def test_real_quiet_then_movement_recording_starts_motion_at_the_change() -> None:
    """ESP32-C3 recording (D3 micro-espectre test set): 30 s of a quiet room, then a person moving."""
    pytest.importorskip("wdp.csi.espectre_npz", reason="read_capture does not read ESPectre .npz yet")
    from wdp.csi import read_capture

    cap = read_capture(real_fixtures() / D3_TEST)  # an archive, not a stream: replayed from memory
    t = np.asarray(cap.meta["timestamp"], np.float64)
    src = ArraySource({"c3": (t - t[0], np.stack(cap.csi))}, realtime=False)
    engine = Engine([src], config=SENSING_ONLY)
    states, events = _run(engine)
    _once_a_second(states)
    _calibrates(states)
    t0 = engine.grid_base
    starts = [t - t0 for name, _, _, t in _sensing_events(events) if name == "motion.started"]
    assert starts and 29.0 <= starts[0] <= 35.0, starts  # motion starts at ~30.0 s (dataset_info.json)
    assert not any(s.motion for s in states if s.timestamp - t0 < 29.0)
    assert all(s.motion for s in states if s.timestamp - t0 > 36.0)


def test_intel5300_recording_is_sensed_too() -> None:
    src = ReplaySource(real_fixtures() / D1_WALKING, router_id="iwl", realtime=False)
    states, _ = _run(Engine([src], config=SENSING_ONLY))
    _once_a_second(states)
    assert {s.router_id for s in states} == {"iwl"}


def test_synthetic_motion_events_and_zone_states() -> None:
    """Two routers placed in one zone: 'a' sees a person walk by from 25 s to 40 s, 'b' sees a quiet room."""
    ta, ca = synthetic_stream(moves=True, seed=1)
    tb, cb = synthetic_stream(moves=False, seed=2)
    cfg = EngineConfig(detector="none", sensing=SensingSettings(zones={"room": ["a", "b"]}))
    engine = Engine([ArraySource({"a": (ta, ca), "b": (tb, cb)}, realtime=False)], config=cfg)
    states, events = _run(engine)
    t0 = engine.grid_base
    by = defaultdict(list)
    for s in states:
        assert (s.router_id is None) != (s.zone_id is None)  # a router's state or a zone's, never both
        by[s.router_id or f"zone:{s.zone_id}"].append(s)
    assert set(by) == {"a", "b", "zone:room"}
    for key in ("a", "b"):
        _once_a_second(by[key])
        _calibrates(by[key])
    zone = by["zone:room"]
    _once_a_second(zone)
    assert {s.timestamp for s in zone} <= {s.timestamp for s in by["a"]}
    assert len(zone) >= len(by["a"]) - 12  # every tick once both routers are calibrated
    a_moves = {s.timestamp: s.motion for s in by["a"]}
    assert all(z.motion == a_moves[z.timestamp] for z in zone)  # b never moves: the zone moves when a does
    # motion: router a, and the zone because of it; b never
    assert not any(s.motion for s in by["b"])
    for key in ("a", "zone:room"):
        moving = [s.timestamp - t0 for s in by[key] if s.motion]
        assert (
            moving
            and MOTION_FROM_S <= moving[0] <= MOTION_FROM_S + 3
            and MOTION_UNTIL_S <= moving[-1] <= MOTION_UNTIL_S + 3
        )
    seq = _sensing_events(events)
    for rid, zid in (("a", None), (None, "room")):
        motion = [(name, t - t0) for name, r, z, t in seq if (r, z) == (rid, zid) and name.startswith("motion.")]
        assert [name for name, _ in motion] == ["motion.started", "motion.stopped"], motion
        assert MOTION_FROM_S <= motion[0][1] <= MOTION_FROM_S + 3
        assert MOTION_UNTIL_S <= motion[1][1] <= MOTION_UNTIL_S + 4
    assert not [e for e in seq if e[1] == "b" and e[0].startswith("motion.")]
    links = {x.router_id: x for x in engine.metrics().sensing}
    assert links["a"].zone_ids == links["b"].zone_ids == ["room"]


def test_shape_change_and_time_jump_are_counted_not_fatal() -> None:
    """An ESP32 that switches from 64 to 128 subcarriers mid-stream, then whose clock jumps 30 s ahead."""
    t1, c1 = synthetic_stream(30.0, moves=False, seed=3)
    _, c2 = synthetic_stream(20.0, moves=False, seed=4)
    c2 = np.concatenate([c2, c2], axis=1)  # (N, 128, 1, 1)
    times = np.concatenate([t1, 30.0 + t1[: len(c2)], 80.0 + t1[: len(c2)]])
    csi = [*c1, *c2, *c2]
    details = {"port": "/dev/ttyUSB0", "lines_skipped": 3, "last_error": None}
    engine = Engine([ListSource("esp", times, csi, details)], config=SENSING_ONLY)
    states, _ = _run(engine)
    assert engine.error is None
    link = engine.metrics().sensing[0]
    assert link.shape_changes == 1 and link.time_jumps >= 1 and link.shape == [128, 1, 1]
    assert link.source == details
    assert link.notes and "shape" in link.notes[0]
    t0 = engine.grid_base
    cal = [(s.timestamp - t0, s.calibration) for s in states]
    assert any(c == "auto" and t < 30 for t, c in cal)  # calibrated on the 64-subcarrier frames
    assert any(c == "calibrating" and 30 <= t < 40 for t, c in cal)  # restarted on the new shape
    assert any(c == "auto" and t >= 80 for t, c in cal)  # and calibrated again
    assert states[-1].timestamp - t0 >= 95.0  # states kept coming after the jump


def test_baseline_recording_calibrates_at_start() -> None:
    path = real_fixtures() / D5_NORMAL
    cfg = EngineConfig(detector="none", sensing=SensingSettings(baselines={"esp": str(path)}))
    states, _ = _run(Engine([ReplaySource(path, router_id="esp", realtime=False)], config=cfg))
    assert states and {s.calibration for s in states} == {"baseline"}
    bad = EngineConfig(detector="none", sensing=SensingSettings(baselines={"esp": str(path.with_suffix(".nope"))}))
    with pytest.raises((FileNotFoundError, ValueError)):
        Engine([ReplaySource(path, router_id="esp", realtime=False)], config=bad)


def test_sensing_can_be_turned_off_and_configured_from_the_serve_config() -> None:
    cfg = engine_config(compose_serve_config(["sensing.enabled=false"]))
    assert cfg.sensing.enabled is False
    t, c = synthetic_stream(20.0, moves=False)
    states, _ = _run(
        Engine([ArraySource({"a": (t, c)}, realtime=False)], config=cfg.__class__(detector="none", sensing=cfg.sensing))
    )
    assert states == []
    cfg = engine_config(
        compose_serve_config(["+sensing.zones.kitchen=[r1,r2]", "+sensing.motion_on=6", "sensing.zone_stale_s=5"])
    )
    assert cfg.sensing.enabled and dict(cfg.sensing.zones) == {"kitchen": ["r1", "r2"]}
    assert cfg.sensing.detector == SensingConfig(motion_on=6) and cfg.sensing.zone_stale_s == 5
    with pytest.raises(ValueError, match="unknown SensingConfig settings: motion_onn"):
        engine_config(compose_serve_config(["+sensing.motion_onn=6"]))
