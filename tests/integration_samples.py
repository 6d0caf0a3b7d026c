"""Small PoseFrames and Events for the integration tests and benchmarks."""

from __future__ import annotations

from wdp.schemas import Person, PersonDetected, PersonFallDetected, PoseFrame, Zone

T0 = 1_750_000_000.0


def person(track_id: int, zone_ids: list[str] | None = None, *, score: float = 0.9) -> Person:
    # keypoint i at (0.1 + 0.01 i, 0.2 + 0.02 i); the first 5 below the detection threshold
    kps = [[0.1 + 0.01 * i, 0.2 + 0.02 * i, 0.3 if i < 5 else score] for i in range(17)]
    return Person(
        track_id=track_id,
        keypoints=kps,
        box=(0.1, 0.2, 0.4, 0.9),
        confidence=0.8,
        zone_ids=zone_ids or [],
        activity="walking",
        position=(1.5, 2.0),
    )


def frame(frame_id: int, persons: list[Person] | None = None) -> PoseFrame:
    return PoseFrame(
        frame_id=frame_id,
        timestamp=T0 + frame_id / 10,
        source="simulator",
        persons=persons or [],
        latency_ms=12.5,
    )


def detected(seq: int) -> PersonDetected:
    return PersonDetected(timestamp=T0 + seq, track_id=seq, confidence=0.9, zone_id="kitchen", event_id=f"ev-{seq:06d}")


def fall(track_id: int = 7) -> PersonFallDetected:
    return PersonFallDetected(
        timestamp=T0 + 5,
        track_id=track_id,
        confidence=0.88,
        severity="high",
        zone_id="kitchen",
        position=(1.0, 2.0),
        alert_triggered=True,
    )


def zone(zone_id: str, name: str | None = None) -> Zone:
    return Zone(id=zone_id, name=name or zone_id.title(), polygon=[(0, 0), (3, 0), (3, 3), (0, 3)], max_occupancy=4)
