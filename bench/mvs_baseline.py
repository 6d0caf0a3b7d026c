"""ESPectre's moving-variance motion detector ("MVS" with NBVI band calibration), re-implemented in numpy.

The named baseline for wdp's training-free sensing (wdp.sensing). Re-implemented from ESPectre's
description (micro-espectre/ALGORITHMS.md, PERFORMANCE.md) and the behaviour of its reference Python,
read at francescopace/espectre commit dc52b942d79558e3bb108911b82ea5ac261c9069 (2026-04-26):
micro-espectre/src/{segmentation.py, nbvi_calibrator.py, filters.py, threshold.py, config.py, utils.py}
and micro-espectre/tests/test_validation_real_data.py. ESPectre is GPL-3.0; no code text is copied.

Algorithm (ESPectre defaults in brackets):
* per packet: amplitudes |H| of 12 selected subcarriers [band size 12]; spatial turbulence =
  population std of those 12 amplitudes (gain-locked chips), or std/mean ("CV normalisation") where the
  AGC is not locked (original ESP32, S2);
* Hampel filter on the turbulence stream [window 7 incl. the current value, 5 x 1.4826 x MAD, the outlier
  replaced by the window median (upper median), not applied before 3 values, nor when MAD <= 1e-6];
  optional 1st-order Butterworth low-pass [off; 11 Hz at 100 Hz];
* moving variance (population) of the last W filtered turbulence values [W = 75 packets]; 0 until W
  values exist;
* state machine: IDLE -> MOTION when mv > threshold, MOTION -> IDLE when mv < threshold;
* threshold = P95 of the calibration moving variances x 1.1 ("auto" mode), clamped to [1e-6, 10].
Calibration ("NBVI", on a quiet recording): ESPectre first locks the gain for 300 packets (skipped here:
`skip` packets), then buffers 750 packets [10 x W] of magnitudes truncated to integers (uint8), finds
candidate 200-packet windows (step 50) whose turbulence variance over a search band (the hint band,
else subcarriers 11-22) is at most the 5th percentile of all windows, and in each candidate window scores
every live subcarrier (HT20: 11..52 without DC 32; mean magnitude >= 1) by
  classic = 0.75 std/mean^2 + 0.25 std/mean,  entropy = classic / max(0.5, H10) (H10: Shannon entropy
  of a 10-bin histogram), mad = classic with std -> 1.4826 MAD;
a noise gate drops subcarriers whose mean is below the 15th percentile of means; four candidate bands
(best 12 by entropy score spaced, by MAD score clustered, by classic score spaced and clustered; with the
default min spacing 1 these are the 12 best) are validated by running turbulence -> Hampel -> moving
variance over the whole buffer (every 5th value kept) and counting values above P95 x 1.1; the first band
with FP <= 5 % wins (else the lowest FP). A hint band [ESPectre's default 12, 14, 16, 18, 20, 24, 28, 36,
40, 44, 48, 52, as the firmware passes it] replaces the winner only when the winner's FP > 5 % and the
hint's is lower. The threshold comes from the winning band's calibration moving variances.

Beyond ESPectre (which only sees single-antenna ESP32 HT20 frames, 64 subcarriers):
* frames (n, S, rx, tx): the detector uses one chain, `chain=(rx, tx)` [(0, 0)], as an ESP32 has one;
* S != 64: no guard/DC list (null subcarriers are dropped by the mean >= 1 gate), no hint band, the search
  band is the first 12 live subcarriers;
* CSI that is not int8-like (non-integer values, or magnitudes above 181) is scaled by one constant, fixed at
  calibration, so the median live magnitude is 32 (the fixtures' range is 24-44): the integer truncation,
  the null gate and the threshold clamp then act as on an ESP32.

Protocol of the figures in tests/test_mvs_baseline.py: ESPectre's own D3 fixtures (one baseline and one
movement recording per chip, ~10 s each, one room per chip, recorded by ESPectre's author); calibrated on
the baseline (after `skip` packets), run on baseline (false positives) and on movement (recall), warm-up of
W packets not scored, as ESPectre's test_validation_real_data.py does. Nothing was tuned here.

    det = MVSDetector()
    det.calibrate(times_quiet, csi_quiet)          # csi (n, S, rx, tx) complex
    mv, motion = det.run(times, csi)               # per packet
    per_second(times, motion)                      # [(t, motion), ...] one per whole second
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DEFAULT_SUBCARRIERS_HT20: tuple[int, ...] = (12, 14, 16, 18, 20, 24, 28, 36, 40, 44, 48, 52)
GUARD_LOW_HT20, GUARD_HIGH_HT20, DC_HT20 = 11, 52, 32
NULL_MAGNITUDE = 1.0  # mean magnitude below this: a null subcarrier
MAD_TO_STD = 1.4826
REFERENCE_MAGNITUDE = 32.0  # median magnitude non-int8 CSI is scaled to (ESP32-like units)
INT8_MAX_MAGNITUDE = 181.0  # |(127, 127)|
THRESHOLD_CLAMP = (1e-6, 10.0)


@dataclass
class MVSConfig:
    window: int = 75  # moving-variance window (packets)
    band_size: int = 12
    percentile: float = 95.0  # adaptive threshold: P95 of calibration moving variances ...
    factor: float = 1.1  # ... times 1.1 ("auto")
    hampel: bool = True
    hampel_window: int = 7
    hampel_threshold: float = 5.0
    lowpass: bool = False
    lowpass_cutoff_hz: float = 11.0
    lowpass_rate_hz: float = 100.0  # ESPectre assumes 100 Hz
    cv_normalization: bool = False  # True where the AGC is not locked (ESP32, S2)
    skip: int = 300  # packets of the gain-lock phase before calibration
    calibration_packets: int = 750  # 10 x window
    nbvi_alpha: float = 0.75
    nbvi_window: int = 200
    nbvi_step: int = 50
    nbvi_percentile: float = 5.0
    noise_gate_percentile: float = 15.0
    min_spacing: int = 1
    target_fp: float = 0.05
    mv_subsample: int = 5
    hint_band: Sequence[int] | None | str = "default"  # "default": ESPectre's for 64 subcarriers
    chain: tuple[int, int] = (0, 0)


@dataclass
class Calibration:
    band: list[int]
    threshold: float
    fp_rate: float
    scale: float
    source: str  # "nbvi", "hint" or "fallback"
    mv_values: np.ndarray = field(repr=False)


# ---- signal pieces -----------------------------------------------------------------------------------
def amplitudes(csi: np.ndarray, chain: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(n, S) or (n, S, rx, tx) complex -> (n, S) float64 magnitudes of one chain."""
    x = np.asarray(csi)
    if x.ndim == 4:
        x = x[:, :, chain[0], chain[1]]
    elif x.ndim != 2:
        raise ValueError(f"csi must be (n, S) or (n, S, rx, tx), got {x.shape}")
    return np.abs(x.astype(np.complex128))


