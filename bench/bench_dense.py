"""Cost of DensePose decoding per time slot at 4 people, one core: what engine.dense adds to a slot.

Two parts, timed separately and summed:
* map decoding: the part logits / U,V of one window -> part map and U,V (coarse-then-fine,
  wdp.engine.models.decode_densepose_fast, what ModelRunner.infer_dense runs), measured on the shipped model's
  real outputs for the scene's windows;
* per-person cut and encoding: wdp.engine.dense_stage.DenseStage.frame on the frame's 4 persons (the split
  of the map by skeleton, the RLE + uint8 UV encoding, the twin frame), measured on the simulator's true part
  maps and keypoints of 4-person windows (the shipped model's own maps hold fewer body cells; the true ones
  are the heavier, realistic case).
Not included: the forward pass itself (the part/UV heads run whether or not dense output is asked for).

Baseline: the issue's budget, 2 ms per slot at 4 people on one core for tracking + smoothing + dense decoding
together (bench/bench_tracking.py measures the tracking + smoothing part).

Scene: room 101 (the shipped model's room), 4 people, scene seeds 0.. (scripted walks/sits/falls), windows of
5 frames at 100 Hz; single-threaded torch.

Usage: PYTHONPATH=python python bench/bench_dense.py [--scenes 4] [--repeat 20]
"""

from __future__ import annotations

import argparse
import time

import msgspec
import numpy as np
import torch

from wdp import schemas
from wdp.csi.sanitize_numpy import sanitize_phase
from wdp.csi.simulator import SceneSimulator, random_scene
from wdp.engine.dense_stage import DenseStage
from wdp.engine.models import DenseMaps, ModelRunner, decode_densepose_fast
from wdp.tracking.detections import Detections

BUDGET_MS = 2.0  # issue 15: tracking + smoothing + dense decoding per slot at 4 people, one core


def frames_of(batch: dict[str, np.ndarray]) -> list[tuple[schemas.PoseFrame, DenseMaps, Detections]]:
    """Per window: a 4-person PoseFrame (true keypoints, normalized), its true part map, its detections."""
    out = []
    for i in range(len(batch["t"])):
        n = int(batch["num_people"][i])
        kp = batch["keypoints"][i, :n].astype(np.float64)
        persons = []
        for k in range(n):
            norm = kp[k].copy()
            norm[:, :2] /= 256.0
            box = tuple(float(v) / 256.0 for v in batch["boxes"][i, k])
            persons.append(
                schemas.Person(track_id=k + 1, keypoints=norm.tolist(), box=box, confidence=0.9)  # type: ignore[arg-type]
            )
        frame = schemas.PoseFrame(frame_id=i, timestamp=float(batch["t"][i]), source="simulator", persons=persons)
        maps = DenseMaps(batch["part_mask"][i], batch["uv"][i])
        out.append((frame, maps, Detections.from_arrays(kp, scores=np.full(n, 0.9))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--people", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)

    runner = ModelRunner.load("default", threads=1)
    san = {k: v for k, v in runner.model.card["input_spec"]["sanitization"].items() if k not in ("function", "axis")}
    batches = [SceneSimulator(random_scene(101, s, n_people=args.people)).sample() for s in range(args.scenes)]
    slots = [f for b in batches for f in frames_of(b)]
    outs = []
    for b in batches:
        phase = sanitize_phase(b["phase"], axis=-3, **san).astype(np.float32)
        out = runner.model(b["amplitude"].astype(np.float32), phase)
        logits, uv = out["part_logits"].numpy(), out["uv"].numpy()
        outs += [(logits[i : i + 1], uv[i : i + 1]) for i in range(len(b["t"]))]

    decode_ms, cut_ms, cells, nbytes = [], [], [], []
    stage = DenseStage()
    cpu0 = time.process_time()
    with torch.inference_mode():
        for _ in range(args.repeat):
            for (logits, uv), (frame, maps, dets) in zip(outs, slots, strict=True):
                t0 = time.perf_counter()
                parts, uvb = decode_densepose_fast(logits, uv)
                _ = DenseMaps(parts[0], uvb[0])
                t1 = time.perf_counter()
                twin = stage.frame(frame, [dets], [maps])
                t2 = time.perf_counter()
                decode_ms.append((t1 - t0) * 1e3)
                cut_ms.append((t2 - t1) * 1e3)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / (args.repeat * len(slots))
    assert twin is not None
    for _, maps, _ in slots:
        cells.append(int((maps.parts > 0).sum()))
    for frame, maps, dets in slots:
        twin = stage.frame(frame, [dets], [maps])
        assert twin is not None
        nbytes.append(len(msgspec.json.encode(twin)) - len(msgspec.json.encode(frame)))

    d, c = np.array(decode_ms), np.array(cut_ms)
    total = d + c
    print(f"{len(slots)} slots x {args.repeat}, {args.people} people, {np.mean(cells):.0f} body cells per map (64x64)")
    for name, x in (("map decoding", d), ("cut + encode", c), ("dense per slot", total)):
        p50, p99 = np.percentile(x, [50, 99])
        print(f"{name:18s} mean {x.mean():.3f} ms  p50 {p50:.3f} ms  p99 {p99:.3f} ms")
    print(f"CPU time per slot (process time, not wall clock: what one core spends) {cpu_ms:.3f} ms")
    print(f"JSON bytes added per slot (4 people): mean {np.mean(nbytes):.0f}")
    print(
        f"budget {BUDGET_MS:.1f} ms for tracking + smoothing + dense per slot: dense takes "
        f"{100 * cpu_ms / BUDGET_MS:.0f} % by CPU time, {100 * total.mean() / BUDGET_MS:.0f} % by mean wall clock"
    )


if __name__ == "__main__":
    main()
