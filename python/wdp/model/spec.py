"""Shapes and names the nets, decoder and metrics agree on; the sample constants come from the simulator
contract (wdp.schemas_sample), the single source of truth."""

from __future__ import annotations

from wdp.schemas_sample import (  # re-exported: the model side imports these from here
    COCO_KEYPOINTS,
    COCO_OKS_SIGMAS,
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

__all__ = [
    "IMAGE_H",
    "IMAGE_W",
    "KEYPOINT_NAMES",
    "MAP_H",
    "MAP_STRIDE",
    "MAP_W",
    "MAX_PEOPLE",
    "N_KEYPOINTS",
    "N_PARTS",
    "N_PART_CLASSES",
    "N_RX",
    "N_SUB",
    "N_TX",
    "OKS_SIGMAS",
    "PART_NAMES",
    "SKELETON",
    "WINDOW",
    "N_GEOMETRY",
    "ROOM_INPUT_NAMES",
    "image_to_map",
    "net_input_names",
    "output_names",
    "map_to_image",
]

MAP_STRIDE = IMAGE_W // MAP_W  # image pixels per label-map pixel (4)
N_PART_CLASSES = N_PARTS + 1  # part logits include background (class 0)

KEYPOINT_NAMES: tuple[str, ...] = tuple(COCO_KEYPOINTS)
SKELETON: tuple[tuple[int, int], ...] = tuple(COCO_SKELETON)  # 0-based joint index pairs (plots)
OKS_SIGMAS: tuple[float, ...] = COCO_OKS_SIGMAS  # COCO keypoint OKS falloff constants
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
# Optional outputs after the five above, in this order, when a net has the head (WdpNet(count_head=True)):
# "person_count": logits over 0..MAX_PEOPLE people in the window (presence = count > 0).
# "floor_xy": (nets with room inputs) floor position (m) of the most prominent person, receiver's frame.
EXTRA_OUTPUT_NAMES: tuple[str, ...] = ("person_count", "floor_xy")
EXTRA_OUTPUT_CHANNELS: dict[str, int] = {"person_count": MAX_PEOPLE + 1, "floor_xy": 2}
INPUT_NAMES: tuple[str, ...] = ("amplitude", "phase")
# what a net with room inputs also reads (wdp.data.room_context): the empty-room reference and the geometry
ROOM_INPUT_NAMES: tuple[str, ...] = ("ref_amplitude", "ref_phase", "geometry")
N_GEOMETRY = 10  # wdp.data.room_context.GEOMETRY_FIELDS


def net_input_names(net: object) -> tuple[str, ...]:
    """The inputs a pose net reads, in order: amplitude and phase, then the room inputs if it has them."""
    return INPUT_NAMES + (ROOM_INPUT_NAMES if getattr(net, "room_inputs", False) else ())


def output_names(n_outputs: int) -> tuple[str, ...]:
    """Names of a net's outputs by their number: the five dense maps, then the optional heads in order."""
    most = len(OUTPUT_NAMES) + len(EXTRA_OUTPUT_NAMES)
    if not len(OUTPUT_NAMES) <= n_outputs <= most:
        raise ValueError(f"a pose net returns {len(OUTPUT_NAMES)}..{most} outputs, not {n_outputs}")
    return OUTPUT_NAMES + EXTRA_OUTPUT_NAMES[: n_outputs - len(OUTPUT_NAMES)]


INPUT_SHAPE: tuple[int, int, int, int] = (WINDOW, N_SUB, N_RX, N_TX)

assert len(KEYPOINT_NAMES) == N_KEYPOINTS and len(OKS_SIGMAS) == N_KEYPOINTS
assert len(PART_NAMES) == N_PARTS
