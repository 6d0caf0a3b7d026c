"""Physics-based WiFi CSI simulator with paired camera labels (keypoints, boxes, DensePose-like maps).

Rooms (geometry, antennas, camera) derive from a room id; people are articulated bodies following
motion scripts; CSI is line of sight + wall reflections + body scatterers, then receiver impairments.

    from wdp.csi.simulator import random_scene, SceneSimulator
    sim = SceneSimulator(random_scene(room_id=3, seed=7))
    batch = sim.sample()            # dict of stacked sample arrays (wdp.schemas_sample)
    for frame in sim.stream():      # SimFrame(timestamp, csi (30, 3, 3) complex64, persons)
        ...
"""

from __future__ import annotations

from wdp.csi.simulator.body import BodyShape, body_from_subject, forward_kinematics
from wdp.csi.simulator.camera import Camera
from wdp.csi.simulator.config import INTEL5300_SUBCARRIERS_20MHZ, Band, Impairments, SimConfig
from wdp.csi.simulator.props import RotatingBlades, SwayingSheet
from wdp.csi.simulator.room import Room, room_from_id
from wdp.csi.simulator.scene import PersonSpec, Scene, ScenePerson, random_scene, scripted_scene
from wdp.csi.simulator.script import Fall, GetUp, Lie, LieDown, Sit, Stand, Walk, Wave
from wdp.csi.simulator.simulate import PersonTruth, SceneSimulator, SimFrame, stream_frames
from wdp.csi.simulator.splits import (
    SPLIT_ROOMS,
    SPLIT_SUBJECTS,
    SPLITS,
    scene_seed,
    split_of_room,
    subjects_of_room,
)

__all__ = [
    "INTEL5300_SUBCARRIERS_20MHZ",
    "SPLITS",
    "SPLIT_ROOMS",
    "SPLIT_SUBJECTS",
    "Band",
    "BodyShape",
    "Camera",
    "Fall",
    "GetUp",
    "Impairments",
    "Lie",
    "LieDown",
    "PersonSpec",
    "PersonTruth",
    "Room",
    "RotatingBlades",
    "Scene",
    "ScenePerson",
    "SceneSimulator",
    "SimConfig",
    "SimFrame",
    "Sit",
    "Stand",
    "SwayingSheet",
    "Walk",
    "Wave",
    "body_from_subject",
    "forward_kinematics",
    "random_scene",
    "room_from_id",
    "scene_seed",
    "scripted_scene",
    "split_of_room",
    "stream_frames",
    "subjects_of_room",
]
