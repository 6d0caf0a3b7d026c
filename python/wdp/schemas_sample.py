"""Shapes, dtypes and label conventions of one training sample (one CSI window and its labels).

This module is the data contract between the simulator / dataset writer (wdp.csi.simulator, wdp.data)
and the model and training code. Everything here is plain constants and numpy; no torch.

One sample is a dict of numpy arrays with exactly the keys of ``SAMPLE_FIELDS`` (plus the metadata
keys of ``META_FIELDS`` when it comes from a dataset on disk). Conventions:

* CSI axes are (frame, subcarrier, rx, tx); ``amplitude`` is the raw |CSI| a receiver reports (AGC
  steps, noise, quantisation included) and ``phase`` the raw wrapped phase in radians (CFO, STO/SFO
  slopes included). Frames are the 100 Hz grid; frame i of a window is the received packet nearest in
  time to grid instant ``t0 + i / SAMPLE_RATE_HZ`` (lost packets are filled by their neighbour).
* Labels describe the scene at the window's middle frame (index ``WINDOW // 2``); the metadata ``t`` is
  that instant in seconds since the scene start.
* Image coordinates are continuous pixels of the IMAGE_W x IMAGE_H virtual camera image: pixel (col c,
  row r) covers [c, c+1) x [r, r+1). Label maps are the image downsampled by IMAGE_W // MAP_W: map pixel
  (r, c) is centred on image point ((c + 0.5) * 4, (r + 0.5) * 4).
* ``fall`` is True when any person of the scene (in view or not) is falling at some instant of the
  window's span; ``activity`` is per listed person at the label instant.
* Person slots are filled in scene order with the people that have at least one visible keypoint;
  the remaining slots are padding (keypoints and boxes 0, activity -1, person_area 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

WINDOW = 5
SAMPLE_RATE_HZ = 100.0
N_SUB = 30
N_RX = 3
N_TX = 3
MAX_PEOPLE = 4
IMAGE_H = 256
IMAGE_W = 256
MAP_H = 64
MAP_W = 64
N_KEYPOINTS = 17
N_PARTS = 24
ACTIVITIES = ("stand", "walk", "sit", "lie", "fall", "wave")

# Keypoint visibility flags (COCO): 0 = absent / out of frame / padding, 2 = visible.
VIS_ABSENT = 0
VIS_VISIBLE = 2

COCO_KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# COCO person skeleton (0-based keypoint index pairs), for drawing.
COCO_SKELETON = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)
# COCO keypoint OKS falloff constants (pycocotools COCOeval.Params.kpt_oks_sigmas).
COCO_OKS_SIGMAS = (
    0.026,
    0.025,
    0.025,
    0.035,
    0.035,
    0.079,
    0.079,
    0.072,
    0.072,
    0.062,
    0.062,
    0.107,
    0.107,
    0.087,
    0.087,
    0.089,
    0.089,
)
# Horizontal flip permutation of COCO keypoints (left <-> right).
COCO_FLIP = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# DensePose-COCO fine segmentation ids 1..24 (0 = background). Pairing follows the DensePose-COCO
# part list (1,2 torso; 3 right hand; 4 left hand; 5 left foot; 6 right foot; 7/9, 8/10 upper legs;
# 11/13, 12/14 lower legs; 15/17, 16/18 upper arms; 19/21, 20/22 lower arms; 23/24 head). Which member
# of each pair is back/front (legs, torso), inside/outside (arms) or right/left (head) is this
# simulator's convention, named here.
DENSEPOSE_PARTS = (
    "torso_back",
    "torso_front",
    "right_hand",
    "left_hand",
    "left_foot",
    "right_foot",
    "upper_leg_right_back",
    "upper_leg_left_back",
    "upper_leg_right_front",
    "upper_leg_left_front",
    "lower_leg_right_back",
    "lower_leg_left_back",
    "lower_leg_right_front",
    "lower_leg_left_front",
    "upper_arm_left_inside",
    "upper_arm_right_inside",
    "upper_arm_left_outside",
    "upper_arm_right_outside",
    "lower_arm_left_inside",
    "lower_arm_right_inside",
    "lower_arm_left_outside",
    "lower_arm_right_outside",
    "head_right",
    "head_left",
)
assert len(DENSEPOSE_PARTS) == N_PARTS


def part_id(name: str) -> int:
    """1-based DensePose part id of a part name (see DENSEPOSE_PARTS)."""
    return DENSEPOSE_PARTS.index(name) + 1


# key -> (dtype, shape) of one sample; a dataset shard stacks them with a leading N axis.
SAMPLE_FIELDS: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = {
    "amplitude": (np.dtype(np.float32), (WINDOW, N_SUB, N_RX, N_TX)),
    "phase": (np.dtype(np.float32), (WINDOW, N_SUB, N_RX, N_TX)),
    "keypoints": (np.dtype(np.float32), (MAX_PEOPLE, N_KEYPOINTS, 3)),
    "boxes": (np.dtype(np.float32), (MAX_PEOPLE, 4)),
    "num_people": (np.dtype(np.int64), ()),
    "part_mask": (np.dtype(np.uint8), (MAP_H, MAP_W)),
    "uv": (np.dtype(np.float32), (2, MAP_H, MAP_W)),
    "activity": (np.dtype(np.int64), (MAX_PEOPLE,)),
    "fall": (np.dtype(np.bool_), ()),
    "person_area": (np.dtype(np.float32), (MAX_PEOPLE,)),
}
CSI_KEYS = ("amplitude", "phase")


def sample_fields(
    csi_shape: tuple[int, int, int, int] | None = None,
) -> dict[str, tuple[np.dtype[Any], tuple[int, ...]]]:
    """SAMPLE_FIELDS with another (window, subcarriers, rx, tx) CSI shape: the hardware presets of the
    simulator (wdp.csi.simulator.hardware) write ESP32-, nexmon- or Atheros-shaped windows; labels keep
    their shapes. None: the contract's default (Intel 5300, 5 x 30 x 3 x 3)."""
    if csi_shape is None:
        return SAMPLE_FIELDS
    shape = tuple(int(v) for v in csi_shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"csi_shape must be 4 positive sizes (window, subcarriers, rx, tx), not {csi_shape}")
    return {k: ((dt, shape) if k in CSI_KEYS else (dt, sh)) for k, (dt, sh) in SAMPLE_FIELDS.items()}


