"""A small 3-D stick figure and a pinhole camera, for tests, benchmarks and demos of the analytics.

``Posture`` holds a few joint angles; ``skeleton_3d`` turns one into the 17 COCO joints in world metres
(z up, feet on the floor z = 0); ``Camera.project`` gives image keypoints. Motion helpers build posture
sequences for standing, walking, sitting down, lying down and falling. Proportions follow the usual
anthropometric fractions of body height (hip 0.53 H, shoulder 0.82 H, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from wdp.tracking.floor import FloorProjector

DEG = np.pi / 180.0


@dataclass(frozen=True)
class Posture:
    x: float = 0.0  # floor position of the feet (m)
    y: float = 0.0
    heading: float = 0.0  # direction the body faces, radians from +x
    height: float = 1.75  # body height (m)
    tilt: float = 0.0  # whole-body rotation about the feet, forward positive (pi/2: lying face down)
    tilt_side: float = 0.0  # the same sideways (left positive)
    trunk: float = 0.0  # trunk lean from vertical, forward positive
    l_thigh: float = 0.0  # thigh angle from straight down, forward positive
    r_thigh: float = 0.0
    l_shank: float = 0.0  # shank angle from straight down, forward positive
    r_shank: float = 0.0
    l_arm: float = 5 * DEG  # upper arm from straight down, forward positive
    r_arm: float = 5 * DEG


STANDING = Posture()
SITTING = Posture(
    l_thigh=88 * DEG,
    r_thigh=88 * DEG,
    l_shank=3 * DEG,
    r_shank=3 * DEG,
    trunk=4 * DEG,
    l_arm=25 * DEG,
    r_arm=25 * DEG,
)
LYING_BACK = Posture(tilt=-90 * DEG, l_arm=10 * DEG, r_arm=10 * DEG)
LYING_FRONT = Posture(tilt=90 * DEG)
LYING_SIDE = Posture(tilt_side=90 * DEG)


def skeleton_3d(p: Posture) -> np.ndarray:
    """(17, 3) COCO joints in world coordinates (m)."""
    h = p.height
    ankle_h, shank, thigh = 0.04 * h, 0.246 * h, 0.245 * h
    hip_half, spine, shoulder_half = 0.05 * h, 0.29 * h, 0.115 * h
    upper_arm, forearm, neck = 0.186 * h, 0.146 * h, 0.10 * h

    def down(angle: float) -> np.ndarray:  # unit vector at `angle` from straight down, forward positive
        return np.array([np.sin(angle), 0.0, -np.cos(angle)])

    # Body frame: x forward, y left, z up; the feet rest on the floor.
    reach = max(
        thigh * np.cos(p.l_thigh) + shank * np.cos(p.l_shank),
        thigh * np.cos(p.r_thigh) + shank * np.cos(p.r_shank),
    )
    pelvis = np.array([0.0, 0.0, ankle_h + reach])
    j = np.zeros((17, 3))
    for side, hip, knee, ank, th, sk in (
        (1, 11, 13, 15, p.l_thigh, p.l_shank),
        (-1, 12, 14, 16, p.r_thigh, p.r_shank),
    ):
        j[hip] = pelvis + [0.0, side * hip_half, 0.0]
        j[knee] = j[hip] + thigh * down(th)
        j[ank] = j[knee] + shank * down(sk)
    up = np.array([np.sin(p.trunk), 0.0, np.cos(p.trunk)])
    neck_pt = pelvis + spine * up
    for side, sh, el, wr, arm in ((1, 5, 7, 9, p.l_arm), (-1, 6, 8, 10, p.r_arm)):
        j[sh] = neck_pt + [0.0, side * shoulder_half, 0.0]
        j[el] = j[sh] + upper_arm * down(arm)
        j[wr] = j[el] + forearm * down(arm + 15 * DEG)
    head = neck_pt + neck * up + np.array([0.0, 0.0, 0.02 * h])
    fwd = np.array([np.cos(p.trunk), 0.0, -np.sin(p.trunk)])
    j[0] = head + 0.06 * h * fwd
    for side, eye, ear in ((1, 1, 3), (-1, 2, 4)):
        j[eye] = head + 0.05 * h * fwd + [0.0, side * 0.02 * h, 0.0] + 0.015 * h * up
        j[ear] = head + [0.0, side * 0.045 * h, 0.0]

    # The feet stay where they are: the body moves over them (sitting pushes the pelvis back).
    j[:, 0] -= 0.5 * (j[15, 0] + j[16, 0])
    # Whole-body tilt about the feet, then a lift so the lowest joint stays on/above the floor.
    pivot = np.array([0.0, 0.0, ankle_h])
    ct, st = np.cos(p.tilt), np.sin(p.tilt)
    rot_pitch = np.array([[ct, 0.0, st], [0.0, 1.0, 0.0], [-st, 0.0, ct]])  # +tilt topples forward (+x)
    cs, ss = np.cos(p.tilt_side), np.sin(p.tilt_side)
    rot_roll = np.array([[1.0, 0.0, 0.0], [0.0, cs, -ss], [0.0, ss, cs]])  # +tilt_side topples left (+y)
    j = (j - pivot) @ (rot_roll @ rot_pitch).T + pivot
    j[:, 2] += max(0.0, 0.03 * h - j[:, 2].min())
    ch, sh_ = np.cos(p.heading), np.sin(p.heading)
    yaw = np.array([[ch, -sh_, 0.0], [sh_, ch, 0.0], [0.0, 0.0, 1.0]])
    return j @ yaw.T + np.array([p.x, p.y, 0.0])


def interpolate(a: Posture, b: Posture, u: float) -> Posture:
    """Posture a fraction ``u`` of the way from ``a`` to ``b`` (angles and position linearly)."""
    fields = {k: getattr(a, k) + u * (getattr(b, k) - getattr(a, k)) for k in a.__dataclass_fields__}
    return Posture(**fields)


def smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3 - 2 * u)


def walking(base: Posture, t: float, speed: float = 1.2, cadence_hz: float = 0.9) -> Posture:
    """Walking along ``base.heading`` from (base.x, base.y) at ``speed`` m/s, ``t`` seconds in."""
    ph = 2 * np.pi * cadence_hz * t
    swing = 22 * DEG * np.sin(ph)
    return replace(
        base,
        x=base.x + speed * t * np.cos(base.heading),
        y=base.y + speed * t * np.sin(base.heading),
        l_thigh=swing,
        r_thigh=-swing,
        l_shank=swing - 15 * DEG * max(0.0, np.sin(ph + 1.2)),
        r_shank=-swing - 15 * DEG * max(0.0, -np.sin(ph + 1.2)),
        l_arm=-0.7 * swing,
        r_arm=0.7 * swing,
        trunk=4 * DEG,
    )


def falling(base: Posture, u: float, direction: float = 1.0) -> Posture:
    """A topple from ``base`` (upright) to lying, ``u`` in [0, 1] of the fall; accelerating like a falling
    body (angle ~ u^2), knees buckling on the way. ``direction`` +1 forward, -1 backward."""
    s = min(max(u, 0.0), 1.0) ** 2
    bump = np.sin(np.pi * min(max(u, 0.0), 1.0))
    return replace(
        base,
        tilt=direction * 90 * DEG * s,
        l_thigh=25 * DEG * bump,
        r_thigh=25 * DEG * bump,
        l_shank=-20 * DEG * bump,
        r_shank=-20 * DEG * bump,
        l_arm=60 * DEG * bump,
        r_arm=60 * DEG * bump,
    )


def lying_down(base: Posture, u: float, direction: float = -1.0) -> Posture:
    """Deliberately lying down from ``base``: through a crouch, smoothstep timing (u in [0, 1])."""
    s = smoothstep(u)
    bump = np.sin(np.pi * min(max(u, 0.0), 1.0))
    return replace(
        base,
        tilt=direction * 90 * DEG * s,
        l_thigh=80 * DEG * bump,
        r_thigh=80 * DEG * bump,
        l_shank=-10 * DEG * bump,
        r_shank=-10 * DEG * bump,
        trunk=25 * DEG * bump,
    )


def sitting_down(base: Posture, u: float) -> Posture:
    s = smoothstep(u)
    target = replace(SITTING, x=base.x, y=base.y, heading=base.heading, height=base.height)
    return interpolate(base, target, s)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: world -> camera is x_cam = R X + t; K the intrinsics (pixels)."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    @classmethod
    def look_at(
        cls,
        position: tuple[float, float, float],
        target: tuple[float, float, float],
        fov_deg: float = 90.0,
        width: int = 256,
        height: int = 256,
    ) -> Camera:
        pos = np.asarray(position, np.float64)
        fwd = np.asarray(target, np.float64) - pos
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        R = np.stack([right, down, fwd])
        f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
        K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
        return cls(K, R, -R @ pos, width, height)

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> pixels (..., 2)."""
        pc = np.asarray(points, np.float64) @ self.R.T + self.t
        uvw = pc @ self.K.T
        return uvw[..., :2] / uvw[..., 2:3]

    def floor_projector(self, plane_height: float = 0.0) -> FloorProjector:
        return FloorProjector.from_camera(self.K, self.R, self.t, plane_height)

    def keypoints(self, posture: Posture, score: float = 0.9) -> np.ndarray:
        """(17, 3) image keypoints (pixels) with a constant score."""
        xy = self.project(skeleton_3d(posture))
        return np.concatenate([xy, np.full((17, 1), score)], axis=1)


DEFAULT_CAMERA = Camera.look_at((3.0, 0.2, 2.4), (3.0, 4.0, 0.8), fov_deg=90.0)
