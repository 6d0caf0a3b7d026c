"""Windowing: nearest-packet grid, the training's sanitization, antenna mapping, gaps, slots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from engine_fixtures import cached_tiny_model

from wdp.csi.sanitize_numpy import sanitize_phase
from wdp.csi.simulator import SceneSimulator, random_scene
from wdp.csi.simulator.config import INTEL5300_SUBCARRIERS_20MHZ
from wdp.engine.windowing import RouterWindower, WindowSpec

IDX = np.array(INTEL5300_SUBCARRIERS_20MHZ, np.float64)
BASE = 1_700_000_000.0


def _packets(
    n: int,
    seed: int,
    rate: float = 100.0,
    jitter: float = 0.002,
    loss: float = 0.1,
    shape: tuple[int, int, int] = (30, 3, 3),
    offset: float = 0.003,
) -> tuple[np.ndarray, np.ndarray]:
    """Realistic CSI (the simulator's received channel with impairments) at jittered, lossy instants."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate + rng.normal(0, jitter, n) + offset
    t = np.sort(t[rng.uniform(size=n) > loss])
    sim = SceneSimulator(random_scene(85, seed, n_people=1))
    csi = sim.received_csi(t, rng).astype(np.complex64)
    if shape != (30, 3, 3):
        csi = csi[:, : shape[0], : shape[1], : shape[2]]
    return BASE + t, csi


def _reference_windows(t: np.ndarray, csi: np.ndarray, spec: WindowSpec) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Brute force: grid frame g = the packet nearest to BASE + g / rate; windows every hop frames."""
    pos = (t - BASE) * spec.rate_hz
    g0, g1 = int(np.ceil(pos[0] - 1e-9)), int(np.floor(pos[-1] + 1e-9))
    frames = {}
    for g in range(g0, g1 + 1):
        k = int(np.argmin(np.abs(pos - g)))
        frames[g] = csi[k]
    out = []
    for g in range(g0 + spec.window - 1, g1 + 1):
        if (g + 1) % spec.hop:
            continue
        win = np.stack([frames[i] for i in range(g - spec.window + 1, g + 1)])
        amp = np.abs(win)
        phase = sanitize_phase(
            np.angle(win), subcarrier_index=spec.subcarrier_index, method="endpoints", tx_difference=spec.tx_difference
        )
        out.append(((g + 1) // spec.hop - 1, amp, phase))
    return out


@pytest.mark.parametrize("tx_difference", [False, True])
def test_windows_equal_nearest_packet_and_training_sanitization(tx_difference: bool) -> None:
    spec = WindowSpec.from_card({"input_spec": {"sanitization": {"tx_difference": tx_difference}}})
    assert spec.tx_difference is tx_difference
    t, csi = _packets(120, seed=1)
    wd = RouterWindower("r", spec, BASE)
    got = []
    for i in range(len(t)):
        got += wd.push(float(t[i]), csi[i], arrival=float(i))
    ref = _reference_windows(t, csi, spec)
    assert len(got) == len(ref) >= 20
    for w, (slot, amp, phase) in zip(got, ref, strict=True):
        assert w.slot == slot and w.amplitude.shape == (5, 30, 3, 3) and w.amplitude.dtype == np.float32
        assert w.timestamp == pytest.approx(BASE + (slot * spec.hop + 2) / spec.rate_hz)
        np.testing.assert_allclose(w.amplitude, amp, rtol=1e-6)
        if tx_difference:  # wrapped differences: compare on the circle
            np.testing.assert_allclose(np.exp(1j * w.phase), np.exp(1j * phase), atol=2e-4)
        else:
            np.testing.assert_allclose(w.phase, phase, atol=2e-4)
    assert wd.stats.repeated > 0  # losses were filled by reusing a neighbour, as in the training windows
    assert wd.stats.gaps == 0 and wd.stats.late == 0


def test_window_completes_when_its_last_grid_instant_is_reached() -> None:
    spec = WindowSpec()
    wd = RouterWindower("r", spec, BASE)
    csi = np.ones((30, 3, 3), np.complex64)
    out = []
    for i in range(6):  # packets exactly on grid instants 0..5: instant 4 ends slot 0
        out.append(wd.push(BASE + i / 100, csi, arrival=i))
    assert [len(o) for o in out] == [0, 0, 0, 0, 1, 0]
    assert out[4][0].arrival == 4 and out[4][0].slot == 0


def test_clock_decisions_give_the_same_windows_earlier() -> None:
    """advance(now) decides a grid frame once no packet can be nearer: same windows as push alone."""
    spec = WindowSpec()
    t, csi = _packets(150, seed=5, offset=-0.002, jitter=0.001)  # packets a little before the grid instants
    by_packets, by_clock = RouterWindower("a", spec, BASE), RouterWindower("b", spec, BASE)
    ref, got, early = [], [], 0
    for i in range(len(t)):
        ref += by_packets.push(float(t[i]), csi[i], 0.0)
        now = float(t[i]) - 1e-6  # the clock just before packet i arrives
        adv = by_clock.advance(now, now_perf=100.0)
        early += len(adv)
        got += adv
        got += by_clock.push(float(t[i]), csi[i], 0.0)
    assert early >= 10 and len(got) == len(ref)
    for a, b in zip(got, ref, strict=True):
        assert a.slot == b.slot
        np.testing.assert_array_equal(a.amplitude, b.amplitude)
        np.testing.assert_array_equal(a.phase, b.phase)
    w = RouterWindower("c", spec, BASE)
    assert w.deadline() is None
    w.push(BASE + 0.0012, csi[0], 0.0)  # next grid instant 0.01: decidable at 0.01 + 0.0088 + guard
    assert w.deadline() == pytest.approx(BASE + 0.0198, abs=1e-6)
    assert w.advance(BASE + 0.0197, 5.0) == [] and w.stats.grid_frames == 0
    w.advance(BASE + 0.0199, 5.0)
    assert w.stats.grid_frames == 1 and w.deadline() is None  # the held packet is now over a period old


def test_spec_follows_the_model_card(tmp_path_factory) -> None:
    path = cached_tiny_model(tmp_path_factory)
    card = json.loads((path / "model_card.json").read_text())
    spec = WindowSpec.from_card(card)
    assert (spec.window, spec.rate_hz, spec.n_sub, spec.n_rx, spec.n_tx) == (5, 100.0, 30, 3, 3)
    assert spec.phase_fit == "endpoints" and spec.subcarrier_index == tuple(IDX)
    lstsq = {"input_spec": {"window": 7, "sanitization": {"method": "lstsq"}}}
    s2 = WindowSpec.from_card(lstsq, hop=7, hampel_k=None)
    assert s2.window == 7 and s2.hop == 7 and s2.phase_fit == "least_squares" and s2.subcarrier_index is None
    assert WindowSpec.from_card(None) == WindowSpec()
    with pytest.raises(ValueError, match="unknown phase"):
        WindowSpec.from_card({"input_spec": {"sanitization": {"method": "median"}}})


def test_cyclic_antenna_mapping_and_strict() -> None:
    wd = RouterWindower("r", WindowSpec(), BASE)
    rng = np.random.default_rng(0)
    for r, t in ((3, 1), (3, 2), (2, 3), (1, 1)):
        csi = (rng.normal(size=(30, r, t)) + 1j * rng.normal(size=(30, r, t))).astype(np.complex64)
        m = wd.map_antennas(csi)
        assert m.shape == (30, 3, 3)
        for i in range(3):
            for j in range(3):
                np.testing.assert_array_equal(m[:, i, j], csi[:, i % r, j % t])
    strict = RouterWindower("r", WindowSpec(antenna_map="strict"), BASE)
    assert strict.map_antennas(np.zeros((30, 3, 1), np.complex64)) is None
    assert strict.push(BASE, np.zeros((30, 3, 1), np.complex64), 0.0) == [] and strict.stats.rejected == 1


def test_gap_restarts_window_and_late_packets_are_dropped() -> None:
    spec = WindowSpec()
    t, csi = _packets(100, seed=2, loss=0.0)
    keep = (t - BASE < 0.3) | (t - BASE > 0.62)  # a 0.3 s hole
    t, csi = t[keep], csi[keep]
    wd = RouterWindower("r", spec, BASE)
    wins = []
    for i in range(len(t)):
        wins += wd.push(float(t[i]), csi[i], 0.0)
    assert wd.push(float(t[-1]) - 0.5, csi[0], 0.0) == [] and wd.stats.late == 1
    assert wd.stats.gaps == 1
    for w in wins:  # no window spans the hole
        start = w.timestamp - 0.02
        assert not (start < BASE + 0.3 < start + 0.05 or start < BASE + 0.62 < start + 0.05)
    assert any(w.timestamp > BASE + 0.62 for w in wins) and any(w.timestamp < BASE + 0.3 for w in wins)


def test_routers_share_slots_and_other_subcarrier_counts_are_interpolated() -> None:
    spec = WindowSpec()
    a_t, a_csi = _packets(80, seed=3)
    b_t, b_csi = _packets(80, seed=4, jitter=0.004)
    wa, wb = RouterWindower("a", spec, BASE), RouterWindower("b", spec, BASE)
    got_a = [w for i in range(len(a_t)) for w in wa.push(float(a_t[i]), a_csi[i], 0.0)]
    got_b = [w for i in range(len(b_t)) for w in wb.push(float(b_t[i]), b_csi[i], 0.0)]
    slots_a = {w.slot: w.timestamp for w in got_a}
    slots_b = {w.slot: w.timestamp for w in got_b}
    common = slots_a.keys() & slots_b.keys()
    assert len(common) >= 10 and all(slots_a[s] == slots_b[s] for s in common)

    wide = RouterWindower("w", spec, BASE)
    csi56 = np.full((56, 3, 3), 3 + 4j, np.complex64)  # e.g. an HT20 card reporting 56 subcarriers
    wins = [w for i in range(12) for w in wide.push(BASE + i / 100, csi56, 0.0)]
    assert wins and wins[0].amplitude.shape == (5, 30, 3, 3)
    np.testing.assert_allclose(wins[0].amplitude, 5.0, rtol=1e-6)
