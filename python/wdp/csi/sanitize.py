"""CSI sanitization (backed by wdp._native): phase unwrap + linear phase removal, subcarrier
interpolation, amplitude normalization, Hampel outlier filter over time, resampling to a fixed rate, and the
combined per-frame Sanitizer.

Arrays are CSI-shaped: a frame is (S, R, T) (subcarriers, rx, tx), a batch (N, S, R, T); the per-frame steps
accept any leading axes (subcarriers on axis -3). Time-domain steps (Hampel, resampling) take (N, ...) with
time on axis 0. Bad input (NaN/Inf, empty, mismatched shapes, unknown options) raises ValueError.

Phase fits (per link, x = subcarrier position 0..F-1 or the given subcarrier indices):
  "endpoints"      slope (phi_F - phi_1) / (x_F - x_1), offset mean(phi): the DensePose-from-WiFi step in
                   the form that removes any linear phase exactly (default);
  "least_squares"  least-squares line over x;
  "paper"          the paper's formula as printed (f = 1..F, slope (phi_F - phi_1) / F): it leaves
                   (true slope) / F behind; kept to reproduce the paper;
  "none".
Amplitude normalization (per frame, per link, over subcarriers): "rms" divides by the RMS (removes AGC gain
steps; default), "zscore" gives (a - mean) / std, "none".
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import numpy as np

from wdp import _native

PhaseFit = Literal["endpoints", "least_squares", "paper", "none"]
AmplitudeNorm = Literal["rms", "zscore", "none"]

__all__ = [
    "HampelStream",
    "SanitizeConfig",
    "Sanitizer",
    "StreamResampler",
    "hampel_filter",
    "interpolate_subcarriers",
    "normalize_amplitude",
    "remove_linear_phase",
    "resample",
    "sanitize_phase",
    "unwrap_phase",
]


class SanitizeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings of the per-frame Sanitizer."""

    # None keeps the input's subcarrier count (the DensePose model wants 30).
    n_subcarriers_out: int | None = None
    # Actual subcarrier numbers (strictly increasing): the axis of the phase fit and of the interpolation.
    subcarrier_index: tuple[float, ...] | None = None
    phase_fit: PhaseFit = "endpoints"
    amplitude_norm: AmplitudeNorm = "rms"
    # Causal Hampel on the amplitude over the last 2k+1 frames (zero latency); 0 turns it off.
    hampel_k: int = 3
    hampel_sigmas: float = 3.0
    # Floors on the Hampel threshold: a sample is an outlier only when it is further than
    # max(hampel_sigmas * 1.4826 * MAD, hampel_min_rel * |median|, hampel_min_abs) from its window median
    # (raw amplitude, before normalization). Without them the 7-frame MAD decides alone: on quantized CSI it is
    # often 0 or 1 LSB, and even on Gaussian noise a 7-sample MAD flags 4.8% of samples at 3 sigma.
    # hampel_min_abs is in raw CSI units: 1 LSB for the integer-CSI chips (Intel 5300, Atheros, ESP32, Nexmon
    # int16, the simulator's quantized I/Q) and about one noise sigma for wdp.csi.scaling.scaled_csi; set it to
    # the noise level for float CSI (an SDR such as the USRP N210 reports ~1e-3, so 3.0 turns its filter off).
    # Defaults from bench/hampel_floor_survey.py (causal k=3, 3 sigma, every file in shared/data/csi, one
    # stream per (shape, core, spatial stream)), % of amplitude samples replaced without floors -> with
    # (0.25, 3.0): Intel 5300 3000-packet monitor capture 7.61 -> 0.17, Intel 5300 T410 example 9.42 -> 0.47,
    # PicoScenes AX200 10.2 -> 1.75, ESP32 example 16.5 -> 4.6, all 1.76M samples 6.49 -> 3.68.
    # 0.25 is the smallest relative floor (0.05 steps) that puts both Intel 5300 logs with >= 26 frames per
    # stream under 1%; injected spikes (>= 2x the clean value, tests/test_sanitize.py) stay replaced. What the
    # floors leave elsewhere is not quantization: per-packet gain steps (QCA9300 6.5%, Atheros 6.2%, ESP32
    # 6.7%: whole links flagged at once, as the filter runs before normalization) and > 25% per-sample
    # amplitude jitter on Nexmon chips (bcm4339 3.9% at ~1 kHz with its link RMS steady within 1%). Floors
    # high enough to hide those (0.5 relative still leaves 3.2%) would let real spikes through.
    hampel_min_rel: float = 0.25
    hampel_min_abs: float = 3.0


def _as_frames(x: Any, dtype: type = np.float64) -> tuple[np.ndarray, tuple[int, ...]]:
    """(..., S, R, T) -> contiguous (n, S, R*T) view/copy plus the original shape."""
    a = np.asarray(x)
    if a.ndim < 3:
        raise ValueError(f"expected a CSI-shaped array (..., subcarriers, rx, tx), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"empty array of shape {a.shape}")
    s, r, t = a.shape[-3:]
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1, s, r * t), a.shape


def _index(subcarrier_index: Any) -> list[float] | None:
    return None if subcarrier_index is None else [float(v) for v in np.asarray(subcarrier_index).ravel()]


