"""Camera clock -> host clock.

A frame's arrival time is its presentation time (pts, the camera's clock) plus a clock offset, a slow drift
and a delay that is never negative (decoding, pipes, scheduling). The offset and drift are fitted to the
LOWER envelope of arrival - pts: the least-delayed frame of each block of ``block_s`` seconds, a line through
those block minima, refitted on the lower half of them (a block where the host was busy has no on-time
frame). Frames then get host-clock times pts + offset(pts) - camera_latency_s, free of the scheduling jitter
a plain arrival stamp carries.

What it cannot see: a constant delay before the frame reaches ffmpeg (exposure, USB, encoder), the same for
every frame; the recording subtracts ``camera_latency_s`` for it (default 0; measure it once, e.g. a clap or
a light switched on in view of the camera next to a router). The summary reports it as not estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClockFit:
    offset_s: float  # host time - pts at pts = pts0
    drift_ppm: float  # host seconds per camera second - 1, in ppm
    pts0: float
    fit_rms_ms: float  # spread of the (kept) block minima about the line: error of the mapped times
    jitter_p95_ms: float  # arrival delay above the envelope, 95th percentile: error of raw arrival stamps
    blocks: int

    def to_host(self, pts: np.ndarray) -> np.ndarray:
        p = np.asarray(pts, np.float64)
        return p + self.offset_s + (self.drift_ppm * 1e-6) * (p - self.pts0)


def fit_camera_clock(arrival: np.ndarray, pts: np.ndarray, block_s: float = 2.0) -> ClockFit | None:
    """Fit of host = pts + offset + drift * (pts - pts0) on the lower envelope (None: fewer than 2 frames)."""
    a = np.asarray(arrival, np.float64)
    p = np.asarray(pts, np.float64)
    ok = np.isfinite(a) & np.isfinite(p)
    a, p = a[ok], p[ok]
    if len(a) < 2:
        return None
    d = a - p
    pts0 = float(p[0])
    block = np.floor((p - pts0) / block_s).astype(np.int64)
    xs, ys = [], []
    for b in np.unique(block):
        m = block == b
        i = int(np.argmin(d[m]))
        xs.append(float(p[m][i] - pts0))
        ys.append(float(d[m][i]))
    x, y = np.array(xs), np.array(ys)
    keep = np.ones(len(x), bool)
    if len(x) >= 3 and np.ptp(x) > 0:
        slope, icept = np.polyfit(x, y, 1)
        # a block whose least-delayed frame still lies well above the line had every frame late (the host or
        # ffmpeg was busy): refit on the lower half of the blocks, twice, so busy stretches do not bend the line
        for _ in range(2):
            r = y - (slope * x + icept)
            k = r <= np.median(r)
            if k.sum() >= 3 and np.ptp(x[k]) > 0:
                keep = k
                slope, icept = np.polyfit(x[keep], y[keep], 1)
    else:
        slope, icept = 0.0, float(y.min())
    resid = (y - (slope * x + icept))[keep]
    above = d - (slope * (p - pts0) + icept)
    return ClockFit(
        offset_s=float(icept),
        drift_ppm=float(slope * 1e6),
        pts0=pts0,
        fit_rms_ms=float(np.sqrt(np.mean(resid**2)) * 1e3),
        jitter_p95_ms=float(np.percentile(above, 95) * 1e3),
        blocks=len(x),
    )
