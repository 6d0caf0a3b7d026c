"""Shapes and names the nets, decoder and metrics agree on.

The sample constants belong to the simulator contract (wdp.schemas_sample, owned by the sim branch); until
that module is importable the same values are declared here so the model side stays usable on its own.
"""

from __future__ import annotations

try:  # the contract's single source of truth once it lands
    from wdp.schemas_sample import (
        COCO_KEYPOINTS,
        COCO_SKELETON,
        DENSEPOSE_PARTS,
        IMAGE_H,
        IMAGE_W,
        MAP_H,
        MAP_W,
        MAX_PEOPLE,
        N_KEYPOINTS,
        N_PARTS,
        N_RX,
        N_SUB,
        N_TX,
        WINDOW,
    )
except ImportError:  # pragma: no cover - only before the sim branch is merged; same values as the contract
    WINDOW, N_SUB, N_RX, N_TX = 5, 30, 3, 3
    MAX_PEOPLE = 4
    IMAGE_H = IMAGE_W = 256
    MAP_H = MAP_W = 64
    N_KEYPOINTS = 17
    N_PARTS = 24
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

MAP_STRIDE = IMAGE_W // MAP_W  # image pixels per label-map pixel (4)
N_PART_CLASSES = N_PARTS + 1  # part logits include background (class 0)

KEYPOINT_NAMES: tuple[str, ...] = tuple(COCO_KEYPOINTS)
SKELETON: tuple[tuple[int, int], ...] = tuple(COCO_SKELETON)  # 0-based joint index pairs (plots)
# COCO keypoint OKS falloff constants (pycocotools COCOeval.Params.kpt_oks_sigmas)
OKS_SIGMAS: tuple[float, ...] = (
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
PART_NAMES: tuple[str, ...] = tuple(DENSEPOSE_PARTS)  # part id i + 1 in part masks


def image_to_map(x):
    """Image pixel coordinate -> label-map cell coordinate. Map cell c is centred on image point (c + 0.5) * 4
    (the contract's label-map convention), so cell centres are the integer map coordinates."""
    return x / MAP_STRIDE - 0.5


def map_to_image(u):
    """Inverse of image_to_map."""
    return (u + 0.5) * MAP_STRIDE


# Net outputs, in the order forward() returns them (also the ONNX output names).
OUTPUT_NAMES: tuple[str, ...] = ("center", "offsets", "keypoint_heatmaps", "part_logits", "uv")
OUTPUT_CHANNELS: dict[str, int] = {
    "center": 1,  # person-center heatmap logits
    "offsets": 2 * N_KEYPOINTS,  # (dx, dy) per joint from the center cell, in map cells
    "keypoint_heatmaps": N_KEYPOINTS,  # joint heatmap logits (refinement)
    "part_logits": N_PART_CLASSES,  # background + 24 parts
    "uv": 2,  # DensePose U, V (sigmoid-ed, in [0, 1])
}
INPUT_NAMES: tuple[str, ...] = ("amplitude", "phase")
INPUT_SHAPE: tuple[int, int, int, int] = (WINDOW, N_SUB, N_RX, N_TX)

assert len(KEYPOINT_NAMES) == N_KEYPOINTS and len(OKS_SIGMAS) == N_KEYPOINTS
assert len(PART_NAMES) == N_PARTS
