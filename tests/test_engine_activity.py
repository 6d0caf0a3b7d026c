"""The engine's activity/fall model stage (wdp.engine.activity_stage): windows per router on the card's grid (the
same windows `wdp classify` makes offline), events with detector "model", a router whose frames no model takes
switched off with its reason, bad input counted and skipped, gaps, shape changes, a lagging model, and the
stage inside the engine (events on the bus, status in the metrics, activity.detector choosing whose events
are published)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from activity_support import link_stream, motion_model

from wdp import schemas
from wdp.activity import ActivityClassifier, window_ends
from wdp.csi.sources import ArraySource
from wdp.engine import Engine, EngineConfig, Topic
from wdp.engine.activity_stage import ActivitySettings, ActivityStage
from wdp.engine.config import compose_serve_config, engine_config
from wdp.engine.sensing_stage import SensingSettings

RATE = 20.0
T0 = 1_700_000_000.0  # engine clock (epoch seconds)
Streams = dict[str, tuple[np.ndarray, np.ndarray]]  # router id -> (times, csi)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return motion_model(tmp_path_factory.mktemp("activity") / "intel")  # 30x3x1, 2 s windows every 1 s


def _stage(model: Path | str, **settings: object) -> tuple[ActivityStage, list[schemas.EventBase]]:
    events: list[schemas.EventBase] = []
    stage = ActivityStage(ActivitySettings(model=str(model), **settings), events.append)  # type: ignore[arg-type]
    return stage, events


def _feed(stage: ActivityStage, streams: Streams, batch: int = 7) -> None:
    """Interleave the routers' packets in time order, in batches per router, as a reader thread would."""
    order = sorted((float(t[i]), rid, i) for rid, (t, _) in streams.items() for i in range(len(t)))
    run: list[tuple[str, int]] = []
    for _, rid, i in order:
        if run and (run[0][0] != rid or len(run) >= batch):
            _flush(stage, streams, run)
            run = []
        run.append((rid, i))
    _flush(stage, streams, run)


def _flush(stage: ActivityStage, streams: Streams, run: list[tuple[str, int]]) -> None:
    if run:
        rid = run[0][0]
        t, c = streams[rid]
        idx = [i for _, i in run]
        stage.on_packets(rid, t[idx], list(c[idx]), block=True)


def _run(stage: ActivityStage, streams: Streams) -> dict[str, schemas.ActivityLinkStatus]:
    stage.start()
    try:
        _feed(stage, streams)
        assert stage.wait_idle(30)
    finally:
        stage.stop()
    return {x.router_id: x for x in stage.links()}


def _of(events: list[schemas.EventBase], rid: str, kind: type) -> list:
    return [e for e in events if isinstance(e, kind) and e.router_id == rid]


def test_windows_per_router_follow_the_card_grid_and_match_the_offline_windows(model_dir: Path) -> None:
    a = link_stream(12.0, moving=[(5.0, 7.0)], seed=1, start=T0)  # a fall-like swing at 5-7 s
    b = link_stream(9.0, seed=2, start=T0 + 0.37)  # still, starts later, ends sooner
    stage, events = _stage(model_dir)
    links = _run(stage, {"a": a, "b": b})

    for rid, (t, _) in (("a", a), ("b", b)):
        assert links[rid].state == "on" and links[rid].model == str(model_dir) and links[rid].shape == [30, 3, 1]
        assert links[rid].windows == len(window_ends(t[-1] - t[0], 2.0, 1.0)) and links[rid].windows_dropped == 0
        assert links[rid].packets == len(t) and links[rid].bad_frames == links[rid].other_shape == 0

    falls = _of(events, "a", schemas.PersonFallDetected)
    assert len(falls) == 1 and falls[0].detector == "model" and falls[0].track_id is None
    assert falls[0].confidence > 0.9 and falls[0].severity == "high"
    # the same window the offline classifier flags first (`wdp classify` of this recording)
    offline = ActivityClassifier.load(model_dir).classify(a[1], a[0] - a[0][0])
    first = next(r for r in offline if r.fall)
    assert falls[0].timestamp - T0 == pytest.approx(first.t, abs=1.5 / RATE)
    acts = [(e.activity, round(e.timestamp - T0)) for e in _of(events, "a", schemas.PersonActivityDetected)]
    assert acts == [("still", 3), ("fall", 7), ("still", 10)]  # each once it has led in two windows
    assert all(e.detector == "model" for e in events)
    assert _of(events, "b", schemas.PersonFallDetected) == []
    assert [e.activity for e in _of(events, "b", schemas.PersonActivityDetected)] == ["still"]


