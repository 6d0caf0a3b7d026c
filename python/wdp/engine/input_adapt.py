"""Fitting a router's frames to a model's input, or saying why they cannot be.

A model card declares its input (wdp.train.export: subcarriers with their indices, rx, tx, window, packet
rate, band, the hardware preset it was trained for). A router sends what its card reports: an ESP32 64 FFT
bins of a 20 MHz channel (nulls and guards included), a Raspberry Pi with nexmon 256 bins of 80 MHz, an Intel
5300 30 subcarrier groups, an Atheros 56 or 114 subcarriers. ``plan_input`` decides once per frame shape:

* subcarriers: the router's bins are placed on the subcarrier-index axis (known layouts by count, below) and
  every model subcarrier is taken from the router's bin of the same index, or linearly interpolated between
  the two nearest usable bins (complex values of one packet: CFO/STO are common to its bins). A router whose
  usable band does not reach the model's edges (more than ``EDGE_TOLERANCE`` subcarriers short) is refused: a
  20 MHz ESP32 cannot feed an 80 MHz nexmon model. A wider router band gives its central part (an 80 MHz
  nexmon frame feeds a 20 MHz model with its middle 52/56 subcarriers). An unknown layout is interpolated by
  position (the engine's old behaviour), and the status says so.
* antennas: a router with at least the model's rx x tx gives its first rx x tx (a sub-array). One with fewer
  is refused when the model reads the phase difference between tx antennas (``tx_difference``: a repeated tx
  makes that difference 0, which no training window had), else its antennas are repeated (model antenna i =
  router antenna i mod n) and the status says so. ``antenna_map`` "cyclic" always repeats (the old default),
  "strict" accepts only the exact shape.
* packet rate (``rate_check``): windows are made of the packet nearest each grid instant; a router slower than
  one packet per ``max_gap_s`` never fills a window and is refused (rechecked as packets come); a router
  slower than the model's rate is used with repeated packets, and the status says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wdp.csi.simulator.config import INTEL5300_SUBCARRIERS_20MHZ

EDGE_TOLERANCE = 2.0  # subcarriers a model's band may reach beyond the router's usable bins (held flat)
RATE_PACKETS = 20  # packets the rate estimate looks at


def _fft_order(n: int, usable: int, first: int) -> np.ndarray:
    """Subcarrier index of each bin of an n-point FFT in FFT order (0..n/2-1, then -n/2..-1); NaN for bins
    outside first..usable (nulls, guards, DC)."""
    idx = np.arange(n, dtype=np.float64)
    idx[idx >= n // 2] -= n
    ok = (np.abs(idx) >= first) & (np.abs(idx) <= usable)
    return np.where(ok, idx, np.nan)


def _sorted(lo: int, hi: int, gap: int) -> np.ndarray:
    """Ascending indices lo..hi without |k| < gap."""
    return np.array([k for k in range(lo, hi + 1) if abs(k) >= gap], np.float64)


@dataclass(frozen=True, eq=False)
class Layout:
    """Where a router's bins sit on the subcarrier-index axis (312.5 kHz spacing); NaN = not usable."""

    name: str
    index: np.ndarray  # (n_sub,) float

    @property
    def usable(self) -> np.ndarray:
        return ~np.isnan(self.index)

    @property
    def span(self) -> tuple[float, float]:
        u = self.index[self.usable]
        return float(u.min()), float(u.max())

    @property
    def bandwidth_mhz(self) -> float:
        lo, hi = self.span
        return (hi - lo + 1) * 0.3125


