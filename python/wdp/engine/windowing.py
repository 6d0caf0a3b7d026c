"""Per-router windowing: packets -> fixed-rate grid frames -> sanitized model-input windows.

The model card's ``input_spec`` fixes the window (e.g. 5 frames at 100 Hz of 30 subcarriers x 3 rx x 3 tx)
and the sanitization the training used. Per packet:

1. Input adaptation (wdp.engine.input_adapt, decided once per frame shape): the router's antennas and
   subcarriers are fitted to the card's rx x tx and subcarrier indices (a sub-array of a bigger array; bins
   taken or interpolated by frequency from the router's known layout: ESP32 64 FFT bins, nexmon 256, Atheros
   56/114, Intel 30), or the router is refused with the reason in its status (``status()``, the engine's
   ``pose_input`` health): a channel narrower than the model's, fewer tx antennas than a model reading tx phase
   differences, fewer packets than one per ``max_gap_s``. ``antenna_map`` "auto" (default) repeats missing
   antennas only for models that do not read tx differences; "cyclic" always repeats (model antenna i = input
   antenna i mod n), "strict" takes only the model's exact antenna shape.
2. Grid: frame i of the engine's time grid (instants ``grid_base + i / rate``, shared by every router so
   windows of different routers fall in the same time slot) is the received packet NEAREST in time to
   it, the way the simulator assembled the training windows (wdp.csi.simulator.simulate): a lost packet is
   replaced by a neighbour, nothing is interpolated (packets carry different random CFO/STO phases, so
   blending two of them is meaningless). A gap longer than ``max_gap_s`` restarts the window.
3. Sanitization (native ``wdp.csi.Sanitizer``) as the card says: amplitude raw |CSI| (the nets normalise it
   themselves), phase unwrapped along the subcarriers with the linear fit removed ("endpoints" over the
   card's subcarrier indices) - equal to ``wdp.csi.sanitize_numpy.sanitize_phase`` that training used
   (tests/test_engine_windowing.py checks it). Optional causal Hampel on the amplitude (off unless configured).
4. Every ``hop`` grid frames a window of the last ``window`` frames is emitted (slot = end index // hop).

Realtime sources also advance the grid by the clock (``advance``): once no packet can arrive nearer to a grid
instant than the packet held, the frame is decided without waiting for the next packet (up to a period).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wdp.csi.sanitize import SanitizeConfig, Sanitizer
from wdp.csi.simulator.config import INTEL5300_SUBCARRIERS_20MHZ
from wdp.engine.input_adapt import RATE_PACKETS, InputPlan, plan_input, rate_check
from wdp.engine.metrics import PoseInputStatus

# Grid instants count as reached by a packet up to 10 us early (grid units at 100 Hz): epoch-second floats
# carry ~1e-7 s of rounding, so exact comparisons would depend on it.
_GRID_TOL = 1e-3
# Decide a grid frame by the clock only this long after no packet could still be nearer: live packets are
# timestamped by the kernel on arrival but read a little later.
DECISION_GUARD_S = 0.001
_FITS = {
    "endpoints": "endpoints",
    "lstsq": "least_squares",
    "least_squares": "least_squares",
    "paper": "paper",
    "none": "none",
}


WINDOWS_PER_S = 20  # windows per second and router the engine makes unless window.hop says otherwise


@dataclass(frozen=True)
class WindowSpec:
    """What one model-input window is and how it is made."""

    window: int = 5
    rate_hz: float = 100.0
    n_sub: int = 30
    n_rx: int = 3
    n_tx: int = 3
    phase_fit: str = "endpoints"
    subcarrier_index: tuple[float, ...] | None = tuple(float(v) for v in INTEL5300_SUBCARRIERS_20MHZ)
    hampel_k: int = 0  # causal Hampel on the amplitude; 0 = off (training used none)
    tx_difference: bool = False  # phase of tx antennas 1.. = raw phase difference to tx 0 (sanitize_phase)
    hop: int = 5  # grid frames between windows (5 at 100 Hz: 20 windows/s per router)
    max_gap_s: float = 0.1
    antenna_map: str = "auto"
    hardware: str | None = None  # the hardware preset the model was trained for (card input_spec.hardware)

    def __post_init__(self) -> None:
        if self.window < 1 or self.hop < 1 or not self.rate_hz > 0:
            raise ValueError("window, hop and rate_hz must be positive")
        if self.phase_fit not in _FITS.values():
            raise ValueError(f"unknown phase fit {self.phase_fit!r}")
        if self.antenna_map not in ("auto", "cyclic", "strict"):
            raise ValueError("antenna_map must be 'auto', 'cyclic' or 'strict'")
        if self.subcarrier_index is not None and len(self.subcarrier_index) != self.n_sub:
            raise ValueError("subcarrier_index must list n_sub subcarriers")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.window, self.n_sub, self.n_rx, self.n_tx)

    @property
    def slot_s(self) -> float:
        return self.hop / self.rate_hz

    @classmethod
    def from_card(cls, card: Mapping[str, Any] | None, **overrides: Any) -> WindowSpec:
        """The spec a model card asks for (defaults: the simulator contract), with overrides (None = keep)."""
        spec = (card or {}).get("input_spec", {})
        san = spec.get("sanitization", {})
        kw: dict[str, Any] = {}
        for key, name in (
            ("window", "window"),
            ("rate_hz", "frame_rate_hz"),
            ("n_sub", "subcarriers"),
            ("n_rx", "rx_antennas"),
            ("n_tx", "tx_antennas"),
        ):
            if name in spec:
                kw[key] = type(getattr(cls, key))(spec[name])
        if "method" in san:
            method = str(san["method"])
            if method not in _FITS:
                raise ValueError(f"model card asks for an unknown phase sanitization {method!r}")
            kw["phase_fit"] = _FITS[method]
        if "tx_difference" in san:
            kw["tx_difference"] = bool(san["tx_difference"])
        if spec.get("hardware"):
            kw["hardware"] = str(spec["hardware"])
        if "subcarrier_index" in san:
            idx = san["subcarrier_index"]
            kw["subcarrier_index"] = None if idx is None else tuple(float(v) for v in idx)
        elif san:  # the card names a sanitization without indices: positions 0..F-1, as sanitize_phase does
            kw["subcarrier_index"] = None
        # 20 windows/s per router at the model's packet rate unless told (hop 5 at 100 Hz, 1 at 20 Hz)
        kw["hop"] = max(1, round(float(kw.get("rate_hz", cls.rate_hz)) / WINDOWS_PER_S))
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


@dataclass(frozen=True, eq=False)
class Window:
    """One model-input window of one router."""

    router_id: str
    slot: int  # grid index of the window's last frame // hop: windows of one slot are fused
    timestamp: float  # engine-clock time of the window's middle frame (the instant its poses describe)
    amplitude: np.ndarray  # (W, S, R, T) float32 raw |CSI|
    phase: np.ndarray  # (W, S, R, T) float32 sanitized
    arrival: float  # perf_counter when the packet that completed the window arrived
    queued: float = 0.0  # perf_counter when it entered the engine's queue
    truth: Any = None  # simulator ground truth at the middle frame (tuple of PersonTruth) or None


@dataclass
class WindowerStats:
    packets: int = 0
    grid_frames: int = 0
    windows: int = 0
    gaps: int = 0  # window restarts after a gap longer than max_gap_s
    late: int = 0  # packets not later than the previous one (dropped)
    rejected: int = 0  # packets the model cannot take (input_adapt refused their shape, or the router's rate)
    repeated: int = 0  # grid frames that reused the packet of the previous grid frame (loss filled)


@dataclass
class _Held:
    t: float
    csi: np.ndarray
    arrival: float
    truth: Any
    serial: int


@dataclass
class RouterWindower:
    """Turns one router's packets into windows (see the module docstring)."""

    router_id: str
    spec: WindowSpec
    grid_base: float  # engine-clock time of grid index 0
    stats: WindowerStats = field(default_factory=WindowerStats)

    def __post_init__(self) -> None:
        s = self.spec
        self._prev: _Held | None = None
        self._next_grid: int | None = None
        self._last_serial = -1
        self._amp: deque[np.ndarray] = deque(maxlen=s.window)
        self._phase: deque[np.ndarray] = deque(maxlen=s.window)
        self._index: deque[int] = deque(maxlen=s.window)
        self._truth: deque[Any] = deque(maxlen=s.window)
        self._sanitizers: dict[int, Sanitizer] = {}
        self._serial = 0
        self._plans: dict[tuple[int, ...], InputPlan] = {}
        self._last_plan: InputPlan | None = None
        self._times: deque[float] = deque(maxlen=RATE_PACKETS)
        self._since_rate = 0
        self._rate_refusal: str | None = None
        self._rate_note: str | None = None

    # ------------------------------------------------------------------------------------------ steps
    def plan(self, shape: tuple[int, ...]) -> InputPlan:
        """The input plan for frames of ``shape`` (S, R, T), made once per shape."""
        key = tuple(int(v) for v in shape)
        p = self._plans.get(key)
        if p is None:
            s = self.spec
            p = self._plans[key] = plan_input(
                key,  # type: ignore[arg-type]
                (s.n_sub, s.n_rx, s.n_tx),
                s.subcarrier_index,
                antenna_map=s.antenna_map,
                tx_difference=s.tx_difference,
                model_name=f"the model ({s.hardware})" if s.hardware else "the model",
            )
            self._last_plan = p
        return p

    def map_antennas(self, csi: np.ndarray) -> np.ndarray | None:
        """(S, R, T) -> (n_sub, n_rx, n_tx) as the input plan says, or None if the router is refused."""
        if csi.ndim != 3:
            return None
        p = self.plan(csi.shape)
        self._last_plan = p
        return p.apply(csi) if p.ok else None

    @property
    def refused(self) -> bool:
        """True while the router's latest frames are refused (their shape, or the router's packet rate)."""
        p = self._last_plan
        return p is not None and (not p.ok or self._rate_refusal is not None)

    def status(self) -> PoseInputStatus:
        """What the windower does with this router's frames: state "deciding" (no packet yet), "on" (with the
        adaptation made) or "off" with the reason (wdp.engine.input_adapt)."""
        s, st = self.spec, self.stats
        common = {
            "router_id": self.router_id,
            "model_shape": [s.n_sub, s.n_rx, s.n_tx],
            "model_hardware": s.hardware,
            "packets": st.packets,
            "rejected": st.rejected,
            "windows": st.windows,
        }
        p = self._last_plan
        if p is None:
            return PoseInputStatus(**common)
        refusal = p.refusal or self._rate_refusal
        notes = [n for n in (*p.notes, self._rate_note) if n] if p.ok else []
        return PoseInputStatus(
            state="off" if refusal else "on",
            reason=refusal,
            adaptation="; ".join(notes) if notes else (None if refusal else "as is"),
            shape=list(p.shape),
            **common,
        )

    def _check_rate(self, t: float) -> bool:
        """Track the router's packet rate; False while it is too slow for any window to fill."""
        self._times.append(t)
        self._since_rate += 1
        if len(self._times) >= RATE_PACKETS and self._since_rate >= RATE_PACKETS // 2:
            self._since_rate = 0
            s = self.spec
            self._rate_refusal, self._rate_note = rate_check(np.asarray(self._times), s.rate_hz, s.max_gap_s, s.window)
        return self._rate_refusal is None

    def _sanitizer(self, n_sub: int) -> Sanitizer:
        san = self._sanitizers.get(n_sub)
        if san is None:
            s = self.spec
            same = n_sub == s.n_sub
            cfg = SanitizeConfig(
                n_subcarriers_out=None if same else s.n_sub,
                subcarrier_index=s.subcarrier_index if same else None,
                phase_fit=s.phase_fit,  # type: ignore[arg-type]
                amplitude_norm="none",
                hampel_k=s.hampel_k,
            )
            san = self._sanitizers[n_sub] = Sanitizer((n_sub, s.n_rx, s.n_tx), cfg)
        return san

    def _tx_difference(self, csi: np.ndarray, phase: np.ndarray) -> np.ndarray:
        """Tx antennas 1.. of a sanitised frame -> raw phase difference to tx 0 (WindowSpec.tx_difference)."""
        d = csi[..., 1:] * np.conj(csi[..., :1])  # (S_in, R, T - 1)
        if d.shape[0] != self.spec.n_sub:  # resampled frames: interpolate the unit phasors the same way
            d = d / np.maximum(np.abs(d), 1e-12)
            x_in = np.linspace(0.0, 1.0, d.shape[0])
            x_out = np.linspace(0.0, 1.0, self.spec.n_sub)
            flat = d.reshape(d.shape[0], -1)
            d = np.stack(
                [np.interp(x_out, x_in, c.real) + 1j * np.interp(x_out, x_in, c.imag) for c in flat.T], axis=1
            ).reshape(self.spec.n_sub, *d.shape[1:])
        out = np.array(phase, dtype=np.float32, copy=True)
        out[..., 1:] = np.angle(d)
        return out

    def push(self, t: float, csi: np.ndarray, arrival: float, truth: Any = None) -> list[Window]:
        """One received packet; returns the windows it completes (usually none or one)."""
        st = self.stats
        st.packets += 1
        mapped = self.map_antennas(np.asarray(csi))
        rate_ok = self._check_rate(t)
        if mapped is None or mapped.shape[0] < 2 or not rate_ok:
            st.rejected += 1
            return []
        s = self.spec
        prev = self._prev
        if prev is not None and not t > prev.t:
            st.late += 1
            return []
        pkt = _Held(t, mapped, arrival, truth, self._serial)
        self._serial += 1
        pos = (t - self.grid_base) * s.rate_hz
        if prev is None or t - prev.t > s.max_gap_s:
            if prev is not None:
                st.gaps += 1
            self._restart()
            self._next_grid = math.ceil(pos - _GRID_TOL)
        out: list[Window] = []
        assert self._next_grid is not None
        while self._next_grid <= pos + _GRID_TOL:
            g = self._next_grid
            tg = self.grid_base + g / s.rate_hz
            pick = pkt if prev is None or abs(t - tg) <= abs(tg - prev.t) else prev
            w = self._grid_frame(g, pick, arrival)
            if w is not None:
                out.append(w)
            self._next_grid = g + 1
        self._prev = pkt
        return out

    def deadline(self) -> float | None:
        """Engine-clock time after which no packet can be nearer the next grid instant than the held one
        (None when nothing can be decided early: no packet held, or the held one is over a period old)."""
        prev, g = self._prev, self._next_grid
        if prev is None or g is None:
            return None
        tg = self.grid_base + g / self.spec.rate_hz
        lead = tg - prev.t
        if lead > 1.0 / self.spec.rate_hz:
            return None  # a lost packet: wait for the next one (the packet path handles gaps)
        return tg + lead + DECISION_GUARD_S

    def advance(self, now: float, now_perf: float) -> list[Window]:
        """Emit the grid frames decided by the clock alone: at engine-clock time ``now`` a packet that has
        not arrived is further from the grid instant than the held packet once now > instant + (instant -
        held packet's time). This saves waiting for the next packet (up to a packet period) in realtime;
        the frames are the ones push() would give. A window completed here "arrived" at its deadline
        (``now_perf`` is the perf_counter reading at ``now``)."""
        out: list[Window] = []
        while (d := self.deadline()) is not None and now >= d:
            assert self._prev is not None and self._next_grid is not None
            g = self._next_grid
            w = self._grid_frame(g, self._prev, now_perf - (now - d))
            self._next_grid = g + 1
            if w is not None:
                out.append(w)
        return out

    def _restart(self) -> None:
        self._amp.clear()
        self._phase.clear()
        self._index.clear()
        self._truth.clear()
        for san in self._sanitizers.values():
            san.reset()

    def _grid_frame(self, g: int, pick: _Held, arrival: float) -> Window | None:
        s = self.spec
        st = self.stats
        st.grid_frames += 1
        if pick.serial == self._last_serial:
            st.repeated += 1
        self._last_serial = pick.serial
        amp, phase = self._sanitizer(pick.csi.shape[0]).process_frame(pick.csi)
        if s.tx_difference:
            phase = self._tx_difference(pick.csi, phase)
        self._amp.append(amp)
        self._phase.append(phase)
        self._index.append(g)
        self._truth.append(pick.truth)
        if (g + 1) % s.hop or len(self._index) < s.window or self._index[0] != g - s.window + 1:
            return None
        st.windows += 1
        mid = s.window // 2
        return Window(
            router_id=self.router_id,
            slot=(g + 1) // s.hop - 1,
            timestamp=self.grid_base + self._index[mid] / s.rate_hz,
            amplitude=np.stack(self._amp),
            phase=np.stack(self._phase),
            arrival=arrival,
            truth=self._truth[mid],
        )


def stack_windows(windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
    """(B, W, S, R, T) amplitude and phase of several windows."""
    return np.stack([w.amplitude for w in windows]), np.stack([w.phase for w in windows])