def test_fall_cooldown(model_dir: Path) -> None:
    stream = link_stream(16.0, moving=[(4.0, 6.0), (9.0, 11.0)], seed=3, start=T0)
    for cooldown, n in ((10.0, 1), (0.0, 2)):
        stage, events = _stage(model_dir, fall_cooldown_s=cooldown)
        _run(stage, {"r": stream})
        assert len(_of(events, "r", schemas.PersonFallDetected)) == n, cooldown


def test_a_router_no_model_takes_is_off_with_the_reason(model_dir: Path, tmp_path: Path) -> None:
    esp = link_stream(5.0, shape=(64, 1, 1), seed=4, start=T0)
    # a configured model for other hardware
    stage, events = _stage(model_dir)
    link = _run(stage, {"esp": esp})["esp"]
    assert link.state == "off" and link.windows == 0 and link.packets == len(esp[0]) and events == []
    assert "expects 30x3x1 frames" in (link.reason or "") and "sends 64x1x1" in (link.reason or "")
    # auto, and no shipped model takes 64x1x1
    motion_model(tmp_path / "shipped" / "intel5300")
    empty = ActivityStage(ActivitySettings(model="auto"), events.append, shipped_root=tmp_path / "shipped")
    link = _run(empty, {"esp": esp})["esp"]
    assert link.state == "off" and "no shipped activity model matches frames of shape 64x1x1" in (link.reason or "")
    assert "intel5300 30x3x1" in (link.reason or "")
    # auto picks the shipped model whose card matches each router's shape
    motion_model(tmp_path / "shipped" / "esp32", shape=(64, 1, 1), bins=4)
    auto = ActivityStage(ActivitySettings(model="auto"), events.append, shipped_root=tmp_path / "shipped")
    links = _run(auto, {"esp": esp, "intel": link_stream(5.0, seed=5, start=T0)})
    assert links["esp"].state == links["intel"].state == "on"
    assert Path(links["esp"].model or "").name == "esp32" and Path(links["intel"].model or "").name == "intel5300"
    assert links["esp"].windows == links["intel"].windows == 3  # ends at 2, 3 and 4 s of 0..4.95 s


def test_bad_frames_and_other_shapes_are_counted_and_skipped(model_dir: Path) -> None:
    t, c = link_stream(8.0, seed=6, start=T0)
    frames: list[object] = list(c)
    times = list(t)
    frames[30] = np.full((30, 3, 1), np.nan, np.complex64)  # non-finite
    frames[40] = np.zeros((0,), np.complex64)  # empty
    frames[50] = np.ones((30, 3), np.complex64)  # not (subcarriers, rx, tx)
    times[60] = float("inf")  # no usable time
    times[70] = times[69]  # time stands still
    frames[80] = np.ones((56, 1, 1), np.complex64)  # another shape
    frames[81] = np.ones((56, 1, 1), np.complex64)
    stage, _ = _stage(model_dir)
    stage.start()
    try:
        for lo in range(0, len(times), 16):
            stage.on_packets("r", np.array(times[lo : lo + 16]), frames[lo : lo + 16], block=True)  # type: ignore[arg-type]
        assert stage.wait_idle(30)
    finally:
        stage.stop()
    (link,) = stage.links()
    assert link.state == "on" and link.packets == len(times)
    assert link.bad_frames == 5 and link.other_shape == 2 and link.gaps == 0 and link.errors == 0
    assert link.windows == len(window_ends(t[-1] - t[0], 2.0, 1.0))


