"""Articulated body: per-person dimensions, pose parameters, forward kinematics, body segments.

A pose is a vector of N_PARAMS numbers (root position/heading, whole-body tilt for falling and lying,
trunk lean and limb directions); ``forward_kinematics`` turns a batch of them into the 17 COCO joints
plus helper points (pelvis, neck, head axis, toes, hand tips) in world coordinates (metres, z up).

Dimensions are fractions of body height (Drillis & Contini anthropometric ratios: knee 0.285 H,
hip 0.530 H, shoulder 0.818 H, upper arm 0.186 H, forearm 0.146 H, ...) with a few percent of
per-person jitter and a girth factor that scales limb radii.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---- pose parameter layout (angles in radians) -------------------------------------------------------
PARAM_NAMES = (
    "x",
    "y",
    "heading",
    "tilt_pitch",
    "tilt_roll",
    "lift",
    "trunk_pitch",
    "trunk_roll",
    "head_pitch",
    "l_thigh_el",
    "l_thigh_az",
    "l_shank_el",
    "r_thigh_el",
    "r_thigh_az",
    "r_shank_el",
    "l_ua_el",
    "l_ua_az",
    "l_fa_el",
    "l_fa_az",
    "r_ua_el",
    "r_ua_az",
    "r_fa_el",
    "r_fa_az",
    "foot_flex",
)
N_PARAMS = len(PARAM_NAMES)
P = {name: i for i, name in enumerate(PARAM_NAMES)}
# Limb directions: elevation `el` from straight down (0 = hanging, pi/2 = horizontal, pi = up; negative
# swings backwards) and azimuth `az` from the forward sagittal plane towards the body's outer side.
# foot_flex points the feet (0: foot at a right angle to the shank, pi/2: toes in line with the shank).
FLOOR_CLEARANCE_M = 0.03  # a tilted (falling / lying) body is lifted so no joint goes below this

# ---- joints: COCO 17 then helpers ---------------------------------------------------------------------
PELVIS, NECK, HEAD_LOW, HEAD_HIGH, L_TOE, R_TOE, L_HAND, R_HAND = range(17, 25)
N_JOINTS = 25

# ---- segments: (name, joint a, joint b, radius as fraction of height, scatter points, part ids) ------
# Part ids are DensePose ids (wdp.schemas_sample.DENSEPOSE_PARTS): (id when its front/inner/right
# side is seen, id otherwise); `kind` says how the choice is made when rendering.
SEGMENTS = (
    ("torso", PELVIS, NECK, 0.060, 4, "front", (2, 1)),
    ("head", HEAD_LOW, HEAD_HIGH, 0.050, 1, "head", (23, 24)),
    ("l_upper_arm", 5, 7, 0.022, 2, "arm", (15, 17)),
    ("r_upper_arm", 6, 8, 0.022, 2, "arm", (16, 18)),
    ("l_forearm", 7, 9, 0.018, 2, "arm", (19, 21)),
    ("r_forearm", 8, 10, 0.018, 2, "arm", (20, 22)),
    ("l_hand", 9, L_HAND, 0.016, 1, "fixed", (4, 4)),
    ("r_hand", 10, R_HAND, 0.016, 1, "fixed", (3, 3)),
    ("l_thigh", 11, 13, 0.036, 3, "front", (10, 8)),
    ("r_thigh", 12, 14, 0.036, 3, "front", (9, 7)),
    ("l_shank", 13, 15, 0.026, 2, "front", (14, 12)),
    ("r_shank", 14, 16, 0.026, 2, "front", (13, 11)),
    ("l_foot", 15, L_TOE, 0.020, 1, "fixed", (5, 5)),
    ("r_foot", 16, R_TOE, 0.020, 1, "fixed", (6, 6)),
)
N_SEGMENTS = len(SEGMENTS)
SEG_A = np.array([s[1] for s in SEGMENTS])
SEG_B = np.array([s[2] for s in SEGMENTS])
SEG_RADIUS_FRAC = np.array([s[3] for s in SEGMENTS])
SEG_POINTS = np.array([s[4] for s in SEGMENTS])
TORSO_LATERAL_FRAC = 0.095  # torso half-width (the depth half-thickness is the table's 0.060)
N_SCATTERERS = int(SEG_POINTS.sum())
RCS_PER_AREA = 1.2  # m^2 of radar cross-section per m^2 of silhouette (human ~0.5-1 m^2 at 2.4 GHz)

# scatter point k lies on segment SCAT_SEG[k] at fraction SCAT_FRAC[k] from joint a to joint b
SCAT_SEG = np.repeat(np.arange(N_SEGMENTS), SEG_POINTS)
SCAT_FRAC = np.concatenate([(np.arange(n) + 0.5) / n for n in SEG_POINTS])
_SCATTER_W = np.zeros((N_SCATTERERS, N_JOINTS))
_SCATTER_W[np.arange(N_SCATTERERS), SEG_A[SCAT_SEG]] += 1 - SCAT_FRAC
_SCATTER_W[np.arange(N_SCATTERERS), SEG_B[SCAT_SEG]] += SCAT_FRAC

_BODY_SALT = 0x424F4459  # "BODY"


@dataclass(frozen=True, eq=False)
class BodyShape:
    """Dimensions of one person (metres)."""

    subject_id: int
    height: float
    girth: float
    ankle_h: float
    shank: float
    thigh: float
    hip_half: float
    spine: float
    shoulder_half: float
    upper_arm: float
    forearm: float
    hand: float
    foot: float
    neck_head: float
    seg_radius: np.ndarray  # (N_SEGMENTS,) radius; the torso entry is the depth half-thickness
    torso_lateral: float
    scatter_amp: np.ndarray  # (N_SCATTERERS,) complex: sqrt(RCS share) with a fixed reflection phase

    def seg_length(self, joints: np.ndarray) -> np.ndarray:
        return np.linalg.norm(joints[..., SEG_B, :] - joints[..., SEG_A, :], axis=-1)


def body_from_subject(subject_id: int, height: float | None = None) -> BodyShape:
    """Deterministic body for a subject id (height ~ 1.50-1.95 m, proportions jittered by ~3 %)."""
    rng = np.random.default_rng([_BODY_SALT, int(subject_id)])
    if rng.uniform() < 0.5:
        h = rng.normal(1.63, 0.065)
    else:
        h = rng.normal(1.77, 0.07)
    h = float(np.clip(h, 1.48, 1.98)) if height is None else float(height)
    girth = float(rng.uniform(0.85, 1.25))
    j = lambda: float(rng.normal(1.0, 0.03))  # noqa: E731 - per-segment proportion jitter
    shank, thigh = 0.246 * h * j(), 0.245 * h * j()
    ankle_h = 0.039 * h
    hip_h = ankle_h + shank + thigh
    spine = (0.818 * h - hip_h) * j() if hip_h < 0.818 * h else 0.288 * h
    radius = SEG_RADIUS_FRAC * h * np.where(np.isin(np.arange(N_SEGMENTS), (1, 6, 7, 12, 13)), 1.0, girth)
    shape_kw = dict(
        subject_id=int(subject_id),
        height=h,
        girth=girth,
        ankle_h=ankle_h,
        shank=shank,
        thigh=thigh,
        hip_half=0.05 * h * j(),
        spine=spine,
        shoulder_half=0.115 * h * j(),
        upper_arm=0.186 * h * j(),
        forearm=0.146 * h * j(),
        hand=0.09 * h * j(),
        foot=0.12 * h * j(),
        neck_head=0.107 * h * j(),
        seg_radius=radius,
        torso_lateral=TORSO_LATERAL_FRAC * h * girth,
    )
    lengths = np.array(
        [
            spine,
            0.04 * h,
            shape_kw["upper_arm"],
            shape_kw["upper_arm"],
            shape_kw["forearm"],
            shape_kw["forearm"],
            shape_kw["hand"],
            shape_kw["hand"],
            thigh,
            thigh,
            shank,
            shank,
            shape_kw["foot"],
            shape_kw["foot"],
        ]
    )
    # Silhouette area of each segment (torso: its lateral width) -> RCS, shared by its scatter points.
    width = 2 * radius
    width[0] = 2 * TORSO_LATERAL_FRAC * h * girth
    area = width * (lengths + np.where(np.arange(N_SEGMENTS) == 1, 2 * radius, 0))
    rcs = RCS_PER_AREA * area[SCAT_SEG] / SEG_POINTS[SCAT_SEG]
    phase = rng.uniform(0, 2 * np.pi, N_SCATTERERS)
    return BodyShape(**shape_kw, scatter_amp=np.sqrt(rcs) * np.exp(1j * phase))


@dataclass(frozen=True, eq=False)
class PoseBatch:
    """Forward-kinematics result for N instants: joints and the body's own axes in world coordinates."""

    joints: np.ndarray  # (N, N_JOINTS, 3)
    forward: np.ndarray  # (N, 3) where the chest faces
    left: np.ndarray  # (N, 3) the body's left side

    def __len__(self) -> int:
        return len(self.joints)

    def scatter_points(self) -> np.ndarray:
        """(N, N_SCATTERERS, 3) scatterer positions along the segments."""
        return np.einsum("sj,njk->nsk", _SCATTER_W, self.joints)


