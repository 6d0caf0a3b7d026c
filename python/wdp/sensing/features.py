"""Per-packet features of one link for training-free sensing: gain-normalised amplitudes of the live
subcarriers, accumulated into fixed time bins.

Any frame shape works (1x1x52 ESP32 to 3x3x30 Intel to 1x1x256 nexmon): a frame is flattened to
(subcarriers x rx x tx) amplitudes. Each receive chain is divided by its own mean amplitude, so an AGC step
or a per-chain gain change moves nothing (the body changes the *shape* across subcarriers, not the chain's
total gain). Null and guard subcarriers (amplitude ~0 in the calibration frames) are dropped.

Packets are summed into bins of ``bin_s`` seconds (count, sum, sum of squares per feature): the motion
statistic (variance over a window) and the breathing spectrum (bin means, a fixed-rate series whatever the
packet rate) are both computed from the bins, so the per-packet work is a few vector operations.
"""

from __future__ import annotations

import numpy as np


def chain_normalized_amplitude(csi: np.ndarray) -> np.ndarray:
    """(n, S, R, T) or (S, R, T) complex -> (n, S*R*T) float32 amplitudes, each (rx, tx) chain divided by its
    mean over subcarriers (0 where a chain is all zero)."""
    a = np.abs(np.asarray(csi))
    if a.ndim == 3:
        a = a[None]
    a = a.astype(np.float32, copy=False)
    mean = a.mean(axis=1, keepdims=True)
    np.maximum(mean, 1e-6, out=mean)
    return (a / mean).reshape(a.shape[0], -1)


def live_subcarriers(amps: np.ndarray, rel_floor: float = 0.05) -> np.ndarray:
    """Indices of the features that carry signal in (n, K) normalised amplitudes: median above
    ``rel_floor`` of the median feature (drops nulls, guards, the DC bin and dead chains)."""
    med = np.median(amps, axis=0)
    ref = float(np.median(med[med > 0])) if np.any(med > 0) else 0.0
    keep = np.flatnonzero(med > rel_floor * ref) if ref > 0 else np.arange(amps.shape[1])
    return keep if keep.size else np.arange(amps.shape[1])


class BinRing:
    """The last ``capacity`` time bins of a K-feature stream: per bin the packet count, the sum and the sum of
    squares of each feature. Bin ``b`` covers [b * bin_s, (b + 1) * bin_s) on the stream's clock."""

    def __init__(self, n_features: int, bin_s: float, capacity: int) -> None:
        self.k = n_features
        self.bin_s = bin_s
        self.capacity = capacity
        self.count = np.zeros(capacity, np.int32)
        self.sum = np.zeros((capacity, n_features), np.float64)
        self.sq = np.zeros((capacity, n_features), np.float64)
        self.last_bin: int | None = None  # newest bin index written

    def _advance_to(self, b: int) -> None:
        if self.last_bin is None or b - self.last_bin >= self.capacity:
            self.count[:] = 0
            self.sum[:] = 0.0
            self.sq[:] = 0.0
        elif b > self.last_bin:
            for j in range(self.last_bin + 1, b + 1):
                r = j % self.capacity
                self.count[r] = 0
                self.sum[r] = 0.0
                self.sq[r] = 0.0
        self.last_bin = b if self.last_bin is None else max(self.last_bin, b)

    def add(self, b: int, x: np.ndarray) -> None:
        """Add packets x (n, K), all in bin b (b >= the newest bin minus capacity)."""
        if self.last_bin is None or b > self.last_bin:
            self._advance_to(b)
        r = b % self.capacity
        self.count[r] += x.shape[0]
        self.sum[r] += x.sum(axis=0)
        self.sq[r] += np.einsum("ij,ij->j", x, x)

    def window(self, last: int, n_bins: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Pooled (count, sum, sq) over bins last-n_bins+1 .. last."""
        idx = np.arange(last - n_bins + 1, last + 1) % self.capacity
        return int(self.count[idx].sum()), self.sum[idx].sum(axis=0), self.sq[idx].sum(axis=0)

    def means(self, last: int, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Bin means (n_bins, K) and counts (n_bins,) of bins last-n_bins+1 .. last (empty bins: NaN rows)."""
        idx = np.arange(last - n_bins + 1, last + 1) % self.capacity
        cnt = self.count[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            m = self.sum[idx] / cnt[:, None]
        m[cnt == 0] = np.nan
        return m, cnt


def window_variance(count: int, s: np.ndarray, sq: np.ndarray) -> np.ndarray:
    """Per-feature sample variance from pooled count / sum / sum of squares."""
    if count < 2:
        return np.full(s.shape, np.nan)
    return np.maximum(sq - s * s / count, 0.0) / (count - 1)
