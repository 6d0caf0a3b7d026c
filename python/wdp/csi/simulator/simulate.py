"""Running a scene: CSI at packet instants, training windows with labels, and a 100 Hz frame stream.

Window assembly: the receiver gets packets at jittered instants with losses. A window covers the grid
instants t0 + i / rate (i < window); frame i is the received packet whose timestamp is nearest to
grid instant i (so a lost packet is replaced by a neighbour, possibly used twice). No interpolation:
CSI of different packets carries different random CFO/STO phases, so averaging them is meaningless.
Labels describe the scene at the middle grid instant t0 + (window // 2) / rate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from wdp import schemas_sample as S
from wdp.csi.simulator.body import N_SCATTERERS, PELVIS, SCAT_SEG, PoseBatch, forward_kinematics
from wdp.csi.simulator.channel import los_shadowing, scatter_channel, static_channel
from wdp.csi.simulator.config import SimConfig
from wdp.csi.simulator.impairments import ImpairmentProcess
from wdp.csi.simulator.labels import PersonView, render_labels
from wdp.csi.simulator.props import Prop
from wdp.csi.simulator.scene import Scene

_IMP_SALT = 0x494D5052  # "IMPR"
_WINDOW_SALT = 0x57494E44  # "WIND"
_STREAM_SALT = 0x53545245  # "STRE"
_PICK_SALT = 0x5049434B  # "PICK"
SEARCH_MARGIN = 12  # packets searched on each side of a window for the nearest received one


@dataclass(frozen=True, eq=False)
class PersonTruth:
    """Ground truth of one person at one instant (streaming interface)."""

    person_id: int
    activity: str
    falling: bool
    position: np.ndarray  # (2,) pelvis on the floor plane (m)
    joints3d: np.ndarray  # (17, 3) COCO joints, world metres
    keypoints: np.ndarray  # (17, 3) x, y image pixels and v (0 / 2)


@dataclass(frozen=True, eq=False)
class SimFrame:
    timestamp: float  # seconds since scene start (jittered receive instant)
    csi: np.ndarray  # (n_sub, n_rx, n_tx) complex64, as reported (impairments per config)
    persons: tuple[PersonTruth, ...]


class SceneSimulator:
    """Physics and hardware model of one scene. Deterministic: the same scene and config always give
    the same windows and the same stream."""

    def __init__(self, scene: Scene, config: SimConfig | None = None, props: Sequence[Prop] = ()):
        self.scene = scene
        self.props = tuple(props)  # moving non-human scatterers (wdp.csi.simulator.props); none by default
        self.config = cfg = config or SimConfig()
        room = scene.room
        if (len(room.rx), len(room.tx)) != (cfg.n_rx, cfg.n_tx):
            raise ValueError("room antenna counts differ from the config")
        self.static = static_channel(room, cfg.band)
        rng = np.random.default_rng([_IMP_SALT, scene.room_id, scene.seed])
        self.impairments = ImpairmentProcess.create(
            cfg.impairments, cfg.band, cfg.n_rx, scene.duration, self.static.rms, rng
        )
        shapes = [p.shape for p in scene.people]
        self._amps = np.concatenate([s.scatter_amp for s in shapes]) if shapes else np.zeros(0, np.complex128)
        radii = []
        for s in shapes:
            r = s.seg_radius.copy()
            r[0] = s.torso_lateral
            radii.append(r[SCAT_SEG])
        self._radii = np.concatenate(radii) if radii else np.zeros(0)
        self._groups = [slice(i * N_SCATTERERS, (i + 1) * N_SCATTERERS) for i in range(len(shapes))]

    # ---- physics ------------------------------------------------------------------------------------
    def poses(self, times: np.ndarray) -> list[PoseBatch]:
        t = np.atleast_1d(np.asarray(times, np.float64))
        return [forward_kinematics(p.shape, p.timeline.params(t)) for p in self.scene.people]

    def physical_csi(self, times: np.ndarray, poses: list[PoseBatch] | None = None) -> np.ndarray:
        """Channel (N, K, R, X) complex128 at the given instants, before any hardware effect."""
        t = np.atleast_1d(np.asarray(times, np.float64))
        cfg = self.config
        h = np.broadcast_to(self.static.total, (len(t), *self.static.total.shape)).astype(np.complex128)
        for prop in self.props:
            h += scatter_channel(prop.points(t), prop.amplitudes(), self.scene.room, cfg.band)
        if not self.scene.people or not cfg.body_points:
            return h
        poses = self.poses(t) if poses is None else poses
        pts = np.concatenate([p.scatter_points() for p in poses], axis=1)  # (N, S, 3)
        h += scatter_channel(pts, self._amps, self.scene.room, cfg.band)
        if cfg.los_shadowing:
            shadow = los_shadowing(pts, self._radii, self._groups, self.scene.room, cfg.band)
            h += (shadow[:, None, :, :] - 1.0) * self.static.los[None]
        return h

    def received_csi(self, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t = np.atleast_1d(np.asarray(times, np.float64))
        return self.impairments.apply(self.physical_csi(t), t, rng)

    # ---- labels -------------------------------------------------------------------------------------
    def person_views(self, t: float, poses: list[PoseBatch] | None = None, index: int = 0) -> list[PersonView]:
        poses = self.poses(np.array([t])) if poses is None else poses
        views = []
        for p, pb in zip(self.scene.people, poses, strict=True):
            act = int(p.timeline.activity(np.array([t]))[0])
            views.append(PersonView(p.shape, pb.joints[index], pb.forward[index], pb.left[index], act))
        return views

    def labels(self, t: float) -> tuple[dict[str, np.ndarray], list[int]]:
        """Camera labels at instant t (see wdp.csi.simulator.labels) and the listed people."""
        return render_labels(self.scene.room.camera, self.person_views(t))

    def falling(self, t_lo: float, t_hi: float) -> bool:
        return any(bool(p.timeline.falling(t_lo, t_hi)[0]) for p in self.scene.people)

    # ---- training windows ---------------------------------------------------------------------------
    def window_starts(self, n: int) -> np.ndarray:
        """n distinct window start indices (100 Hz grid) spread over the scene (jittered strata)."""
        cfg = self.config
        first = 2
        last = int(np.floor(self.scene.duration * cfg.rate_hz)) - cfg.window - 2
        if last < first:
            raise ValueError("scene too short for a window")
        rng = np.random.default_rng([_PICK_SALT, self.scene.room_id, self.scene.seed])
        span = last - first + 1
        n = min(n, span)
        edges = first + (np.arange(n) + rng.uniform(0, 1, n)) * span / n
        return np.unique(np.minimum(edges.astype(np.int64), last))

    def windows(self, starts: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Samples (stacked, leading axis = window) for windows starting at grid indices `starts`."""
        cfg = self.config
        rate, w = cfg.rate_hz, cfg.window
        starts = np.asarray(starts, np.int64)
        if np.any(starts < 0):
            raise ValueError("window starts must be >= 0")
        picks, rngs, times = [], [], []
        for k0 in starts:
            rng = np.random.default_rng([_WINDOW_SALT, self.scene.room_id, self.scene.seed, int(k0)])
            t_rec, _ = self.impairments.packets(int(k0) - SEARCH_MARGIN, int(k0) + w + SEARCH_MARGIN, rate, rng)
            grid = (k0 + np.arange(w)) / rate
            if len(t_rec) == 0:  # everything around was lost: use the nominal instants
                t_rec = grid
            nearest = np.argmin(np.abs(t_rec[None, :] - grid[:, None]), axis=1)
            uniq, inv = np.unique(nearest, return_inverse=True)
            picks.append(inv)
            rngs.append(rng)
            times.append(t_rec[uniq])
        counts = [len(t) for t in times]
        all_t = np.concatenate(times)
        t_label = (starts + w // 2) / rate
        poses = self.poses(np.concatenate([all_t, t_label]))
        n_pk = len(all_t)
        phys = self.physical_csi(all_t, [_slice_pose(p, slice(0, n_pk)) for p in poses])
        label_poses = [_slice_pose(p, slice(n_pk, None)) for p in poses]

        n = len(starts)
        out = {k: np.zeros((n, *shape), dtype) for k, (dtype, shape) in S.sample_fields(cfg.csi_shape).items()}
        meta = {
            "room_id": np.full(n, self.scene.room_id, np.int64),
            "seed": np.full(n, self.scene.seed, np.int64),
            "t": t_label.astype(np.float64),
        }
        offset = 0
        cam = self.scene.room.camera
        for i, k0 in enumerate(starts):
            sl = slice(offset, offset + counts[i])
            offset += counts[i]
            rep = self.impairments.apply(phys[sl], times[i], rngs[i])[picks[i]]  # (W, K, R, X)
            out["amplitude"][i] = np.abs(rep)
            out["phase"][i] = np.angle(rep)
            lab, _ = render_labels(cam, self.person_views(float(t_label[i]), label_poses, i))
            for key, val in lab.items():
                out[key][i] = val
            out["fall"][i] = self.falling(k0 / rate, (k0 + w - 1) / rate)
        return {**out, **meta}

    def sample(self, n_windows: int | None = None) -> dict[str, np.ndarray]:
        """config.windows_per_scene (or n_windows) windows spread over the scene."""
        return self.windows(self.window_starts(n_windows or self.config.windows_per_scene))

    # ---- streaming ----------------------------------------------------------------------------------
    def stream(
        self,
        t_start: float = 0.0,
        t_end: float | None = None,
        *,
        chunk_s: float = 1.0,
        seed: int = 0,
        truth: bool = True,
    ) -> Iterator[SimFrame]:
        """Received packets in time order (nominally 100 Hz; jittered timestamps, lost packets absent)
        with ground truth. Computed chunk by chunk, vectorised."""
        cfg = self.config
        rate = cfg.rate_hz
        t_end = self.scene.duration if t_end is None else t_end
        rng = np.random.default_rng([_STREAM_SALT, self.scene.room_id, self.scene.seed, int(seed)])
        n_lo = int(np.ceil(t_start * rate))
        n_end = int(np.ceil(t_end * rate))
        step = max(1, int(round(chunk_s * rate)))
        cam = self.scene.room.camera
        for a in range(n_lo, n_end, step):
            b = min(a + step, n_end)
            t, _ = self.impairments.packets(a, b, rate, rng)
            t = t[(t >= t_start) & (t < t_end)]
            if len(t) == 0:
                continue
            poses = self.poses(t)
            rep = self.impairments.apply(self.physical_csi(t, poses), t, rng)
            per_person = []
            if truth:
                for p, pb in zip(self.scene.people, poses, strict=True):
                    xy, z = cam.project(pb.joints[:, : S.N_KEYPOINTS])
                    vis = cam.in_image(xy, z)
                    kp = np.zeros((len(t), S.N_KEYPOINTS, 3), np.float32)
                    kp[..., :2] = np.where(vis[..., None], xy, 0.0)
                    kp[..., 2] = np.where(vis, S.VIS_VISIBLE, S.VIS_ABSENT)
                    act = p.timeline.activity(t)
                    fall = p.timeline.falling(t, t)
                    per_person.append((p.person_id, pb, kp, act, fall))
            for i in range(len(t)):
                persons = tuple(
                    PersonTruth(
                        pid,
                        S.ACTIVITIES[int(act[i])],
                        bool(fall[i]),
                        pb.joints[i, PELVIS, :2].copy(),
                        pb.joints[i, : S.N_KEYPOINTS].astype(np.float32),
                        kp[i],
                    )
                    for pid, pb, kp, act, fall in per_person
                )
                yield SimFrame(float(t[i]), rep[i], persons)


def _slice_pose(p: PoseBatch, sl: slice) -> PoseBatch:
    return PoseBatch(p.joints[sl], p.forward[sl], p.left[sl])


def stream_frames(scene: Scene, config: SimConfig | None = None, **kwargs: object) -> Iterator[SimFrame]:
    """Shorthand for ``SceneSimulator(scene, config).stream(**kwargs)``."""
    return SceneSimulator(scene, config).stream(**kwargs)  # type: ignore[arg-type]
