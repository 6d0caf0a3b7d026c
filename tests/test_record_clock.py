"""The camera clock fit (wdp.recording.clock) on synthetic arrival times with a known offset and drift."""

from __future__ import annotations

import numpy as np

from wdp.recording.clock import fit_camera_clock


def test_fit_recovers_offset_and_drift_under_busy_stretches() -> None:
    rng = np.random.default_rng(0)
    pts = np.arange(0, 60, 1 / 30)
    true = 1000.0 + 50e-6 * pts  # offset 1000 s, drift +50 ppm
    delay = 0.004 + rng.exponential(0.01, len(pts))
    busy = (pts > 20) & (pts < 26)  # six seconds where every frame came 80-120 ms late
    delay[busy] += rng.uniform(0.08, 0.12, busy.sum())
    fit = fit_camera_clock(true + pts + delay, pts)
    assert fit is not None
    err = fit.to_host(pts) - (pts + true)
    # the envelope sits on the least-delayed frames: a few ms above the true clock, not 100 ms
    assert 0.0 <= np.median(err) < 0.008 and np.abs(err).max() < 0.012
    assert abs(fit.drift_ppm - 50) < 150 and fit.fit_rms_ms < 3.0
    assert fit_camera_clock(np.array([1.0]), np.array([0.0])) is None
