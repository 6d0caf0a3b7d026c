"""ESPectre `.npz` recordings (micro-ESPectre's ML data collection) as a wdp capture format.

An ESPectre file is a numpy zip archive, not a byte stream: `csi_data` int8 [N, 2 * subcarriers] holds the
Espressif pairs **imaginary first** (Q = csi_data[:, 0::2], I = csi_data[:, 1::2]), plus scalars `label`,
`chip`, `collected_at`, `duration_ms`, `num_subcarriers`, `gain_locked`, `format_version`. Older files carry
per-packet `timestamps` (ms), `rssi` and `noise_floor` instead of `duration_ms`.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from wdp.csi.capture_file import ESPECTRE_NPZ, META_FIELDS, NO_VALUE, Capture, ParseStats


def _load(source: str | Path | bytes) -> dict[str, np.ndarray]:
    is_bytes = isinstance(source, bytes | bytearray)
    fh: Any = io.BytesIO(source) if is_bytes else Path(source)
    try:
        # allow_pickle stays off: these files hold plain arrays and strings only.
        with np.load(fh, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        name = "<bytes>" if is_bytes else str(source)
        raise ValueError(f"not a readable ESPectre .npz archive ({name}): {exc}") from exc


def espectre_npz_attrs(path: str | Path) -> dict[str, Any]:
    """The scalar fields of an ESPectre file (label, chip, collected_at, duration_ms, ...) as Python values."""
    arrays = _load(path)
    return {k: v.item() for k, v in arrays.items() if v.ndim == 0}


def read_espectre_npz(path: str | Path | bytes) -> Capture:
    """Read an ESPectre `.npz` (a path, or the file's bytes) into a Capture of (subcarriers, 1, 1) frames.

    timestamps: the per-packet `timestamps` (ms) when the file has them, else evenly spaced at duration_ms / N
    from 0 (NaN when the file has neither). Fields the format lacks hold NO_VALUE (or -1 where the native
    parsers use -1: seq, core, spatial_stream, perm); the source MAC is not recorded (zeros).
    """
    nbytes = len(path) if isinstance(path, bytes | bytearray) else Path(path).stat().st_size
    arrays = _load(path)
    if "csi_data" not in arrays:
        raise ValueError(f"{path!s}: an .npz without csi_data is not an ESPectre recording")
    raw = arrays["csi_data"]
    if raw.ndim != 2 or raw.shape[1] % 2 or raw.dtype.kind not in "iu":
        raise ValueError(f"{path!s}: csi_data must be an integer [N, 2*subcarriers] array, got {raw.dtype}{raw.shape}")
    n, n_sub = raw.shape[0], raw.shape[1] // 2
    q = raw[:, 0::2].astype(np.float32)
    i = raw[:, 1::2].astype(np.float32)
    csi = (i + 1j * q).astype(np.complex64).reshape(n, n_sub, 1, 1)

    if "timestamps" in arrays and arrays["timestamps"].shape == (n,):
        ts_ms = arrays["timestamps"].astype(np.float64)
    elif "duration_ms" in arrays:
        ts_ms = np.arange(n, dtype=np.float64) * (float(arrays["duration_ms"]) / max(n, 1))
    else:
        ts_ms = np.full(n, np.nan)

    def per_packet(name: str) -> np.ndarray:
        if name in arrays and arrays[name].shape == (n,):
            return arrays[name].astype(np.int32)
        return np.full(n, NO_VALUE, np.int32)

    no_value = np.full(n, NO_VALUE, np.int32)
    meta: dict[str, np.ndarray] = {
        "timestamp": ts_ms / 1e3,
        "timestamp_raw": np.where(np.isfinite(ts_ms), np.rint(ts_ms * 1e3), 0).astype(np.uint64),  # microseconds
        "rssi": per_packet("rssi"),
        "rssi_ant": np.full((n, 4), NO_VALUE, np.int32),
        "noise": per_packet("noise_floor"),
        "agc": no_value.copy(),
        "channel": no_value.copy(),
        "frequency_mhz": no_value.copy(),
        "bandwidth_mhz": np.full(n, 20, np.int32),  # micro-ESPectre records HT20
        "mac": np.zeros((n, 6), np.uint8),
        "seq": np.full(n, -1, np.int64),
        "core": np.full(n, -1, np.int32),
        "spatial_stream": np.full(n, -1, np.int32),
        "rate": no_value.copy(),
        "chip": no_value.copy(),
        "perm": np.full((n, 3), -1, np.int8),
        "record_index": np.arange(n, dtype=np.uint32),
    }
    return Capture(
        format=ESPECTRE_NPZ,
        csi=list(csi),
        meta={k: meta[k] for k in META_FIELDS},
        subcarrier_index=[None] * n,
        stats=ParseStats(bytes=nbytes, records=n, frames=n, malformed=0, skipped=0, truncated=0),
    )