def _limb(el: np.ndarray, az: np.ndarray, side: float) -> np.ndarray:
    se = np.sin(el)
    return np.stack([se * np.cos(az), side * se * np.sin(az), -np.cos(el)], axis=-1)


def _rot_tilt_yaw(pitch: np.ndarray, roll: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(N, 3, 3) = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    cp, sp, cr, sr, cy, sy = (
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
        np.cos(yaw),
        np.sin(yaw),
    )
    ry_rx = np.stack(
        [
            np.stack([cp, sp * sr, sp * cr], -1),
            np.stack([np.zeros_like(cp), cr, -sr], -1),
            np.stack([-sp, cp * sr, cp * cr], -1),
        ],
        axis=-2,
    )
    rz = np.zeros_like(ry_rx)
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = cy, -sy, sy, cy, 1.0
    return rz @ ry_rx


def forward_kinematics(shape: BodyShape, params: np.ndarray) -> PoseBatch:
    """Pose parameters (N, N_PARAMS) -> joints in world coordinates."""
    q = np.asarray(params, np.float64)
    n = len(q)
    c = {name: q[:, i] for name, i in P.items()}
    sh = shape
    pts = np.empty((n, N_JOINTS, 3))

    # Legs hang from the pelvis; the pelvis sits as high as the longer leg reaches (feet on the floor).
    th_l = _limb(c["l_thigh_el"], c["l_thigh_az"], 1.0)
    sk_l = _limb(c["l_shank_el"], c["l_thigh_az"], 1.0)
    th_r = _limb(c["r_thigh_el"], c["r_thigh_az"], -1.0)
    sk_r = _limb(c["r_shank_el"], c["r_thigh_az"], -1.0)
    reach_l = -(sh.thigh * th_l[:, 2] + sh.shank * sk_l[:, 2])
    reach_r = -(sh.thigh * th_r[:, 2] + sh.shank * sk_r[:, 2])
    pelvis = np.zeros((n, 3))
    pelvis[:, 2] = sh.ankle_h + np.maximum(reach_l, reach_r)
    lat = np.array([0.0, 1.0, 0.0])
    for side, th, sk, hip, knee, ankle, toe, el, az in (
        (1.0, th_l, sk_l, 11, 13, 15, L_TOE, c["l_shank_el"], c["l_thigh_az"]),
        (-1.0, th_r, sk_r, 12, 14, 16, R_TOE, c["r_shank_el"], c["r_thigh_az"]),
    ):
        pts[:, hip] = pelvis + side * sh.hip_half * lat
        pts[:, knee] = pts[:, hip] + sh.thigh * th
        pts[:, ankle] = pts[:, knee] + sh.shank * sk
        pts[:, toe] = pts[:, ankle] + sh.foot * _limb(el + np.pi / 2 - c["foot_flex"], az, side)
    pts[:, PELVIS] = pelvis

    tp, tr = c["trunk_pitch"], c["trunk_roll"]
    spine = np.stack([np.sin(tp), -np.sin(tr), np.cos(tp) * np.cos(tr)], -1)
    spine /= np.linalg.norm(spine, axis=-1, keepdims=True)
    neck = pelvis + sh.spine * spine
    pts[:, NECK] = neck
    for side, shoulder, elbow, wrist, hand, pre in (
        (1.0, 5, 7, 9, L_HAND, "l_"),
        (-1.0, 6, 8, 10, R_HAND, "r_"),
    ):
        ua = _limb(c[pre + "ua_el"], c[pre + "ua_az"], side)
        fa = _limb(c[pre + "fa_el"], c[pre + "fa_az"], side)
        pts[:, shoulder] = neck + side * sh.shoulder_half * lat
        pts[:, elbow] = pts[:, shoulder] + sh.upper_arm * ua
        pts[:, wrist] = pts[:, elbow] + sh.forearm * fa
        pts[:, hand] = pts[:, wrist] + sh.hand * fa

    hp = tp + c["head_pitch"]
    up = np.stack([np.sin(hp), -np.sin(tr), np.cos(hp) * np.cos(tr)], -1)
    up /= np.linalg.norm(up, axis=-1, keepdims=True)
    fwd = np.stack([np.cos(hp), np.zeros(n), -np.sin(hp)], -1)
    h = sh.height
    head = neck + sh.neck_head * up
    pts[:, HEAD_LOW] = head - 0.02 * h * up
    pts[:, HEAD_HIGH] = head + 0.02 * h * up
    pts[:, 0] = head + 0.055 * h * fwd - 0.005 * h * up
    for side, eye, ear in ((1.0, 1, 3), (-1.0, 2, 4)):
        pts[:, eye] = head + 0.045 * h * fwd + 0.012 * h * up + side * 0.018 * h * lat
        pts[:, ear] = head - 0.005 * h * fwd + side * 0.045 * h * lat

    # Whole-body tilt about the ankles (falling / lying), lift, heading, then position on the floor.
    rot = _rot_tilt_yaw(c["tilt_pitch"], c["tilt_roll"], c["heading"])
    pivot = np.array([0.0, 0.0, sh.ankle_h])
    world = np.einsum("nij,nkj->nki", rot, pts - pivot) + pivot
    world[:, :, 0] += c["x"][:, None]
    world[:, :, 1] += c["y"][:, None]
    world[:, :, 2] += c["lift"][:, None]
    # Lying bodies rest on the floor instead of sinking into it (upright poses are left alone).
    tilted = np.clip(np.maximum(np.abs(c["tilt_pitch"]), np.abs(c["tilt_roll"])) / (np.pi / 2), 0.0, 1.0)
    deficit = np.maximum(FLOOR_CLEARANCE_M - world[:, :, 2].min(axis=1), 0.0)
    world[:, :, 2] += (tilted * deficit)[:, None]
    return PoseBatch(world, rot[:, :, 0].copy(), rot[:, :, 1].copy())
