"""Evaluation metrics in plain numpy.

`keypoint_ap` re-implements COCO keypoint evaluation (pycocotools COCOeval with iouType="keypoints": OKS,
greedy matching by score, 101-point interpolated precision, areas all/medium/large, maxDets 20) so training
does not need pycocotools; tests check it against pycocotools on the same predictions.
The other metrics (PCK, per-joint error, part IoU) are the usual WiFi-pose ones, defined in their docstrings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from wdp.model.spec import KEYPOINT_NAMES, N_PART_CLASSES, OKS_SIGMAS

_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
_AREA_RANGES = {"all": (0.0, 1e5**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)}
_LEFT_SHOULDER, _RIGHT_HIP = KEYPOINT_NAMES.index("left_shoulder"), KEYPOINT_NAMES.index("right_hip")


@dataclass
class ImagePoses:
    """Ground truth and detections of one image. Keypoints are (n, 17, 3): x, y, v (gt) or x, y, score (dt).

    gt_area is COCO's "area" (OKS scale); gt_boxes are x0, y0, x1, y1 (used for gts with no visible joint).
    """

    gt_keypoints: np.ndarray
    gt_area: np.ndarray
    gt_boxes: np.ndarray
    dt_keypoints: np.ndarray
    dt_scores: np.ndarray


def image_poses(
    dt_keypoints: np.ndarray,
    dt_scores: np.ndarray,
    gt_keypoints: np.ndarray,
    gt_area: np.ndarray,
    gt_boxes: np.ndarray,
    num_people: np.ndarray,
) -> list[ImagePoses]:
    """A batch of decoded windows (B, K, 17, 3) / (B, K) and padded labels (B, P, ...) with their people
    counts -> one ImagePoses per window (float64, labels cut to the real people)."""
    return [
        ImagePoses(
            gt_keypoints=np.asarray(gt_keypoints[i, :k], dtype=np.float64),
            gt_area=np.asarray(gt_area[i, :k], dtype=np.float64),
            gt_boxes=np.asarray(gt_boxes[i, :k], dtype=np.float64),
            dt_keypoints=np.asarray(dt_keypoints[i], dtype=np.float64),
            dt_scores=np.asarray(dt_scores[i], dtype=np.float64),
        )
        for i, k in enumerate(int(n) for n in num_people)
    ]


def oks(
    dt_keypoints: np.ndarray,
    gt_keypoints: np.ndarray,
    gt_area: np.ndarray,
    gt_boxes: np.ndarray,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """Object keypoint similarity (n_dt, n_gt), exactly as COCOeval.computeOks."""
    sig = np.asarray(OKS_SIGMAS if sigmas is None else sigmas, dtype=np.float64)
    var = (sig * 2) ** 2
    dt = np.asarray(dt_keypoints, dtype=np.float64)
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    out = np.zeros((len(dt), len(gt)))
    if len(dt) == 0 or len(gt) == 0:
        return out
    xd, yd = dt[:, None, :, 0], dt[:, None, :, 1]
    for j in range(len(gt)):
        xg, yg, vg = gt[j, :, 0], gt[j, :, 1], gt[j, :, 2]
        visible = vg > 0
        if visible.any():
            dx, dy = xd[:, 0] - xg, yd[:, 0] - yg
        else:  # distance to the gt box doubled on each side, as COCO does for keypoint-less gts
            x0b, y0b, x1b, y1b = np.asarray(gt_boxes[j], dtype=np.float64)
            w, h = x1b - x0b, y1b - y0b
            lo_x, hi_x, lo_y, hi_y = x0b - w, x0b + 2 * w, y0b - h, y0b + 2 * h
            dx = np.maximum(0, lo_x - xd[:, 0]) + np.maximum(0, xd[:, 0] - hi_x)
            dy = np.maximum(0, lo_y - yd[:, 0]) + np.maximum(0, yd[:, 0] - hi_y)
        e = (dx**2 + dy**2) / var / (float(gt_area[j]) + np.spacing(1)) / 2
        if visible.any():
            e = e[:, visible]
        out[:, j] = np.sum(np.exp(-e), axis=1) / e.shape[1]
    return out


def _detection_area(dt: np.ndarray) -> np.ndarray:
    # COCO.loadRes gives keypoint results the area of the keypoints' bounding box
    x, y = dt[..., 0], dt[..., 1]
    return (x.max(-1) - x.min(-1)) * (y.max(-1) - y.min(-1)) if len(dt) else np.zeros(0)


def _evaluate_image(img: ImagePoses, ious: np.ndarray, area_rng: tuple[float, float], max_dets: int):
    n_gt, n_dt = len(img.gt_keypoints), len(img.dt_keypoints)
    if n_gt == 0 and n_dt == 0:
        return None
    gt_vis = (np.asarray(img.gt_keypoints)[..., 2] > 0).sum(-1) if n_gt else np.zeros(0)
    gt_area = np.asarray(img.gt_area, dtype=np.float64)
    gt_ignore = ((gt_vis == 0) | (gt_area < area_rng[0]) | (gt_area > area_rng[1])).astype(int)
    gt_order = np.argsort(gt_ignore, kind="mergesort")
    gt_ignore = gt_ignore[gt_order]
    dt_order = np.argsort(-np.asarray(img.dt_scores, dtype=np.float64), kind="mergesort")[:max_dets]
    scores = np.asarray(img.dt_scores, dtype=np.float64)[dt_order]
    dt_area = _detection_area(np.asarray(img.dt_keypoints, dtype=np.float64)[dt_order])
    ious = ious[:, gt_order] if ious.size else ious
    n_t, n_d = len(_IOU_THRESHOLDS), len(dt_order)
    gt_matched = np.zeros((n_t, n_gt), dtype=bool)
    dt_matched = np.zeros((n_t, n_d), dtype=bool)
    dt_ignore = np.zeros((n_t, n_d), dtype=bool)
    if ious.size:
        for ti, t in enumerate(_IOU_THRESHOLDS):
            for d in range(n_d):
                best, m = min(t, 1 - 1e-10), -1
                for g in range(n_gt):
                    if gt_matched[ti, g]:
                        continue
                    if m > -1 and gt_ignore[m] == 0 and gt_ignore[g] == 1:
                        break  # never trade a match on a real gt for one on an ignored gt
                    if ious[d, g] < best:
                        continue
                    best, m = ious[d, g], g
                if m == -1:
                    continue
                dt_ignore[ti, d] = bool(gt_ignore[m])
                dt_matched[ti, d] = True
                gt_matched[ti, m] = True
    outside = (dt_area < area_rng[0]) | (dt_area > area_rng[1])
    dt_ignore |= ~dt_matched & outside[None, :]
    return scores, dt_matched, dt_ignore, gt_ignore


def _precision_recall(results) -> tuple[np.ndarray, np.ndarray]:
    """Per-threshold 101-point precision and final recall (COCOeval.accumulate); -1 when no real gt."""
    n_t = len(_IOU_THRESHOLDS)
    precision = -np.ones((n_t, len(_RECALL_THRESHOLDS)))
    recall = -np.ones(n_t)
    results = [r for r in results if r is not None]
    if not results:
        return precision, recall
    scores = np.concatenate([r[0] for r in results])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([r[1] for r in results], axis=1)[:, order]
    ignored = np.concatenate([r[2] for r in results], axis=1)[:, order]
    n_pos = int(np.count_nonzero(np.concatenate([r[3] for r in results]) == 0))
    if n_pos == 0:
        return precision, recall
    tp_sum = np.cumsum(matched & ~ignored, axis=1).astype(float)
    fp_sum = np.cumsum(~matched & ~ignored, axis=1).astype(float)
    for t in range(n_t):
        tp, fp = tp_sum[t], fp_sum[t]
        nd = len(tp)
        rc = tp / n_pos
        pr = tp / (fp + tp + np.spacing(1))
        recall[t] = rc[-1] if nd else 0
        pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr  # precision envelope
        idx = np.searchsorted(rc, _RECALL_THRESHOLDS, side="left")
        q = np.zeros(len(_RECALL_THRESHOLDS))
        ok = idx < nd
        q[ok] = pr[idx[ok]]
        # COCO stops filling at the first recall threshold it cannot reach; idx is monotone: same
        precision[t] = q
    return precision, recall


def _mean_valid(a: np.ndarray) -> float:
    v = a[a > -1]
    return float(np.mean(v)) if v.size else -1.0


def keypoint_ap(images: list[ImagePoses], max_dets: int = 20, sigmas: np.ndarray | None = None) -> dict[str, float]:
    """COCO keypoint AP/AR: keys ap, ap50, ap75, ap_medium, ap_large, ar, ar50, ar75, ar_medium, ar_large
    (the 10 numbers of COCOeval.summarize for keypoints, in [0, 1]; -1 where undefined)."""
    ious = []
    for img in images:
        dt = np.asarray(img.dt_keypoints, dtype=np.float64).reshape(-1, len(OKS_SIGMAS), 3)
        order = np.argsort(-np.asarray(img.dt_scores, dtype=np.float64), kind="mergesort")[:max_dets]
        ious.append(oks(dt[order], img.gt_keypoints, img.gt_area, img.gt_boxes, sigmas))
    out: dict[str, float] = {}
    for area_name, rng in _AREA_RANGES.items():
        res = [_evaluate_image(img, iou, rng, max_dets) for img, iou in zip(images, ious, strict=True)]
        precision, recall = _precision_recall(res)
        suffix = "" if area_name == "all" else f"_{area_name}"
        out[f"ap{suffix}"] = _mean_valid(precision)
        out[f"ar{suffix}"] = _mean_valid(recall)
        if area_name == "all":
            i50 = int(np.where(_IOU_THRESHOLDS == 0.5)[0][0])
            i75 = int(np.where(_IOU_THRESHOLDS == 0.75)[0][0])
            out["ap50"], out["ap75"] = _mean_valid(precision[i50]), _mean_valid(precision[i75])
            out["ar50"], out["ar75"] = _mean_valid(recall[i50 : i50 + 1]), _mean_valid(recall[i75 : i75 + 1])
    return out


def match_people(img: ImagePoses, min_score: float = 0.0) -> list[tuple[int, int]]:
    """One-to-one (gt index, dt index) pairs maximising total OKS among detections scoring >= min_score."""
    keep = np.flatnonzero(np.asarray(img.dt_scores) >= min_score)
    if len(keep) == 0 or len(img.gt_keypoints) == 0:
        return []
    sim = oks(np.asarray(img.dt_keypoints)[keep], img.gt_keypoints, img.gt_area, img.gt_boxes)
    rows, cols = linear_sum_assignment(-sim.T)
    return [(int(g), int(keep[d])) for g, d in zip(rows, cols, strict=True)]


def pose_errors(images: list[ImagePoses], pck_alpha: float = 0.2, min_score: float = 0.0) -> dict[str, float]:
    """PCK@alpha and mean per-joint pixel error.

    Each gt person is matched one-to-one to a detection (max total OKS). A visible joint counts as correct
    when its error is below alpha x torso diameter (left shoulder to right hip; half the box diagonal when
    either is not visible); joints of unmatched gts count as wrong. Per-joint error (image pixels) averages
    over matched visible joints only.
    """
    n_j = len(KEYPOINT_NAMES)
    correct = np.zeros(n_j)
    total = np.zeros(n_j)
    err_sum = np.zeros(n_j)
    err_n = np.zeros(n_j)
    for img in images:
        gt = np.asarray(img.gt_keypoints, dtype=np.float64)
        matched = dict(match_people(img, min_score))
        for g in range(len(gt)):
            vis = gt[g, :, 2] > 0
            total += vis
            if g not in matched:
                continue
            dt = np.asarray(img.dt_keypoints, dtype=np.float64)[matched[g]]
            err = np.hypot(dt[:, 0] - gt[g, :, 0], dt[:, 1] - gt[g, :, 1])
            if vis[_LEFT_SHOULDER] and vis[_RIGHT_HIP]:
                torso = float(np.hypot(*(gt[g, _LEFT_SHOULDER, :2] - gt[g, _RIGHT_HIP, :2])))
            else:
                x0, y0, x1, y1 = np.asarray(img.gt_boxes[g], dtype=np.float64)
                torso = 0.5 * float(np.hypot(x1 - x0, y1 - y0))
            correct += vis & (err <= pck_alpha * max(torso, 1e-6))
            err_sum += np.where(vis, err, 0.0)
            err_n += vis
    out = {f"pck@{pck_alpha:g}": float(correct.sum() / total.sum()) if total.sum() else -1.0}
    out["mpjpe"] = float(err_sum.sum() / err_n.sum()) if err_n.sum() else -1.0
    for j, name in enumerate(KEYPOINT_NAMES):
        out[f"joint_error/{name}"] = float(err_sum[j] / err_n[j]) if err_n[j] else -1.0
    return out


def _visible_center(kp: np.ndarray) -> np.ndarray | None:
    vis = kp[:, 2] > 0
    return kp[vis, :2].mean(axis=0) if vis.any() else None


def localization_errors(images: list[ImagePoses]) -> dict[str, float]:
    """How well the most confident person is placed, whatever its score (image pixels).

    For every window with at least one gt person: the top-scoring detection is paired with the gt person
    whose centre (mean of visible joints) is nearest to its own centre. center_error averages that centre
    distance; top1_mpjpe the per-joint error over the gt's visible joints. center_error_const is the same
    distance for a constant guess, the mean gt centre of the evaluated windows (the best constant guess
    in hindsight): a model that beats it has learnt where people are, even when its keypoints are too
    rough for OKS-based AP.
    """
    centers, errors, joint_errs = [], [], []
    for img in images:
        gt = np.asarray(img.gt_keypoints, dtype=np.float64)
        gt_c = [c for c in (_visible_center(g) for g in gt) if c is not None]
        if not gt_c:
            continue
        centers.append(gt_c)
        scores = np.asarray(img.dt_scores, dtype=np.float64)
        if scores.size == 0:
            continue
        dt = np.asarray(img.dt_keypoints, dtype=np.float64)[int(np.argmax(scores))]
        dt_c = dt[:, :2].mean(axis=0)
        dists = [float(np.hypot(*(dt_c - c))) for c in gt_c]
        g = int(np.argmin(dists))
        errors.append(dists[g])
        vis_gt = [g_ for g_ in gt if (g_[:, 2] > 0).any()][g]
        vis = vis_gt[:, 2] > 0
        joint_errs.append(np.hypot(*(dt[vis, :2] - vis_gt[vis, :2]).T))
    if not centers:
        return {"center_error": -1.0, "center_error_const": -1.0, "top1_mpjpe": -1.0}
    mean_c = np.mean([c for cs in centers for c in cs], axis=0)
    const = [min(float(np.hypot(*(mean_c - c))) for c in cs) for cs in centers]
    return {
        "center_error": float(np.mean(errors)) if errors else -1.0,
        "center_error_const": float(np.mean(const)),
        "top1_mpjpe": float(np.concatenate(joint_errs).mean()) if joint_errs else -1.0,
    }


@dataclass
class PartConfusion:
    """Running pixel confusion matrix of DensePose part labels (0 = background, 1..24 parts) plus UV error."""

    n_classes: int = N_PART_CLASSES
    matrix: np.ndarray = field(default=None)  # type: ignore[assignment]
    uv_abs_sum: float = 0.0
    uv_count: int = 0

    def __post_init__(self) -> None:
        if self.matrix is None:
            self.matrix = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)

    def add(
        self,
        pred_parts: np.ndarray,
        gt_parts: np.ndarray,
        pred_uv: np.ndarray | None = None,
        gt_uv: np.ndarray | None = None,
    ) -> None:
        """pred/gt parts (..., H, W) ints; uv (..., 2, H, W). UV error counts pixels with the right part."""
        p = np.asarray(pred_parts, dtype=np.int64).ravel()
        g = np.asarray(gt_parts, dtype=np.int64).ravel()
        self.matrix += np.bincount(g * self.n_classes + p, minlength=self.n_classes**2).reshape(
            self.n_classes, self.n_classes
        )
        if pred_uv is not None and gt_uv is not None:
            right = (np.asarray(pred_parts) == np.asarray(gt_parts)) & (np.asarray(gt_parts) > 0)
            diff = np.abs(np.asarray(pred_uv, dtype=np.float64) - np.asarray(gt_uv, dtype=np.float64))
            diff = np.moveaxis(diff, -3, -1)[right]  # (n, 2)
            self.uv_abs_sum += float(diff.sum())
            self.uv_count += int(diff.size)

    def compute(self) -> dict[str, float]:
        """part_miou: mean IoU over the body parts present in gt or prediction; body_iou: foreground IoU."""
        m = self.matrix.astype(np.float64)
        inter = np.diag(m)
        union = m.sum(0) + m.sum(1) - inter
        present = union[1:] > 0
        part_iou = inter[1:][present] / union[1:][present]
        fg_inter = m[1:, 1:].sum()
        fg_union = m[1:, :].sum() + m[:, 1:].sum() - fg_inter
        return {
            "part_miou": float(part_iou.mean()) if part_iou.size else -1.0,
            "body_iou": float(fg_inter / fg_union) if fg_union else -1.0,
            "part_accuracy": float(inter.sum() / m.sum()) if m.sum() else -1.0,
            "uv_error": self.uv_abs_sum / self.uv_count if self.uv_count else -1.0,
        }


# ------------------------------------------------------------------------------------------------ DensePose
# COCO DensePose evaluation (detectron2 projects/DensePose, densepose_coco_evaluation.py): GPS normalizes a
# point's geodesic error by the mean geodesic distance (kappa) of its coarse part: 0 background, 1 torso,
# 2 hands, 3 feet, 4 upper legs, 5 lower legs, 6 upper arms, 7 lower arms, 8 head. Fine part 1..24 -> coarse.
DENSEPOSE_KAPPA = np.array([0.0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150])
DENSEPOSE_COARSE = np.array([0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8])
# Geodesic stand-in (no SMPL mesh here): the simulator's parts are capsule halves whose U runs along the limb
# and V across the visible half surface (wdp.csi.simulator.labels). Two points on the same part are
# (|dU| * length, |dV| * half circumference) apart on that surface; lengths and radii are the simulator's body
# proportions (wdp.csi.simulator.body) for a 1.70 m adult of mean girth (1.05). A point predicted on another
# part (or on background) is infinitely far (GPS 0): stricter than the mesh geodesic, which gives credit
# across a part border, so this dpAP is if anything low.
_H, _G = 1.70, 1.05
_TORSO_HALF = (
    0.5
    * np.pi
    * (  # half the perimeter of the torso's elliptic cross-section (Ramanujan)
        3 * (0.095 + 0.060) * _H * _G - np.sqrt((3 * 0.095 + 0.060) * (0.095 + 3 * 0.060)) * _H * _G
    )
)
_CHART = {  # coarse part -> (U extent m, V extent m)
    1: (0.288 * _H, _TORSO_HALF),
    2: (0.09 * _H, np.pi * 0.016 * _H),
    3: (0.12 * _H, np.pi * 0.020 * _H),
    4: (0.245 * _H, np.pi * 0.036 * _H * _G),
    5: (0.246 * _H, np.pi * 0.026 * _H * _G),
    6: (0.186 * _H, np.pi * 0.022 * _H * _G),
    7: (0.146 * _H, np.pi * 0.018 * _H * _G),
    8: (0.04 * _H + 2 * 0.05 * _H, np.pi * 0.05 * _H),
}
PART_CHART_M = np.array([(0.0, 0.0)] + [_CHART[int(c)] for c in DENSEPOSE_COARSE[1:]])  # (25, 2) per fine part


def gps(dt_parts: np.ndarray, dt_uv: np.ndarray, gt_parts: np.ndarray, gt_uv: np.ndarray) -> float:
    """Geodesic point similarity of one detection against one ground-truth person (COCO DensePose v1 GPS):
    the mean over the gt's labelled cells of exp(-d^2 / (2 kappa^2)), d the surface distance between the
    predicted and the true point (see PART_CHART_M), kappa the gt point's coarse-part constant. Maps are
    (H, W) labels and (2, H, W) U/V of the full label map. 0 when the gt has no labelled cell."""
    gp = np.asarray(gt_parts)
    pts = gp > 0
    n = int(pts.sum())
    if n == 0:
        return 0.0
    g = gp[pts].astype(np.int64)
    p = np.asarray(dt_parts)[pts].astype(np.int64)
    same = p == g
    d2 = np.full(n, np.inf)
    if same.any():
        du = (np.asarray(dt_uv)[0][pts] - np.asarray(gt_uv)[0][pts])[same] * PART_CHART_M[g[same], 0]
        dv = (np.asarray(dt_uv)[1][pts] - np.asarray(gt_uv)[1][pts])[same] * PART_CHART_M[g[same], 1]
        d2[same] = du * du + dv * dv
    kappa = DENSEPOSE_KAPPA[DENSEPOSE_COARSE[g]]
    return float(np.exp(-d2 / (2 * kappa**2)).sum() / n)


@dataclass
class DenseAP:
    """Running dpAP (GPS): COCO's AP over GPS thresholds 0.5:0.95 (step 0.05), GPS taking the place of OKS in
    the greedy score-ordered matching (as DensePose's COCOeval with its GPS measure). Add one window at a
    time: its detections' full-map parts/uv with their scores, and its ground-truth people's maps (one
    window's labels cut per person with wdp.model.dense.split_by_person). A gt person without a labelled
    cell is ignored (COCO ignores gts without DensePose points)."""

    max_dets: int = 20
    _results: list = field(default_factory=list)
    _best_gps: list = field(default_factory=list)

    def add(
        self,
        dt: list[tuple[np.ndarray, np.ndarray]],
        dt_scores: np.ndarray,
        gt: list[tuple[np.ndarray, np.ndarray]],
    ) -> None:
        scores = np.asarray(dt_scores, dtype=np.float64).reshape(len(dt))
        order = np.argsort(-scores, kind="mergesort")[: self.max_dets]
        sims = np.zeros((len(order), len(gt)))
        for i, d in enumerate(order):
            for j, (gp, guv) in enumerate(gt):
                sims[i, j] = gps(dt[d][0], dt[d][1], gp, guv)
        has_points = np.array([float((np.asarray(gp) > 0).any()) for gp, _ in gt])
        gt_kp = np.zeros((len(gt), len(OKS_SIGMAS), 3))
        gt_kp[..., 2] = has_points[:, None]
        img = ImagePoses(
            gt_keypoints=gt_kp,
            gt_area=np.ones(len(gt)),
            gt_boxes=np.zeros((len(gt), 4)),
            dt_keypoints=np.zeros((len(order), len(OKS_SIGMAS), 3)),
            dt_scores=scores[order],
        )
        # detections are already in score order and cut to max_dets; the area range "all" ignores nobody
        self._best_gps.extend((sims.max(axis=0) if len(order) else np.zeros(len(gt)))[has_points > 0].tolist())
        self._results.append(_evaluate_image(img, sims, _AREA_RANGES["all"], self.max_dets))

    def compute(self) -> dict[str, float]:
        """dp_ap (mean over thresholds), dp_ap50, dp_ap75, dp_ar; -1 where undefined. dp_gps_mean: the mean
        over ground-truth people of their best GPS with any detection (0 for a missed person), which says how
        far a model below the 0.5 threshold is from scoring at all."""
        precision, recall = _precision_recall(self._results)
        i50 = int(np.where(_IOU_THRESHOLDS == 0.5)[0][0])
        i75 = int(np.where(_IOU_THRESHOLDS == 0.75)[0][0])
        return {
            "dp_ap": _mean_valid(precision),
            "dp_ap50": _mean_valid(precision[i50]),
            "dp_ap75": _mean_valid(precision[i75]),
            "dp_ar": _mean_valid(recall),
            "dp_gps_mean": float(np.mean(self._best_gps)) if self._best_gps else -1.0,
        }
