"""Pure-numpy, vectorized reference of the CSI sanitization stage.

It is the baseline of bench/bench_sanitize.py, and tests/test_sanitize.py checks the native core against
it. It mirrors native/src/sanitize.cpp step by step (same formulas, float64 arithmetic, same float32
rounding points), so the two agree to float32 precision. Arrays are CSI-shaped: (..., S, R, T), subcarriers
on axis -3; time-domain steps take (N, ...) with time on axis 0.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAD_SCALE = 1.4826  # MAD -> sigma for normal data
GRID_EPS = 1e-6     # grid periods: a grid point this close to a sample counts as reached by it


def positions(n_sub: int, subcarrier_index=None) -> np.ndarray:
    if subcarrier_index is None:
        return np.arange(n_sub, dtype=np.float64)
    return np.asarray(subcarrier_index, dtype=np.float64)


def unwrap_subcarriers(phase: np.ndarray) -> np.ndarray:
    return np.unwrap(np.asarray(phase, dtype=np.float64), axis=-3)


def remove_linear_phase(phase: np.ndarray, fit: str = "endpoints", subcarrier_index=None) -> np.ndarray:
    phase = np.asarray(phase, dtype=np.float64)
    if fit == "none":
        return phase.copy()
    n = phase.shape[-3]
    mean = phase.mean(axis=-3, keepdims=True)
    first, last = phase[..., :1, :, :], phase[..., -1:, :, :]
    if fit == "paper":  # as printed in DensePose From WiFi, f = 1..F
        f = np.arange(1, n + 1, dtype=np.float64).reshape(n, 1, 1)
        a1 = (last - first) / (2 * np.pi * n)
        return phase - (2 * np.pi * f * a1 + mean)
    x = positions(n, subcarrier_index)
    xc = (x - x.mean()).reshape(n, 1, 1)
    if fit == "endpoints":
        slope = (last - first) / (x[-1] - x[0])
    elif fit == "least_squares":
        slope = (xc * phase).sum(axis=-3, keepdims=True) / (xc * xc).sum()
    else:
        raise ValueError(f"unknown phase fit {fit!r}")
    return phase - (slope * xc + mean)


def interpolation_table(n_sub: int, n_out: int, subcarrier_index=None) -> tuple[np.ndarray, np.ndarray]:
    """Left neighbour and right weight of each of n_out points evenly spaced over the subcarrier positions."""
    x = positions(n_sub, subcarrier_index)
    u = x[0] + np.arange(n_out) * (x[-1] - x[0]) / (n_out - 1)
    u[-1] = x[-1]
    left = np.clip(np.searchsorted(x, u, side="right") - 1, 0, n_sub - 2)
    weight = (u - x[left]) / (x[left + 1] - x[left])
    return left, weight


def interpolate_subcarriers(x: np.ndarray, n_out: int, subcarrier_index=None, table=None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    left, weight = table if table is not None else interpolation_table(x.shape[-3], n_out, subcarrier_index)
    w = weight.reshape(-1, 1, 1)
    return x[..., left, :, :] * (1.0 - w) + x[..., left + 1, :, :] * w


def normalize_amplitude(amp: np.ndarray, mode: str = "rms") -> np.ndarray:
    amp = np.asarray(amp, dtype=np.float64)
    if mode == "none":
        return amp.copy()
    if mode == "rms":
        rms = np.sqrt((amp * amp).mean(axis=-3, keepdims=True))
        return np.divide(amp, rms, out=amp.copy(), where=rms > 0)
    if mode == "zscore":
        centered = amp - amp.mean(axis=-3, keepdims=True)
        sd = np.sqrt((centered * centered).mean(axis=-3, keepdims=True))
        return np.divide(centered, sd, out=centered.copy(), where=sd > 0)
    raise ValueError(f"unknown amplitude normalization {mode!r}")


def _hampel_decide(x: np.ndarray, med: np.ndarray, mad: np.ndarray, n_sigma: float, min_rel: float = 0.0,
                   min_abs: float = 0.0) -> tuple[np.ndarray, int]:
    # Threshold max(n_sigma * 1.4826 * MAD, min_rel * |median|, min_abs), in the C++ operation order.
    threshold = np.maximum(np.maximum((n_sigma * MAD_SCALE) * mad, min_rel * np.abs(med)), min_abs)
    outlier = np.abs(x - med) > threshold
    return np.where(outlier, med, x).astype(np.float32), int(outlier.sum())


def _median_mad(windows: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    med = np.median(windows, axis=axis)
    mad = np.median(np.abs(windows - np.expand_dims(med, axis)), axis=axis)
    return med, mad


def hampel_filter(x: np.ndarray, k: int, n_sigma: float, causal: bool = False, min_rel: float = 0.0,
                  min_abs: float = 0.0) -> tuple[np.ndarray, int]:
    """Hampel over axis 0 (centered window [t-k, t+k] or causal [t-2k, t], cut at the ends); the threshold
    is max(n_sigma * 1.4826 * MAD, min_rel * |median|, min_abs).

    Returns (filtered float32, number replaced)."""
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    xd = x.reshape(n, -1).astype(np.float64)
    win = 2 * k + 1
    med = np.empty_like(xd)
    mad = np.empty_like(xd)
    # Frame j's window starts at j - (k or 2k); frames whose window is whole are done in one vectorized pass.
    back = 2 * k if causal else k
    full = range(back, n - (0 if causal else k))
    if len(full) > 0:
        m, d = _median_mad(sliding_window_view(xd, win, axis=0), axis=-1)
        med[full.start:full.stop], mad[full.start:full.stop] = m, d
    for j in range(n):
        if j in full:
            continue
        lo, hi = max(0, j - back), j if causal else min(n - 1, j + k)
        med[j], mad[j] = _median_mad(xd[lo:hi + 1], axis=0)
    out, count = _hampel_decide(xd, med, mad, n_sigma, min_rel, min_abs)
    return out.reshape(x.shape), count


def resample_linear(t: np.ndarray, x: np.ndarray, rate_hz: float, unwrap: bool = False,
                    max_gap_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of x (N, ...) at times t onto the grid floor(t[0]) + j / rate_hz.

    Semantics (grid, gaps, unwrap) as LinearResampler in native/include/wdp/sanitize.hpp."""
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float32)
    xd = x.reshape(len(t), -1).astype(np.float64)
    if unwrap:
        xd = np.unwrap(xd, axis=0)
    origin = np.floor(t[0])
    tr = t - origin
    reached_last = np.floor(tr * rate_hz + GRID_EPS).astype(np.int64)  # last grid index reached by sample i
    reached_first = np.ceil(tr * rate_hz - GRID_EPS).astype(np.int64)  # first grid index at/after sample i
    ks = np.arange(reached_first[0], reached_last[-1] + 1)
    p = np.searchsorted(reached_last, ks, side="left")  # the sample whose arrival emits k
    gap = np.zeros(len(t), dtype=bool)
    gap[1:] = np.diff(tr) > max_gap_s
    keep = ~(gap[p] & (ks < reached_first[p]))  # drop points inside an unfilled gap
    ks, p = ks[keep], p[keep]
    tg = ks / rate_hz
    prev = np.maximum(p - 1, 0)
    direct = (p == 0) | gap[p]                          # first sample / after a gap: that sample's value
    dt = np.where(direct, 1.0, tr[p] - tr[prev])
    w = np.clip((tg - tr[prev]) / dt, 0.0, 1.0)[:, None]
    interp = xd[prev] + w * (xd[p] - xd[prev])
    out = np.where(direct[:, None], xd[p], interp).astype(np.float32)
    return origin + tg, out.reshape((len(ks),) + x.shape[1:])


