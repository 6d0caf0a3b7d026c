"""Receiver hardware impairments and the packet schedule.

Reported CSI of packet n on subcarrier k, rx chain r, tx antenna x:

    H_rep = Q( g_r(t_n) * (H + w) * exp(j (phi_n + beta_r - 2 pi idx_k df tau_n)) )

* phi_n: residual CFO phase, uniform per packet, common to all subcarriers and antennas.
* beta_r: fixed phase offset of rx chain r (random per scene: PLL/LO offsets of the 5300).
* tau_n: timing offset = per-packet STO ~ N(0, sto_std) + SFO drift (sfo_ppm * t modulo one sample
  period, a sawtooth); it adds a phase slope linear in the subcarrier index idx_k.
* g_r(t): AGC set point (static-room rms -> target_rms) times a piecewise-constant gain that steps at
  Poisson times by N(0, agc_step_db) rounded to 1 dB and kept within +-agc_range_db, times a fixed
  per-chain mismatch.
* w: complex white noise, snr_db below the static-room power.
* Q: rounding of I and Q to integers in [-2^(b-1), 2^(b-1) - 1] (b = quantize_bits: 8 for the 5300 and the
  ESP32, 10 Atheros, 16 nexmon) when quantize is on.
Packets are scheduled at n / rate with Gaussian timestamp jitter; each is lost with probability
packet_loss, and every packet inside a loss burst (Poisson-timed, up to burst_loss_max_s) is lost.
All of it is a linear phase in the subcarrier index plus an amplitude scale, so removing a per-packet
linear fit of the unwrapped phase (and normalising amplitude) takes the impairments out again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wdp.csi.simulator.config import Band, Impairments

MAX_JITTER_FRACTION = 0.45  # of the packet period: jitter never reorders packets


@dataclass(frozen=True, eq=False)
class ImpairmentProcess:
    """The per-scene part of the impairments (AGC schedule, chain offsets, loss bursts)."""

    imp: Impairments
    band: Band
    base_gain: float
    static_rms: float
    agc_times: np.ndarray  # (M,) step instants
    agc_db: np.ndarray  # (M + 1,) gain level (dB) before the first step, after each step
    chain_phase: np.ndarray  # (R,)
    chain_gain_db: np.ndarray  # (R,)
    bursts: np.ndarray  # (B, 2) [start, end) of loss bursts

    @classmethod
    def create(
        cls,
        imp: Impairments,
        band: Band,
        n_rx: int,
        duration: float,
        static_rms: float,
        rng: np.random.Generator,
    ) -> ImpairmentProcess:
        imp = imp.active()
        span = duration + 2.0
        m = int(rng.poisson(imp.agc_step_rate_hz * span)) if imp.agc_step_rate_hz > 0 else 0
        agc_times = np.sort(rng.uniform(-1.0, duration + 1.0, m))
        levels = [0.0]
        for step in np.round(rng.normal(0.0, imp.agc_step_db, m)):
            nxt = levels[-1] + step
            if abs(nxt) > imp.agc_range_db:
                nxt = levels[-1] - step
            levels.append(float(np.clip(nxt, -imp.agc_range_db, imp.agc_range_db)))
        chain_phase = rng.uniform(0, 2 * np.pi, n_rx) if imp.chain_phase else np.zeros(n_rx)
        chain_gain = rng.normal(0.0, imp.chain_gain_db, n_rx) if imp.chain_gain_db > 0 else np.zeros(n_rx)
        b = int(rng.poisson(imp.burst_loss_rate_hz * span)) if imp.burst_loss_rate_hz > 0 else 0
        starts = rng.uniform(-1.0, duration + 1.0, b)
        bursts = np.column_stack([starts, starts + rng.uniform(0, imp.burst_loss_max_s, b)])
        base_gain = imp.target_rms / max(static_rms, 1e-30)
        return cls(imp, band, base_gain, static_rms, agc_times, np.array(levels), chain_phase, chain_gain, bursts)

    def gain(self, times: np.ndarray) -> np.ndarray:
        """(N, R) amplitude gain at the given instants."""
        level = self.agc_db[np.searchsorted(self.agc_times, times, side="right")]
        return self.base_gain * 10.0 ** ((level[:, None] + self.chain_gain_db[None, :]) / 20.0)

    def in_burst(self, times: np.ndarray) -> np.ndarray:
        out = np.zeros(len(times), bool)
        for a, b in self.bursts:
            out |= (times >= a) & (times < b)
        return out

    def packets(self, n_lo: int, n_hi: int, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Received packets among nominal indices [n_lo, n_hi): (timestamps, nominal indices)."""
        n = np.arange(n_lo, n_hi)
        jit = rng.normal(0.0, self.imp.jitter_std_s, len(n)) if self.imp.jitter_std_s > 0 else np.zeros(len(n))
        lim = MAX_JITTER_FRACTION / rate
        t = n / rate + np.clip(jit, -lim, lim)
        keep = rng.random(len(n)) >= self.imp.packet_loss
        keep &= ~self.in_burst(t)
        return t[keep], n[keep]

    def apply(self, h: np.ndarray, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Physical channel (N, K, R, X) at packet `times` -> the CSI the receiver reports (complex64)."""
        imp = self.imp
        n, k, r, _ = h.shape
        idx = np.asarray(self.band.subcarrier_index, np.float64)
        cfo = rng.uniform(0, 2 * np.pi, n) if imp.cfo else np.zeros(n)
        sto = rng.normal(0.0, imp.sto_std_ns * 1e-9, n) if imp.sto_std_ns > 0 else np.zeros(n)
        sample_period = 1.0 / (self.band.fft_size * self.band.subcarrier_spacing_hz)
        sfo = np.mod(imp.sfo_ppm * 1e-6 * times, sample_period)
        tau = sto + sfo
        phase = (
            cfo[:, None, None]
            + self.chain_phase[None, None, :]
            - 2 * np.pi * self.band.subcarrier_spacing_hz * idx[None, :, None] * tau[:, None, None]
        )  # (N, K, R)
        out = h.astype(np.complex128)
        if np.isfinite(imp.snr_db):
            std = self.static_rms * 10.0 ** (-imp.snr_db / 20.0) / np.sqrt(2.0)
            out = out + std * (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape))
        out *= (np.exp(1j * phase) * self.gain(times)[:, None, :])[..., None]
        if imp.quantize:
            hi = 2 ** (int(imp.quantize_bits) - 1)
            out = np.clip(np.round(out.real), -hi, hi - 1) + 1j * np.clip(np.round(out.imag), -hi, hi - 1)
        return out.astype(np.complex64)
