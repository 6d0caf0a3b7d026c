"""Engine integration: scripted simulator scenes (exact event sequence with the ground-truth detector), the
model path end to end, replay of real captures, live UDP, backpressure, model swap, store flush."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import numpy as np
import pytest
import torch
from engine_fixtures import BED, cached_tiny_model, export_tiny_model, two_person_scene

from wdp import schemas
from wdp.csi import encode_relay_datagram, read_capture
from wdp.csi.simulator import SceneSimulator, random_scene
from wdp.csi.sources import ArraySource, LiveUdpSource, ReplaySource, SimulatorSource
from wdp.engine import Engine, EngineConfig, ModelRunner, Topic
from wdp.store import Store, queries

torch.set_num_threads(1)
GT = EngineConfig(detector="ground_truth")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> ModelRunner:
    return ModelRunner.load(cached_tiny_model(tmp_path_factory))


def _events(msgs, skip=("system.started", "system.stopped", "router.connected", "router.disconnected")):
    return [m.payload for m in msgs if m.topic is Topic.EVENT and schemas.event_type(m.payload) not in skip]


def _frames(msgs):
    return [m.payload for m in msgs if m.topic is Topic.POSE]


def test_scripted_scene_yields_exact_event_sequence_and_stores_it() -> None:
    """Two people, ground-truth keypoints: one walks into the bed zone, the other falls. Deterministic."""
    src = SimulatorSource(routers=2, scene=two_person_scene(), loop=False, realtime=False)
    with Store(":memory:") as store:
        engine = Engine([src], config=GT, zones=[BED], store=store)
        sub = engine.bus.subscribe({Topic.POSE, Topic.EVENT}, maxsize=100_000)
        with engine:
            assert engine.wait(60)
        msgs = sub.drain()
        got = [
            (schemas.event_type(e), e.track_id, getattr(e, "zone_id", None), getattr(e, "activity", None))
            for e in _events(msgs)
        ]
        assert got == [
            ("person.detected", 1, None, None),
            ("person.detected", 2, None, None),
            ("person.activity_detected", 1, None, "standing"),
            ("person.activity_detected", 2, None, "standing"),
            ("person.activity_detected", 1, None, "walking"),
            ("person.entered_zone", 1, "bed", None),
            # the fall is confirmed after a 0.25 s lying hold, before the debounced "lying" activity
            ("person.fall_detected", 2, None, None),
            ("person.activity_detected", 2, None, "lying"),
            ("person.activity_detected", 1, "bed", "standing"),
        ]
        base = engine.grid_base
        fall = next(e for e in _events(msgs) if isinstance(e, schemas.PersonFallDetected))
        assert 4.5 < fall.timestamp - base < 6.5 and fall.alert_triggered  # the fall starts at 4.5 s
        entered = next(e for e in _events(msgs) if isinstance(e, schemas.PersonEnteredZone))
        assert 3.0 < entered.timestamp - base < 5.0

        frames = _frames(msgs)
        assert len(frames) >= 170 and all(f.source == "simulator" for f in frames)
        # Fused across both routers. Known issue: a few slots (4 of 179 here) still close with one router's
        # window when the other's thread is scheduled late, even for this non-realtime source.
        fused = sum(f.router_ids == ["sim-0", "sim-1"] for f in frames[1:-1])
        assert fused >= 0.95 * (len(frames) - 2)
        # fused across the two routers: two people, never four
        assert max(len(f.persons) for f in frames) == 2
        last = {p.track_id: p for p in frames[-1].persons}
        assert np.allclose(last[1].position, (3.7, 4.3), atol=0.1) and last[1].zone_ids == ["bed"]
        assert last[2].activity == "lying"

        # everything is in the history store, queryable
        cur = store.cursor()
        n_frames = cur.execute("SELECT count(*) FROM pose_frames WHERE source = 'simulator'").fetchone()[0]
        assert n_frames == len(frames)
        stored = queries.events(cur, 0, 2e9, limit=1000)
        kinds = [schemas.event_type(e) for e in stored]
        assert kinds.count("person.fall_detected") == 1 and kinds.count("router.connected") == 2
        # (as fast as possible, frame events carry stream time, ahead of the wall-clock system events)
        assert kinds.count("system.started") == kinds.count("system.stopped") == 1
        page = queries.pose_history(cur, base + 6.0, base + 6.5, track_id=2, limit=100)
        assert len(page) == 10 and all(f.persons[0].activity == "lying" for f in page)


def test_simulator_through_the_model_end_to_end(tiny: ModelRunner) -> None:
    src = SimulatorSource(routers=2, room_id=81, seed=5, people=1, scene_duration_s=3.0, loop=False, realtime=False)
    with Store(":memory:") as store:
        engine = Engine([src], model=tiny, store=store, config=EngineConfig(max_batch=8))
        with engine:
            assert engine.wait(60)
        m = engine.metrics()
        assert m.detector == "model" and m.model is not None and m.model.name == "wdpnet"
        assert m.windows_inferred == m.windows_received > 100 and m.batches >= m.windows_inferred / 8
        assert m.frames >= 55 and m.stages["inference"].count == m.batches
        assert m.stages["end_to_end"].count == m.frames
        cur = store.cursor()
        rows = cur.execute("SELECT count(*), min(source), max(source) FROM pose_frames").fetchone()
        assert rows == (m.frames, "simulator", "simulator")
        page = queries.pose_history(cur, 0, 2e9, limit=1000)
        assert len(page) == m.frames and all(f.router_ids == ["sim-0", "sim-1"] for f in page[1:-1])
        for f in page:  # whatever an untrained net sees, what is published is well formed
            for p in f.persons:
                assert len(p.keypoints) == 17 and 0 <= p.confidence <= 1


def _expected_slots(t: np.ndarray, hop: int = 5, window: int = 5, rate: float = 100.0) -> int:
    pos = (t - t[0]) * rate  # the replay's t = 0 is the engine's grid origin
    g0, g1 = int(np.ceil(pos[0] - 1e-3)), int(np.floor(pos[-1] + 1e-3))
    return sum(1 for g in range(g0 + window - 1, g1 + 1) if (g + 1) % hop == 0)


def test_replay_of_a_real_capture_is_stored_and_queryable(csi_dir, tiny: ModelRunner) -> None:
    """Intel 5300, 3 rx x 1 tx at 1000 packets/s (3 s): the one tx is repeated to the model's 3 tx (cyclic
    antenna map); the grid keeps the packet nearest each 10 ms instant."""
    path = csi_dir / "intel5300" / "intel5300_csiread_monitor_ch64_0x5_3000pkts.dat"
    t = read_capture(path).meta["timestamp"]
    src = ReplaySource(path, router_id="lab", realtime=False)
    with Store(":memory:") as store:
        engine = Engine([src], model=tiny, store=store)
        sub = engine.bus.subscribe({Topic.EVENT}, maxsize=1000)
        with engine:
            assert engine.wait(60)
        m = engine.metrics()
        assert src.packets == 2998
        assert m.frames == _expected_slots(t) == 60 and m.source == "replay"
        assert m.windows_dropped_overflow == m.windows_dropped_stale == 0  # not realtime: nothing dropped
        stats = engine.windower_stats()["lab"]
        assert stats["packets"] == 2998 and stats["rejected"] == 0 and stats["gaps"] == 0
        cur = store.cursor()
        sql = "SELECT ts FROM pose_frames WHERE source = 'replay' AND list_contains(router_ids, 'lab')"
        sql += " ORDER BY ts"
        ts = np.array([r[0] for r in cur.execute(sql).fetchall()])
        assert len(ts) == 60 and np.allclose(np.diff(ts), 0.05, atol=1e-6)
        events = [
            e
            for e in (msg.payload for msg in sub.drain())
            if isinstance(e, schemas.RouterConnected | schemas.RouterDisconnected)
        ]
        assert [(schemas.event_type(e), e.router_id) for e in events] == [
            ("router.connected", "lab"),
            ("router.disconnected", "lab"),
        ]
        assert events[1].reason == "end of stream"


def test_other_intel_captures_replay(csi_dir, tiny: ModelRunner) -> None:
    # 1/2/3 tx mixed in one file, all timestamps equal: packets spaced at the nominal 100 Hz, every shape
    # mapped to 3x3 (cyclic)
    sample = ReplaySource(csi_dir / "intel5300" / "intel5300_csitool_sample_log.all_csi.6.7.6.dat", realtime=False)
    with Engine([sample], model=tiny) as engine:
        assert engine.wait(30)
    assert engine.metrics().frames == _expected_slots(np.arange(29) / 100.0) == 5
    assert engine.windower_stats()["replay-0"]["rejected"] == 0
    # 3 rx x 2 tx, pairs of packets every ~100 ms (some gaps just over 0.1 s): with the default max_gap_s the
    # windows restart at those gaps; allowing 0.2 s fills the grid from the nearest packets
    path = csi_dir / "intel5300" / "intel5300_csikit_example_t410.dat"
    t = read_capture(path).meta["timestamp"]
    for max_gap, expected in ((0.1, None), (0.2, _expected_slots(t))):
        with Engine([ReplaySource(path, realtime=False)], model=tiny, config=EngineConfig(max_gap_s=max_gap)) as engine:
            assert engine.wait(30)
        st = engine.windower_stats()["replay-0"]
        if expected is None:
            assert st["gaps"] > 0 and engine.metrics().frames < _expected_slots(t)
        else:
            assert st["gaps"] == 0 and engine.metrics().frames == expected == 40


class _SlowRunner(ModelRunner):
    delay_s = 0.15

    def infer(self, amplitude, phase):
        time.sleep(self.delay_s)
        return super().infer(amplitude, phase)


def test_backpressure_drops_oldest_windows_and_keeps_memory_bounded(tiny: ModelRunner) -> None:
    """Inference far slower than the windows arrive: the queue stays within its bound, the oldest windows go,
    every window is accounted for, frames keep coming."""
    sim = SceneSimulator(random_scene(82, 1, n_people=1))
    t = np.sort(np.concatenate([np.arange(300) / 100.0]))
    csi = sim.received_csi(t, np.random.default_rng(0)).astype(np.complex64)
    src = ArraySource({"a": (t, csi), "b": (t + 0.001, csi)}, realtime=True, speed=3.0)
    slow = _SlowRunner(tiny.model)
    cfg = EngineConfig(queue_windows=4, max_batch=2, max_window_age_s=10.0, status_interval_s=0.25)
    engine = Engine([src], model=slow, config=cfg)
    alerts = engine.bus.subscribe({Topic.EVENT})
    depths = []
    with engine:
        while not engine.wait(0.02):
            depths.append(engine.metrics().queue_depth)
    m = engine.metrics()
    assert max(depths) <= 4
    assert m.windows_dropped_overflow > 20 and m.frames > 0
    assert m.windows_received == (
        m.windows_inferred + m.windows_dropped_overflow + m.windows_dropped_stale + m.windows_rejected
    )
    assert m.mean_batch > 1.0  # what queued up while the net was busy went through in one batch
    degraded = [e.payload for e in alerts.drain() if isinstance(e.payload, schemas.AlertPerformanceDegraded)]
    assert len(degraded) == 1 and degraded[0].value > 0  # one alert per cooldown (60 s)


def test_stale_windows_are_dropped(tiny: ModelRunner) -> None:
    sim = SceneSimulator(random_scene(82, 2, n_people=1))
    t = np.arange(200) / 100.0
    csi = sim.received_csi(t, np.random.default_rng(0)).astype(np.complex64)
    slow = _SlowRunner(tiny.model)
    cfg = EngineConfig(queue_windows=64, max_batch=1, max_window_age_s=0.1)
    with Engine([ArraySource({"a": (t, csi)}, realtime=True, speed=2.0)], model=slow, config=cfg) as engine:
        assert engine.wait(20)
    m = engine.metrics()
    assert m.windows_dropped_stale > 0 and m.windows_dropped_overflow == 0
    assert m.stages["end_to_end"].max_ms < 100 + 3 * _SlowRunner.delay_s * 1e3


def test_model_swap_at_run_time(tmp_path, tiny: ModelRunner) -> None:
    other = export_tiny_model(tmp_path / "other", seed=7, name="wdpnet-b")
    src = SimulatorSource(
        routers=1, room_id=83, seed=1, people=1, scene_duration_s=60.0, loop=False, realtime=True, speed=2.0
    )
    engine = Engine([src], model=tiny)
    with engine:
        t0 = time.monotonic()
        while engine.metrics().frames < 10 and time.monotonic() - t0 < 20:
            time.sleep(0.05)
        with pytest.raises(FileNotFoundError):
            engine.swap_model(tmp_path / "missing")
        before = engine.metrics().frames
        info = engine.swap_model(other)
        assert info.name == "wdpnet-b"
        while engine.metrics().frames < before + 10 and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        m = engine.metrics()
    assert m.model.swaps == 1 and m.model.name == "wdpnet-b" and m.model.path.startswith(str(other))
    assert m.frames >= before + 10 and engine.error is None


def test_live_udp_routers(tiny: ModelRunner) -> None:
    """Two routers stream wdp relay datagrams to one UDP port; one is named in the config."""
    sim = SceneSimulator(random_scene(84, 3, n_people=1))
    t = np.arange(120) / 100.0
    csi = sim.received_csi(t, np.random.default_rng(1)).astype(np.complex64)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    named_port = socks[0].getsockname()[1]
    src = LiveUdpSource(
        host="127.0.0.1",
        port=0,
        format="raw",
        shape=(30, 3, 3),
        routers=[{"id": "kitchen", "host": "127.0.0.1", "port": named_port}],
    )
    cfg = EngineConfig(disconnect_after_s=0.4)
    engine = Engine([src], model=tiny, config=cfg)
    sub = engine.bus.subscribe({Topic.POSE, Topic.EVENT}, maxsize=10_000)
    with engine:
        port = src.port
        t0 = time.perf_counter()
        for i in range(len(t)):
            while time.perf_counter() < t0 + t[i]:
                time.sleep(0.001)
            for s in socks:
                s.sendto(encode_relay_datagram(csi[i]), ("127.0.0.1", port))
        status = {r.id: r for r in engine.metrics().routers}
        time.sleep(1.0)  # silence: both routers time out
        m = engine.metrics()
    msgs = sub.drain()
    frames = _frames(msgs)
    assert set(status) == {"kitchen", f"udp-127.0.0.1:{socks[1].getsockname()[1]}"}
    assert all(r.status == "connected" for r in status.values())
    assert all(60 < r.packet_rate < 140 for r in status.values())
    assert len(frames) >= 15 and all(f.source == "live" for f in frames)
    assert {tuple(f.router_ids) for f in frames[2:-2]} == {tuple(sorted(status))}
    disc = [e for e in (msg.payload for msg in msgs) if isinstance(e, schemas.RouterDisconnected)]
    assert sorted(e.router_id for e in disc) == sorted(status) and "no packets" in disc[0].reason
    assert {r.status for r in m.routers} == {"disconnected"}
    for s in socks:
        s.close()


def test_async_context_and_subscription() -> None:
    async def main() -> tuple[list[schemas.PoseFrame], object]:
        src = SimulatorSource(routers=1, room_id=85, seed=2, people=1, scene_duration_s=60.0, realtime=True, speed=4.0)
        engine = Engine([src], config=GT)
        sub = engine.bus.subscribe({Topic.POSE}, maxsize=100)
        got = []
        async with engine:
            async for msg in sub:
                got.append(msg.payload)
                if len(got) == 20:
                    break
            m = engine.metrics()
        return got, m

    frames, m = asyncio.run(asyncio.wait_for(main(), 30))
    assert [f.frame_id - frames[0].frame_id for f in frames] == list(range(20))
    # Stream time, at any speed: frames sit on the 50 ms hop grid. On a starved machine the engine may drop
    # stale windows (realtime source), which shows as a multi-hop step and must then be counted.
    steps = np.diff([f.timestamp for f in frames]) / 0.05
    assert np.allclose(steps, np.round(steps), atol=1e-4) and (steps >= 1 - 1e-4).all()
    if (np.round(steps) > 1).any():
        assert m.windows_dropped_stale + m.windows_dropped_overflow + m.windows_dropped_late > 0
    assert m.fps > 5  # 4x realtime gives ~80 frames/s on an idle machine
    assert all(f.latency_ms >= 0 for f in frames)


def test_stop_flushes_everything_published(tmp_path) -> None:
    db = tmp_path / "h.duckdb"
    src = SimulatorSource(routers=1, room_id=86, seed=3, people=2, scene_duration_s=60.0, realtime=True, speed=2.0)
    with Store(db) as store:
        engine = Engine([src], config=GT, store=store, store_options={"flush_interval_s": 30.0})
        counter = engine.bus.subscribe({Topic.POSE, Topic.EVENT}, maxsize=100_000)
        engine.start()
        time.sleep(1.5)
        engine.stop()  # no flush was due (30 s interval): stop must write everything
        msgs = counter.drain()
        assert engine.metrics().store.dropped == 0
    with Store(db, read_only=True) as again:
        cur = again.cursor()
        assert cur.execute("SELECT count(*) FROM pose_frames").fetchone()[0] == len(_frames(msgs)) > 20
        n_events = cur.execute("SELECT count(*) FROM events").fetchone()[0]
        assert n_events == len([m for m in msgs if m.topic is Topic.EVENT])
        assert cur.execute("SELECT count(*) FROM events WHERE type = 'system.stopped'").fetchone()[0] == 1


def test_engine_rejects_bad_setups(tiny: ModelRunner, csi_dir) -> None:
    with pytest.raises(ValueError, match="needs a model"):
        Engine([SimulatorSource()])
    with pytest.raises(ValueError, match="simulator sources"):
        Engine([ReplaySource(csi_dir / "intel5300" / "intel5300_csikit_example_t410.dat")], config=GT)
    with pytest.raises(ValueError, match="at least one source"):
        Engine([], model=tiny)
    engine = Engine([SimulatorSource(scene_duration_s=2.0, loop=False, realtime=False)], config=GT)
    with engine:
        engine.wait(30)
    with pytest.raises(RuntimeError, match="runs once"):
        engine.start()


def test_threads_end_with_the_engine() -> None:
    before = {t.name for t in threading.enumerate()}
    with Engine([SimulatorSource(realtime=True)], config=GT):
        time.sleep(0.3)
    time.sleep(0.05)
    leftover = {t.name for t in threading.enumerate()} - before
    assert not [n for n in leftover if n.startswith("wdp-engine")]
