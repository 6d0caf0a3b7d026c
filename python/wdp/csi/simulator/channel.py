"""Multipath channel per subcarrier and antenna link.

H[k, r, x] = sum over paths p of g_p * exp(-j 2 pi f_k d_p / c)

* line of sight: g = lambda / (4 pi d)
* first-order wall, floor and ceiling reflections by the image method (the mirror image of the TX
  antenna in each of the six planes of the box room): g = -Gamma_w lambda / (4 pi d_image)
* static clutter and body scatterers as bistatic point targets:
  g = sqrt(sigma) e^{j psi} lambda / ((4 pi)^{3/2} d_tx d_rx), path length d = d_tx + d_rx
* a body near the line of sight attenuates it (up to 8 dB) by how deep it sits in the first Fresnel
  zone (no diffraction model beyond that).
Bodies are not reflected off walls (no second-order paths). Longer paths therefore rotate the phase
clockwise (decreasing) and make the phase slope over subcarrier index more negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wdp.csi.simulator.config import SPEED_OF_LIGHT, Band
from wdp.csi.simulator.room import Room

SHADOW_DEPTH = 0.6  # amplitude lost by a body right on the line of sight (~8 dB)
_FOUR_PI_15 = (4 * np.pi) ** 1.5


@dataclass(frozen=True, eq=False)
class StaticChannel:
    los: np.ndarray  # (K, R, X) complex128 line-of-sight term (shadowed by bodies)
    rest: np.ndarray  # (K, R, X) complex128 walls + clutter
    rms: float  # rms |H| of the empty room

    @property
    def total(self) -> np.ndarray:
        return self.los + self.rest


def _paths_to_h(lengths: np.ndarray, gains: np.ndarray, band: Band) -> np.ndarray:
    """lengths, gains (..., R, X) -> H (K, R, X) summed over the leading path axes."""
    f = band.frequencies
    ph = np.exp(-2j * np.pi * f[:, None, None, None] * lengths.reshape(-1, *lengths.shape[-2:])[None] / SPEED_OF_LIGHT)
    return (ph * gains.reshape(-1, *gains.shape[-2:])[None]).sum(axis=1)


def static_channel(room: Room, band: Band) -> StaticChannel:
    lam = band.wavelength
    tx, rx = room.tx, room.rx
    d_los = np.linalg.norm(rx[:, None, :] - tx[None, :, :], axis=-1)  # (R, X)
    los = _paths_to_h(d_los, lam / (4 * np.pi * d_los), band)

    w, d, h = room.size
    images = []
    for axis, plane in ((0, 0.0), (0, w), (1, 0.0), (1, d), (2, 0.0), (2, h)):
        img = tx.copy()
        img[:, axis] = 2 * plane - img[:, axis]
        images.append(img)
    imgs = np.stack(images)  # (6, X, 3)
    d_wall = np.linalg.norm(rx[None, :, None, :] - imgs[:, None, :, :], axis=-1)  # (6, R, X)
    g_wall = -room.reflection[:, None, None] * lam / (4 * np.pi * d_wall)
    rest = _paths_to_h(d_wall, g_wall, band)

    if len(room.clutter_pos):
        d_t = np.linalg.norm(room.clutter_pos[:, None, :] - tx[None], axis=-1)  # (C, X)
        d_r = np.linalg.norm(room.clutter_pos[:, None, :] - rx[None], axis=-1)  # (C, R)
        length = d_r[:, :, None] + d_t[:, None, :]
        gain = room.clutter_amp[:, None, None] * lam / (_FOUR_PI_15 * d_r[:, :, None] * d_t[:, None, :])
        rest = rest + _paths_to_h(length, gain, band)
    total = los + rest
    return StaticChannel(los, rest, float(np.sqrt(np.mean(np.abs(total) ** 2))))


def scatter_channel(points: np.ndarray, amps: np.ndarray, room: Room, band: Band) -> np.ndarray:
    """Point scatterers (N, S, 3) with complex amplitudes (S,) -> H (N, K, R, X) complex64.

    The per-subcarrier phase is split into a carrier part (float64, reduced mod 2 pi) and a small
    baseband part (float32), so float32 sin/cos stay accurate while running fast."""
    n, s = points.shape[:2]
    k = len(band.subcarrier_index)
    if s == 0:
        return np.zeros((n, k, len(room.rx), len(room.tx)), np.complex64)
    d_t = np.linalg.norm(points[:, :, None, :] - room.tx[None, None], axis=-1)  # (N, S, X)
    d_r = np.linalg.norm(points[:, :, None, :] - room.rx[None, None], axis=-1)  # (N, S, R)
    length = d_r[:, :, :, None] + d_t[:, :, None, :]  # (N, S, R, X)
    mag = (np.abs(amps)[None, :, None, None] * band.wavelength / _FOUR_PI_15) / (
        d_r[:, :, :, None] * d_t[:, :, None, :]
    )
    carrier = np.mod(
        -2 * np.pi * band.center_hz / SPEED_OF_LIGHT * length + np.angle(amps)[None, :, None, None], 2 * np.pi
    )
    # (N, R, X, S) layouts so the subcarrier axis broadcasts in front of the summed scatterer axis
    carrier32 = carrier.transpose(0, 2, 3, 1).astype(np.float32)
    length32 = length.transpose(0, 2, 3, 1).astype(np.float32)
    mag32 = mag.transpose(0, 2, 3, 1).astype(np.float32)
    w = (
        -2 * np.pi * band.subcarrier_spacing_hz / SPEED_OF_LIGHT * np.asarray(band.subcarrier_index, np.float64)
    ).astype(np.float32)
    theta = carrier32[:, :, :, None, :] + w[None, None, None, :, None] * length32[:, :, :, None, :]  # (N,R,X,K,S)
    re = np.einsum("nrxks,nrxs->nrxk", np.cos(theta), mag32)  # (N, R, X, K)
    im = np.einsum("nrxks,nrxs->nrxk", np.sin(theta), mag32)
    h = (re + 1j * im).astype(np.complex64)
    return np.ascontiguousarray(h.transpose(0, 3, 1, 2))


def los_shadowing(points: np.ndarray, radii: np.ndarray, groups: list[slice], room: Room, band: Band) -> np.ndarray:
    """Multiplicative LoS amplitude factor (N, R, X) from bodies near each TX-RX line.

    points (N, S, 3) with radii (S,); `groups` slice the scatterer axis into people. Each person
    attenuates by SHADOW_DEPTH * exp(-2 (clearance / r_F)^2), r_F the first-Fresnel-zone radius at the
    closest point and clearance the gap between the body surface and the line."""
    n = points.shape[0]
    a = room.tx  # (X, 3)
    seg = room.rx[:, None, :] - a[None, :, :]  # (R, X, 3)
    seg_len2 = np.sum(seg**2, axis=-1)
    seg_len = np.sqrt(seg_len2)
    out = np.ones((n, len(room.rx), len(room.tx)))
    for g in groups:
        p = points[:, g]  # (N, s, 3)
        rel = p[:, :, None, None, :] - a[None, None, None, :, :]  # (N, s, R, X, 3)
        u = np.clip(np.einsum("nsrxk,rxk->nsrx", rel, seg) / seg_len2, 0.0, 1.0)
        dist = np.linalg.norm(rel - u[..., None] * seg, axis=-1)
        clearance = np.maximum(dist - radii[g][None, :, None, None], 0.0)
        r_f = np.sqrt(band.wavelength * u * (1 - u) * seg_len) + 0.02
        q = np.min(clearance / r_f, axis=1)  # (N, R, X)
        out *= 1.0 - SHADOW_DEPTH * np.exp(-2.0 * q**2)
    return out
