"""Reference phase sanitisation (wdp.csi.sanitize_numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from wdp.csi.sanitize_numpy import sanitize_phase

INTEL_5300_SUBCARRIERS = np.array(
    [
        -28,
        -26,
        -24,
        -22,
        -20,
        -18,
        -16,
        -14,
        -12,
        -10,
        -8,
        -6,
        -4,
        -2,
        -1,
        1,
        3,
        5,
        7,
        9,
        11,
        13,
        15,
        17,
        19,
        21,
        23,
        25,
        27,
        28,
    ]
)


def _wrap(x: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * x))


def test_linear_impairment_is_removed() -> None:
    rng = np.random.default_rng(0)
    m = INTEL_5300_SUBCARRIERS.astype(float)
    # per packet and antenna pair: STO/SFO slope + CFO offset, large enough to wrap many times
    slope = rng.uniform(-0.6, 0.6, (5, 1, 3, 3))
    offset = rng.uniform(-20, 20, (5, 1, 3, 3))
    raw = _wrap(slope * m[None, :, None, None] + offset).astype(np.float32)
    clean = sanitize_phase(raw, subcarrier_index=m)
    assert clean.shape == raw.shape and clean.dtype == np.float32
    np.testing.assert_allclose(clean, 0, atol=1e-4)


@pytest.mark.parametrize("method", ["endpoints", "lstsq"])
def test_matches_direct_formula(method: str) -> None:
    rng = np.random.default_rng(1)
    m = INTEL_5300_SUBCARRIERS.astype(float)
    body = 0.4 * np.sin(m / 5.0)[None, :, None, None] * rng.uniform(0.5, 1.5, (5, 1, 3, 3))
    raw = _wrap(0.3 * m[None, :, None, None] + 2.0 + body).astype(np.float64)
    got = sanitize_phase(raw, subcarrier_index=m, method=method)
    assert got.dtype == np.float64
    for t in range(5):
        for r in range(3):
            for s in range(3):
                phi = np.unwrap(raw[t, :, r, s])
                if method == "endpoints":
                    a = (phi[-1] - phi[0]) / (m[-1] - m[0])
                    b = np.mean(phi - a * m)
                else:
                    a, b = np.polyfit(m, phi, 1)
                np.testing.assert_allclose(got[t, :, r, s], phi - a * m - b, atol=1e-9)


def test_axis_and_2pi_invariance() -> None:
    rng = np.random.default_rng(2)
    raw = rng.uniform(-np.pi, np.pi, (4, 5, 30, 3, 3))
    ref = sanitize_phase(raw)
    moved = sanitize_phase(np.moveaxis(raw, -3, -1), axis=-1)
    np.testing.assert_allclose(np.moveaxis(moved, -1, -3), ref, atol=1e-6)
    shifted = raw + 2 * np.pi * rng.integers(-3, 4, raw.shape)
    np.testing.assert_allclose(sanitize_phase(shifted), ref, atol=1e-5)
    np.testing.assert_allclose(ref.mean(axis=-3), 0, atol=1e-5)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="method"):
        sanitize_phase(np.zeros((30, 3, 3)), method="median")
    with pytest.raises(ValueError, match="subcarrier_index"):
        sanitize_phase(np.zeros((30, 3, 3)), subcarrier_index=np.arange(29))


def test_tx_difference_cancels_per_chain_impairments_and_keeps_tx0() -> None:
    """Tx antennas 1.. carry phi_x - phi_0: a per-packet, per-rx-chain offset and subcarrier slope (CFO, STO,
    PLL) common to the tx antennas cancels exactly; tx 0 is the ordinary sanitised phase."""
    rng = np.random.default_rng(5)
    m = np.arange(-29, 31, 2, dtype=np.float64)
    # smooth over subcarriers (unwrapping is well defined), wrapped into (-pi, pi]
    phase = np.angle(np.exp(1j * np.cumsum(rng.normal(0, 0.3, (4, 5, 30, 3, 3)), axis=2)))
    common = rng.uniform(0, 2 * np.pi, (4, 5, 1, 3, 1)) + rng.normal(0, 0.2, (4, 5, 1, 3, 1)) * m[:, None, None]
    a = sanitize_phase(phase, subcarrier_index=m, tx_difference=True)
    b = sanitize_phase(np.angle(np.exp(1j * (phase + common))), subcarrier_index=m, tx_difference=True)
    np.testing.assert_allclose(np.exp(1j * a[..., 1:]), np.exp(1j * b[..., 1:]), atol=1e-5)
    assert np.abs(a[..., 1:]).max() <= np.pi + 1e-6
    np.testing.assert_allclose(a[..., 0], sanitize_phase(phase, subcarrier_index=m)[..., 0], atol=1e-6)
    np.testing.assert_allclose(a[..., 0], b[..., 0], atol=1e-4)  # a linear term: removed by the fit
    with pytest.raises(ValueError, match="tx antennas on the last axis"):
        sanitize_phase(phase[..., 0, 0], axis=-1, tx_difference=True)
