"""Reference CSI phase sanitisation in plain numpy (the native sanitiser must agree with this).

Raw CSI phase carries a per-packet linear term across subcarriers (sampling time offset and SFO give a slope,
CFO and the PLL give a constant), which swamps the few-radian changes a body causes. "DensePose From WiFi"
(following Sen et al. / PhaseFi) unwraps the phase along the subcarriers and removes the line through the
first and last subcarriers plus the mean:  phi_hat_k = phi_k - a * m_k - b  with
a = (phi_F - phi_1) / (m_F - m_1) and b = mean_k(phi_k - a * m_k).
"""

from __future__ import annotations

import numpy as np


def sanitize_phase(
    phase: np.ndarray,
    axis: int = -3,
    subcarrier_index: np.ndarray | None = None,
    method: str = "endpoints",
    tx_difference: bool = False,
) -> np.ndarray:
    """Unwrap `phase` along `axis` (subcarriers) and remove the linear phase term.

    phase: wrapped phase in radians, any shape; default axis -3 matches (..., N_SUB, N_RX, N_TX).
    subcarrier_index: the subcarriers' frequency indices m_k (e.g. Intel 5300's -28..28 grouping); default
    0..F-1. Only relative spacing matters.
    method: "endpoints" (the paper: slope through the first and last subcarrier) or "lstsq" (least-squares
    line, less sensitive to a noisy edge subcarrier).
    tx_difference: the last axis is the tx antenna (as in (..., N_SUB, N_RX, N_TX)); tx antenna 0 keeps its
    sanitised phase and every other tx antenna x gets the wrapped phase difference phi_x - phi_0 of the raw
    phases instead (the angle of H_x * conj(H_0) on the same rx chain and subcarrier). CFO, STO/SFO slopes
    and the rx chain's PLL offset are common to the tx antennas of one rx chain, so they cancel exactly,
    while the difference keeps what per-link sanitisation throws away: the mean and slope of the phase
    between tx antennas (where the paths leave the transmitter). Values are in (-pi, pi].
    Returns float32 (float64 input stays float64) of the same shape, zero mean along `axis` (without
    tx_difference).
    """
    x = np.asarray(phase)
    out_dtype = np.float64 if x.dtype == np.float64 else np.float32
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    n = x.shape[-1]
    m = np.arange(n, dtype=np.float64) if subcarrier_index is None else np.asarray(subcarrier_index, np.float64)
    if m.shape != (n,):
        raise ValueError(f"subcarrier_index has shape {m.shape}, expected ({n},)")
    if n < 2:
        return np.moveaxis(np.zeros_like(x), -1, axis).astype(out_dtype)
    unwrapped = np.unwrap(x, axis=-1)
    if method == "endpoints":
        slope = (unwrapped[..., -1] - unwrapped[..., 0]) / (m[-1] - m[0])
    elif method == "lstsq":
        mc = m - m.mean()
        slope = (unwrapped * mc).sum(-1) / (mc * mc).sum()
    else:
        raise ValueError(f"unknown method {method!r} (expected 'endpoints' or 'lstsq')")
    residual = unwrapped - slope[..., None] * m
    residual -= residual.mean(axis=-1, keepdims=True)
    out = np.moveaxis(residual, -1, axis)
    if tx_difference:
        out = with_tx_difference(out, np.asarray(phase, np.float64), axis)
    return out.astype(out_dtype)


def with_tx_difference(sanitized: np.ndarray, raw_phase: np.ndarray, axis: int = -3) -> np.ndarray:
    """`sanitized` with tx antennas 1.. replaced by the wrapped raw phase difference to tx antenna 0 (the last
    axis); see sanitize_phase(tx_difference=True). Both arrays (..., N_SUB, N_RX, N_TX)."""
    if axis % raw_phase.ndim == raw_phase.ndim - 1:
        raise ValueError("tx_difference needs the tx antennas on the last axis, not the subcarriers")
    out = np.array(sanitized, dtype=np.float64, copy=True)
    out[..., 1:] = np.angle(np.exp(1j * (raw_phase[..., 1:] - raw_phase[..., :1])))
    return out