def test_a_gap_restarts_the_window(model_dir: Path) -> None:
    first = link_stream(5.0, seed=7, start=T0)
    second = link_stream(5.0, seed=7, start=T0 + 8.0)  # 3 s of silence (max_gap_s 1 s)
    t = np.concatenate([first[0], second[0]])
    c = np.concatenate([first[1], second[1]])
    link = _run(_stage(model_dir)[0], {"r": (t, c)})["r"]
    per_part = len(window_ends(first[0][-1] - first[0][0], 2.0, 1.0))
    assert link.gaps == 1 and link.windows == 2 * per_part


def test_a_router_that_changes_shape_is_decided_again(model_dir: Path) -> None:
    intel = link_stream(4.0, seed=8, start=T0)
    esp = link_stream(4.0, shape=(64, 1, 1), seed=8, start=T0 + 4.0)
    stage, _ = _stage(model_dir, redecide_frames=40)
    stage.start()
    try:
        for t, c in (intel, esp):
            stage.on_packets("r", t, list(c), block=True)
        assert stage.wait_idle(30)
    finally:
        stage.stop()
    (link,) = stage.links()
    assert link.shape == [64, 1, 1] and link.state == "off" and "sends 64x1x1" in (link.reason or "")
    assert link.windows == len(window_ends(intel[0][-1] - intel[0][0], 2.0, 1.0))
    assert link.other_shape == 40  # the frames that made it decide again


def test_a_lagging_model_drops_the_oldest_windows(model_dir: Path) -> None:
    t, c = link_stream(12.0, seed=9, start=T0)
    stage, events = _stage(model_dir, queue_windows=3)
    stage.on_packets("r", t, list(c))  # realtime: never blocks; the worker is not running yet
    stage.start()
    try:
        assert stage.wait_idle(30)
    finally:
        stage.stop()
    (link,) = stage.links()
    total = len(window_ends(t[-1] - t[0], 2.0, 1.0))
    assert link.windows == 3 and link.windows_dropped == total - 3
    # the newest windows were kept: the first activity event comes with the second of the last three windows
    assert events and events[0].timestamp == pytest.approx(T0 + 2.0 + (total - 2) * 1.0, abs=1e-6)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="model, keypoints or both"):
        ActivitySettings(detector="heuristic")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="not an activity model directory"):
        ActivityStage(ActivitySettings(model="/nonexistent/model"), lambda e: None)


# ------------------------------------------------------------------------------------------ inside the engine


def _engine_run(cfg: EngineConfig, streams: Streams) -> tuple[Engine, list]:
    rel = {rid: (t - T0, c) for rid, (t, c) in streams.items()}
    engine = Engine([ArraySource(rel, realtime=False)], config=cfg)
    sub = engine.bus.subscribe({Topic.EVENT}, maxsize=100_000)
    with engine:
        assert engine.wait(60)
        metrics = engine.metrics()
    return engine, [m.payload for m in sub.drain()] + [metrics]


def test_engine_publishes_the_model_events_and_reports_each_router(model_dir: Path) -> None:
    cfg = EngineConfig(
        detector="none",
        sensing=SensingSettings(enabled=False),
        activity=ActivitySettings(detector="model", model=str(model_dir)),
    )
    streams = {
        "a": link_stream(12.0, moving=[(5.0, 7.0)], seed=10, start=T0),
        "b": link_stream(12.0, seed=11, start=T0),
        "esp": link_stream(6.0, shape=(64, 1, 1), seed=12, start=T0),
    }
    engine, out = _engine_run(cfg, streams)
    metrics, events = out[-1], out[:-1]
    falls = [e for e in events if isinstance(e, schemas.PersonFallDetected)]
    assert [(f.router_id, f.detector) for f in falls] == [("a", "model")]
    assert 5.0 <= falls[0].timestamp - engine.grid_base <= 8.0
    links = {x.router_id: x for x in metrics.activity}
    assert links["a"].state == links["b"].state == "on" and links["esp"].state == "off"
    assert links["a"].windows == links["b"].windows == len(window_ends(streams["a"][0][-1] - T0, 2.0, 1.0))
    assert "sends 64x1x1" in (links["esp"].reason or "")


