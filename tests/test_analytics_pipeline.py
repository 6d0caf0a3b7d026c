"""The realtime step end to end: detections -> schemas.Person list + events."""

from __future__ import annotations

import itertools
from dataclasses import replace

import msgspec
import numpy as np
import pytest

from wdp import schemas
from wdp.analytics import AnalyticsPipeline, PipelineConfig
from wdp.analytics.synthetic import DEFAULT_CAMERA, STANDING, Posture, falling, walking
from wdp.tracking import Detections

CAM = DEFAULT_CAMERA
LAB = schemas.Zone(
    id="lab",
    name="Lab",
    polygon=[(3.5, 2.0), (6.0, 2.0), (6.0, 7.0), (3.5, 7.0)],
    restricted=True,
    max_occupancy=1,
)


def scene(k: int, dt: float = 0.01) -> list[Posture]:
    """Person A walks right into the lab (x > 3.5) and falls there at 4 s; B stands still; C shows up
    at the far end from 1 s to 2 s."""
    t = k * dt
    a0 = Posture(x=1.5, y=3.5, heading=0.0)
    stop = 2.8  # A walks 1.0 m/s for 2.8 s, then stands
    a_stand = walking(a0, stop, speed=1.0)
    a_stand = replace(STANDING, x=a_stand.x, y=a_stand.y, heading=0.0)
    if t < stop:
        a = walking(a0, t, speed=1.0)
    elif t < 4.0:
        a = a_stand
    else:
        a = falling(a_stand, min(1.0, (t - 4.0) / 0.7), direction=-1.0)
    people = [a, Posture(x=2.0, y=5.0, heading=1.0)]
    if 1.0 <= t < 2.0:
        people.append(Posture(x=5.0, y=6.5, heading=3.0))
    return people


def run(pipe: AnalyticsPipeline, n: int = 700, normalized: bool = False):
    frames = []
    for k in range(n):
        kp = np.stack([CAM.keypoints(p) for p in scene(k)])
        if normalized:
            kp[..., :2] /= 256.0
        frames.append(pipe.update(k * 0.01, Detections.from_arrays(kp)))
    return frames


def make(normalized=False, zones=(LAB,)):
    ids = itertools.count()
    proj = CAM.floor_projector(0.07)
    if normalized:
        return AnalyticsPipeline(
            PipelineConfig(image_size=(1.0, 1.0)),
            projector=proj.scaled(256),
            zones=zones,
            event_ids=lambda: f"e-{next(ids)}",
        )
    return AnalyticsPipeline(projector=proj, zones=zones, event_ids=lambda: f"e-{next(ids)}")


def test_scene_events_in_order():
    pipe = make()
    frames = run(pipe)
    events = [e for _, evs in frames for e in evs]
    got = [(round(e.timestamp, 2), schemas.event_type(e), getattr(e, "track_id", None)) for e in events]
    by_type = {}
    for ts, kind, tid in got:
        by_type.setdefault(kind, []).append((ts, tid))
    # A and B are confirmed on the tracker's confirm_hits-th frame (ids by creation order: A=1, B=2), C as
    # long after 1 s
    wait = (pipe.tracker.config.confirm_hits - 1) * 0.01
    assert by_type["person.detected"] == [(round(wait, 2), 1), (round(wait, 2), 2), (round(1.0 + wait, 2), 3)]
    # C (last seen at 1.99 s) is lost after the tracker's max_misses missed frames; nobody else is
    misses = pipe.tracker.config.max_misses
    assert misses * 0.01 < pipe.tracker.config.max_coast_s
    assert by_type["person.lost"] == [(round(1.99 + misses * 0.01, 2), 3)]
    # C stood in the lab for 1 s: in, breach, out (its track died) -> occupancy 2 > 1 during C's stay
    # A enters the lab at x > 3.6 (0.1 m margin) ~ t = 2.1 s
    entered = by_type["person.entered_zone"]
    assert [tid for _, tid in entered] == [3, 1]
    assert by_type["alert.restricted_zone_breach"] == [(entered[0][0], 3), (entered[1][0], 1)]
    assert 2.0 < entered[1][0] < 2.3
    (occ,) = [e for e in events if isinstance(e, schemas.AlertHighOccupancy)]
    assert occ.current_occupancy == 2 and occ.timestamp == pytest.approx(entered[1][0])
    assert [tid for _, tid in by_type["person.left_zone"]] == [3]
    (fall,) = [e for e in events if isinstance(e, schemas.PersonFallDetected)]
    assert fall.track_id == 1 and fall.zone_id == "lab" and fall.alert_triggered
    assert 4.7 < fall.timestamp < 5.4
    # within one update: detected first, lost last
    for _, evs in frames:
        kinds = [schemas.event_type(e) for e in evs]
        if "person.lost" in kinds:
            assert kinds[-1] == "person.lost" and kinds.index("person.left_zone") < kinds.index("person.lost")
    # Lost carries where and in which zone the person was last
    lost = next(e for e in events if isinstance(e, schemas.PersonLost))
    assert lost.zone_id == "lab" and lost.duration_s == pytest.approx(0.99)
    assert np.hypot(lost.position[0] - 5.0, lost.position[1] - 6.5) < 0.1
    # every event survives the wire
    for e in events:
        assert schemas.EVENT_JSON.decode(schemas.JSON_ENCODER.encode(e)) == e


