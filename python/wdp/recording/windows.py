"""Labelled recording -> training windows in the sample contract (wdp.schemas_sample).

Each router's packets go through the engine's own windowing (wdp.engine.windowing.RouterWindower: the same
nearest-packet 100 Hz grid, antenna mapping and gap rule `wdp serve` applies live), with the phase only
unwrapped here (training sanitizes it, as for simulated shards). A window's label is the teacher's pose on
the camera frame nearest to the window's middle instant, if one lies within ``max_label_dt_s``; otherwise the
window is skipped and counted (camera gap, camera outage, before or after the camera ran): never paired with
a frame further away. A frame where the teacher found nobody gives an empty window (no person).

Keypoints go from frame pixels to the model image (IMAGE_W x IMAGE_H) by scaling each axis, so 0..1 image
coordinates of the served poses are those of the camera frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wdp import schemas_sample as S
from wdp.engine.windowing import RouterWindower, WindowSpec
from wdp.recording.label import load_labels
from wdp.recording.reader import read_csi


@dataclass
class WindowCounts:
    windows: int = 0  # windows the CSI made
    labelled: int = 0  # with a person
    empty: int = 0  # the teacher saw nobody on the nearest frame
    no_camera_frame: int = 0  # no frame within max_label_dt_s: skipped
    label_dt_ms: list[float] = field(default_factory=list)  # |window instant - frame time| of the kept ones

    def as_dict(self) -> dict[str, Any]:
        dt = np.abs(np.array(self.label_dt_ms)) if self.label_dt_ms else np.zeros(0)
        return {
            "windows": self.windows,
            "labelled": self.labelled,
            "empty": self.empty,
            "no_camera_frame": self.no_camera_frame,
            "label_dt_ms_median": float(np.median(dt)) if dt.size else None,
            "label_dt_ms_max": float(dt.max()) if dt.size else None,
        }


def recording_samples(
    folder: str | Path,
    *,
    spec: WindowSpec | None = None,
    max_label_dt_s: float = 0.025,
    min_keypoint_score: float = 0.5,
    counts: WindowCounts | None = None,
) -> dict[str, np.ndarray]:
    """All labelled windows of one recording, stacked (SAMPLE_FIELDS + META_FIELDS; t = window instant)."""
    counts = counts if counts is not None else WindowCounts()
    spec = spec or WindowSpec(phase_fit="none", hop=5)
    labels, _ = load_labels(folder)
    lt = labels["t"]
    order = np.argsort(lt)
    lt = lt[order]
    width, height = (float(v) for v in labels["size"])
    sx, sy = S.IMAGE_W / width, S.IMAGE_H / height
    # the dense label maps (part_mask, uv: 36 KB a window) are all zero here: made once at the end, untouched
    dense = ("part_mask", "uv")
    rows: dict[str, list[np.ndarray]] = {k: [] for k in (*S.SAMPLE_FIELDS, *S.META_FIELDS) if k not in dense}
    routers = read_csi(folder)
    for ri, (rid, rc) in enumerate(sorted(routers.items())):
        grid_base = float(np.floor(rc.t.min())) if len(rc.t) else 0.0
        w = RouterWindower(rid, spec, grid_base)
        wins = []
        for t, c in zip(rc.t, rc.csi, strict=True):
            wins.extend(w.push(float(t), c, 0.0))
        for win in wins:
            counts.windows += 1
            j = int(np.searchsorted(lt, win.timestamp))
            cand = [k for k in (j - 1, j) if 0 <= k < len(lt)]
            if not cand:
                counts.no_camera_frame += 1
                continue
            k = min(cand, key=lambda k: abs(lt[k] - win.timestamp))
            dt = float(lt[k] - win.timestamp)
            if abs(dt) > max_label_dt_s:
                counts.no_camera_frame += 1
                continue
            counts.label_dt_ms.append(dt * 1e3)
            src = int(order[k])
            s = S.empty_sample(with_meta=True)
            s["amplitude"][:] = win.amplitude
            s["phase"][:] = win.phase
            s["t"][...] = win.timestamp
            s["room_id"][...] = -1
            s["seed"][...] = ri
            if labels["found"][src]:
                kp = labels["keypoints"][src].astype(np.float32)
                s["keypoints"][0, :, 0] = kp[:, 0] * sx
                s["keypoints"][0, :, 1] = kp[:, 1] * sy
                s["keypoints"][0, :, 2] = np.where(kp[:, 2] >= min_keypoint_score, S.VIS_VISIBLE, S.VIS_ABSENT)
                b = labels["box"][src]
                s["boxes"][0] = (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)
                s["person_area"][0] = max(0.0, (b[2] - b[0]) * sx) * max(0.0, (b[3] - b[1]) * sy)
                s["num_people"][...] = 1
                counts.labelled += 1
            else:
                counts.empty += 1
            for key in rows:
                rows[key].append(s[key])
    fields = {**S.SAMPLE_FIELDS, **S.META_FIELDS}
    out = {
        k: (np.stack(v) if v else np.zeros((0, *fields[k][1]), fields[k][0])).astype(fields[k][0], copy=False)
        for k, v in rows.items()
    }
    n = len(out["amplitude"])
    for k in dense:
        out[k] = np.zeros((n, *fields[k][1]), fields[k][0])
    return out


def time_split(t: np.ndarray, val_fraction: float, test_fraction: float, guard_s: float = 1.0) -> dict[str, np.ndarray]:
    """Indices of train / val / test by time: the last test_fraction of the span is test, the val_fraction
    before it val, the rest train; windows within guard_s of a boundary are left out (neighbouring windows
    share packets and nearly the same pose)."""
    if len(t) == 0:
        return {s: np.zeros(0, np.int64) for s in ("train", "val", "test")}
    t0, t1 = float(t.min()), float(t.max())
    span = t1 - t0
    b_test = t1 - test_fraction * span
    b_val = b_test - val_fraction * span
    idx = np.arange(len(t))
    return {
        "train": idx[t < b_val - guard_s],
        "val": idx[(t >= b_val + guard_s) & (t < b_test - guard_s)],
        "test": idx[t >= b_test + guard_s],
    }