def turbulence(mags: np.ndarray, band: Sequence[int], cv: bool) -> np.ndarray:
    """Spatial turbulence per packet: std over the band (population), or std / mean."""
    a = mags[:, list(band)]
    std = a.std(axis=1)
    if not cv:
        return std
    mean = a.mean(axis=1)
    return np.where(mean > 1e-6, std / np.where(mean > 1e-6, mean, 1.0), 0.0)


def hampel(x: np.ndarray, window: int = 7, threshold: float = 5.0) -> np.ndarray:
    """Causal Hampel filter as ESPectre runs it: the window holds the current and previous values (raw,
    never the replacements); an outlier is replaced by the window's upper median."""
    x = np.asarray(x, np.float64)
    out = x.copy()
    n = len(x)
    lim = threshold * MAD_TO_STD

    def judge(w: np.ndarray, v: np.ndarray) -> np.ndarray:
        m = w.shape[1] // 2
        med = np.sort(w, axis=1)[:, m]
        mad = np.sort(np.abs(w - med[:, None]), axis=1)[:, m]
        bad = (mad > 1e-6) & (np.abs(v - med) / np.where(mad > 1e-6, mad, 1.0) > lim)
        return np.where(bad, med, v)

    for i in range(2, min(window - 1, n)):  # growing window (3 .. window-1 values)
        out[i] = judge(x[None, : i + 1], x[i : i + 1])[0]
    if n >= window:
        out[window - 1 :] = judge(sliding_window_view(x, window), x[window - 1 :])
    return out


def lowpass(x: np.ndarray, cutoff_hz: float, rate_hz: float) -> np.ndarray:
    """1st-order Butterworth (bilinear), started at the first value."""
    wc = np.tan(np.pi * cutoff_hz / rate_hz)
    b0, a1 = wc / (1 + wc), (wc - 1) / (1 + wc)
    out = np.asarray(x, np.float64).copy()
    for i in range(1, len(out)):
        out[i] = b0 * x[i] + b0 * x[i - 1] - a1 * out[i - 1]
    return out