# Layouts by subcarrier count, as the parsers of wdp.csi deliver them (MANIFEST.md of the shared captures).
LAYOUTS: dict[int, Layout] = {
    30: Layout("Intel 5300, 30 groups of 20 MHz", np.asarray(INTEL5300_SUBCARRIERS_20MHZ, np.float64)),
    52: Layout("20 MHz non-HT, 52 subcarriers", _sorted(-26, 26, 1)),
    56: Layout("20 MHz HT, 56 subcarriers (Atheros, AX200)", _sorted(-28, 28, 1)),
    # ESP32 (and nexmon at 20 MHz): 64 bins in FFT order; L-LTF data subcarriers +-1..26 (27, 28 are 0 there)
    64: Layout("20 MHz, 64 FFT bins (ESP32, nexmon HT20)", _fft_order(64, 26, 1)),
    114: Layout("40 MHz HT, 114 subcarriers (Atheros, MM-Fi)", _sorted(-58, 58, 2)),
    128: Layout("40 MHz, 128 FFT bins (nexmon, ESP32 HT40)", _fft_order(128, 58, 2)),
    242: Layout("80 MHz VHT, 242 subcarriers", _sorted(-122, 122, 2)),
    256: Layout("80 MHz, 256 FFT bins (nexmon)", _fft_order(256, 122, 2)),
}


def layout_of(n_sub: int) -> Layout | None:
    return LAYOUTS.get(int(n_sub))


@dataclass(frozen=True, eq=False)
class InputPlan:
    """How frames of one shape become model frames, or why they cannot (``refusal``)."""

    shape: tuple[int, int, int]  # the router's (subcarriers, rx, tx)
    model_shape: tuple[int, int, int]
    refusal: str | None = None
    notes: tuple[str, ...] = ()
    rx: np.ndarray | None = None  # router rx chain per model rx
    tx: np.ndarray | None = None
    lo: np.ndarray | None = None  # per model subcarrier: router bins and the weight of hi
    hi: np.ndarray | None = None
    w: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None

    def apply(self, csi: np.ndarray) -> np.ndarray:
        """(S_router, R, T) complex -> (S_model, n_rx, n_tx)."""
        assert self.ok
        out = csi
        if self.rx is not None:
            out = out[:, self.rx]
        if self.tx is not None:
            out = out[:, :, self.tx]
        if self.lo is not None:
            assert self.hi is not None and self.w is not None
            w = self.w[:, None, None]
            out = out[self.lo] * (1.0 - w) + out[self.hi] * w
        return np.ascontiguousarray(out, dtype=np.complex64)

    def describe(self) -> str:
        if self.refusal is not None:
            return self.refusal
        return "; ".join(self.notes) if self.notes else "as is"


def _shape_text(s: tuple[int, int, int]) -> str:
    return f"{s[0]} subcarriers x {s[1]} rx x {s[2]} tx"


