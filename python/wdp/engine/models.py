"""Finding, loading and running exported pose models for the engine.

Resolution (``resolve_model``): an existing path (export directory, .ts/.pt/.onnx file) is used as is;
otherwise ``name`` or ``name/version`` (or ``name:version``) is looked up in ``models_dir``
(``<models_dir>/<name>/<version>/model_card.json``; no version = the highest version, compared
number-aware, so v10 > v9); the name ``default`` finally falls back to the model shipped inside the
package (``wdp/models/default``).

``ModelRunner`` wraps one loaded model: the window spec its card asks for, batched inference and decoding
to per-window detections. The engine swaps runners atomically at run time.
"""

from __future__ import annotations

import importlib.util
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wdp.model.decode import DECODE_PARAMS, DecodedPoses, _subpixel, assemble_poses
from wdp.model.exported import MODEL_CARD, ExportedPoseNet, load_exported
from wdp.model.spec import N_KEYPOINTS
from wdp.tracking.detections import Detections

PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "models"
_MODEL_SUFFIXES = (".ts", ".pt", ".onnx")


def _version_key(name: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _is_model_dir(p: Path) -> bool:
    return p.is_dir() and ((p / MODEL_CARD).is_file() or any((p / f"model{s}").is_file() for s in _MODEL_SUFFIXES))


def resolve_model(spec: str | Path, models_dir: str | Path | None = None) -> Path:
    """Path of the model export that ``spec`` names (see the module docstring). Raises FileNotFoundError
    listing what was tried."""
    tried: list[str] = []
    p = Path(spec).expanduser()
    if p.exists():
        return p
    tried.append(str(p))
    name, version = str(spec), None
    for sep in (":", "/"):
        if sep in name:
            name, version = name.split(sep, 1)
            break
    roots = ([Path(models_dir).expanduser()] if models_dir else []) + [PACKAGE_MODELS]
    for root in roots:
        base = root / name
        if version is not None:
            cand = base / version
            tried.append(str(cand))
            if _is_model_dir(cand):
                return cand
            continue
        tried.append(str(base))
        if _is_model_dir(base):
            return base
        if base.is_dir():
            versions = sorted((d for d in base.iterdir() if _is_model_dir(d)), key=lambda d: _version_key(d.name))
            if versions:
                return versions[-1]
    raise FileNotFoundError(f"no model {spec!r}; looked in: {', '.join(tried)}")


def local_peaks(heat: torch.Tensor) -> torch.Tensor:
    """``heat`` where it is the maximum of its 3x3 neighbourhood, else 0: what wdp.model.decode's max-pool
    NMS computes, as two separable 3-tap maxima (CPU max_pool2d with indices is ~30x slower)."""
    p = F.pad(heat, (1, 1, 1, 1), value=float("-inf"))
    m = torch.maximum(torch.maximum(p[..., :, :-2], p[..., :, 1:-1]), p[..., :, 2:])
    m = torch.maximum(torch.maximum(m[..., :-2, :], m[..., 1:-1, :]), m[..., 2:, :])
    return heat * (m == heat)


def pick_backend(path: Path, backend: str = "auto") -> str:
    """The backend to load ``path`` with: "auto" -> "onnx" if an ONNX export and onnxruntime are there."""
    if backend != "auto":
        return backend
    onnx_file = path if path.suffix == ".onnx" else None
    if path.is_dir():
        card = path / MODEL_CARD
        name = "model.onnx"
        if card.is_file():
            import json

            name = json.loads(card.read_text()).get("files", {}).get("onnx", name)
        onnx_file = path / name
    if onnx_file is not None and onnx_file.is_file() and importlib.util.find_spec("onnxruntime") is not None:
        return "onnx"
    return "auto"


def decode_poses_fast(
    center: torch.Tensor,
    offsets: torch.Tensor,
    keypoint_heatmaps: torch.Tensor,
    max_people: int = 4,
    refine_radius: float = 2.0,
    refine_threshold: float = 0.1,
    box_margin: float = 0.1,
) -> DecodedPoses:
    """Same result as wdp.model.decode_poses, several times cheaper: the refinement searches only the
    cells within ``refine_radius`` of each regressed joint instead of building a (B, K, 17, H, W) distance
    tensor, and the peak NMS uses separable maxima (tests/test_engine_models.py checks equality)."""
    b, _, h, w = center.shape
    heat = torch.sigmoid(center)
    scores, idx = local_peaks(heat).reshape(b, h * w).topk(max_people, dim=1)
    cy = torch.div(idx, w, rounding_mode="floor").to(center.dtype)
    cx = (idx % w).to(center.dtype)

    off = offsets.reshape(b, N_KEYPOINTS, 2, h * w)
    gather_idx = idx[:, None, None, :].expand(b, N_KEYPOINTS, 2, max_people)
    off = off.gather(3, gather_idx).permute(0, 3, 1, 2)  # (B, K, J, 2)
    reg_x = cx[:, :, None] + off[..., 0]
    reg_y = cy[:, :, None] + off[..., 1]

    kheat = torch.sigmoid(keypoint_heatmaps)
    kpeaks = local_peaks(kheat)
    r = int(np.floor(refine_radius))
    span = torch.arange(-r, r + 2, device=center.device)  # cells floor(reg) - r .. floor(reg) + r + 1
    gx = reg_x.floor().long()[..., None, None] + span[None, :]  # (B, K, J, 1, n)
    gy = reg_y.floor().long()[..., None, None] + span[:, None]  # (B, K, J, n, 1)
    gx, gy = torch.broadcast_tensors(gx, gy)
    d2 = (gx.to(center.dtype) - reg_x[..., None, None]) ** 2 + (gy.to(center.dtype) - reg_y[..., None, None]) ** 2
    inside = (gx >= 0) & (gx < w) & (gy >= 0) & (gy < h) & (d2 <= refine_radius**2)
    flat_idx = (gy.clamp(0, h - 1) * w + gx.clamp(0, w - 1)).reshape(b, max_people, N_KEYPOINTS, -1)
    kflat = kpeaks.reshape(b, 1, N_KEYPOINTS, h * w).expand(b, max_people, N_KEYPOINTS, h * w)
    inside = inside.reshape(flat_idx.shape)
    cand = torch.where(inside, kflat.gather(3, flat_idx), torch.zeros((), dtype=kpeaks.dtype))
    # the reference takes the first maximum in row-major map order: order candidates the same way
    order = torch.where(inside, flat_idx, flat_idx + h * w)
    best, pos = _first_max(cand, order)
    best_idx = flat_idx.gather(3, pos[..., None]).squeeze(-1)
    px = best_idx % w
    py = torch.div(best_idx, w, rounding_mode="floor")
    dx, dy = _subpixel(torch.log(kheat.clamp_min(1e-6)), px, py)
    snap = best > refine_threshold
    x = torch.where(snap, px.to(center.dtype) + dx, reg_x)
    y = torch.where(snap, py.to(center.dtype) + dy, reg_y)
    return assemble_poses(x, y, kheat, scores, box_margin)


def _first_max(values: torch.Tensor, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over the last axis and the position of the maximum that comes first in ``order`` (ties)."""
    best = values.max(dim=-1, keepdim=True).values
    tied = values == best
    big = torch.iinfo(order.dtype).max
    pos = torch.where(tied, order, torch.full_like(order, big)).argmin(dim=-1)
    return best.squeeze(-1), pos


_LOG_PARTS = float(np.log(24.0))


def decode_densepose_fast(part_logits: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """wdp.model.decode.decode_densepose (body where P(background) < 0.5, then the likeliest part) on numpy,
    several times cheaper on CPU: the background test needs the parts' log-sum-exp only where the background
    logit lies between the best part's and that + log(24) (below: body, above: background), and the part
    argmax runs only on body cells. Returns parts (B, H, W) uint8 and uv (B, 2, H, W) zeroed off the body
    (tests/test_engine_dense.py checks equality)."""
    fine = part_logits[:, 1:]
    best = fine.max(axis=1)
    bg = part_logits[:, 0]
    body = bg < best
    unsure = (bg >= best) & (bg < best + _LOG_PARTS)
    if unsure.any():
        b, i, j = np.nonzero(unsure)
        top = best[b, i, j]
        lse = top + np.log(np.exp(fine[b, :, i, j] - top[:, None]).sum(axis=1))
        body[b, i, j] = bg[b, i, j] < lse
    parts = np.zeros(body.shape, np.uint8)
    b, i, j = np.nonzero(body)
    parts[b, i, j] = fine[b, :, i, j].argmax(axis=1) + 1
    return parts, uv * body[:, None].astype(uv.dtype)


DEFAULT_MIN_SCORE = 0.3


@dataclass(frozen=True, eq=False)
class DenseMaps:
    """One window's DensePose output: part labels (H, W) uint8 (0 = background) and U/V (2, H, W) in [0, 1]."""

    parts: np.ndarray
    uv: np.ndarray


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    backend: str
    num_parameters: int | None
    loaded_at: float


class ModelRunner:
    """One loaded model: its window spec, batched inference and decoding to detections (image pixels)."""

    def __init__(
        self,
        model: ExportedPoseNet,
        *,
        min_score: float | None = None,
        decode: dict[str, Any] | None = None,
        window_overrides: dict[str, Any] | None = None,
    ) -> None:
        from wdp.engine.windowing import WindowSpec

        if model.room_inputs:
            raise ValueError(
                f"the model at {model.path} also reads an empty-room reference and the room geometry "
                "(inputs ref_amplitude, ref_phase, geometry); the engine feeds a model CSI windows only, so it cannot "
                "serve it: it is a research model (bench/eval_room_inputs.py)"
            )
        self.model = model
        card = model.card or {}
        dec = {k: v for k, v in (card.get("decode") or {}).items() if k != "function"}
        dec.update(decode or {})
        self.decode_params = {k: dec[k] for k in DECODE_PARAMS if k in dec}
        # None: the threshold the model card recommends (calibrated on the validation split), else 0.3
        self.min_score = float(min_score if min_score is not None else dec.get("min_score", DEFAULT_MIN_SCORE))
        # scores are published relative to the model's usual confidence (see the card's output notes)
        self.keypoint_scale = 0.5 / float(dec["keypoint_score_ref"]) if dec.get("keypoint_score_ref") else 1.0
        self.score_scale = 0.5 / float(dec["score_ref"]) if dec.get("score_ref") else 1.0
        # a net with a person-count head (card decode.count_gate): its count picks how many of the decoded
        # people (best first) a window has, instead of the score threshold
        self.count_gate = bool(dec.get("count_gate", False))
        self.spec = WindowSpec.from_card(card, **(window_overrides or {}))
        net = card.get("net", {})
        self.info = ModelInfo(
            name=str(net.get("name", Path(model.path).stem)),
            path=str(model.path),
            backend=model.backend,
            num_parameters=net.get("num_parameters"),
            loaded_at=time.time(),
        )

    @classmethod
    def load(
        cls,
        spec: str | Path,
        models_dir: str | Path | None = None,
        backend: str = "auto",
        *,
        threads: int | None = None,
        **kwargs: Any,
    ) -> ModelRunner:
        """Resolve and load a model. ``backend`` "auto" prefers ONNX Runtime when the export has an ONNX file
        and onnxruntime is installed (2-3x faster than TorchScript for these nets on CPU, see
        bench/bench_engine.py), else TorchScript. ``threads``: intra-op threads (ONNX Runtime fixes them when
        the session is created)."""
        path = resolve_model(spec, models_dir)
        if threads:
            torch.set_num_threads(int(threads))
        return cls(load_exported(path, backend=pick_backend(path, backend)), **kwargs)

    def infer(self, amplitude: np.ndarray, phase: np.ndarray) -> list[Detections]:
        """(B, W, S, R, T) windows -> per window the people scoring >= min_score."""
        return self.infer_dense(amplitude, phase, dense=False)[0]

    def infer_dense(
        self, amplitude: np.ndarray, phase: np.ndarray, dense: bool = True
    ) -> tuple[list[Detections], list[DenseMaps] | None]:
        """``infer`` plus, per window, the part map (argmax of the part logits) and U/V (0 off the body), the
        DensePose output the engine cuts per person (wdp.engine.dense_stage) when asked to."""
        with torch.inference_mode():
            out = self.model(torch.from_numpy(amplitude), torch.from_numpy(phase))
            dec = decode_poses_fast(out["center"], out["offsets"], out["keypoint_heatmaps"], **self.decode_params)
            maps = None
            if dense:
                parts_np, uv_np = decode_densepose_fast(out["part_logits"].numpy(), out["uv"].numpy())
                maps = [DenseMaps(parts_np[i], uv_np[i]) for i in range(len(parts_np))]
        kp = dec.keypoints.numpy().astype(np.float64)
        if self.keypoint_scale != 1.0:
            kp[..., 2] = np.minimum(kp[..., 2] * self.keypoint_scale, 1.0)
        bx = dec.boxes.numpy().astype(np.float64)
        sc = dec.scores.numpy().astype(np.float64)
        counts = out["person_count"].argmax(-1).numpy() if self.count_gate and "person_count" in out else None
        result = []
        published = np.minimum(sc * self.score_scale, 1.0) if self.score_scale != 1.0 else sc
        for i in range(len(sc)):
            if counts is not None:  # decoded people come best first
                keep = np.arange(len(sc[i])) < int(counts[i])
            else:
                keep = sc[i] >= self.min_score  # the card's threshold is on the raw score
            result.append(Detections(kp[i][keep], bx[i][keep], published[i][keep]))
        return result, maps


def truth_detections(persons: Any, score: float = 1.0) -> Detections:
    """The simulator's true keypoints as detections (the ground-truth detector): visible keypoints get
    ``score``, the box is their extent, people with no visible keypoint are left out."""
    if not persons:
        return Detections.empty()
    kps = []
    for p in persons:
        kp = np.asarray(p.keypoints, np.float64).copy()
        vis = kp[:, 2] > 0
        if not vis.any():
            continue
        kp[:, 2] = np.where(vis, score, 0.0)
        kps.append(kp)
    if not kps:
        return Detections.empty()
    return Detections.from_arrays(np.stack(kps), None, np.full(len(kps), score))
