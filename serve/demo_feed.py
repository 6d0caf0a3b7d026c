"""Synthetic pose frames for the store-backed engine view: people walking circles in a 10 x 8 m room.

For development without routers and for the API benchmarks (each frame's ``timestamp`` is the wall-clock time
it was published, so a subscriber can measure delivery latency). Not a simulator of CSI: see wdp.csi for that.
"""

from __future__ import annotations

import asyncio
import math
import time

from wdp.schemas import N_KEYPOINTS, Person, PoseFrame
from wdp.serve.engine_view import StoreBackedEngineView

ROOM = (10.0, 8.0)


def synthetic_frame(frame_id: int, t: float, persons: int) -> PoseFrame:
    out = []
    for k in range(persons):
        phase = t * 0.3 + k * 2.0 * math.pi / max(persons, 1)
        x = ROOM[0] / 2 + 3.0 * math.cos(phase)
        y = ROOM[1] / 2 + 2.5 * math.sin(phase)
        cx, cy = 0.2 + 0.6 * (x / ROOM[0]), 0.2 + 0.6 * (y / ROOM[1])
        keypoints = [
            [
                round(cx + 0.03 * math.sin(j + t), 4),
                round(cy - 0.15 + 0.02 * j, 4),
                round(0.6 + 0.02 * (j % 10), 3),
            ]
            for j in range(N_KEYPOINTS)
        ]
        out.append(
            Person(
                track_id=k + 1,
                keypoints=keypoints,
                box=(cx - 0.08, cy - 0.2, cx + 0.08, cy + 0.2),
                confidence=round(0.55 + 0.1 * k % 0.45, 3),
                zone_ids=["left"] if x < ROOM[0] / 2 else ["right"],
                activity="walking",
                position=(round(x, 3), round(y, 3)),
            )
        )
    return PoseFrame(
        frame_id=frame_id,
        timestamp=time.time(),
        source="simulator",
        persons=out,
        router_ids=["demo"],
        latency_ms=0.0,
    )


async def run_demo_feed(view: StoreBackedEngineView, fps: float, persons: int) -> None:
    """Publish frames at ``fps`` on a fixed schedule (no drift) until cancelled. Like a sensor, a late
    loop skips the missed instants instead of bursting to catch up (``frames_dropped`` counts them)."""
    period = 1.0 / fps
    t0 = time.monotonic()
    next_at = t0
    frame_id = 0
    while True:
        frame_id += 1
        view.publish_frame(synthetic_frame(frame_id, time.monotonic() - t0, persons))
        next_at += period
        now = time.monotonic()
        if now > next_at:
            missed = int((now - next_at) / period) + 1
            view.frames_dropped += missed
            next_at += missed * period
        await asyncio.sleep(next_at - now)
