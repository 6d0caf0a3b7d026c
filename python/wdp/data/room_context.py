"""What an installer knows about a room, as model inputs: an empty-room reference recording and the geometry
(router antennas, room outline, camera), plus the floor-position label of simulated windows.

Everything is in the *receiver's frame*: metres, origin at the centre of the receiver's antennas, axes of the
room. A model that reads these is trained across many rooms and tested in rooms it never saw (issue 16 item 3).

* ``empty_reference``: one 12-s capture of the room with nobody in it (its own seed: other AGC steps, noise,
  chain phases than any scene), reduced to a mean amplitude per subcarrier/antenna pair and the angle of the
  mean unit phasor of the *sanitised* phase (the same ``sanitize_phase`` settings as the model's input).
* ``room_geometry``: ``GEOMETRY_FIELDS`` below (10 numbers).
* ``floor_positions``: the true pelvis position on the floor per window and person slot (scene order).

Deterministic: everything follows from (room id, simulator config); scenes from (room id, scene seed).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from wdp import schemas_sample as S
from wdp.csi.sanitize_numpy import sanitize_phase
from wdp.csi.simulator import SceneSimulator, SimConfig, random_scene
from wdp.csi.simulator.body import PELVIS
from wdp.model.spec import N_GEOMETRY as S_N_GEOMETRY

EMPTY_SEED = 990_001  # + room id: the reference capture's scene seed (never a seed of the splits' scenes)
GEOMETRY_FIELDS = (
    "tx_dx",  # transmitter antenna centre - receiver antenna centre (m)
    "tx_dy",
    "room_x0",  # room outline relative to the receiver: x from .. to, y from .. to (m)
    "room_x1",
    "room_y0",
    "room_y1",
    "camera_dx",  # camera position relative to the receiver (m)
    "camera_dy",
    "camera_cos",  # the camera's viewing direction on the floor (unit vector)
    "camera_sin",
)
N_GEOMETRY = len(GEOMETRY_FIELDS)
assert N_GEOMETRY == S_N_GEOMETRY


def room_geometry(room_id: int, config: SimConfig) -> np.ndarray:
    """(N_GEOMETRY,) float32 in the receiver's frame (see GEOMETRY_FIELDS)."""
    room = random_scene(int(room_id), EMPTY_SEED + int(room_id), config, n_people=0).room
    rx = room.rx.mean(axis=0)[:2]
    tx = room.tx.mean(axis=0)[:2] - rx
    cam = room.camera.position[:2] - rx
    fwd = room.camera.rotation[2][:2]
    fwd = fwd / max(float(np.linalg.norm(fwd)), 1e-9)
    box = (-rx[0], room.size[0] - rx[0], -rx[1], room.size[1] - rx[1])
    return np.array([*tx, *box, *cam, *fwd], np.float32)


def empty_reference(
    room_id: int, config: SimConfig, sanitize: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(amplitude, phase), each (subcarriers, rx, tx) float32: the room's empty-room reference."""
    scene = random_scene(int(room_id), EMPTY_SEED + int(room_id), config, n_people=0)
    batch = SceneSimulator(scene, config).sample()
    amp = batch["amplitude"].astype(np.float64).mean(axis=(0, 1))
    phase = sanitize_phase(batch["phase"], axis=-3, **dict(sanitize or {}))
    z = np.exp(1j * phase.astype(np.float64)).mean(axis=(0, 1))
    return amp.astype(np.float32), np.angle(z).astype(np.float32)


def floor_positions(room_id: int, seed: int, times: np.ndarray, config: SimConfig) -> np.ndarray:
    """(len(times), MAX_PEOPLE, 2) float32 pelvis floor positions in the receiver's frame, NaN for empty slots,
    of the scene ``random_scene(room_id, seed, config)`` (the dataset's scene of that room and seed)."""
    scene = random_scene(int(room_id), int(seed), config)
    out = np.full((len(times), S.MAX_PEOPLE, 2), np.nan, np.float32)
    rx = scene.room.rx.mean(axis=0)[:2]
    for i, pose in enumerate(SceneSimulator(scene, config).poses(np.asarray(times, np.float64))[: S.MAX_PEOPLE]):
        out[:, i] = pose.joints[:, PELVIS, :2] - rx
    return out


class RoomContext:
    """Per-window room inputs and floor labels for a split's windows, computed once per room / scene."""

    def __init__(self, config: SimConfig | Mapping[str, Any], sanitize: Mapping[str, Any] | None = None) -> None:
        self.config = SimConfig.coerce(dict(config) if isinstance(config, Mapping) else config)
        self.sanitize = dict(sanitize or {})
        self._reference = lru_cache(maxsize=None)(self._room)

    def _room(self, room_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        amp, phase = empty_reference(room_id, self.config, self.sanitize)
        return amp, phase, room_geometry(room_id, self.config)

    def arrays(self, room_id: np.ndarray, seed: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """ref_amplitude, ref_phase (N, subcarriers, rx, tx), geometry (N, N_GEOMETRY), floor_xy (N, MAX_PEOPLE, 2)."""
        n = len(room_id)
        rooms = [self._reference(int(r)) for r in room_id]
        floor = np.full((n, S.MAX_PEOPLE, 2), np.nan, np.float32)
        keys = np.stack([room_id, seed], axis=1)
        for r, s in np.unique(keys, axis=0):
            rows = np.flatnonzero((keys[:, 0] == r) & (keys[:, 1] == s))
            floor[rows] = floor_positions(int(r), int(s), t[rows], self.config)
        return {
            "ref_amplitude": np.stack([a for a, _, _ in rooms]),
            "ref_phase": np.stack([p for _, p, _ in rooms]),
            "geometry": np.stack([g for _, _, g in rooms]),
            "floor_xy": floor,
        }
