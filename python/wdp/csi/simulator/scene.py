"""Scenes: a room plus people with bodies and motion timelines; random (room_id, seed) or scripted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wdp.csi.simulator.body import BodyShape, body_from_subject
from wdp.csi.simulator.config import SimConfig
from wdp.csi.simulator.motion import FALL_TILT, Timeline
from wdp.csi.simulator.room import Room, room_from_id
from wdp.csi.simulator.script import (
    Action,
    Fall,
    GetUp,
    Lie,
    LieDown,
    Sit,
    Stand,
    Walk,
    Wave,
    compile_script,
)
from wdp.csi.simulator.splits import subjects_of_room

_SCENE_SALT = 0x5343454E  # "SCEN"
_SCRIPT_SALT = 0x53435250  # "SCRP"


@dataclass(frozen=True)
class PersonSpec:
    """A scripted person: where they start and what they do (see wdp.csi.simulator.script)."""

    start: tuple[float, float]
    actions: tuple[Action, ...] = ()
    heading: float | None = None  # radians; None: face the camera
    subject_id: int | None = None  # body parameters; None: a subject of the room's split
    height: float | None = None  # override the subject's height (m)


@dataclass(frozen=True, eq=False)
class ScenePerson:
    person_id: int
    shape: BodyShape
    timeline: Timeline


@dataclass(frozen=True, eq=False)
class Scene:
    room: Room
    people: tuple[ScenePerson, ...]
    duration: float
    seed: int

    @property
    def room_id(self) -> int:
        return self.room.room_id


def _as_room(room: int | Room, config: SimConfig) -> Room:
    return room if isinstance(room, Room) else room_from_id(int(room), config)


def _face_camera(room: Room, xy: tuple[float, float]) -> float:
    c = room.camera.position
    return math.atan2(c[1] - xy[1], c[0] - xy[0])


def scripted_scene(
    room: int | Room,
    people: Sequence[PersonSpec],
    duration: float,
    seed: int = 0,
    config: SimConfig | None = None,
) -> Scene:
    """A deterministic scene from explicit scripts, e.g. one person walking into a zone while another
    falls at t=3 s:

        scripted_scene(101, [PersonSpec((1.0, 2.0), (Walk(to=(4.0, 3.0)), Stand())),
                             PersonSpec((3.0, 4.0), (Stand(until=3.0), Fall(), Lie()))], duration=8.0)
    """
    cfg = config or SimConfig()
    rm = _as_room(room, cfg)
    pool = subjects_of_room(rm.room_id)
    out = []
    for i, spec in enumerate(people):
        subject = pool[i % len(pool)] if spec.subject_id is None else spec.subject_id
        shape = body_from_subject(subject, spec.height)
        heading = _face_camera(rm, spec.start) if spec.heading is None else spec.heading
        rng = np.random.default_rng([_SCRIPT_SALT, int(seed), i])
        out.append(ScenePerson(i, shape, compile_script(spec.actions, spec.start, heading, rng)))
    return Scene(rm, tuple(out), float(duration), int(seed))


def random_scene(room_id: int, seed: int, config: SimConfig | None = None, n_people: int | None = None) -> Scene:
    """Random scene determined by (room_id, seed): 0-4 people (config.people_probs) drawn from the
    room's split, each following a random script of stand / walk / sit / wave / fall / lie."""
    cfg = config or SimConfig()
    room = room_from_id(room_id, cfg)
    rng = np.random.default_rng([_SCENE_SALT, int(room_id), int(seed)])
    if n_people is None:
        n_people = int(rng.choice(len(cfg.people_probs), p=cfg.people_probs))
    pool = subjects_of_room(room_id, seed)
    subjects = rng.choice(len(pool), size=n_people, replace=False)
    walk = room.walkable
    people = []
    for i in range(n_people):
        start = tuple(walk[rng.integers(len(walk))])
        actions = _random_actions(rng, walk, start, cfg.scene_duration_s)
        heading = float(rng.uniform(-np.pi, np.pi)) if rng.uniform() < 0.5 else _face_camera(room, start)
        shape = body_from_subject(pool[int(subjects[i])])
        people.append(ScenePerson(i, shape, compile_script(actions, start, heading, rng)))
    return Scene(room, tuple(people), cfg.scene_duration_s, int(seed))


# Markov chain over activities: state -> (next states, probabilities).
_NEXT = {
    "stand": (("walk", "sit", "wave", "fall", "lie_down", "stand"), (0.45, 0.12, 0.13, 0.12, 0.06, 0.12)),
    "walk": (("stand", "walk", "fall", "wave", "sit", "lie_down"), (0.35, 0.30, 0.15, 0.08, 0.07, 0.05)),
    "sit": (("stand", "walk"), (0.6, 0.4)),
    "wave": (("stand", "walk", "fall"), (0.45, 0.45, 0.10)),
    "lying": (("get_up", "lie"), (0.5, 0.5)),
}
_FIRST = (("stand", "walk", "sit", "wave", "fall", "lie_down"), (0.25, 0.35, 0.14, 0.1, 0.1, 0.06))


def _random_actions(
    rng: np.random.Generator, walk: np.ndarray, start: tuple[float, float], duration: float
) -> list[Action]:
    t, pos = 0.0, np.asarray(start)
    actions: list[Action] = []
    names, probs = _FIRST
    state = "stand"
    while t < duration:
        kind = names[int(rng.choice(len(names), p=probs))]
        if kind == "walk":
            d = np.linalg.norm(walk - pos, axis=1)
            far = walk[d >= 1.0] if (d >= 1.0).any() else walk
            target = far[rng.integers(len(far))]
            speed = float(rng.uniform(0.7, 1.5))
            if state == "sit":
                actions.append(Stand(duration=0.8))
                t += 0.8
            actions.append(Walk(to=(float(target[0]), float(target[1])), speed=speed))
            t += float(np.linalg.norm(target - pos)) / speed
            pos = target
            state = "walk"
        elif kind == "stand":
            dur = float(rng.uniform(1.5, 4.0))
            actions.append(Stand(duration=dur))
            t += dur
            state = kind
        elif kind == "sit":
            dur = float(rng.uniform(3.0, 6.0))
            actions.append(Sit(duration=dur))
            t += dur
            state = kind
        elif kind == "wave":
            dur = float(rng.uniform(1.5, 3.5))
            arm = "right" if rng.uniform() < 0.6 else "left"
            actions.append(Wave(duration=dur, arm=arm, hz=float(rng.uniform(1.5, 2.5))))
            t += dur
            state = kind
        elif kind == "fall":
            dur = float(rng.uniform(0.5, 1.0))
            actions.append(Fall(direction=str(rng.choice(sorted(FALL_TILT))), duration=dur))
            t += dur
            state = "lying"
        elif kind == "lie_down":
            dur = float(rng.uniform(2.0, 3.0))
            actions.append(LieDown(direction=str(rng.choice(["backward", "left", "right"])), duration=dur))
            t += dur
            state = "lying"
        elif kind == "lie":
            dur = float(rng.uniform(2.0, 5.0))
            actions.append(Lie(duration=dur))
            t += dur
        elif kind == "get_up":
            actions.append(GetUp())
            t += 2.0
            state = "stand"
        names, probs = _NEXT[state]
    return actions