def plan_input(
    shape: tuple[int, int, int],
    model_shape: tuple[int, int, int],
    model_index: tuple[float, ...] | None,
    *,
    antenna_map: str = "auto",
    tx_difference: bool = False,
    model_name: str = "the model",
) -> InputPlan:
    """The plan for a router sending frames of ``shape`` to a model reading ``model_shape`` at subcarrier
    indices ``model_index`` (None: positions only). See the module docstring."""
    shape = tuple(int(v) for v in shape)  # type: ignore[assignment]
    model_shape = tuple(int(v) for v in model_shape)  # type: ignore[assignment]
    s_in, r, t = shape
    s_m, n_rx, n_tx = model_shape
    notes: list[str] = []
    if min(shape) < 1 or s_in < 2:
        return InputPlan(shape, model_shape, refusal=f"frames of {_shape_text(shape)} cannot feed a pose model")

    # ---- antennas
    rx = tx = None
    if (r, t) != (n_rx, n_tx):
        fewer = r < n_rx or t < n_tx
        if antenna_map == "strict":
            return InputPlan(
                shape,
                model_shape,
                refusal=f"router sends {r} rx x {t} tx, {model_name} takes exactly {n_rx} x {n_tx} (strict)",
            )
        if fewer and antenna_map == "auto" and tx_difference and t < n_tx:
            return InputPlan(
                shape,
                model_shape,
                refusal=(
                    f"router sends {r} rx x {t} tx, {model_name} needs {n_rx} x {n_tx}: it reads the phase "
                    f"difference between tx antennas, which a {t}-tx router does not have; use a model for "
                    f"{r}x{t} hardware (e.g. model.name=esp32 or nexmon for 1x1) or window.antenna_map=cyclic "
                    "to feed it anyway"
                ),
            )
        if fewer and antenna_map in ("auto", "cyclic") or antenna_map == "cyclic":
            rx, tx = np.arange(n_rx) % r, np.arange(n_tx) % t
            if fewer:
                notes.append(f"antennas {r}x{t} repeated to {n_rx}x{n_tx} (one link seen several times)")
            else:
                notes.append(f"rx 0..{n_rx - 1} of {r}, tx 0..{n_tx - 1} of {t}")
        else:  # auto with at least the model's antennas: a sub-array
            rx, tx = np.arange(n_rx), np.arange(n_tx)
            notes.append(f"rx 0..{n_rx - 1} of {r}, tx 0..{n_tx - 1} of {t}")

    # ---- subcarriers
    lo = hi = w = None
    layout = layout_of(s_in)
    if model_index is None or layout is None:
        if s_in != s_m:
            x_in, x_out = np.linspace(0.0, 1.0, s_in), np.linspace(0.0, 1.0, s_m)
            pos = np.interp(x_out, x_in, np.arange(s_in, dtype=np.float64))
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, s_in - 1)
            w = (pos - lo).astype(np.float32)
            why = "no subcarrier indices in the model card" if model_index is None else "unknown layout"
            notes.append(f"{s_in} subcarriers interpolated to {s_m} by position ({why})")
    else:
        m = np.asarray(model_index, np.float64)
        same = s_in == s_m and np.array_equal(layout.index, m)
        if not same:
            u_pos = np.flatnonzero(layout.usable)
            u_idx = layout.index[u_pos]
            order = np.argsort(u_idx)
            u_pos, u_idx = u_pos[order], u_idx[order]
            need_lo, need_hi = float(m.min()), float(m.max())
            if need_lo < u_idx[0] - EDGE_TOLERANCE or need_hi > u_idx[-1] + EDGE_TOLERANCE:
                mbw = (need_hi - need_lo + 1) * 0.3125
                return InputPlan(
                    shape,
                    model_shape,
                    refusal=(
                        f"router sends {layout.name} (usable subcarriers {u_idx[0]:+.0f}..{u_idx[-1]:+.0f}, "
                        f"{layout.bandwidth_mhz:.1f} MHz); {model_name} needs {need_lo:+.0f}..{need_hi:+.0f} "
                        f"({mbw:.1f} MHz): the router's channel is too narrow for it"
                    ),
                )
            q = np.clip(m, u_idx[0], u_idx[-1])
            j = np.clip(np.searchsorted(u_idx, q, side="right") - 1, 0, len(u_idx) - 1)
            j2 = np.minimum(j + 1, len(u_idx) - 1)
            span = u_idx[j2] - u_idx[j]
            frac = np.where(span > 0, (q - u_idx[j]) / np.where(span > 0, span, 1.0), 0.0)
            lo, hi, w = u_pos[j], u_pos[j2], frac.astype(np.float32)
            exact = int(np.sum(frac == 0))
            notes.append(
                f"{layout.name} -> {s_m} subcarriers {need_lo:+.0f}..{need_hi:+.0f} by frequency "
                f"({exact} taken, {s_m - exact} interpolated)"
            )
    return InputPlan(shape, model_shape, None, tuple(notes), rx, tx, lo, hi, w)


def rate_check(timestamps: np.ndarray, rate_hz: float, max_gap_s: float, window: int) -> tuple[str | None, str | None]:
    """(refusal, note) from the last packets' timestamps: refused when packets come further apart on average
    than max_gap_s (no window can fill), noted when slower than the model's rate (packets repeated)."""
    t = np.asarray(timestamps, np.float64)
    if len(t) < 2 or not t[-1] > t[0]:
        return None, None
    rate = (len(t) - 1) / (t[-1] - t[0])
    if 1.0 / rate > max_gap_s:
        return (
            f"router sends ~{rate:.1f} packets/s: fewer than one per {max_gap_s:g} s (max_gap_s), so no window of "
            f"{window} frames at {rate_hz:g} Hz fills; raise the router's packet rate to {rate_hz:g}/s"
        ), None
    if rate < 0.8 * rate_hz:
        return None, f"~{rate:.0f} packets/s for a {rate_hz:g} Hz model: packets repeated to fill the grid"
    return None, None
