"""Capture frames -> model input windows, in plain numpy: the same code makes training and live windows.

csi (T, subcarriers, rx, tx) complex + timestamps (s)
  -> [occupancy filter]  drop frames whose energy outside the occupied band is 5x the capture's median share
  -> frame features      per frame: amplitude in dB per subcarrier bin/antenna, and phase
                         (rx > 1: angle of H_r * conj(H_0) per bin, unwrapped over time -- CFO/STO cancel;
                          rx == 1: linear-sanitised phase per bin, wdp.csi.sanitize_numpy.sanitize_phase)
  -> resample            linear interpolation onto a uniform grid at the card's packet rate
  -> windows             the last window_s seconds before each window end; each feature minus its window
                         mean (removes the room's static channel and the receiver gain), divided by the
                         card's feature_scale, clipped to +-CLIP.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from wdp.activity.card import ActivityCard
from wdp.csi.sanitize_numpy import sanitize_phase
from wdp.data.real import OCCUPANCY_BAND_DB, OCCUPANCY_FACTOR

FEATURES = ("amp_db", "phase_rx_diff", "phase_sanitized")
CLIP = 8.0  # feature values in units of the training std; a dead frame's -100 dB must not dominate a window
_POWER_FLOOR = 1e-10


class Windows(msgspec.Struct, kw_only=True):
    """Model input: x (n, window samples, features) float32; t (n,) window ends in seconds from capture start.

    dropped: frames left out (non-finite values, occupancy outliers)."""

    x: Any
    t: Any
    dropped: dict[str, int]


def default_features(rx: int) -> list[str]:
    """Amplitude, plus the phase feature the antenna count allows."""
    return ["amp_db", "phase_rx_diff" if rx > 1 else "phase_sanitized"]


def feature_count(card_or_shape: ActivityCard | tuple[int, int, int], bins: int, features: list[str]) -> int:
    _, rx, tx = card_or_shape.shape if isinstance(card_or_shape, ActivityCard) else card_or_shape
    n = 0
    for name in features:
        if name == "amp_db":
            n += bins * rx * tx
        elif name == "phase_rx_diff":
            if rx < 2:
                raise ValueError("phase_rx_diff needs at least 2 rx antennas")
            n += bins * (rx - 1) * tx
        elif name == "phase_sanitized":
            n += bins * rx * tx
        else:
            raise ValueError(f"unknown feature {name!r} (one of {FEATURES})")
    return n


def occupancy_outliers(power: np.ndarray) -> np.ndarray:
    """wdp.data.real.occupancy_outliers (the rule training data was loaded with), computed on the transposed,
    contiguous power (subcarriers x frames): the same medians, a few times faster per live window."""
    if power.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    median = np.median(np.ascontiguousarray(power.T), axis=1)
    strong = np.percentile(median, 95)
    band = median >= strong * 10.0 ** (-OCCUPANCY_BAND_DB / 10.0)
    total = power.sum(axis=1)
    share = power[:, ~band].sum(axis=1) / np.where(total > 0, total, 1.0)
    ref = np.median(share)
    if ref <= 0:
        return share > 0
    return share > OCCUPANCY_FACTOR * ref


def _bin_groups(index: list[int], bins: int) -> list[np.ndarray]:
    return [np.asarray(g, dtype=np.intp) for g in np.array_split(np.asarray(index, dtype=np.intp), bins)]


def frame_features(csi: np.ndarray, subcarrier_index: list[int], bins: int, features: list[str]) -> np.ndarray:
    """(T, subcarriers, rx, tx) complex -> (T, F) float64 per-frame features (before windowing)."""
    h = np.asarray(csi)
    t, _, rx, tx = h.shape
    groups = _bin_groups(subcarrier_index, bins)
    cols: list[np.ndarray] = []
    for name in features:
        if name == "amp_db":
            sel = np.concatenate(groups)
            power = (np.abs(h[:, sel]) ** 2).astype(np.float64)  # (T, S', rx, tx), groups back to back
            starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
            sizes = np.array([len(g) for g in groups], dtype=np.float64)[None, :, None, None]
            binned = np.add.reduceat(power, starts, axis=1) / sizes  # (T, bins, rx, tx)
            cols.append(10.0 * np.log10(np.maximum(binned, _POWER_FLOOR)).reshape(t, -1))
        elif name == "phase_rx_diff":
            cross = h[:, :, 1:, :] * np.conj(h[:, :, :1, :])  # (T, S, rx-1, tx)
            binned = np.stack([cross[:, g].sum(axis=1) for g in groups], axis=1)
            phase = np.unwrap(np.angle(binned).reshape(t, -1), axis=0)
            cols.append(phase)
        elif name == "phase_sanitized":
            sel = np.asarray(subcarrier_index, dtype=np.intp)
            raw = np.angle(h[:, sel]).astype(np.float64)  # (T, S', rx, tx)
            clean = sanitize_phase(raw, axis=1, subcarrier_index=sel.astype(np.float64), method="lstsq")
            pos = {int(s): i for i, s in enumerate(sel)}
            binned = np.stack([clean[:, [pos[int(s)] for s in g]].mean(axis=1) for g in groups], axis=1)
            cols.append(binned.reshape(t, -1))
        else:
            raise ValueError(f"unknown feature {name!r} (one of {FEATURES})")
    return np.concatenate(cols, axis=1) if cols else np.zeros((t, 0))


def resample(values: np.ndarray, times: np.ndarray, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of (T, F) values at `times` (s, increasing) onto a grid from times[0] at rate_hz."""
    times = np.asarray(times, dtype=np.float64)
    n = int(np.floor((times[-1] - times[0]) * rate_hz + 1e-9)) + 1
    grid = times[0] + np.arange(n) / rate_hz
    out = np.empty((n, values.shape[1]), dtype=np.float64)
    for j in range(values.shape[1]):
        out[:, j] = np.interp(grid, times, values[:, j])
    return grid, out


