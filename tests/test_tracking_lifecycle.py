"""Track life cycle at the engine's 20 frames per second, through AnalyticsPipeline with its default settings
(what the engine publishes): one-frame ghosts, re-identification of lost tracks, NMS of duplicate detections
from two routers. Each test describes a failure the tracker had before issue 15 (two routers' detections of
one person became two people, a single detection brought a person back, a returning person got a new id)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from wdp import schemas
from wdp.analytics import AnalyticsPipeline
from wdp.analytics.synthetic import DEFAULT_CAMERA, Posture
from wdp.engine.fusion import fuse_detections, oks_matrix
from wdp.tracking import Detections

CAM = DEFAULT_CAMERA
DT = 0.05  # the engine's slot at hop 5 and 100 Hz


def det(*postures: Posture, score: float = 0.9, shift: tuple[float, float] = (0.0, 0.0)) -> Detections:
    if not postures:
        return Detections.empty()
    kp = np.stack([CAM.keypoints(p, score) for p in postures])
    kp[..., :2] += shift
    return Detections.from_arrays(kp)


def run(pipe: AnalyticsPipeline, frames: list[Detections], t0: float = 0.0):
    persons, events = [], []
    for k, d in enumerate(frames):
        ps, evs = pipe.update(t0 + k * DT, d)
        persons.append(ps)
        events += evs
    return persons, events


def test_a_one_frame_detection_never_shows_a_person():
    p = Posture(x=2.0, y=3.0)
    pipe = AnalyticsPipeline()
    # a person for 2 s; a one-frame ghost beside them at 1 s
    frames = [det(p, Posture(x=4.0, y=5.0)) if k == 20 else det(p) for k in range(40)]
    persons, _ = run(pipe, frames)
    assert all(len(ps) <= 1 for ps in persons)
    assert all(len(ps) == 1 for ps in persons[10:])
    # they leave; 0.6 s later, while the track still coasts (max_coast_s) but is no longer shown
    # (show_coast_s: 0.5 s by default), the detector fires once where they were, then nothing
    frames = [det(p) if k == 12 else det() for k in range(40)]
    persons, _ = run(pipe, frames, t0=40 * DT)
    shown = [k for k, ps in enumerate(persons) if ps]
    assert all(k < 12 for k in shown), f"the one-frame detection showed a person in frames {shown}"


def test_a_lost_person_coming_back_is_reidentified_with_the_old_id():
    pipe = AnalyticsPipeline(projector=CAM.floor_projector(0.07))
    p = Posture(x=2.0, y=3.5)
    persons, events = run(pipe, [det(p) for _ in range(40)])
    (tid,) = {q.track_id for q in persons[-1]}
    # gone until the track is lost (person.lost) ...
    c = pipe.tracker.config
    gone = int((c.max_coast_s + 0.5) / DT)  # re-identification (reid_s, 5 s by default) still holds the id
    persons, ev2 = run(pipe, [det() for _ in range(gone)], t0=40 * DT)
    events += ev2
    assert [e.track_id for e in events if isinstance(e, schemas.PersonLost)] == [tid]
    assert persons[-1] == []
    # ... back 0.4 m from where they were last seen: the same id, announced again
    t_back = (40 + gone) * DT
    persons, ev3 = run(pipe, [det(replace(p, x=2.4)) for _ in range(30)], t0=t_back)
    assert {q.track_id for q in persons[-1]} == {tid}
    assert [(type(e), e.track_id) for e in ev3 if isinstance(e, schemas.PersonDetected)] == [
        (schemas.PersonDetected, tid)
    ]
    # someone else, at the other end of the room while the first is still there: a new id
    persons, _ = run(pipe, [det(replace(p, x=2.4), Posture(x=4.5, y=6.0)) for _ in range(30)], t0=t_back + 30 * DT)
    ids = {q.track_id for q in persons[-1]}
    assert tid in ids and len(ids) == 2


def test_nms_merges_duplicate_detections_of_two_routers():
    p = Posture(x=2.5, y=4.0)
    a = det(p, score=0.8)
    b = det(p, score=0.7, shift=(9.0, -7.0))  # router 2's pose of the same person, ~11 px off
    area = np.prod(a.boxes[:, 2:] - a.boxes[:, :2], axis=1)
    assert oks_matrix(a.keypoints, area, b.keypoints, 0.3)[0, 0] < 0.5  # too far apart for the fusion's OKS test
    assert len(fuse_detections([a, b])) == 2
    pipe = AnalyticsPipeline()
    persons, events = run(pipe, [fuse_detections([a, b]) for _ in range(60)])
    assert all(len(ps) <= 1 for ps in persons)
    assert len({q.track_id for ps in persons for q in ps}) == 1
    assert len([e for e in events if isinstance(e, schemas.PersonDetected)]) == 1
