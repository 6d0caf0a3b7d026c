"""Moving non-human scatterers ("props"): a fan's blades, a swaying curtain. Off unless a SceneSimulator is
given some; they add bistatic point-scatterer paths like body points (wdp.csi.simulator.channel) and never
shadow the line of sight.

    SceneSimulator(scene, config, props=(RotatingBlades(center=(3.0, 2.0, 1.2)),))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RotatingBlades:
    """A fan: `blades` blades of `points_per_blade` metal points spinning at `hz` revolutions/s in a plane
    (vertical, facing `facing` radians, for a desk fan; horizontal with facing=None for a ceiling fan)."""

    center: tuple[float, float, float]
    radius_m: float = 0.22
    hz: float = 3.0
    blades: int = 3
    points_per_blade: int = 2
    rcs_m2: float = 0.05  # per blade (metal, ~0.15 m^2 for the fan; a person is ~1 m^2)
    facing: float | None = 0.0
    phase: float = 0.0

    def points(self, t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, np.float64))
        frac = (np.arange(self.points_per_blade) + 1.0) / self.points_per_blade  # along the blade
        ang = (
            2 * np.pi * self.hz * t[:, None, None]
            + self.phase
            + 2 * np.pi * np.arange(self.blades)[None, :, None] / self.blades
        )  # (N, B, 1)
        r = self.radius_m * frac[None, None, :]
        u, v = r * np.cos(ang), r * np.sin(ang)  # (N, B, P) in the blade plane
        c = np.asarray(self.center, np.float64)
        if self.facing is None:  # ceiling fan: horizontal plane
            off = np.stack([u, v, np.zeros_like(u)], -1)
        else:  # desk fan: vertical plane, normal along `facing`
            ax = np.array([-np.sin(self.facing), np.cos(self.facing), 0.0])
            off = u[..., None] * ax + v[..., None] * np.array([0.0, 0.0, 1.0])
        return (c + off).reshape(len(t), -1, 3)

    def amplitudes(self) -> np.ndarray:
        n = self.blades * self.points_per_blade
        amp = np.sqrt(self.rcs_m2 / self.points_per_blade)
        return np.full(n, amp, np.complex128) * np.exp(1j * np.linspace(0, 2 * np.pi, n, endpoint=False))


@dataclass(frozen=True)
class SwayingSheet:
    """A curtain: a `width` x `height` sheet of cols x rows points hanging at `center` (its middle), parallel
    to the wall direction `along` (radians), swaying perpendicular to it by up to `amp_m` at `hz`; the
    bottom moves most (pendulum-like), neighbouring columns lag a little (a travelling wave)."""

    center: tuple[float, float, float]
    width_m: float = 1.4
    height_m: float = 2.0
    along: float = 0.0
    amp_m: float = 0.05
    hz: float = 0.3
    cols: int = 4
    rows: int = 3
    rcs_m2: float = 0.3  # whole sheet
    phase: float = 0.0

    def points(self, t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, np.float64))
        xs = (np.arange(self.cols) + 0.5) / self.cols - 0.5
        zs = (np.arange(self.rows) + 0.5) / self.rows - 0.5
        gx, gz = np.meshgrid(xs * self.width_m, zs * self.height_m, indexing="ij")
        depth = (0.5 - gz / self.height_m).ravel()  # 0 at the rail, 1 at the hem
        lag = np.repeat(np.arange(self.cols), self.rows) * 0.4
        sway = self.amp_m * depth[None] * np.sin(2 * np.pi * self.hz * t[:, None] + self.phase + lag[None])
        along = np.array([np.cos(self.along), np.sin(self.along), 0.0])
        normal = np.array([-np.sin(self.along), np.cos(self.along), 0.0])
        base = np.asarray(self.center, np.float64) + gx.ravel()[:, None] * along + gz.ravel()[:, None] * [0, 0, 1.0]
        return base[None] + sway[..., None] * normal

    def amplitudes(self) -> np.ndarray:
        n = self.cols * self.rows
        rng = np.random.default_rng([0x43555254, n])  # "CURT": fixed reflection phases
        return np.full(n, np.sqrt(self.rcs_m2 / n)) * np.exp(1j * rng.uniform(0, 2 * np.pi, n))


Prop = RotatingBlades | SwayingSheet