def unwrap_phase(phase: Any) -> np.ndarray:
    """numpy.unwrap along the subcarrier axis (-3), per link; float64."""
    frames, shape = _as_frames(phase)
    return _native.unwrap_subcarriers(frames).reshape(shape)


def remove_linear_phase(phase: Any, fit: PhaseFit = "endpoints", subcarrier_index: Any = None) -> np.ndarray:
    """Remove the linear part (STO/SFO slope, CFO offset) of an unwrapped phase, per link; float64."""
    frames, shape = _as_frames(phase)
    return _native.remove_linear_phase(frames, fit, _index(subcarrier_index)).reshape(shape)


def sanitize_phase(csi: Any, fit: PhaseFit = "endpoints", subcarrier_index: Any = None) -> np.ndarray:
    """Phase of complex CSI, unwrapped along subcarriers with its linear part removed; float64."""
    return remove_linear_phase(unwrap_phase(np.angle(np.asarray(csi))), fit, subcarrier_index)


def interpolate_subcarriers(x: Any, n_out: int, subcarrier_index: Any = None) -> np.ndarray:
    """Linear interpolation along axis -3 to n_out points evenly spaced from the first to the last subcarrier
    position (0..S-1, or subcarrier_index). Complex input is interpolated in real and imaginary parts."""
    if int(n_out) < 2:
        raise ValueError(f"n_out must be >= 2, got {n_out}")
    a = np.asarray(x)
    if np.iscomplexobj(a):
        return interpolate_subcarriers(a.real, n_out, subcarrier_index) + 1j * interpolate_subcarriers(
            a.imag, n_out, subcarrier_index
        )
    frames, shape = _as_frames(a)
    out = _native.interpolate_subcarriers(frames, int(n_out), _index(subcarrier_index))
    return out.reshape(shape[:-3] + (int(n_out),) + shape[-2:])


def normalize_amplitude(amplitude: Any, mode: AmplitudeNorm = "rms") -> np.ndarray:
    """Per frame and link over the subcarriers: "rms" -> a / rms(a), "zscore" -> (a - mean) / std; float64."""
    frames, shape = _as_frames(amplitude)
    return _native.normalize_amplitude(frames, mode).reshape(shape)


