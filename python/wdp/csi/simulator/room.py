"""Rooms: box geometry, wall reflection coefficients, TX/RX antenna arrays, static clutter, camera.

Everything derives from room_id (and the antenna counts / band of the config), never from a scene seed,
so a room looks the same in every scene and rooms of different splits differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from wdp import schemas_sample as S
from wdp.csi.simulator.camera import Camera
from wdp.csi.simulator.config import SimConfig

_ROOM_SALT = 0x524F4F4D  # "ROOM"
WALL_MARGIN_M = 0.4  # people keep this far from walls
WALKABLE_STEP_M = 0.2
MIN_CAMERA_DIST_M = 1.5  # people stay within this band of floor distance from the camera
MAX_CAMERA_DIST_M = 5.0


@dataclass(frozen=True, eq=False)
class Room:
    room_id: int
    size: np.ndarray  # (3,) x extent, y extent, height (m); the room is [0, size]
    reflection: np.ndarray  # (6,) amplitude reflection coefficients: x=0, x=W, y=0, y=D, floor, ceiling
    tx: np.ndarray  # (n_tx, 3) antenna positions
    rx: np.ndarray  # (n_rx, 3)
    clutter_pos: np.ndarray  # (K, 3) static scatterers (furniture)
    clutter_amp: np.ndarray  # (K,) complex: sqrt(RCS) with a fixed reflection phase
    camera: Camera

    @cached_property
    def walkable(self) -> np.ndarray:
        """(M, 2) floor points 1.5-5 m from the camera where a standing person is fully inside the image."""
        return _walkable_points(self)

    def clamp_to_floor(self, xy: np.ndarray) -> np.ndarray:
        lo = WALL_MARGIN_M
        return np.clip(xy, lo, self.size[:2] - lo)


def linear_array(center: np.ndarray, axis: np.ndarray, n: int, spacing: float) -> np.ndarray:
    offs = (np.arange(n) - (n - 1) / 2) * spacing
    return center[None, :] + offs[:, None] * axis[None, :]


def room_from_id(room_id: int, config: SimConfig | None = None) -> Room:
    """Deterministic room for an id: size 4-9 x 4-9 x 2.6-3.2 m, camera high on the y=0 wall looking
    into the room, RX array beside it and TX array on the opposite wall (0.8-2.0 m high, half-wavelength
    linear arrays).
    Rooms are immutable and cached."""
    cfg = config or SimConfig()
    return _room(int(room_id), cfg.n_tx, cfg.n_rx, cfg.band.wavelength)


@lru_cache(maxsize=256)
def _room(room_id: int, n_tx: int, n_rx: int, wavelength: float) -> Room:
    rng = np.random.default_rng([_ROOM_SALT, int(room_id)])
    size = np.array([rng.uniform(4.0, 9.0), rng.uniform(4.0, 9.0), rng.uniform(2.6, 3.2)])
    reflection = np.concatenate(
        [
            rng.uniform(0.25, 0.6, 4),
            [rng.uniform(0.3, 0.6)],
            [rng.uniform(0.2, 0.5)],
        ]
    )
    spacing = wavelength / 2
    w, d, h = size

    # Camera on the y=0 wall, looking into the room (it defines where people walk).
    cam_pos = np.array([w / 2 + rng.uniform(-0.4, 0.4) * w / 2, 0.15, rng.uniform(2.0, min(2.6, h - 0.2))])
    # It looks at the monitored area 2.5-3.5 m into the room, so people fill a fair part of the image.
    target = np.array([w / 2 + rng.uniform(-0.3, 0.3), min(rng.uniform(2.5, 3.5), 0.6 * d), rng.uniform(0.6, 1.0)])
    camera = Camera.look_at(cam_pos, target, rng.uniform(55.0, 70.0), S.IMAGE_W, S.IMAGE_H)

    def wall_point(wall: int) -> tuple[np.ndarray, np.ndarray]:
        """A point 0.1 m off wall `wall` (0: x=0, 1: x=W, 2: y=0, 3: y=D) and the wall's direction."""
        z = rng.uniform(0.8, 2.0)
        if wall in (0, 1):
            return np.array([0.1 if wall == 0 else w - 0.1, rng.uniform(0.2, 0.8) * d, z]), np.array([0, 1.0, 0])
        return np.array([rng.uniform(0.2, 0.8) * w, 0.1 if wall == 2 else d - 0.1, z]), np.array([1.0, 0, 0])

    # As in "DensePose From WiFi": the receiver array sits beside the camera and the transmitter faces it
    # from the opposite wall, so image coordinates relate to the same link geometry in every room. Room
    # size, reflections, clutter and exact placements still vary, and test rooms are never trained on.
    tx_c, tx_axis = wall_point(3)
    rx_c, rx_axis = wall_point(2)
    rx_c[0] = float(np.clip(cam_pos[0] + rng.uniform(-0.3, 0.3), 0.3, w - 0.3))
    tx = linear_array(tx_c, tx_axis, n_tx, spacing)
    rx = linear_array(rx_c, rx_axis, n_rx, spacing)

    k = int(rng.integers(4, 11))
    clutter_pos = np.column_stack(
        [
            rng.uniform(0.2, w - 0.2, k),
            rng.uniform(0.2, d - 0.2, k),
            rng.uniform(0.2, 1.6, k),
        ]
    )
    clutter_amp = np.sqrt(rng.uniform(0.1, 1.0, k)) * np.exp(1j * rng.uniform(0, 2 * np.pi, k))
    room = Room(room_id, size, reflection, tx, rx, clutter_pos, clutter_amp, camera)
    for arr in (size, reflection, tx, rx, clutter_pos, clutter_amp, camera.position, camera.rotation):
        arr.flags.writeable = False  # shared through the cache
    return room


def _walkable_points(room: Room) -> np.ndarray:
    w, d = room.size[:2]
    xs = np.arange(WALL_MARGIN_M, w - WALL_MARGIN_M + 1e-9, WALKABLE_STEP_M)
    ys = np.arange(WALL_MARGIN_M, d - WALL_MARGIN_M + 1e-9, WALKABLE_STEP_M)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    # A standing or lying person near p stays inside the image: probe feet, head and a 0.9 m ring.
    offsets = ((0, 0, 0.0), (0, 0, 1.95), (0.9, 0, 0.0), (-0.9, 0, 0.0), (0, 0.9, 0.0), (0, -0.9, 0.0))
    probes = [np.column_stack([pts[:, 0] + dx, pts[:, 1] + dy, np.full(len(pts), z)]) for dx, dy, z in offsets]
    ok = np.ones(len(pts), bool)
    for p in probes:
        xy, z = room.camera.project(p)
        ok &= room.camera.in_image(xy, z, margin=4.0)
    cam_dist = np.linalg.norm(pts - room.camera.position[:2], axis=1)
    near = (cam_dist > MIN_CAMERA_DIST_M) & (cam_dist < MAX_CAMERA_DIST_M)
    ok &= near
    if ok.sum() < 12:  # tiny view: fall back to the floor in front of the camera
        ok = near
    return pts[ok]
