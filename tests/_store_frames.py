"""Deterministic synthetic PoseFrames for the store tests (values are float32-exact so round trips compare
with ==)."""

from __future__ import annotations

import numpy as np

from wdp.schemas import Person, PoseFrame

ROOM = (10.0, 8.0)  # metres
ACTIVITIES = ("standing", "walking", "sitting", None)


def f32(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float32).astype(np.float64).tolist()


def zones_at(x: float, y: float) -> list[str]:
    zones = []
    if x < 5.0:
        zones.append("zone_a")
    if y < 4.0:
        zones.append("zone_b")
    return zones  # already sorted


def make_frames(
    n_frames: int,
    *,
    n_tracks: int = 3,
    t0: float = 1_700_000_000.0,
    fps: float = 30.0,
    seed: int = 0,
    source: str = "simulator",
    present: np.ndarray | None = None,
    first_id: int = 0,
) -> list[PoseFrame]:
    """Tracks random-walk in the room; ``present[f, k]`` says whether track k is in frame f (default: each
    track is absent in a deterministic pattern so frames have 0..n_tracks persons)."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform((0.5, 0.5), (ROOM[0] - 0.5, ROOM[1] - 0.5), size=(n_tracks, 2))
    if present is None:
        present = rng.random((n_frames, n_tracks)) < 0.8
    frames = []
    for f in range(n_frames):
        pos = np.clip(pos + rng.normal(0, 0.05, size=pos.shape), 0.01, np.array(ROOM) - 0.01)
        persons = []
        for k in range(n_tracks):
            if not present[f, k]:
                continue
            kp = f32(rng.random((N := 17, 3)))
            x0, y0 = rng.uniform(0, 0.5, size=2)
            box = f32([x0, y0, x0 + 0.3, y0 + 0.5])
            x, y = f32(pos[k])
            localized = (f + k) % 11 != 0  # some persons without a floor position
            persons.append(
                Person(
                    track_id=k + 1,
                    keypoints=kp[:N],
                    box=tuple(box),
                    confidence=f32([0.5 + 0.5 * rng.random()])[0],
                    zone_ids=zones_at(x, y) if localized else [],
                    activity=ACTIVITIES[(f // 7 + k) % len(ACTIVITIES)],
                    position=(x, y) if localized else None,
                )
            )
        frames.append(
            PoseFrame(
                frame_id=first_id + f,  # frame ids are unique in a history (the writer drops repeats)
                timestamp=t0 + f / fps,
                source=source,
                persons=persons,
                router_ids=["r1", "r2"],
                latency_ms=f32([5.0 + (f % 10)])[0],
            )
        )
    return frames
