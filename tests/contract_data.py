"""Random windows that satisfy the sim/model data contract, written in the contract's shard layout.

Not physics: amplitude/phase are noise and poses are a jittered template. Enough for shapes, dtypes, the
training loop, decoding and export; the simulator branch provides real paired data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wdp.model.spec import (
    IMAGE_H,
    IMAGE_W,
    MAP_H,
    MAP_STRIDE,
    MAP_W,
    MAX_PEOPLE,
    N_KEYPOINTS,
    N_PARTS,
    N_RX,
    N_SUB,
    N_TX,
    SKELETON,
    WINDOW,
)

# a standing COCO pose in units of body height, origin at the box centre
_TEMPLATE = np.array(
    [
        [0.0, -0.42],
        [-0.03, -0.44],
        [0.03, -0.44],
        [-0.06, -0.43],
        [0.06, -0.43],
        [-0.12, -0.30],
        [0.12, -0.30],
        [-0.16, -0.14],
        [0.16, -0.14],
        [-0.18, 0.0],
        [0.18, 0.0],
        [-0.08, 0.02],
        [0.08, 0.02],
        [-0.09, 0.24],
        [0.09, 0.24],
        [-0.09, 0.46],
        [0.09, 0.46],
    ]
)


def random_sample(rng: np.random.Generator, max_people: int = 2) -> dict[str, np.ndarray]:
    n = int(rng.integers(0, max_people + 1)) if max_people > 0 else 0
    kps = np.zeros((MAX_PEOPLE, N_KEYPOINTS, 3), np.float32)
    boxes = np.zeros((MAX_PEOPLE, 4), np.float32)
    area = np.zeros(MAX_PEOPLE, np.float32)
    activity = np.full(MAX_PEOPLE, -1, np.int64)
    part_mask = np.zeros((MAP_H, MAP_W), np.uint8)
    uv = np.zeros((2, MAP_H, MAP_W), np.float32)
    # people in separate vertical bands so they never overlap
    bands = rng.permutation(max(n, 1))
    for p in range(n):
        height = rng.uniform(90, 150)
        lo = (bands[p] + 0.5) * IMAGE_W / max(n, 1)
        cx = np.clip(lo + rng.uniform(-8, 8), 0.25 * height, IMAGE_W - 0.25 * height)
        cy = rng.uniform(0.5 * height + 4, IMAGE_H - 0.5 * height - 4)
        xy = _TEMPLATE * height + [cx, cy] + rng.normal(0, 2.0, (N_KEYPOINTS, 2))
        vis = np.where(rng.random(N_KEYPOINTS) < 0.9, 2.0, 0.0)
        kps[p, :, :2] = xy
        kps[p, :, 2] = vis
        kps[p, vis == 0, :2] = 0
        x0, y0 = xy.min(0) - 6
        x1, y1 = xy.max(0) + 6
        boxes[p] = (x0, y0, x1, y1)
        area[p] = (x1 - x0) * (y1 - y0)
        activity[p] = rng.integers(0, 6)
        for e, (a, b) in enumerate(SKELETON):  # limbs as thick map-resolution segments, one part id per limb
            for t in np.linspace(0, 1, 12):
                u, v = (xy[a] * (1 - t) + xy[b] * t) / MAP_STRIDE
                iu, iv = int(round(u)), int(round(v))
                part_mask[max(iv - 1, 0) : iv + 2, max(iu - 1, 0) : iu + 2] = e % N_PARTS + 1
    body = part_mask > 0
    uv[:, body] = rng.random((2, int(body.sum())), dtype=np.float32)
    shape = (WINDOW, N_SUB, N_RX, N_TX)
    gain = rng.uniform(0.5, 2.0, (WINDOW, 1, 1, 1))  # AGC-like per-frame gain
    return {
        "amplitude": (gain * rng.uniform(0.5, 1.5, shape)).astype(np.float32),
        "phase": rng.uniform(-np.pi, np.pi, shape).astype(np.float32),
        "keypoints": kps,
        "boxes": boxes,
        "num_people": np.int64(n),
        "part_mask": part_mask,
        "uv": uv,
        "activity": activity,
        "fall": np.bool_(rng.random() < 0.1),
        "person_area": area,
        "room_id": np.int64(rng.integers(0, 3)),
        "seed": np.int64(rng.integers(0, 2**31)),
        "t": np.float64(rng.uniform(0, 60)),
    }


def write_split(
    out_dir: str | Path, split: str, num_samples: int, seed: int, max_people: int = 2, shard_size: int = 16
) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = [random_sample(rng, max_people) for _ in range(num_samples)]
    for s, start in enumerate(range(0, num_samples, shard_size)):
        chunk = samples[start : start + shard_size]
        np.savez(out / f"shard-{s:05d}.npz", **{k: np.stack([c[k] for c in chunk]) for k in chunk[0]})
    meta = {
        "version": 1,
        "split": split,
        "num_samples": num_samples,
        "rooms": [0, 1, 2],
        "config": {"generator": "tests/contract_data.py", "max_people": max_people, "seed": seed},
    }
    (out / "meta.json").write_text(json.dumps(meta))
    return out


def write_dataset_dirs(root: str | Path, sizes: dict[str, int], max_people: int = 2, seed: int = 0) -> Path:
    root = Path(root)
    for i, (split, n) in enumerate(sizes.items()):
        write_split(root / split, split, n, seed + i, max_people)
    return root
