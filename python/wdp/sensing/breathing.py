"""Breathing-scale micro-motion in a link's binned amplitude series: is someone still but breathing here,
and at what rate.

A chest moving by millimetres modulates the amplitude of some subcarriers at the breathing rate (0.1-0.7 Hz,
6-42 breaths per minute) and leaves the rest of the spectrum at the noise floor. Per feature (subcarrier x
chain) the detrended bin series gets a Hann-windowed power spectrum, normalised by that feature's own noise
level (median power above ``noise_lo_hz``): in white noise the normalised breathing band sits near 1 on
every feature; a breathing person lifts it on the features the chest reaches. ``band_snr`` (the median over
features of the normalised breathing-band power) can feed the presence decision; the rate is the spectral
peak of the band-limited series' first principal component, refined by parabolic interpolation on a
zero-padded FFT. ``confidence`` is the fraction of breathing-band power within +-0.04 Hz of the peak: a
regular rhythm concentrates its power there, apnea or fidgeting spreads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BAND_HZ = (0.1, 0.7)  # 6-42 breaths per minute


@dataclass(frozen=True, slots=True)
class BreathingEstimate:
    band_snr: float  # normalised breathing-band power (1 = noise floor)
    bpm: float  # peak frequency x 60
    confidence: float  # 0..1, power concentration at the peak


def fill_gaps(m: np.ndarray) -> np.ndarray | None:
    """Linear interpolation over empty bins (NaN rows) of (n, K); None when under half the bins have data."""
    ok = ~np.isnan(m[:, 0])
    n_ok = int(ok.sum())
    if n_ok < max(4, m.shape[0] // 2):
        return None
    if n_ok == m.shape[0]:
        return m
    x = np.arange(m.shape[0])
    out = np.empty_like(m)
    xo = x[ok]
    for j in range(m.shape[1]):
        out[:, j] = np.interp(x, xo, m[ok, j])
    return out


def estimate_breathing(
    series: np.ndarray, fs: float, noise_lo_hz: float = 1.0, pad: int = 4
) -> BreathingEstimate | None:
    """``series``: (n, K) gap-free bin means at ``fs`` Hz (n / fs >= ~15 s for a usable rate).

    The rate comes from the first principal component of the band-limited (0.1-0.7 Hz) series: breathing
    moves the features the chest reaches together (with signs of their own), so it dominates one component
    while independent noise spreads over all of them."""
    n, k = series.shape
    if n < 16:
        return None
    t = np.arange(n, dtype=np.float64)
    x = series - series.mean(axis=0)
    tc = t - t.mean()
    slope = (tc @ x) / float(tc @ tc)
    x = x - np.outer(tc, slope)  # slow drift is not breathing
    w = np.hanning(n)
    nfft = int(2 ** np.ceil(np.log2(n * pad)))
    f = np.fft.rfftfreq(nfft, 1.0 / fs)
    spec_c = np.fft.rfft(x * w[:, None], nfft, axis=0)  # (F, K)
    spec = np.abs(spec_c) ** 2
    band = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
    noise = f >= min(noise_lo_hz, 0.8 * fs / 2)
    if not band.any() or noise.sum() < 4:
        return None
    floor = np.median(spec[noise], axis=0)
    floor = np.maximum(floor, 1e-12 + 1e-9 * spec.mean(axis=0))
    band_power = (spec[band] / floor).mean(axis=0)  # (K,), noise ~ 1
    band_snr = float(np.median(band_power))
    # first principal component of the band-limited series (band mask in the frequency domain)
    xb = np.fft.irfft(spec_c * band[:, None], nfft, axis=0)[:n]
    pc = _first_component(xb)
    pspec = np.abs(np.fft.rfft(pc, nfft)) ** 2
    fb = f[band]
    pb = pspec[band]
    i = int(np.argmax(pb))
    fpk = float(fb[i])
    if 0 < i < len(pb) - 1:
        a, b, c = np.log(pb[i - 1 : i + 2] + 1e-12)
        den = a - 2 * b + c
        if den < 0:
            fpk += 0.5 * (a - c) / den * float(fb[1] - fb[0])
    near = np.abs(fb - fpk) <= 0.04
    conf = float(pb[near].sum() / max(pb.sum(), 1e-12))
    return BreathingEstimate(band_snr=band_snr, bpm=60.0 * fpk, confidence=conf)


def _first_component(x: np.ndarray, iters: int = 30) -> np.ndarray:
    """Scores of the first principal component of (n, K) centred data by power iteration (a few matrix-vector
    products: cheaper than an SVD and free of BLAS threading)."""
    v = np.abs(x).sum(axis=0)
    v /= max(float(np.linalg.norm(v)), 1e-30)
    for _ in range(iters):
        w = x.T @ (x @ v)
        nw = float(np.linalg.norm(w))
        if nw == 0.0:
            break
        w /= nw
        if float(np.abs(w - v).max()) < 1e-6:
            v = w
            break
        v = w
    return x @ v
