"""Training-free sensing of one link (one router's CSI stream): motion, presence, breathing, once a second.

Motion statistic: over the last ``motion_window_s`` the variance of every gain-normalised amplitude feature
(wdp.sensing.features), divided by that feature's variance in a quiet calibration period; the score is the
mean of the ratios over the ``score_top`` fraction of features that rise most (a body moving near the link
disturbs some subcarriers a lot and others hardly; averaging all would dilute it). 1 means "as quiet as
calibration". Motion switches on above ``motion_on`` and off below ``motion_off`` (hysteresis), so a score
hovering at the threshold does not flicker.

Presence: motion now or within ``presence_hold_s``, or a still person's breathing-scale micro-motion
(wdp.sensing.breathing band SNR above ``presence_snr``) over the last ``breathing_window_s``. Presence turns
off only after ``absence_s`` without evidence. Breathing rate is reported while a person is present and still
and the rhythm is clear (confidence >= ``breathing_min_confidence``); a still person without a clear rhythm
(apnea) gets ``breathing_bpm = None``.

Calibration: from an installer's quiet recording (``calibrate``, mode "baseline"), or automatically: the
link says "calibrating" for its first ``calibration_s`` of packets, then takes the quietest
``calibration_s`` stretch it has seen (mode "auto") and keeps looking: a quieter stretch than its reference
(the room was not quiet at start, or it changed) or motion that never stops for ``max_motion_s`` (a fan or a
new steady disturbance) recalibrates it, counted in ``status().recalibrations``.

Bad input never raises: a frame of another shape (the router changed its bandwidth) restarts calibration
(``shape_changes``); a timestamp that jumps back or leaves a gap over ``max_gap_s`` restarts the windows
(``time_jumps``); empty or non-finite frames are counted (``bad_frames``) and skipped.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from wdp import schemas
from wdp.sensing.breathing import estimate_breathing, fill_gaps
from wdp.sensing.features import BinRing, chain_normalized_amplitude, live_subcarriers, window_variance


@dataclass(frozen=True)
class SensingConfig:
    """Every threshold of the detector. Defaults were fitted on the training parts of the development sets'
    protocols only (bench/eval_sensing_real.py says which); the same values serve every hardware shape."""

    bin_s: float = 0.2  # time bins: 5 Hz series for the breathing spectrum
    report_every_s: float = 1.0
    motion_window_s: float = 2.0
    score_top: float = 0.25  # fraction of features (most disturbed first) averaged into the score
    # fitted by bench/eval_sensing_real.py: the best mean training F1 of D1 (Intel 5300), D2 (nexmon) and D3
    # (ESPectre ESP32s), one value for every hardware; motion_off keeps the 0.625 ratio of the hysteresis
    motion_on: float = 3.75
    motion_off: float = 2.34
    calibration_s: float = 10.0
    breathing_window_s: float = 30.0
    breathing_min_s: float = 15.0  # shortest motion-free stretch the breathing spectrum is taken over
    breathing_every_s: float = 5.0  # the spectrum is recomputed this often (its window moves slowly)
    presence_snr: float = float("inf")  # breathing-band SNR that counts as a still person (inf: cue off)
    # empty-room profile distance that counts as a person (empty baseline only); D4's training recordings put it
    # at 0.46 (LOS room) and 2.07 (NLOS room): rooms differ, so installers should tune it (+sensing.presence_distance)
    presence_distance: float = 2.0
    presence_window_s: float = 10.0
    presence_hold_s: float = 10.0
    absence_s: float = 10.0
    breathing_min_confidence: float = 0.3
    max_gap_s: float = 5.0
    max_motion_s: float = 600.0  # motion this long without a quiet second: recalibrate on the quietest stretch
    recalibrate_ratio: float = 0.5  # a calibration-long stretch this much quieter than the reference replaces it
    history_s: float = 120.0  # window variances kept for automatic (re)calibration


@dataclass
class LinkStatus:
    calibration: schemas.CalibrationState = "calibrating"
    packets: int = 0
    bad_frames: int = 0
    shape_changes: int = 0
    time_jumps: int = 0
    recalibrations: int = 0
    features: int = 0
    shape: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)


class LinkSensor:
    def __init__(
        self,
        router_id: str | None = None,
        config: SensingConfig | None = None,
        *,
        source: schemas.FrameSource = "live",
        zone_id: str | None = None,
        trace: bool = False,
    ) -> None:
        self.router_id = router_id
        # trace=True: per report (t, band_snr, estimated bpm, confidence, profile distance), for benchmarks
        self.trace: list[tuple[float, float, float, float, float]] | None = [] if trace else None
        self.zone_id = zone_id
        self.source: schemas.FrameSource = source
        self.cfg = c = config or SensingConfig()
        self._status = LinkStatus()
        self._bins_per_report = max(1, round(c.report_every_s / c.bin_s))
        self._motion_bins = max(2, round(c.motion_window_s / c.bin_s))
        self._breath_bins = max(8, round(c.breathing_window_s / c.bin_s))
        self._hist_len = max(1, round(c.history_s / c.report_every_s))
        self._calib_len = max(1, round(c.calibration_s / c.report_every_s))
        self._shape: tuple[int, ...] | None = None
        self._sel: np.ndarray | None = None
        self._ref: np.ndarray | None = None  # per-feature quiet variance
        self._baseline_locked = False
        self._empty: tuple[np.ndarray, np.ndarray] | None = None  # empty-room profile: mean, std per feature
        self.last_profile_distance: float | None = None
        self._variance_only = False  # calibration probes only collect window variances
        self.last_breathing = None  # the latest BreathingEstimate (diagnostics, benchmarks)
        self._reset_stream()

    # ------------------------------------------------------------------------------------------ state
    def _reset_stream(self, keep_history: bool = False) -> None:
        self._ring: BinRing | None = None
        self._last_t: float | None = None
        self._next_tick: int | None = None  # index of the next report tick (tick i at i * report_every_s)
        self._pending: list[np.ndarray] = []
        self._pending_bin: int | None = None
        self._warm: list[np.ndarray] = []  # raw amplitudes before the live features are known
        self._warm_t: list[np.ndarray] = []  # and their times
        if not keep_history:  # window variances per report (selected features): the (re)calibration material
            self._vars: deque[np.ndarray] = deque(maxlen=self._hist_len)
        self._motion = False
        self._motion_since: float | None = None
        self._last_motion_t = -math.inf
        self._presence = False
        self._last_evidence_t = -math.inf
        self._rate_times: list[np.ndarray] = []  # packet times not yet reported (packets/s from timestamps)
        self._breath_cache: tuple[float, object] | None = None

    def status(self) -> LinkStatus:
        return self._status

    @property
    def calibrated(self) -> bool:
        return self._ref is not None

    # ------------------------------------------------------------------------------------------ calibration
    def calibrate(
        self, times: np.ndarray, csi: np.ndarray | list[np.ndarray], *, mode: str = "baseline", empty: bool = False
    ) -> None:
        """Calibrate from a recording of this room and hardware: ``mode="baseline"`` uses all of it (an
        installer's quiet recording), ``"auto"`` its quietest ``calibration_s`` stretch. The reference is kept
        when the live stream starts (a baseline is not replaced by automatic recalibration unless motion
        never stops for ``max_motion_s``). ``empty=True``: the recording is of the empty room, so its mean
        amplitude profile is kept as well and a person who keeps still is found by how far the live profile
        departs from it (``presence_distance``)."""
        times = np.asarray(times, np.float64)
        amps = self._amplitudes(csi)
        if amps is None or len(times) < 4:
            raise ValueError("calibration needs at least 4 frames of one shape")
        probe = LinkSensor(None, self.cfg)
        probe._variance_only = True
        probe._shape = self._shape_of(csi)
        probe._sel = live_subcarriers(amps)
        probe._ref = np.ones(probe._sel.size)
        probe._push_amps(times, amps)
        if not probe._vars:
            raise ValueError(f"calibration recording too short: need over {self.cfg.motion_window_s} s")
        v = np.stack(list(probe._vars))
        if mode == "auto":
            v = _quietest(v, self._calib_len)
        elif mode != "baseline":
            raise ValueError(f"unknown calibration mode {mode!r}")
        self._shape = probe._shape
        self._sel = probe._sel
        self._ref = _reference(v)
        self._status.calibration = "baseline" if mode == "baseline" else "auto"
        self._status.features = int(self._sel.size)
        self._status.shape = tuple(self._shape or ())
        self._baseline_locked = mode == "baseline"
        if empty:
            x = amps[:, self._sel].astype(np.float64)
            self._empty = (x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6))

    # ------------------------------------------------------------------------------------------ input
    def push(self, t: float, csi: np.ndarray) -> list[schemas.SensingState]:
        """One packet; returns the states of the report ticks it completed (usually none, one per second)."""
        return self.push_many(np.asarray([t], np.float64), [csi])

    def push_many(self, times: np.ndarray, csi: np.ndarray | list[np.ndarray]) -> list[schemas.SensingState]:
        """Packets of this link in time order ((n,) times, (n, S, R, T) csi or a list of (S, R, T))."""
        times = np.asarray(times, np.float64)
        if isinstance(csi, np.ndarray) and csi.ndim == 4:
            groups = [(0, len(times), csi)]
        else:
            groups = self._shape_groups(csi)
        out: list[schemas.SensingState] = []
        for lo, hi, block in groups:
            shape = tuple(block.shape[1:])
            if block.size == 0:
                self._status.bad_frames += hi - lo
                continue
            if self._shape is not None and shape != self._shape:
                self._on_shape_change(shape)
            if self._shape is None:
                self._shape = shape
                self._status.shape = shape
            amps = chain_normalized_amplitude(block)
            finite = np.isfinite(amps).all(axis=1) & np.isfinite(times[lo:hi])
            if not finite.all():
                self._status.bad_frames += int((~finite).sum())
            out += self._push_amps(times[lo:hi][finite], amps[finite])
        return out

    def _shape_groups(self, csi: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
        groups: list[tuple[int, int, np.ndarray]] = []
        lo = 0
        for i in range(1, len(csi) + 1):
            if i == len(csi) or np.shape(csi[i]) != np.shape(csi[lo]):
                arr = np.asarray(csi[lo:i]) if np.ndim(csi[lo]) == 3 else np.zeros((i - lo, 0, 1, 1), np.complex64)
                groups.append((lo, i, arr))
                lo = i
        return groups

    def _on_shape_change(self, shape: tuple[int, ...]) -> None:
        st = self._status
        st.shape_changes += 1
        st.notes.append(f"frame shape changed {self._shape} -> {shape}: calibration restarts")
        del st.notes[:-5]
        self._shape = shape
        st.shape = shape
        self._sel = None
        self._ref = None
        self._empty = None
        self._baseline_locked = False
        st.calibration = "calibrating"
        self._reset_stream()

    @staticmethod
    def _shape_of(csi: np.ndarray | list[np.ndarray]) -> tuple[int, ...]:
        return tuple(np.shape(csi[0]))

    def _amplitudes(self, csi: np.ndarray | list[np.ndarray]) -> np.ndarray | None:
        if not isinstance(csi, np.ndarray):
            shape = np.shape(csi[0])
            csi = np.stack([c for c in csi if np.shape(c) == shape])
        if csi.ndim != 4 or csi.shape[0] == 0:
            return None
        return chain_normalized_amplitude(csi)

    def _push_amps(self, times: np.ndarray, amps: np.ndarray) -> list[schemas.SensingState]:
        out: list[schemas.SensingState] = []
        if len(times) == 0:
            return out
        c = self.cfg
        self._status.packets += len(times)
        self._rate_times.append(np.asarray(times, np.float64))
        if self._sel is None:  # features unknown yet: collect a second of packets to find the live ones
            self._warm.append(amps)
            self._warm_t.append(times)
            n = sum(len(a) for a in self._warm)
            wt = np.concatenate(self._warm_t)
            if n < 8 or wt[-1] - wt[0] < 1.0:
                return out
            amps = np.concatenate(self._warm)
            times = wt
            self._warm, self._warm_t = [], []
            self._sel = live_subcarriers(amps)
            self._status.features = int(self._sel.size)
        x = amps[:, self._sel].astype(np.float64)
        bins = np.floor(times / c.bin_s).astype(np.int64)
        # split at time jumps
        i = 0
        n = len(times)
        while i < n:
            t0 = float(times[i])
            if self._last_t is not None and (t0 < self._last_t - 1e-6 or t0 - self._last_t > c.max_gap_s):
                self._status.time_jumps += 1
                self._flush_pending()
                keep = (self._sel, self._ref, self._shape)
                st = self._status.calibration
                self._reset_stream(keep_history=True)  # a gap in time, not a new room: keep the quiet history
                self._sel, self._ref, self._shape = keep
                self._status.calibration = st
            if self._ring is None:
                self._ring = BinRing(x.shape[1], c.bin_s, self._breath_bins + self._motion_bins + 8)
                self._next_tick = math.floor(t0 / c.report_every_s) + 1
            # run of packets in one bin
            j = i + 1
            while j < n and bins[j] == bins[i] and times[j] >= times[j - 1] and times[j] - times[j - 1] <= c.max_gap_s:
                j += 1
            b = int(bins[i])
            tick_t = self._next_tick * c.report_every_s  # type: ignore[operator]
            while float(times[i]) >= tick_t:
                self._flush_pending()
                out.append(self._report(tick_t))
                self._next_tick += 1  # type: ignore[operator]
                tick_t = self._next_tick * c.report_every_s
            if self._pending_bin is not None and b != self._pending_bin:
                self._flush_pending()
            self._pending.append(x[i:j])
            self._pending_bin = b
            self._last_t = float(times[j - 1])
            i = j
        return out

    def _flush_pending(self) -> None:
        if self._pending and self._ring is not None and self._pending_bin is not None:
            self._ring.add(
                self._pending_bin, np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
            )
        self._pending = []
        self._pending_bin = None

    # ------------------------------------------------------------------------------------------ reports
    def _report(self, tick_t: float) -> schemas.SensingState:
        c = self.cfg
        ring = self._ring
        assert ring is not None
        last_bin = math.floor(tick_t / c.bin_s) - 1  # bins fully before the tick
        cnt, s, sq = ring.window(last_bin, self._motion_bins)
        var = window_variance(cnt, s, sq)
        # packets whose timestamps fall in this report's interval, however they were batched on arrival (a batch
        # spanning several reports used to count in full in the first and leave the next ones at 0)
        ts = np.concatenate(self._rate_times) if self._rate_times else np.empty(0)
        rate = int(np.count_nonzero((ts > tick_t - c.report_every_s) & (ts <= tick_t))) / c.report_every_s
        later = ts[ts > tick_t]
        self._rate_times = [later] if len(later) else []
        if cnt >= 3 and np.isfinite(var).all():
            self._vars.append(var)
        if self._variance_only:
            return self._state(tick_t, 0.0, rate, quick=True)
        self._maybe_calibrate(tick_t)
        if self._ref is None or cnt < 3:
            return self._state(tick_t, 0.0, rate)
        score = self._score(var)
        self._update_motion(tick_t, score)
        return self._state(tick_t, score, rate)

    def _score(self, var: np.ndarray) -> float:
        assert self._ref is not None
        r = var / self._ref
        k = r.size
        top = max(1, int(round(k * self.cfg.score_top)))
        return float(np.partition(r, k - top)[k - top :].mean())

    def _maybe_calibrate(self, tick_t: float) -> None:
        c = self.cfg
        st = self._status
        if self._ref is None:
            if len(self._vars) >= self._calib_len:
                self._ref = _reference(_quietest(np.stack(list(self._vars)), self._calib_len))
                st.calibration = "auto"
            return
        if len(self._vars) < self._calib_len:
            return
        stuck = self._motion and self._motion_since is not None and tick_t - self._motion_since >= c.max_motion_s
        if self._baseline_locked and not stuck:
            return
        recent = np.stack(list(self._vars)[-self._calib_len :])
        if not stuck:
            level = float(np.median(recent / self._ref))
            if level >= c.recalibrate_ratio:
                return
            cand = recent
        else:
            cand = _quietest(np.stack(list(self._vars)), self._calib_len)
        self._ref = _reference(cand)
        st.recalibrations += 1
        st.calibration = "auto"
        self._baseline_locked = False
        st.notes.append(f"recalibrated at t={tick_t:.0f} ({'motion never stopped' if stuck else 'quieter stretch'})")
        del st.notes[:-5]
        if stuck:
            self._motion = False
            self._motion_since = None

    def _update_motion(self, t: float, score: float) -> None:
        was = self._motion
        self._motion = motion_step(was, score, self.cfg.motion_on, self.cfg.motion_off)
        if self._motion and not was:
            self._motion_since = t
        elif not self._motion:
            self._motion_since = None
        if self._motion:
            self._last_motion_t = t
            self._breath_cache = None

    def _state(self, t: float, score: float, rate: float, quick: bool = False) -> schemas.SensingState:
        c = self.cfg
        calibrated = self._ref is not None and not quick
        still = False
        bpm: float | None = None
        conf = 0.0
        evidence = calibrated and (self._motion or t - self._last_motion_t <= c.presence_hold_s)
        if calibrated and self._empty is not None:
            d = self._profile_distance(t)
            self.last_profile_distance = d
            if d is not None and d >= c.presence_distance:
                evidence = True
                still = not self._motion
        if calibrated and not self._motion:
            quiet_s = min(t - self._last_motion_t, c.breathing_window_s)
            if quiet_s >= c.breathing_min_s:
                if self._breath_cache is None or t - self._breath_cache[0] >= c.breathing_every_s:
                    self._breath_cache = (t, self._breathing(t, quiet_s))
                est = self._breath_cache[1]
                self.last_breathing = est
                if est is not None and est.band_snr >= c.presence_snr:
                    evidence = True
                    still = True
                    if est.confidence >= c.breathing_min_confidence:
                        bpm, conf = round(est.bpm, 2), round(est.confidence, 3)
                    else:
                        conf = round(est.confidence, 3)
        if evidence:
            self._last_evidence_t = t
            self._presence = True
        elif self._presence and t - self._last_evidence_t >= c.absence_s:
            self._presence = False
        if not self._presence:
            still = False
        if self.trace is not None:
            b = self.last_breathing if calibrated and not self._motion else None
            pd = self.last_profile_distance
            nan = float("nan")
            self.trace.append(
                (
                    t,
                    b.band_snr if b else nan,
                    b.bpm if b else nan,
                    b.confidence if b else nan,
                    pd if pd is not None else nan,
                )
            )
            self.last_breathing = None
            self.last_profile_distance = None
        return schemas.SensingState(
            timestamp=t,
            router_id=self.router_id,
            zone_id=self.zone_id,
            source=self.source,
            motion=self._motion,
            motion_score=round(score, 4),
            threshold=c.motion_on,
            presence=self._presence,
            still=still and self._presence and not self._motion,
            breathing_bpm=bpm if self._presence else None,
            breathing_confidence=conf if self._presence else 0.0,
            calibration=self._status.calibration,
            packet_rate=round(rate, 2),
        )

    def _profile_distance(self, t: float) -> float | None:
        """Mean squared z-distance of the last ``presence_window_s`` mean profile from the empty room's."""
        assert self._ring is not None and self._empty is not None
        c = self.cfg
        m, cnt = self._ring.means(math.floor(t / c.bin_s) - 1, max(1, round(c.presence_window_s / c.bin_s)))
        if cnt.sum() < 3:
            return None
        mu = (np.nan_to_num(m) * cnt[:, None]).sum(axis=0) / cnt.sum()
        mu0, sd0 = self._empty
        return float(np.mean(((mu - mu0) / sd0) ** 2))

    def _breathing(self, t: float, span_s: float):  # -> BreathingEstimate | None
        c = self.cfg
        ring = self._ring
        assert ring is not None
        n_bins = min(self._breath_bins, max(8, int(span_s / c.bin_s)))
        m, _ = ring.means(math.floor(t / c.bin_s) - 1, n_bins)
        filled = fill_gaps(m)
        if filled is None:
            return None
        return estimate_breathing(filled, 1.0 / c.bin_s)


def motion_step(moving: bool, score: float, on: float, off: float) -> bool:
    """The motion state after one score (hysteresis: on above ``on``, off below ``off``)."""
    return score >= off if moving else score > on


def motion_decisions(scores: np.ndarray, on: float, off: float) -> np.ndarray:
    """motion_step over a score series (NaN: not calibrated yet, no motion) — what a LinkSensor would say."""
    out = np.zeros(len(scores), bool)
    moving = False
    for i, sc in enumerate(scores):
        if np.isnan(sc):
            moving = False
        else:
            moving = motion_step(moving, float(sc), on, off)
        out[i] = moving
    return out


def _reference(v: np.ndarray) -> np.ndarray:
    """Per-feature quiet variance from (windows, K) variances: the median, floored so that a feature that
    was perfectly flat (quantised ESP32 amplitudes) cannot make every later wiggle look huge."""
    ref = np.median(v, axis=0)
    floor = max(float(np.median(ref)) * 0.05, 1e-10)
    return np.maximum(ref, floor)


def _quietest(v: np.ndarray, n: int) -> np.ndarray:
    """The n consecutive rows of (windows, K) variances with the lowest summed median level."""
    if len(v) <= n:
        return v
    level = np.median(v / np.maximum(np.median(v, axis=0), 1e-12), axis=1)
    csum = np.concatenate([[0.0], np.cumsum(level)])
    i = int(np.argmin(csum[n:] - csum[:-n]))
    return v[i : i + n]
