"""Intel 5300 CSI in absolute units: a numpy port of the csitool's get_scaled_csi.m / get_total_rss.m."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from wdp.csi.capture_file import Capture

NO_VALUE = np.iinfo(np.int32).min
# The 5300 reports noise -127 when it did not measure it; get_scaled_csi then assumes -92 dBm.
NOISE_UNMEASURED = -127
NOISE_ASSUMED_DBM = -92


def _dbinv(db: float) -> float:
    return 10.0 ** (db / 10.0)


def _rssi_power(rssi_ant: Sequence[int]) -> float:
    # Zero (or absent) RSSI means the antenna was not measured, as in the MATLAB code.
    return sum(_dbinv(float(r)) for r in list(rssi_ant)[:3] if r != 0 and r != NO_VALUE)


def total_rss_dbm(rssi_ant: Sequence[int], agc: int) -> float:
    """Combined received power in dBm (get_total_rss.m); -inf when no antenna reported RSSI."""
    power = _rssi_power(rssi_ant)
    if power <= 0.0:
        return float("-inf")
    return 10.0 * np.log10(power) - 44.0 - agc


def scaled_csi(
    csi: np.ndarray, rssi_ant: Sequence[int], noise: int, agc: int, dtype: type = np.complex64
) -> np.ndarray:
    """Scale raw 5300 CSI (subcarriers, rx, tx) to units of sqrt(SNR), like the csitool's get_scaled_csi.m.

    Final csitool version (the one CSIKit ports and reference_mat/ was made with): the raw integers'
    mean power per subcarrier is matched to the total RSS (mW), then divided by thermal noise plus
    the 8-bit quantization error (about 1 per entry, Nrx*Ntx entries per subcarrier). Multi-stream
    frames get the 5300's per-stream power split undone (x sqrt(2) for 2 tx, x sqrt(10^0.45) for 3 tx,
    Intel's approximation of 3). An all-zero matrix stays zero (MATLAB would give NaN), as does a
    frame without RSSI (MATLAB: zero scale).
    """
    h = np.asarray(csi, dtype=np.complex128)
    if h.ndim != 3:
        raise ValueError(f"csi must be (subcarriers, rx, tx), got shape {h.shape}")
    csi_power = float(np.sum(h.real**2 + h.imag**2))
    rssi_power = _rssi_power(rssi_ant)
    if csi_power == 0.0 or rssi_power == 0.0:
        return np.zeros(h.shape, dtype=dtype)
    n_sub, n_rx, n_tx = h.shape
    # Received power in mW = dbinv(get_total_rss) = rssi power / dbinv(44 + agc).
    scale = rssi_power / _dbinv(44 + agc) / (csi_power / n_sub)
    noise_db = NOISE_ASSUMED_DBM if noise in (NOISE_UNMEASURED, NO_VALUE) else noise
    total_noise_power = _dbinv(noise_db) + scale * (n_rx * n_tx)
    out = h * np.sqrt(scale / total_noise_power)
    if n_tx == 2:
        out *= np.sqrt(2.0)
    elif n_tx == 3:
        out *= np.sqrt(_dbinv(4.5))
    return out.astype(dtype, copy=False)


def scaled_capture_csi(capture: Capture, dtype: type = np.complex64) -> list[np.ndarray]:
    """scaled_csi for every frame of an Intel 5300 capture, using its rssi_ant / noise / agc columns."""
    m = capture.meta
    return [
        scaled_csi(h, m["rssi_ant"][i], int(m["noise"][i]), int(m["agc"][i]), dtype=dtype)
        for i, h in enumerate(capture.csi)
    ]