def test_activity_detector_choice_from_the_serve_config(model_dir: Path) -> None:
    cfg = engine_config(compose_serve_config([f"activity.model={model_dir}", "activity.detector=model"]))
    assert cfg.activity.detector == "model" and cfg.activity.model == str(model_dir)
    assert engine_config(compose_serve_config([])).activity == ActivitySettings()  # both, auto
    keypoints = EngineConfig(detector="none", activity=ActivitySettings(detector="keypoints", model=str(model_dir)))
    engine = Engine([ArraySource({"a": link_stream(3.0, start=0.0)})], config=keypoints)
    assert engine.activity is None  # the heuristic's events only: no model runs
    with pytest.raises(ValueError, match="unknown ActivitySettings settings: threshold"):
        engine_config(compose_serve_config(["+activity.threshold=0.3"]))


def test_activity_detector_model_publishes_no_keypoint_events(model_dir: Path) -> None:
    """A scripted fall with ground-truth keypoints: the heuristic's fall and activities are published with
    activity.detector both (detector "keypoints"), none with model (the model is off here: simulated 30x3x3
    frames are no shape it takes, and the status says so)."""
    from engine_fixtures import two_person_scene

    from wdp.csi.sources import SimulatorSource

    kinds = {}
    for choice in ("both", "model"):
        src = SimulatorSource(routers=1, scene=two_person_scene(), loop=False, realtime=False)
        cfg = EngineConfig(
            detector="ground_truth",
            sensing=SensingSettings(enabled=False),
            activity=ActivitySettings(detector=choice, model=str(model_dir)),  # type: ignore[arg-type]
        )
        engine = Engine([src], config=cfg)
        sub = engine.bus.subscribe({Topic.EVENT}, maxsize=100_000)
        with engine:
            assert engine.wait(120)
            (link,) = engine.metrics().activity
        events = [m.payload for m in sub.drain()]
        kinds[choice] = [
            (schemas.event_type(e), e.detector)
            for e in events
            if isinstance(e, schemas.PersonFallDetected | schemas.PersonActivityDetected)
        ]
        assert link.state == "off" and "sends 30x3x3" in (link.reason or "")
    assert ("person.fall_detected", "keypoints") in kinds["both"]
    assert {d for _, d in kinds["both"]} == {"keypoints"}
    assert kinds["model"] == []


def test_frames_of_other_transmitters_are_skipped(model_dir: Path) -> None:
    """A router hears its transmitter and, one frame in ten, a nearer device (another channel entirely): mixed
    into the windows, those frames look like violent motion (a false fall with this model)."""
    t, c = link_stream(10.0, seed=13, start=T0)
    _, other = link_stream(10.0, seed=14, start=T0)
    mac = np.full(len(t), 0xB827EB03E19F, np.int64)
    stray = np.arange(len(t)) % 10 == 5
    mac[stray] = 0xEC41184C1F6A
    c[stray] = 10 * other[stray]  # a nearer device: 20 dB louder
    for macs, falls in ((None, 1), (mac, 0)):  # without MACs the stage cannot tell them apart
        stage, events = _stage(model_dir)
        stage.start()
        try:
            for lo in range(0, len(t), 16):
                sl = slice(lo, lo + 16)
                stage.on_packets("r", t[sl], list(c[sl]), None if macs is None else macs[sl], block=True)
            assert stage.wait_idle(30)
        finally:
            stage.stop()
        (link,) = stage.links()
        assert len(_of(events, "r", schemas.PersonFallDetected)) == falls
    assert link.mac == "b8:27:eb:03:e1:9f" and link.other_sender == int(stray.sum()) and link.other_shape == 0


