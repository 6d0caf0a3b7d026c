"""Constant-velocity Kalman filter over many independent 1-D axes at once.

Every tracked coordinate (box centre x/y, box width/height, 17 keypoint x/y) is its own axis with state
(position, velocity) and a 2x2 covariance. The axes share the motion model but not their measurement
history (a keypoint that is not seen is not updated), so each keeps its own covariance; with 2x2 blocks
predict and update are closed-form and vectorize over axes, which is much cheaper than one 76x76 filter.

Process noise is the continuous white-noise-acceleration model: acceleration spectral density ``q``
(units^2 / s^3) gives Q = q [[dt^3/3, dt^2/2], [dt^2/2, dt]] for a step of dt seconds.
"""

from __future__ import annotations

import numpy as np


class ConstantVelocityKalman:
    """State of ``n`` axes: ``pos``, ``vel`` and covariance entries ``p_pp``, ``p_pv``, ``p_vv``, all (n,)."""

    __slots__ = ("pos", "vel", "p_pp", "p_pv", "p_vv", "q", "r")

    def __init__(
        self,
        position: np.ndarray,
        *,
        process_noise: np.ndarray | float,
        measurement_noise: np.ndarray | float,
        position_var: np.ndarray | float,
        velocity_var: np.ndarray | float,
        velocity: np.ndarray | None = None,
    ):
        self.pos = np.array(position, np.float64, copy=True).reshape(-1)
        n = self.pos.size
        self.vel = np.zeros(n) if velocity is None else np.array(velocity, np.float64).reshape(n)
        self.q = np.broadcast_to(np.asarray(process_noise, np.float64), (n,)).copy()
        self.r = np.broadcast_to(np.asarray(measurement_noise, np.float64), (n,)).copy()
        self.p_pp = np.broadcast_to(np.asarray(position_var, np.float64), (n,)).copy()
        self.p_pv = np.zeros(n)
        self.p_vv = np.broadcast_to(np.asarray(velocity_var, np.float64), (n,)).copy()

    def __len__(self) -> int:
        return self.pos.size

    def predict(self, dt: float) -> None:
        """Advance every axis by ``dt`` seconds (dt <= 0 leaves the state as it is)."""
        if dt <= 0.0:
            return
        q = self.q
        self.pos += dt * self.vel
        # P' = F P F^T + Q with F = [[1, dt], [0, 1]]
        self.p_pp += 2.0 * dt * self.p_pv + dt * dt * self.p_vv + q * (dt**3 / 3.0)
        self.p_pv += dt * self.p_vv + q * (dt * dt / 2.0)
        self.p_vv += q * dt

    def predicted(self, dt: float) -> np.ndarray:
        """Positions ``dt`` seconds ahead, without changing the state."""
        return self.pos + max(dt, 0.0) * self.vel

    def update(self, z: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Fuse position measurements ``z`` (n,); axes where ``mask`` is False are left alone."""
        z = np.asarray(z, np.float64).reshape(-1)
        s = self.p_pp + self.r
        k_p = self.p_pp / s
        k_v = self.p_pv / s
        innov = z - self.pos
        if mask is not None:
            m = np.asarray(mask, bool).reshape(-1)
            k_p = np.where(m, k_p, 0.0)
            k_v = np.where(m, k_v, 0.0)
            innov = np.where(m, innov, 0.0)
        self.pos += k_p * innov
        self.vel += k_v * innov
        # P' = (I - K H) P, written out for the 2x2 blocks (keeps P symmetric by construction).
        p_pp, p_pv = self.p_pp, self.p_pv
        self.p_vv = self.p_vv - k_v * p_pv
        self.p_pv = p_pv - k_p * p_pv
        self.p_pp = p_pp - k_p * p_pp

    def reset_axes(self, mask: np.ndarray, position: np.ndarray, position_var: float, velocity_var: float) -> None:
        """Re-initialise the axes in ``mask`` at ``position`` with zero velocity (e.g. a keypoint seen again
        after it was lost for long enough that its coasted state means nothing)."""
        m = np.asarray(mask, bool).reshape(-1)
        self.pos[m] = np.asarray(position, np.float64).reshape(-1)[m]
        self.vel[m] = 0.0
        self.p_pp[m] = position_var
        self.p_pv[m] = 0.0
        self.p_vv[m] = velocity_var