def moving_variance(x: np.ndarray, window: int) -> np.ndarray:
    """Population variance of the last `window` values at each index; 0 until the window is full."""
    out = np.zeros(len(x))
    if len(x) >= window:
        out[window - 1 :] = sliding_window_view(np.asarray(x, np.float64), window).var(axis=1)
    return out


def _entropy10(v: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of a 10-bin histogram from min to max, per column of v (count, S)."""
    lo, hi = v.min(axis=0), v.max(axis=0)
    rng = hi - lo
    width = np.where(rng > 0, rng / 10, 1.0)
    b = np.minimum(np.floor((v - lo) / width).astype(np.int64), 9)
    ent = np.zeros(v.shape[1])
    for s in np.flatnonzero(rng > 0):
        p = np.bincount(b[:, s], minlength=10) / len(v)
        p = p[p > 0]
        ent[s] = -(p * np.log2(p)).sum()
    return ent


# ---- the detector ------------------------------------------------------------------------------------
class MVSDetector:
    """ESPectre MVS: calibrate on a quiet recording, then per-packet moving variance and motion state."""

    def __init__(self, config: MVSConfig | None = None, **overrides: object) -> None:
        cfg = config or MVSConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown MVS setting {k!r}")
            setattr(cfg, k, v)
        self.cfg = cfg
        self.calibration: Calibration | None = None

    # -- filters shared by calibration and run
    def _condition(self, turb: np.ndarray) -> np.ndarray:
        c = self.cfg
        x = hampel(turb, c.hampel_window, c.hampel_threshold) if c.hampel else turb
        if c.lowpass:
            x = lowpass(x, c.lowpass_cutoff_hz, c.lowpass_rate_hz)
        return x

    def _calibration_mv(self, mags_u8: np.ndarray, band: Sequence[int]) -> tuple[float, np.ndarray]:
        """ESPectre's band validation: (FP rate at P95 x 1.1, the kept moving variances)."""
        c = self.cfg
        x = self._condition(turbulence(mags_u8, band, c.cv_normalization))
        if len(x) <= c.window:
            return 0.0, np.zeros(0)
        mv = moving_variance(x, c.window)[c.window :: c.mv_subsample]  # from packet W on, every 5th
        thr = np.percentile(mv, c.percentile) * c.factor
        return float(np.mean(mv > thr)), mv

    def calibrate(self, times: np.ndarray | None, csi: np.ndarray) -> Calibration:
        """NBVI band selection and adaptive threshold on a quiet recording (see the module docstring).
        `times` is not used (ESPectre counts packets); it is accepted for symmetry with run()."""
        c = self.cfg
        mags = amplitudes(csi, c.chain)
        n, n_sub = mags.shape
        if n < c.window + 10:
            raise ValueError(f"calibration needs more than {c.window + 10} packets, got {n}")
        # ESPectre buffers up to 750 packets after the 300 of its gain-lock phase (its test: the rest of a
        # shorter recording); a recording too short for that keeps its last 750 packets.
        skip = c.skip if n - c.skip >= max(c.window + 10, c.nbvi_window) else max(0, n - c.calibration_packets)
        mags = mags[skip : skip + c.calibration_packets]

        live_mag = mags[mags > 0]
        raw = np.asarray(csi)
        vals = (raw[:, :, c.chain[0], c.chain[1]] if raw.ndim == 4 else raw)[skip : skip + c.calibration_packets]
        int_like = bool(np.allclose(vals.real, np.round(vals.real)) and np.allclose(vals.imag, np.round(vals.imag)))
        if int_like and (live_mag.size == 0 or live_mag.max() <= INT8_MAX_MAGNITUDE):
            scale = 1.0
        else:
            scale = REFERENCE_MAGNITUDE / float(np.median(live_mag)) if live_mag.size else 1.0
        mags_u8 = np.minimum(np.floor(mags * scale), 255.0)  # ESPectre buffers int(sqrt(I^2+Q^2)) as uint8

        if n_sub == 64:
            valid = np.zeros(n_sub, bool)
            valid[GUARD_LOW_HT20 : GUARD_HIGH_HT20 + 1] = True
            valid[DC_HT20] = False
            search = list(range(GUARD_LOW_HT20, GUARD_LOW_HT20 + c.band_size))
            hint = list(DEFAULT_SUBCARRIERS_HT20) if c.hint_band == "default" else c.hint_band
        else:
            valid = np.ones(n_sub, bool)
            live = np.flatnonzero(mags_u8.mean(axis=0) >= NULL_MAGNITUDE)
            search = list(live[: c.band_size]) if len(live) >= c.band_size else list(range(c.band_size))
            hint = None if c.hint_band == "default" else c.hint_band
        if hint is not None and len(hint) == c.band_size:
            search = list(hint)
        hint = list(hint) if hint is not None else None

        # candidate quiet windows: variance of raw turbulence over the search band
        turb_search = turbulence(mags_u8, search, c.cv_normalization)
        starts = np.arange(0, len(mags_u8) - c.nbvi_window + 1, c.nbvi_step)
        best: tuple[float, list[int], np.ndarray] | None = None
        if len(starts):
            wvar = np.array([turb_search[s : s + c.nbvi_window].var() for s in starts])
            p = np.percentile(wvar, c.nbvi_percentile)
            order = np.argsort(wvar, kind="stable")
            cands = [int(starts[i]) for i in order if wvar[i] <= p]
            for s0 in cands:
                for band in self._candidate_bands(mags_u8[s0 : s0 + c.nbvi_window], valid):
                    fp, mv = self._calibration_mv(mags_u8, band)
                    if (
                        best is None
                        or (fp <= c.target_fp and best[0] > c.target_fp)
                        or (fp > c.target_fp and fp < best[0])
                    ):
                        best = (fp, band, mv)
        if best is None:
            fp, mv = self._calibration_mv(mags_u8, search)
            band, source = list(search), "fallback"
        else:
            fp, band, mv = best
            source = "nbvi"
            if hint is not None and len(hint) == c.band_size and fp > c.target_fp:
                hfp, hmv = self._calibration_mv(mags_u8, hint)
                if hfp < fp:
                    fp, band, mv, source = hfp, hint, hmv, "hint"
        thr = float(np.percentile(mv, c.percentile) * c.factor) if len(mv) else 1.0
        thr = float(np.clip(thr, *THRESHOLD_CLAMP))
        self.calibration = Calibration(sorted(int(b) for b in band), thr, float(fp), scale, source, mv)
        return self.calibration

    def _candidate_bands(self, win: np.ndarray, valid: np.ndarray) -> list[list[int]]:
        c = self.cfg
        mean = win.mean(axis=0)
        std = win.std(axis=0)
        cnt = len(win)
        med = np.sort(win, axis=0)[cnt // 2]
        mad = np.sort(np.abs(win - med), axis=0)[cnt // 2]
        ent = _entropy10(win)
        ok = valid & (mean >= NULL_MAGNITUDE) & (mean >= 1e-6)
        safe = np.where(ok, mean, 1.0)
        classic = c.nbvi_alpha * std / safe**2 + (1 - c.nbvi_alpha) * std / safe
        robust = np.where(mad > 1e-6, mad * MAD_TO_STD, std)
        mad_score = c.nbvi_alpha * robust / safe**2 + (1 - c.nbvi_alpha) * robust / safe
        ent_score = classic / np.maximum(0.5, ent)
        gate_means = mean[ok & (mean > NULL_MAGNITUDE)]
        if gate_means.size == 0:
            return []
        gate = np.percentile(gate_means, c.noise_gate_percentile)
        keep = np.flatnonzero(ok & (mean >= gate))
        bands: list[list[int]] = []
        for score, spaced in ((ent_score, True), (mad_score, False), (classic, True), (classic, False)):
            ranked = [int(s) for s in keep[np.argsort(score[keep], kind="stable")]]
            band = self._spaced(ranked) if spaced else self._clustered(ranked)
            if len(band) == c.band_size and band not in bands:
                bands.append(band)
        return bands

    def _spaced(self, ranked: list[int]) -> list[int]:
        k = self.cfg.band_size
        for spacing in range(self.cfg.min_spacing, -1, -1):
            sel: list[int] = []
            for s in ranked:
                if len(sel) >= k:
                    break
                if sel and min(abs(s - t) for t in sel) < spacing:
                    continue
                sel.append(s)
            if len(sel) >= k:
                return sorted(sel)
        return sorted(ranked[:k])

    def _clustered(self, ranked: list[int]) -> list[int]:
        k = self.cfg.band_size
        sel = ranked[:5]
        for s in ranked[5:]:
            if len(sel) >= k:
                break
            if min(abs(s - t) for t in sel) >= self.cfg.min_spacing:
                sel.append(s)
        for s in ranked:
            if len(sel) >= k:
                break
            if s not in sel:
                sel.append(s)
        return sorted(sel)

    # -- detection
    def run(self, times: np.ndarray | None, csi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per packet: (moving variance, motion bool) with ESPectre's hysteresis-free state machine.
        The stream starts cold (empty turbulence buffer, no motion for the first W-1 packets)."""
        if self.calibration is None:
            raise RuntimeError("calibrate() first")
        cal = self.calibration
        mags = amplitudes(csi, self.cfg.chain) * cal.scale  # float magnitudes at run time, as ESPectre
        mv = moving_variance(self._condition(turbulence(mags, cal.band, self.cfg.cv_normalization)), self.cfg.window)
        above, below = mv > cal.threshold, mv < cal.threshold
        motion = np.zeros(len(mv), bool)
        state = False
        # mv == threshold keeps the state; otherwise the state is simply mv > threshold
        if not np.any(~above & ~below):
            motion = above
        else:
            for i in range(len(mv)):
                state = True if above[i] else (False if below[i] else state)
                motion[i] = state
        return mv, motion


def per_second(times: np.ndarray, motion: np.ndarray, rule: str = "last") -> list[tuple[float, bool]]:
    """One decision per whole second t (covering packets in [t - 1, t)), like wdp's per-second reports.

    rule "last": the state after the last packet before t (what a published binary sensor shows);
    "any": motion at any packet of the second; "majority": in at least half of its packets.
    Seconds without packets are left out."""
    t = np.asarray(times, np.float64)
    m = np.asarray(motion, bool)
    if len(t) == 0:
        return []
    sec = np.floor(t).astype(np.int64) + 1  # the tick that reports this packet
    out: list[tuple[float, bool]] = []
    bounds = np.flatnonzero(np.diff(sec)) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(t)], strict=True):
        seg = m[a:b]
        if rule == "last":
            v = bool(seg[-1])
        elif rule == "any":
            v = bool(seg.any())
        elif rule == "majority":
            v = bool(seg.mean() >= 0.5)
        else:
            raise ValueError(f"unknown rule {rule!r}")
        out.append((float(sec[a]), v))
    return out


def load_espectre_npz(path: str) -> tuple[np.ndarray, np.ndarray, bool | None]:
    """(times s, csi (n, 64, 1, 1) complex64, gain_locked) of an ESPectre recording via wdp.csi."""
    from wdp.csi import read_capture
    from wdp.csi.espectre_npz import espectre_npz_attrs

    cap = read_capture(path)
    csi = np.stack(cap.csi).astype(np.complex64)
    gl = espectre_npz_attrs(path).get("gain_locked")
    return np.asarray(cap.meta["timestamp"], np.float64), csi, (None if gl is None else bool(gl))


def _main() -> None:  # pragma: no cover - manual run
    import argparse
    import glob
    import os

    ap = argparse.ArgumentParser(description="ESPectre MVS on ESPectre's fixtures (baseline -> movement)")
    ap.add_argument("--data", default="../shared/data/real/fixtures/D3/micro-espectre/data")
    args = ap.parse_args()
    print(f"{'chip':6} {'band':44} {'thr':>9} {'src':8} {'FP':>6} {'recall':>7}")
    for base in sorted(glob.glob(os.path.join(args.data, "baseline", "*.npz"))):
        chip = os.path.basename(base).split("_")[1]
        mov = glob.glob(os.path.join(args.data, "movement", f"movement_{chip}_*.npz"))
        if not mov:
            continue
        tb, cb, gl = load_espectre_npz(base)
        tm, cm, _ = load_espectre_npz(mov[0])
        det = MVSDetector(cv_normalization=gl is False)
        cal = det.calibrate(tb, cb)
        w = det.cfg.window
        _, mb = det.run(tb[det.cfg.skip :], cb[det.cfg.skip :])
        _, mm = det.run(tm, cm)
        fp = mb.sum() / max(len(mb) - w, 1)
        rec = mm.sum() / max(len(mm) - w, 1)
        print(f"{chip:6} {str(cal.band):44} {cal.threshold:9.3g} {cal.source:8} {fp:6.1%} {rec:7.1%}")


if __name__ == "__main__":  # pragma: no cover
    _main()