def test_a_replayed_capture_reads_its_dominant_transmitter(tmp_path: Path) -> None:
    from wdp.csi.sources import ReplaySource
    from wdp.data.real import fixtures_dir

    nexmon = motion_model(tmp_path / "nexmon", (256, 1, 1), rate_hz=50.0, window_s=2.0, hop_s=0.5, bins=4)
    src = ReplaySource(fixtures_dir() / "D2/standup_user1_rm1/standup_user1_rm1_1.pcap", realtime=False)
    cfg = EngineConfig(
        detector="none",
        sensing=SensingSettings(enabled=False),
        activity=ActivitySettings(detector="model", model=str(nexmon)),
    )
    engine = Engine([src], config=cfg)
    with engine:
        assert engine.wait(60)
        (link,) = engine.metrics().activity
    assert link.state == "on" and link.mac == "b8:27:eb:03:e1:9f" and link.shape == [256, 1, 1]
    assert link.packets == 500 and link.other_sender == 83 and link.bad_frames == link.other_shape == 0


def test_health_says_which_routers_the_model_reads_and_why_not() -> None:
    from wdp.serve.engine_adapter import activity_health

    on = schemas.ActivityLinkStatus(router_id="a", state="on", model="/m/intel5300", windows=12, windows_dropped=2)
    off = schemas.ActivityLinkStatus(router_id="esp", state="off", reason="no shipped activity model matches 64x1x1")
    h = activity_health([on, off])
    assert h.status == "ok" and h.detail == (
        "a: on (intel5300, 12 windows, 2 windows dropped); esp: off (no shipped activity model matches 64x1x1)"
    )
    failing = schemas.ActivityLinkStatus(router_id="a", state="on", model="/m/x", windows=3, errors=4)
    assert activity_health([failing]).status == "degraded"
    assert activity_health([]).detail == "no router has sent packets yet"


@pytest.mark.parametrize(
    ("rel", "max_dp"),
    [
        ("D1/Original Data/0512/fall down/qiang_falldown1.dat", 1e-3),  # Intel 5300: the same windows
        # nexmon: the card's occupancy filter takes its median over the live buffer, not the whole capture, and
        # the 48.8 Hz packets are resampled from another first frame: same window ends, nearby probabilities
        ("D2/sitdown_user1_rm1/sitdown_user1_rm1_1.pcap", 0.2),
    ],
)
def test_live_windows_are_the_ones_wdp_classify_makes(rel: str, max_dp: float) -> None:
    from wdp.activity import find_shipped
    from wdp.data.real import fixtures_dir
    from wdp.sensing.offline import link_frames

    link = link_frames(fixtures_dir() / rel)
    model = find_shipped(link.shape)
    assert model is not None, f"no shipped model for {link.shape}"
    offline = ActivityClassifier.load(model).classify(link.csi, link.times)
    mac = int(link.mac.replace(":", ""), 16) or -1
    stage, _ = _stage(model)
    live = []
    publish = stage._events  # the window results, as the worker turns them into events
    stage._events = lambda lnk, res: (live.append(res), publish(lnk, res))[1]  # type: ignore[method-assign]
    stage.start()
    try:
        for lo in range(0, len(link.times), 32):
            sl = slice(lo, lo + 32)
            macs = np.full(len(link.times[sl]), mac)
            stage.on_packets("r", T0 + link.times[sl], list(link.csi[sl]), macs, block=True)
        assert stage.wait_idle(60)
    finally:
        stage.stop()
    assert len(live) == len(offline) > 0
    for off, got in zip(offline, live, strict=True):
        assert got.t - T0 == pytest.approx(off.t, abs=0.06)  # the packet at or just after the end (20-49 Hz)
        assert got.activity == off.activity and abs(got.p_fall - off.p_fall) <= max_dp
