"""Temporal smoothing of the keypoints a track shows: a constant-velocity Kalman filter per joint coordinate.

The tracker's own filter follows every detection closely (association needs its prediction where the person
is now); what users see should not jitter with the pose net's noise. This second filter, per track, takes
the same keypoint measurements with a larger measurement noise (``measurement_std``) against a smaller
process noise (``process_noise``): a steady-state alpha-beta filter. A constant-velocity filter has no
steady-state lag on a joint moving at constant speed (it estimates the velocity and extrapolates), so the
smoothing costs at most the transient after a change of speed: tests/test_tracking_smoothing.py bounds it
at one frame on a ramp; bench/bench_tracking.py measures the lag on walking figures. Joints not seen are
predicted, and a joint unseen for ``reset_s`` restarts from its next sighting.
"""

from __future__ import annotations

import numpy as np

from wdp.tracking.kalman import ConstantVelocityKalman


class JointSmoother:
    """Smoothed (J, 2) joint positions of one track, in the tracker's normalized image units."""

    __slots__ = ("kf", "last_seen", "reset_s", "r", "v0")

    def __init__(
        self,
        xy: np.ndarray,
        seen: np.ndarray,
        t: float,
        *,
        process_noise: float,
        measurement_std: float,
        initial_velocity_std: float,
        reset_s: float,
    ) -> None:
        self.r = measurement_std**2
        self.v0 = initial_velocity_std**2
        self.reset_s = reset_s
        self.kf = ConstantVelocityKalman(
            np.asarray(xy, np.float64).reshape(-1),
            process_noise=process_noise,
            measurement_noise=self.r,
            position_var=np.repeat(np.where(seen, self.r, 1.0), 2),
            velocity_var=self.v0,
        )
        self.last_seen = np.where(seen, t, -np.inf)

    def update(self, dt: float, t: float, xy: np.ndarray | None, seen: np.ndarray | None) -> np.ndarray:
        """Advance by ``dt`` and fuse the joints ``seen`` of ``xy`` (J, 2) (None: nothing measured);
        returns the smoothed (J, 2)."""
        kf = self.kf
        kf.predict(dt)
        if xy is not None and seen is not None:
            z = np.asarray(xy, np.float64).reshape(-1)
            stale = seen & ((t - self.last_seen) > self.reset_s)
            if stale.any():
                kf.reset_axes(np.repeat(stale, 2), z, self.r, self.v0)
            kf.update(z, np.repeat(seen & ~stale, 2))
            self.last_seen[seen] = t
        return kf.pos.reshape(-1, 2)

    @property
    def xy(self) -> np.ndarray:
        return self.kf.pos.reshape(-1, 2)