def test_persons_are_normalized_and_localized():
    frames = run(make(), n=300)
    persons, _ = frames[250]  # t = 2.5 s: A walking inside the lab, B standing, C gone
    assert [p.track_id for p in persons] == [1, 2]
    a, b = persons
    truth = scene(250)
    for person, posture in ((a, truth[0]), (b, truth[1])):
        kp = np.array(person.keypoints)
        assert kp.shape == (17, 3)
        expected = CAM.keypoints(posture)
        np.testing.assert_allclose(kp[:, :2], expected[:, :2] / 256.0, atol=3.0 / 256)  # within 3 px
        assert all(0.0 <= v <= 1.0 for v in person.box)
        assert np.hypot(person.position[0] - posture.x, person.position[1] - posture.y) < 0.1
    assert a.zone_ids == ["lab"] and b.zone_ids == []
    assert a.activity == "walking" and b.activity == "standing"
    assert 0.8 < a.confidence <= 1.0
    assert schemas.PERSON_JSON.decode(schemas.JSON_ENCODER.encode(a)) == a


def test_normalized_input_gives_the_same_results():
    pix = run(make(), n=400)
    norm = run(make(normalized=True), n=400, normalized=True)
    for (p1, e1), (p2, e2) in zip(pix, norm, strict=True):
        assert msgspec.json.encode(e1) == msgspec.json.encode(e2)
        assert [p.track_id for p in p1] == [p.track_id for p in p2]
        for a, b in zip(p1, p2, strict=True):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-9)
            np.testing.assert_allclose(a.position, b.position, atol=1e-9)
            assert (a.zone_ids, a.activity) == (b.zone_ids, b.activity)


def test_deterministic():
    def digest():
        return [msgspec.json.encode([persons, events]) for persons, events in run(make(), n=600)]

    assert digest() == digest()


def test_coasting_tracks_are_published_briefly():
    pipe = AnalyticsPipeline(PipelineConfig(publish_coast_s=0.055), projector=CAM.floor_projector())
    kp = CAM.keypoints(Posture(x=2.5, y=3.5))[None]
    for k in range(10):
        persons, _ = pipe.update(k * 0.01, Detections.from_arrays(kp))
    assert [p.track_id for p in persons] == [1]
    seen = [len(pipe.update(0.1 + k * 0.01, None)[0]) for k in range(10)]
    assert seen == [1] * 5 + [0] * 5  # unseen for up to 0.05 s is still published


def test_live_zone_update_and_no_projector():
    pipe = make(zones=())
    events = []
    for k in range(100):
        _, ev = pipe.update(k * 0.01, Detections.from_arrays(np.stack([CAM.keypoints(p) for p in scene(k)])))
        events += ev
    assert not any(isinstance(e, schemas.PersonEnteredZone) for e in events)
    pipe.set_zones([replace_zone(LAB, polygon=[(1.0, 4.5), (3.0, 4.5), (3.0, 5.5), (1.0, 5.5)])])  # around B
    _, ev = pipe.update(1.0, Detections.from_arrays(np.stack([CAM.keypoints(p) for p in scene(100)])))
    _, ev2 = pipe.update(1.01, Detections.from_arrays(np.stack([CAM.keypoints(p) for p in scene(101)])))
    kinds = [(schemas.event_type(e), getattr(e, "track_id", None)) for e in ev + ev2]
    assert ("person.entered_zone", 2) in kinds and ("alert.restricted_zone_breach", 2) in kinds
    assert pipe.occupancy == {"lab": 1}
    # no projector: persons without positions, no zone membership, still tracked and classified
    bare = AnalyticsPipeline(zones=[LAB])
    for k in range(60):
        persons, _ = bare.update(k * 0.01, Detections.from_arrays(np.stack([CAM.keypoints(p) for p in scene(k)])))
    assert [p.position for p in persons] == [None, None] and all(p.zone_ids == [] for p in persons)
    assert persons[1].activity == "standing"


def replace_zone(z: schemas.Zone, **kw) -> schemas.Zone:
    return msgspec.structs.replace(z, **kw)