def _time_rows(x: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    a = np.asarray(x)
    if a.ndim < 1 or a.shape[0] == 0 or a.size == 0:
        raise ValueError(f"expected a non-empty (frames, ...) array, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32).reshape(a.shape[0], -1), a.shape


def _check_k(k: int) -> None:
    if int(k) < 0:
        raise ValueError(f"Hampel half-window k must be >= 0, got {k}")


def hampel_filter(
    x: Any, k: int = 3, n_sigma: float = 3.0, *, causal: bool = False, min_rel: float = 0.0, min_abs: float = 0.0
) -> np.ndarray:
    """Hampel outlier filter over axis 0, per element of the other axes (float32 out, same shape).

    A sample further than max(n_sigma * 1.4826 * MAD, min_rel * |median|, min_abs) from its window's median
    becomes that median; the default floors 0 give the classic filter (SanitizeConfig has floors for CSI
    amplitude). Centered windows are frames [t-k, t+k], causal ones [t-2k, t]; both are cut at the ends of x.
    """
    _check_k(k)
    rows, shape = _time_rows(x)
    out, _ = _native.hampel_filter(rows, int(k), float(n_sigma), bool(causal), float(min_rel), float(min_abs))
    return out.reshape(shape)


class HampelStream:
    """Frame-by-frame Hampel filter; equal to hampel_filter over the whole stream.

    Centered: push() returns frame t-k (None for the first k frames) and flush() the last k at the end of the
    stream. Causal: push() returns the filtered frame at once. min_rel, min_abs: threshold floors as in
    hampel_filter.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        k: int = 3,
        n_sigma: float = 3.0,
        *,
        causal: bool = False,
        min_rel: float = 0.0,
        min_abs: float = 0.0,
    ) -> None:
        _check_k(k)
        self.shape = tuple(int(d) for d in shape)
        self._f = _native.HampelFilter(
            int(np.prod(self.shape)), int(k), float(n_sigma), bool(causal), float(min_rel), float(min_abs)
        )

    @property
    def latency(self) -> int:
        return self._f.latency

    @property
    def replaced(self) -> int:
        return self._f.replaced

    def push(self, frame: Any) -> np.ndarray | None:
        a = np.asarray(frame)
        if a.shape != self.shape:
            raise ValueError(f"frame shape {a.shape} != stream shape {self.shape}")
        out = self._f.push(a)
        return None if out is None else out.reshape(self.shape)

    def flush(self) -> np.ndarray:
        return self._f.flush().reshape((-1,) + self.shape)

    def reset(self) -> None:
        self._f.reset()


def resample(
    t: Any, x: Any, rate_hz: float = 100.0, *, unwrap: bool = False, max_gap_s: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Resample x (N, ...) taken at strictly increasing times t (seconds) to rate_hz by linear interpolation.

    The grid is floor(t[0]) + j / rate_hz (for 100 Hz: the absolute 10 ms grid) from t[0] to t[-1]; grid
    points inside a gap longer than max_gap_s are skipped. unwrap: x is a phase, unwrapped over time before
    interpolating (the unwrapped phase is returned). Complex x: amplitude and time-unwrapped phase are
    interpolated and recombined. Returns (t_out float64, x_out float32 or complex64).
    """
    tt = np.ascontiguousarray(t, dtype=np.float64)
    a = np.asarray(x)
    if tt.ndim != 1 or a.ndim < 1 or a.shape[0] != tt.shape[0]:
        raise ValueError(f"t {tt.shape} and x {a.shape} must hold the same number of samples")
    if np.iscomplexobj(a):
        t_out, amp = resample(tt, np.abs(a), rate_hz, max_gap_s=max_gap_s)
        _, phase = resample(tt, np.angle(a), rate_hz, unwrap=True, max_gap_s=max_gap_s)
        return t_out, (amp * np.exp(1j * phase)).astype(np.complex64)
    rows, shape = _time_rows(a)
    t_out, out = _native.resample_linear(tt, rows, float(rate_hz), bool(unwrap), float(max_gap_s))
    return t_out, out.reshape((len(t_out),) + shape[1:])


class StreamResampler:
    """Sample-by-sample resample(): push() returns the grid frames each sample completes (often 0 or 1).

    Samples not later than the previous one (late or duplicate packets) are dropped and counted in .dropped.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        rate_hz: float = 100.0,
        *,
        complex_input: bool = False,
        unwrap: bool = False,
        max_gap_s: float = 1.0,
    ) -> None:
        self.shape = tuple(int(d) for d in shape)
        n = int(np.prod(self.shape))
        self.complex_input = complex_input
        rate, gap = float(rate_hz), float(max_gap_s)
        self._amp = _native.LinearResampler(n, rate, bool(unwrap and not complex_input), gap)
        self._phase = _native.LinearResampler(n, rate, True, gap) if complex_input else None

    @property
    def dropped(self) -> int:
        return self._amp.dropped

    def push(self, t: float, x: Any) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(x)
        if a.shape != self.shape:
            raise ValueError(f"sample shape {a.shape} != stream shape {self.shape}")
        if self._phase is None:
            t_out, out = self._amp.push(float(t), a)
            return t_out, out.reshape((len(t_out),) + self.shape)
        t_out, amp = self._amp.push(float(t), np.abs(a))
        _, phase = self._phase.push(float(t), np.angle(a))
        return t_out, (amp * np.exp(1j * phase)).astype(np.complex64).reshape((len(t_out),) + self.shape)

    def reset(self) -> None:
        self._amp.reset()
        if self._phase is not None:
            self._phase.reset()


class Sanitizer:
    """Per-frame pipeline over a stream of (S, R, T) complex frames -> (amplitude, phase), float32
    (S_out, R, T) each: phase unwrap along subcarriers, linear phase removal, interpolation to
    n_subcarriers_out, causal Hampel on the amplitude (stateful, zero latency), amplitude normalization.

    process_batch(csi (N, S, R, T)) equals N process_frame calls (the Hampel state runs on); reset() starts
    a new stream. Native buffers are allocated once; pass out=(amplitude, phase) to reuse output arrays too.
    One Sanitizer per stream and thread: process_batch releases the GIL and the state is not locked.
    """

    def __init__(self, shape: tuple[int, int, int], config: SanitizeConfig | None = None) -> None:
        self.config = config or SanitizeConfig()
        if len(shape) != 3:
            raise ValueError(f"shape must be (subcarriers, rx, tx), got {shape}")
        n_sub, n_rx, n_tx = (int(d) for d in shape)
        c = self.config
        if c.n_subcarriers_out is not None and c.n_subcarriers_out < 2:
            raise ValueError("n_subcarriers_out must be >= 2 (or None to keep the input's)")
        if c.hampel_k < 0:
            raise ValueError("hampel_k must be >= 0")
        self.shape = (n_sub, n_rx, n_tx)
        self._native = _native.Sanitizer(
            n_sub,
            n_rx,
            n_tx,
            c.n_subcarriers_out or 0,
            _index(c.subcarrier_index),
            c.phase_fit,
            c.amplitude_norm,
            c.hampel_k,
            float(c.hampel_sigmas),
            float(c.hampel_min_rel),
            float(c.hampel_min_abs),
        )
        self.output_shape = (self._native.n_sub_out, n_rx, n_tx)

    @property
    def hampel_replaced(self) -> int:
        return self._native.hampel_replaced

    def process_frame(
        self, csi: Any, out: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if out is None:
            out = (np.empty(self.output_shape, np.float32), np.empty(self.output_shape, np.float32))
        self._native.process_frame(csi, out[0], out[1])
        return out

    def process_batch(
        self, csi: Any, out: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if out is None:
            shape = (np.shape(csi)[0] if np.ndim(csi) else 0,) + self.output_shape
            out = (np.empty(shape, np.float32), np.empty(shape, np.float32))
        self._native.process_batch(csi, out[0], out[1])
        return out

    def reset(self) -> None:
        self._native.reset()
