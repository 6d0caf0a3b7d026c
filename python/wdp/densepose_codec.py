"""schemas.DensePose <-> arrays: run-length-encoded part labels and uint8-quantized U/V.

Encoding a person's crop (h, w) of the label map: the labels, read row-major, become runs
[label, count, label, count, ...]; U and V of every labelled cell (row-major order) become round(value * 255)
as uint8, all U first, then all V. Decoding gives back the labels exactly and U/V within 1/510 (half a
quantization step). A body of ~300 cells costs ~100 run numbers and 600 bytes of UV (800 in base64).

``decode_dense`` checks what it is given (a DensePose can come from a client or from the store): runs that do
not cover the crop, labels outside 0..24, a crop outside the map or a UV length that does not match the
labelled cells raise ValueError.
"""

from __future__ import annotations

import numpy as np

from wdp.schemas import DensePose
from wdp.schemas_sample import N_PARTS

UV_LEVELS = 255  # uint8 quantization: q = round(value * 255), value = q / 255


def encode_dense(
    parts: np.ndarray, uv: np.ndarray, box: tuple[int, int, int, int], map_size: tuple[int, int]
) -> DensePose:
    """A crop's labels (h, w) and U/V (2, h, w) in [0, 1] at ``box`` (x, y, w, h) of a (width, height) map."""
    labels = np.asarray(parts, np.uint8)
    h, w = labels.shape
    if (w, h) != tuple(box[2:]):
        raise ValueError(f"crop {w}x{h} does not match box {box}")
    flat = labels.ravel()
    if flat.size:
        starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
        counts = np.diff(np.concatenate((starts, [flat.size])))
        runs = np.column_stack((flat[starts].astype(np.int64), counts)).ravel().tolist()
    else:
        runs = []
    on = flat > 0
    q = np.rint(np.clip(np.asarray(uv, np.float64).reshape(2, -1)[:, on], 0.0, 1.0) * UV_LEVELS).astype(np.uint8)
    return DensePose(
        map_size=(int(map_size[0]), int(map_size[1])),
        box=tuple(int(v) for v in box),  # type: ignore[arg-type]
        parts=runs,
        uv=q.tobytes(),
    )


def decode_dense(d: DensePose) -> tuple[np.ndarray, np.ndarray]:
    """The crop back: labels (h, w) uint8 and U/V (2, h, w) float32 (0 on background cells)."""
    mw, mh = d.map_size
    x, y, w, h = d.box
    if min(mw, mh) < 1 or min(x, y, w, h) < 0 or x + w > mw or y + h > mh:
        raise ValueError(f"crop {d.box} outside the {mw}x{mh} map")
    runs = np.asarray(d.parts, np.int64)
    if runs.size % 2:
        raise ValueError("parts must be [label, count, ...] pairs")
    values, counts = runs[0::2], runs[1::2]
    if values.size and (values.min() < 0 or values.max() > N_PARTS):
        raise ValueError(f"part labels must be 0..{N_PARTS}")
    if counts.size and counts.min() < 1:
        raise ValueError("run counts must be positive")
    if int(counts.sum()) != w * h:
        raise ValueError(f"runs cover {int(counts.sum())} cells, the crop has {w * h}")
    flat = np.repeat(values, counts).astype(np.uint8)
    on = flat > 0
    n = int(on.sum())
    if len(d.uv) != 2 * n:
        raise ValueError(f"uv has {len(d.uv)} bytes, expected {2 * n} (U and V of {n} labelled cells)")
    q = np.frombuffer(d.uv, np.uint8).reshape(2, n)
    uv = np.zeros((2, w * h), np.float32)
    uv[:, on] = q.astype(np.float32) / UV_LEVELS
    return flat.reshape(h, w), uv.reshape(2, h, w)


def dense_to_map(d: DensePose) -> tuple[np.ndarray, np.ndarray]:
    """The person on the full map: labels (height, width) uint8 and U/V (2, height, width) float32."""
    crop, cuv = decode_dense(d)
    mw, mh = d.map_size
    x, y, w, h = d.box
    parts = np.zeros((mh, mw), np.uint8)
    uv = np.zeros((2, mh, mw), np.float32)
    parts[y : y + h, x : x + w] = crop
    uv[:, y : y + h, x : x + w] = cuv
    return parts, uv
