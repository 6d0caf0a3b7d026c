"""bench/sim_sensing.py: labelled simulator streams for sensing (shapes, rates, truth, determinism, breathing)
and the simulator's additive options (breathing on Stand/Sit/Lie, props) leaving default scenes unchanged."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from wdp.csi.simulator import (
    Lie,
    PersonSpec,
    RotatingBlades,
    SceneSimulator,
    SimConfig,
    Sit,
    SwayingSheet,
    room_from_id,
    scripted_scene,
)
from wdp.csi.simulator.motion import LieSegment, StandSegment


def _load_module():
    path = Path(__file__).resolve().parents[1] / "bench" / "sim_sensing.py"
    spec = importlib.util.spec_from_file_location("sim_sensing", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sim_sensing"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


B = _load_module()


@pytest.mark.parametrize(
    ("hw", "shape", "rate", "live"),
    [("intel5300", (30, 3, 1), 100.0, 30), ("esp32", (64, 1, 1), 100.0, 52), ("nexmon", (256, 1, 1), 50.0, 242)],
)
def test_shapes_rates_and_live_subcarriers(hw, shape, rate, live):
    sc = B.make_sensing_scene("walking", hw, room=83, seed=0, duration_s=10)
    assert sc.csi.shape[1:] == shape and sc.csi.dtype == np.complex64
    assert sc.times.shape == (len(sc.csi),) and np.all(np.diff(sc.times) > 0)
    assert sc.rate_hz == rate
    measured = (len(sc.times) - 1) / (sc.times[-1] - sc.times[0])
    assert 0.93 * rate < measured <= rate * 1.01  # ~2 % loss plus bursts
    assert int((np.abs(sc.csi).mean(axis=(0, 2, 3)) > 0).sum()) == live
    re = sc.csi.real
    assert np.array_equal(re, np.round(re))  # integer I/Q as the hardware reports
    if hw == "esp32":
        assert np.abs(sc.csi.real).max() <= 128 and np.abs(sc.csi.imag).max() <= 128
    if hw == "nexmon":
        assert np.abs(sc.csi).max() > 255  # int16 range in use


def test_presets_evaluate_physics_at_their_own_frequencies():
    i5300, esp, nex = (B.hardware_preset(n) for n in ("intel5300", "esp32", "nexmon"))
    span = lambda hw: np.ptp(hw.band.frequencies)  # noqa: E731
    assert span(i5300) == pytest.approx(56 * 312.5e3)
    assert span(esp) == pytest.approx(63 * 312.5e3)
    assert span(nex) == pytest.approx(255 * 312.5e3)  # 80 MHz
    assert nex.band.center_hz == pytest.approx(5.21e9)
    assert B.hardware_preset("intel5300", rate_hz=20).rate_hz == 20.0
    with pytest.raises(ValueError):
        B.hardware_preset("atheros")


def test_truth_fields_per_kind():
    d = 30
    empty = B.make_sensing_scene("empty", "esp32", 88, 0, d)
    assert len(empty.truth) == d and [s.t for s in empty.truth] == [float(i) for i in range(1, d + 1)]
    for kind in ("empty", "fan", "curtain", "agc_steps"):
        sc = empty if kind == "empty" else B.make_sensing_scene(kind, "esp32", 88, 0, d)
        assert not sc.truth_array("motion").any() and not sc.truth_array("presence").any(), kind
        assert all(s.breathing_bpm is None for s in sc.truth)
    still = B.make_sensing_scene("still_breathing", "esp32", 88, 0, d, breath_bpm=13)
    assert still.truth_array("presence").all() and still.truth_array("still").all()
    assert not still.truth_array("motion").any()
    assert {s.breathing_bpm for s in still.truth} == {13.0}
    walk = B.make_sensing_scene("walking", "esp32", 88, 0, d)
    assert walk.truth_array("motion").mean() > 0.9 and walk.truth_array("presence").all()
    entry = B.make_sensing_scene("empty_then_walk", "esp32", 88, 0, d, enter_s=12)
    pres, mot = entry.truth_array("presence"), entry.truth_array("motion")
    assert not pres[:12].any() and pres[12:].all()
    assert not mot[:12].any() and mot[13:].mean() > 0.9
    # before the entry the channel is the empty room's: as quiet as the empty scene
    amp = np.abs(entry.csi[:, :, 0, 0]).astype(np.float64)
    quiet, busy = amp[entry.times < 11].std(axis=0).mean(), amp[entry.times > 14].std(axis=0).mean()
    assert busy > 2 * quiet


def _band_power(sc, lo: float, hi: float) -> float:
    """Power of the (live, mean-removed) amplitude series in [lo, hi] Hz, summed over subcarriers."""
    a = np.abs(sc.csi[:, :, 0, 0].astype(np.complex128))
    a = a[:, a.mean(axis=0) > 0]
    grid = np.arange(0.0, sc.times[-1], 1 / sc.rate_hz)
    x = np.stack([np.interp(grid, sc.times, a[:, k]) for k in range(a.shape[1])], axis=1)
    p = np.abs(np.fft.rfft(x - x.mean(axis=0), axis=0)) ** 2
    f = np.fft.rfftfreq(len(grid), 1 / sc.rate_hz)
    return float(p[(f >= lo) & (f <= hi)].sum())


def test_disturbances_change_the_channel_at_their_rates():
    base = B.make_sensing_scene("empty", "esp32", 83, 0, 20)
    fan = B.make_sensing_scene("fan", "esp32", 83, 0, 20)
    curtain = B.make_sensing_scene("curtain", "esp32", 83, 0, 20)
    agc = B.make_sensing_scene("agc_steps", "esp32", 83, 0, 20)
    assert _band_power(fan, 2.8, 9.2) > 2 * _band_power(base, 2.8, 9.2)  # 3 Hz rotation and harmonics
    assert _band_power(curtain, 0.2, 0.4) > 2 * _band_power(base, 0.2, 0.4)  # 0.3 Hz sway
    # gain steps scale all subcarriers alike: large changes of the mean amplitude
    mean_amp = lambda sc: np.abs(sc.csi[:, :, 0, 0]).mean(axis=1)  # noqa: E731
    assert np.ptp(mean_amp(agc)) > 3 * np.ptp(mean_amp(base))


def test_determinism_by_seed():
    a = B.make_sensing_scene("empty_then_walk", "intel5300", 83, 4, 15)
    b = B.make_sensing_scene("empty_then_walk", "intel5300", 83, 4, 15)
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.csi, b.csi)
    assert a.truth == b.truth
    c = B.make_sensing_scene("empty_then_walk", "intel5300", 83, 5, 15)
    assert len(c.times) != len(a.times) or not np.array_equal(c.csi, a.csi)


def _breathing_peak_bpm(sc, normalise: bool) -> float:
    a = np.abs(sc.csi.astype(np.complex128)).reshape(len(sc.times), -1)
    a = a[:, a.mean(axis=0) > 0]
    if normalise:  # AGC gain steps scale every subcarrier alike
        a = a / a.mean(axis=1, keepdims=True)
    grid = np.arange(0.0, sc.times[-1], 0.1)
    x = np.stack([np.interp(grid, sc.times, a[:, k]) for k in range(a.shape[1])], axis=1)
    x = (x - x.mean(axis=0)) * np.hanning(len(grid))[:, None]
    power = (np.abs(np.fft.rfft(x, n=4 * len(grid), axis=0)) ** 2).sum(axis=1)
    f = np.fft.rfftfreq(4 * len(grid), 0.1)
    band = (f > 0.1) & (f < 0.8)
    return float(f[band][np.argmax(power[band])] * 60)


@pytest.mark.parametrize(("hw", "normalise"), [("esp32", False), ("intel5300", True), ("nexmon", True)])
def test_breathing_modulates_the_channel_at_its_rate(hw, normalise):
    for bpm in (12.0, 18.0):
        sc = B.make_sensing_scene("still_breathing", hw, 83, 1, 60, breath_bpm=bpm)
        assert _breathing_peak_bpm(sc, normalise) == pytest.approx(bpm, abs=0.6), (hw, bpm)


def test_breathing_options_default_off_and_keep_lie_default():
    assert LieSegment(0, 1, 0, 0, 0).breath_hz == 0.25 and LieSegment(0, 1, 0, 0, 0).breath_amp == 0.004
    assert StandSegment(0, 1, 0, 0, 0).breath_amp == 0.0
    t = np.linspace(0, 8, 200)

    def chest_x(actions):
        sc = scripted_scene(101, [PersonSpec((2.0, 3.0), actions, heading=0.0)], 12.0)
        sim = SceneSimulator(sc)
        return sim.poses(t + 3.0)[0].joints[:, 5, 0]  # left shoulder x (forward when heading 0)

    still = chest_x((Sit(),))
    breath = chest_x((Sit(breath_bpm=15.0, breath_amp_m=0.005),))
    diff = breath - still
    assert 0.004 < np.ptp(diff) / 2 < 0.009  # shoulder moves ~5-8 mm (chest 5 mm, lever above it)
    spec = np.abs(np.fft.rfft(diff - diff.mean()))
    assert np.fft.rfftfreq(len(t), t[1] - t[0])[np.argmax(spec)] == pytest.approx(0.25, abs=0.07)

    lie_default = scripted_scene(101, [PersonSpec((2.0, 3.0), (Lie(),))], 12.0)
    lie_fast = scripted_scene(101, [PersonSpec((2.0, 3.0), (Lie(breath_bpm=30.0, breath_amp_m=0.006),))], 12.0)
    seg_d = lie_default.people[0].timeline.segments[-1]
    seg_f = lie_fast.people[0].timeline.segments[-1]
    assert (seg_d.breath_hz, seg_d.breath_amp) == (0.25, 0.004)
    assert (seg_f.breath_hz, seg_f.breath_amp) == (0.5, 0.006)
    assert seg_d.breath_phase == seg_f.breath_phase  # no extra random draw


def test_props_add_paths_and_none_means_unchanged():
    cfg = SimConfig()
    rm = room_from_id(85, cfg)
    scene = scripted_scene(85, [], 5.0)
    t = np.linspace(0, 1, 50)
    plain = SceneSimulator(scene, cfg).physical_csi(t)
    assert np.array_equal(plain, SceneSimulator(scene, cfg, props=()).physical_csi(t))
    c = tuple(rm.size * [0.5, 0.5, 0.0] + [0, 0, 1.1])
    fan = RotatingBlades(center=c, hz=3.0)
    pts = fan.points(t)
    assert pts.shape == (50, 6, 3)
    np.testing.assert_allclose(np.linalg.norm(pts - np.array(c), axis=-1).max(), fan.radius_m)
    np.testing.assert_allclose(fan.points(t + 1 / 3.0), pts, atol=1e-9)  # one revolution later
    h_fan = SceneSimulator(scene, cfg, props=(fan,)).physical_csi(t)
    assert not np.allclose(h_fan, plain) and np.abs(h_fan - plain).std(axis=0).max() > 0
    sheet = SwayingSheet(center=c)
    assert sheet.points(t).shape == (50, 12, 3)
