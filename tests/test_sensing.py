"""Training-free sensing (wdp.sensing) on real recordings from ../shared/data/real/fixtures and on synthetic
streams whose answer is known by construction."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from wdp import schemas
from wdp.data.real import fixtures_dir, load_recording, read_files_tsv
from wdp.sensing import LinkSensor, SensingConfig, SensingEvents, combine_zone
from wdp.sensing.breathing import estimate_breathing
from wdp.sensing.link import motion_decisions


def _rec(path_part: str):
    root = fixtures_dir()
    if not root.is_dir():
        pytest.fail("../shared/data/real/fixtures not found (set WDP_SHARED)")
    row = next(r for r in read_files_tsv() if path_part in r.path and (root / r.dataset / r.path).is_file())
    return load_recording(root, row)


def _quiet_then_moving(rng: np.random.Generator, n_quiet: int, n_move: int, rate: float = 100.0, sub: int = 52):
    """ESP32-shaped frames: a static channel plus noise, then a body-like time-varying reflection."""
    t = np.arange(n_quiet + n_move) / rate
    h0 = (rng.normal(size=sub) + 1j * rng.normal(size=sub)) * 20 + 40
    noise = (rng.normal(size=(len(t), sub)) + 1j * rng.normal(size=(len(t), sub))) * 0.6
    path = np.exp(-2j * np.pi * np.arange(sub) * 0.05)
    body = np.zeros((len(t), sub), np.complex128)
    tm = t[n_quiet:]
    body[n_quiet:] = (
        (12 * np.exp(2j * np.pi * 0.8 * tm))[:, None]
        * path[None, :]
        * (1 + 0.5 * np.sin(2 * np.pi * 0.3 * tm))[:, None]
    )
    gain = np.where(np.arange(len(t)) % 700 < 350, 1.0, 1.6)[:, None]  # AGC steps: must not look like motion
    csi = ((h0[None, :] + noise + body) * gain).astype(np.complex64)[:, :, None, None]
    return t, csi


def test_quiet_then_motion_calibrates_and_detects_with_hysteresis():
    rng = np.random.default_rng(0)
    t, csi = _quiet_then_moving(rng, 3000, 1500)
    s = LinkSensor("r1")
    states = []
    for i in range(0, len(t), 37):
        states += s.push_many(t[i : i + 37], csi[i : i + 37])
    ts = np.array([x.timestamp for x in states])
    assert np.allclose(np.diff(ts), 1.0)  # one state a second
    calib = [x.calibration for x in states]
    assert calib[0] == "calibrating" and calib[-1] == "auto"
    quiet = [x for x in states if x.calibration == "auto" and x.timestamp < 29.5]
    moving = [x for x in states if x.timestamp > 32.5]
    assert quiet and not any(x.motion for x in quiet)  # AGC steps every 3.5 s are not motion
    assert all(x.motion and x.presence for x in moving)
    ev = SensingEvents(router_id="r1")
    events = [e for x in states for e in ev.update(x)]
    names = [schemas.event_type(e) for e in events]
    assert names[:2] == ["motion.started", "presence.changed"]
    assert 29.5 < events[0].timestamp < 33.0


def test_baseline_calibration_and_single_packet_push_agree():
    rng = np.random.default_rng(1)
    t, csi = _quiet_then_moving(rng, 1500, 600)
    a = LinkSensor("a")
    a.calibrate(t[:1000], csi[:1000])
    b = LinkSensor("b")
    b.calibrate(t[:1000], csi[:1000])
    sa = a.push_many(t[1000:], csi[1000:])
    sb = [x for i in range(1000, len(t)) for x in b.push(float(t[i]), csi[i])]
    assert [x.motion_score for x in sa] == pytest.approx([x.motion_score for x in sb])
    assert sa[0].calibration == "baseline"
    assert not sa[0].motion and sa[-1].motion


def test_bad_input_is_counted_not_fatal():
    rng = np.random.default_rng(2)
    t, csi = _quiet_then_moving(rng, 1500, 0)
    s = LinkSensor("r")
    s.push_many(t[:1200], csi[:1200])
    assert s.calibrated
    # a NaN frame, then the clock jumps back (a board reset): counted, calibration kept
    bad = csi[1200:1210].copy()
    bad[3] = np.nan
    s.push_many(t[1200:1210], bad)
    s.push_many(t[100:300], csi[100:300])
    st = s.status()
    assert st.bad_frames == 1 and st.time_jumps == 1 and s.calibrated
    # the router switches to 40 MHz (more subcarriers): calibration restarts
    wide = np.ones((50, 114, 1, 1), np.complex64)
    s.push_many(t[300:350], wide)
    st = s.status()
    assert st.shape_changes == 1 and st.calibration == "calibrating" and not s.calibrated
    assert any("shape changed" in n for n in st.notes)


def test_motion_decisions_match_the_sensor_hysteresis():
    d = motion_decisions(np.array([np.nan, 1.0, 5.0, 3.0, 2.0, 5.0, 1.0]), on=4.0, off=2.5)
    assert d.tolist() == [False, False, True, True, False, True, False]


def test_breathing_rate_of_a_synthetic_chest():
    fs = 5.0
    rng = np.random.default_rng(3)
    n = int(30 * fs)
    tt = np.arange(n) / fs
    weights = rng.normal(size=40)
    x = 1 + 0.02 * np.sin(2 * np.pi * (15 / 60) * tt)[:, None] * weights[None, :] + rng.normal(size=(n, 40)) * 0.005
    est = estimate_breathing(x, fs)
    assert est is not None and abs(est.bpm - 15.0) < 0.7 and est.confidence > 0.5
    flat = 1 + rng.normal(size=(n, 40)) * 0.005
    est0 = estimate_breathing(flat, fs)
    assert est0 is not None and est0.confidence < est.confidence


def test_espectre_recordings_motion_on_movement_not_on_baseline():
    base = _rec("baseline_c3_64sc_20260329_130411")
    move = _rec("movement_c3_64sc_20260329_130429")
    half = base.times[-1] / 2
    s = LinkSensor("c3")
    s.calibrate(base.times[base.times < half], base.csi[base.times < half])
    quiet = s.push_many(base.times[base.times >= half], base.csi[base.times >= half])
    s2 = LinkSensor("c3")
    s2.calibrate(base.times[base.times < half], base.csi[base.times < half])
    moving = s2.push_many(move.times, move.csi)
    assert not any(x.motion for x in quiet)
    assert sum(x.motion for x in moving) >= len(moving) - 2


def test_intel5300_and_nexmon_shapes_run():
    for part in ("0510/walking/qiang_walking1.dat", "nm_user1_rm1/nm_user1_rm1_1.pcap"):
        r = _rec(part)
        s = LinkSensor("x", SensingConfig(calibration_s=4.0))
        states = s.push_many(r.times, r.csi)
        assert len(states) >= int(r.times[-1]) - 1
        assert s.status().features > 0 and s.status().shape == r.csi.shape[1:]


def test_zone_combines_links():
    a = schemas.SensingState(
        timestamp=1.0,
        router_id="a",
        motion=False,
        motion_score=1.0,
        presence=True,
        still=True,
        breathing_bpm=14.0,
        breathing_confidence=0.6,
        calibration="auto",
    )
    b = schemas.SensingState(
        timestamp=1.0, router_id="b", motion=True, motion_score=9.0, presence=True, calibration="baseline"
    )
    z = combine_zone("bed", [a, b], 1.0)
    assert z is not None and z.zone_id == "bed" and z.motion and z.motion_score == 9.0 and z.breathing_bpm is None
    assert (
        combine_zone("bed", [schemas.SensingState(timestamp=1.0, motion=False, motion_score=0.0, presence=False)], 1.0)
        is None
    )


def test_wdp_sense_cli_json_lines_on_the_espectre_test_recording():
    r = _rec("test_c3_64sc_20260329_130804")
    out = subprocess.run(
        [sys.executable, "-m", "wdp", "sense", str(r.file), "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert set(recs[0]) == {"t", "motion", "motion_score", "presence", "breathing_bpm"}
    change = r.truth.motion_from_s
    assert not any(x["motion"] for x in recs if x["t"] < change - 1)
    after = [x["motion"] for x in recs if x["t"] > change + 3]
    assert sum(after) >= 0.95 * len(after)
    assert "quietest" in out.stderr  # no --baseline: says how it calibrated


def test_wdp_sense_cli_baseline_and_errors(tmp_path):
    d5 = _rec("AN1_Normal_Take05")
    base = _rec("kosong_22")
    out = subprocess.run(
        [sys.executable, "-m", "wdp", "sense", str(d5.file), "--baseline", str(base.file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "t (s)" in out.stdout and "calibrated on kosong_22.csv" in out.stderr
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    bad = subprocess.run([sys.executable, "-m", "wdp", "sense", str(empty)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no CSI frames" in bad.stderr
    assert math.isfinite(1.0)


def test_packet_rate_comes_from_timestamps_however_packets_are_batched():
    """A push that spans several one-second reports (a backlog delivered at once) reports each second's own
    packets: 100/s in every report, not all of them in the first and 0 in the next ones."""
    rng = np.random.default_rng(3)
    t, csi = _quiet_then_moving(rng, 800, 0)
    for batch in (7, 250, 800):
        s = LinkSensor("r1")
        states = []
        for i in range(0, len(t), batch):
            states += s.push_many(t[i : i + batch], csi[i : i + batch])
        assert len(states) >= 5
        assert [x.packet_rate for x in states[1:]] == [100.0] * (len(states) - 1), (batch, states)
        assert all(type(x.packet_rate) is float for x in states)  # a plain float: msgspec encodes no numpy scalars