def window_ends(duration_s: float, window_s: float, hop_s: float) -> np.ndarray:
    """Ends (s from capture start) of the windows of a stream: every hop_s once a full window exists; a capture
    shorter than a window gets one window ending at its last frame (padded at its start)."""
    if duration_s < window_s:
        return np.array([duration_s])
    n = int(np.floor((duration_s - window_s) / hop_s + 1e-9)) + 1
    return window_s + hop_s * np.arange(n)


def scale_windows(raw: np.ndarray, feature_scale: Any) -> np.ndarray:
    """Mean-removed windows (preprocess(..., raw=True)) divided by the per-feature scale and clipped."""
    scale = np.asarray(feature_scale, dtype=np.float64)
    if raw.shape[-1] != scale.size:
        raise ValueError(f"feature_scale has {scale.size} values, the features {raw.shape[-1]}")
    return np.clip(raw / scale, -CLIP, CLIP).astype(np.float32)


class Grid(msgspec.Struct, kw_only=True):
    """Per-frame features of one capture resampled to the card's rate: values (n, F) at times (n,) seconds from
    the first kept frame (a uniform grid). dropped: frames left out (non-finite values, occupancy outliers)."""

    values: Any
    times: Any
    dropped: dict[str, int]

    @property
    def duration_s(self) -> float:
        return float(self.times[-1]) if len(self.times) else 0.0


def feature_grid(csi: np.ndarray, timestamps: np.ndarray, card: ActivityCard) -> Grid:
    """Frames of one link (card's shape, else ValueError) -> resampled per-frame features (see the module doc)."""
    h = np.asarray(csi)
    if h.ndim != 4 or not card.matches(h.shape[1:]):
        raise ValueError(f"frames of shape {tuple(h.shape[1:])} do not match the card's {card.shape}")
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.shape != (h.shape[0],):
        raise ValueError(f"{h.shape[0]} frames but {ts.shape} timestamps")
    dropped = {"non_finite": 0, "occupancy": 0}
    good = np.isfinite(ts) & np.isfinite(h.real).all(axis=(1, 2, 3)) & np.isfinite(h.imag).all(axis=(1, 2, 3))
    dropped["non_finite"] = int((~good).sum())
    h, ts = h[good], ts[good]
    order = np.argsort(ts, kind="stable")
    h, ts = h[order], ts[order]
    if card.occupancy_filter and len(h):
        out = occupancy_outliers((np.abs(h) ** 2).sum(axis=(2, 3)).astype(np.float64))
        dropped["occupancy"] = int(out.sum())
        h, ts = h[~out], ts[~out]
    n_feat = feature_count(card, card.bins, card.features)
    if len(h) < 2:
        return Grid(values=np.zeros((0, n_feat)), times=np.zeros(0), dropped=dropped)
    feats = frame_features(h, card.subcarrier_index, card.bins, card.features)
    times, values = resample(feats, ts - ts[0], card.packet_rate_hz)
    return Grid(values=values, times=times, dropped=dropped)


def cut_windows(grid: Grid, ends: Any, card: ActivityCard) -> np.ndarray:
    """(n, window samples, F) float64 windows of the grid ending at `ends` (s), each feature minus its window
    mean (not yet scaled; see scale_windows). A window reaching before the first frame repeats the first sample."""
    ends = np.asarray(ends, dtype=np.float64)
    w = card.window_samples
    values = grid.values
    x = np.empty((ends.size, w, values.shape[1]), dtype=np.float64)
    if values.shape[0] == 0:
        return x[:0]
    for i, end in enumerate(ends):
        stop = int(np.floor(end * card.packet_rate_hz + 1e-6)) + 1  # grid samples at or before the end
        stop = min(max(stop, 1), values.shape[0])
        start = stop - w
        seg = values[max(start, 0) : stop]
        if start < 0:
            seg = np.concatenate([np.repeat(seg[:1], -start, axis=0), seg], axis=0)
        x[i] = seg - seg.mean(axis=0)
    return x


def preprocess(
    csi: np.ndarray,
    timestamps: np.ndarray,
    card: ActivityCard,
    ends: np.ndarray | None = None,
    raw: bool = False,
) -> Windows:
    """Frames of one link -> model windows (feature_grid, cut_windows, scale_windows). `ends`: window ends in
    seconds from the first kept frame (default: every hop_s, window_ends). Frames must have the card's shape.
    raw: windows with their means removed but not scaled or clipped (float64)."""
    grid = feature_grid(csi, timestamps, card)
    if grid.values.shape[0] == 0:
        n_feat = feature_count(card, card.bins, card.features)
        x = np.zeros((0, card.window_samples, n_feat), np.float64 if raw else np.float32)
        return Windows(x=x, t=np.zeros(0), dropped=grid.dropped)
    if ends is None:
        ends = window_ends(grid.duration_s, card.window_s, card.hop_s)
    ends = np.asarray(ends, dtype=np.float64)
    x = cut_windows(grid, ends, card)
    return Windows(x=x if raw else scale_windows(x, card.feature_scale), t=ends, dropped=grid.dropped)