class NumpySanitizer:
    """Same pipeline, state and defaults as the native Sanitizer (causal Hampel on amplitude), in numpy."""

    def __init__(self, shape: tuple[int, int, int], *, n_subcarriers_out: int | None = None,
                 subcarrier_index=None, phase_fit: str = "endpoints", amplitude_norm: str = "rms",
                 hampel_k: int = 3, hampel_sigmas: float = 3.0, hampel_min_rel: float = 0.25,
                 hampel_min_abs: float = 3.0) -> None:
        self.shape = tuple(shape)
        n_sub, n_rx, n_tx = self.shape
        self.subcarrier_index = subcarrier_index
        self.n_out = n_subcarriers_out or n_sub
        self.table = (interpolation_table(n_sub, n_subcarriers_out, subcarrier_index)
                      if n_subcarriers_out else None)
        self.phase_fit, self.amplitude_norm = phase_fit, amplitude_norm
        self.k, self.n_sigma = hampel_k, hampel_sigmas
        self.min_rel, self.min_abs = hampel_min_rel, hampel_min_abs
        self.history = np.empty((0, self.n_out, n_rx, n_tx), dtype=np.float32)  # last <= 2k amplitude frames
        self.replaced = 0

    def reset(self) -> None:
        self.history = self.history[:0]

    def _spatial(self, csi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        csi = np.asarray(csi).astype(np.complex128)
        amp = np.abs(csi)
        phase = remove_linear_phase(unwrap_subcarriers(np.angle(csi)), self.phase_fit, self.subcarrier_index)
        if self.table is not None:
            amp = interpolate_subcarriers(amp, self.n_out, table=self.table)
            phase = interpolate_subcarriers(phase, self.n_out, table=self.table)
        return amp.astype(np.float32), phase

    def _finish(self, amp: np.ndarray, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        amp = normalize_amplitude(amp, self.amplitude_norm)
        return amp.astype(np.float32), phase.astype(np.float32)

    def process_frame(self, csi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        amp, phase = self._spatial(csi)
        if self.k:
            window = np.concatenate([self.history, amp[None]])
            med, mad = _median_mad(window.astype(np.float64), axis=0)
            amp, count = _hampel_decide(amp.astype(np.float64), med, mad, self.n_sigma, self.min_rel,
                                        self.min_abs)
            self.replaced += count
            self.history = window[-2 * self.k:]
        return self._finish(amp, phase)

    def window_median_mad(self, amp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Median and MAD (float64) of each new frame's causal window [t-2k, t] over the held history and
        amp (n, S_out, R, T), cut at the stream's start; the state is not changed."""
        return self._window_median_mad(np.concatenate([self.history, amp]).astype(np.float64), len(amp))

    def _window_median_mad(self, xd: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        h, back = len(xd) - n, 2 * self.k  # xd: history + the n new frames
        med = np.empty((n,) + xd.shape[1:])
        mad = np.empty_like(med)
        first_full = max(back - h, 0)  # new frames from here on have a whole window of 2k+1 frames
        if first_full < n:
            views = sliding_window_view(xd[h + first_full - back:], back + 1, axis=0)
            med[first_full:], mad[first_full:] = _median_mad(views, axis=-1)
        for j in range(min(first_full, n)):
            med[j], mad[j] = _median_mad(xd[:h + j + 1], axis=0)
        return med, mad

    def process_batch(self, csi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        amp, phase = self._spatial(csi)
        if self.k:
            window = np.concatenate([self.history, amp])
            xd = window.astype(np.float64)
            med, mad = self._window_median_mad(xd, len(amp))
            amp, count = _hampel_decide(xd[len(self.history):], med, mad, self.n_sigma, self.min_rel,
                                        self.min_abs)
            self.replaced += count
            self.history = window[-2 * self.k:]
        return self._finish(amp, phase)