META_FIELDS: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = {
    "room_id": (np.dtype(np.int64), ()),
    "seed": (np.dtype(np.int64), ()),
    "t": (np.dtype(np.float64), ()),
}


def empty_sample(with_meta: bool = False) -> dict[str, np.ndarray]:
    """A sample with every array at its padding value (no people, no body pixels)."""
    fields = {**SAMPLE_FIELDS, **(META_FIELDS if with_meta else {})}
    out = {k: np.zeros(shape, dtype) for k, (dtype, shape) in fields.items()}
    out["activity"][:] = -1
    return out


def validate_sample(
    sample: dict[str, np.ndarray], *, batched: bool = False, csi_shape: tuple[int, int, int, int] | None = None
) -> None:
    """Raise ValueError if a sample (or a batch with a leading axis) breaks the contract (``csi_shape``: that
    of a hardware preset instead of the default, see ``sample_fields``)."""
    lead: tuple[int, ...] | None = None
    for key, (dtype, shape) in sample_fields(csi_shape).items():
        if key not in sample:
            raise ValueError(f"sample lacks {key!r}")
        arr = np.asarray(sample[key])
        if arr.dtype != dtype:
            raise ValueError(f"{key}: dtype {arr.dtype}, expected {dtype}")
        got = arr.shape[1:] if batched else arr.shape
        if got != shape or (batched and arr.ndim != len(shape) + 1):
            raise ValueError(f"{key}: shape {arr.shape}, expected {'(N,) + ' if batched else ''}{shape}")
        if batched:
            if lead is None:
                lead = arr.shape[:1]
            elif arr.shape[:1] != lead:
                raise ValueError(f"{key}: leading axis {arr.shape[0]} differs from {lead[0]}")
    n = np.asarray(sample["num_people"])
    if np.any(n < 0) or np.any(n > MAX_PEOPLE):
        raise ValueError("num_people out of range")
    pm = np.asarray(sample["part_mask"])
    if pm.size and pm.max() > N_PARTS:
        raise ValueError("part_mask holds an id above N_PARTS")
    act = np.asarray(sample["activity"])
    if np.any(act < -1) or np.any(act >= len(ACTIVITIES)):
        raise ValueError("activity index out of range")
