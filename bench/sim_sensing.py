"""Labelled simulator CSI streams for training-free sensing (motion, presence, breathing) across hardware shapes.

    from sim_sensing import make_sensing_scene           # bench/ on sys.path
    sc = make_sensing_scene("still_breathing", "esp32", room=83, seed=1, duration_s=60, breath_bpm=14)
    sc.times, sc.csi            # (n,), (n, S, R, T) complex64 as the receiver reports it
    sc.truth                    # one SecondTruth per whole second t, describing packets in [t - 1, t)

Scenes (`kind`): "empty"; "still_breathing" (one person lying, or sitting with posture="sit", the chest
moving 5 mm at breath_bpm); "walking" (one person walking between random floor points); "empty_then_walk"
(empty until enter_s, then a person appears at the floor's edge and walks); "fan" (empty room, a 3-blade
desk fan spinning at 3 Hz); "curtain" (empty room, a 1.4 x 2 m sheet swaying 5 cm at 0.3 Hz); "agc_steps"
(empty room, receiver gain steps of ~3 dB every 0.5 s on average).

Hardware presets (`hardware`): the simulator evaluates its multipath model (path lengths -> phases) at each
preset's own subcarrier frequencies, so bandwidth and subcarrier count are physical, not interpolated.
* "intel5300": 30 subcarrier groups of 20 MHz at 2.437 GHz (Ng=2 grouping), 3 rx x 1 tx, 100 Hz
  (rate_hz may be set, e.g. 20), 8-bit I/Q, AGC steps on (0.3 Hz).
* "esp32": 64 subcarriers in FFT-index order -32..31 of HT20 at 2.437 GHz, 52 live (|k| 1..26; the others
  reported as 0), 1 x 1, 100 Hz, int8 I/Q, gain locked (no AGC steps, as ESPectre locks it).
* "nexmon": 256 subcarriers -128..127 of 80 MHz VHT at 5.21 GHz (channel 42), live |k| 2..122 (242 tones), 1 x 1,
  50 Hz, int16 I/Q (rounded, rms ~ 300), AGC steps on.
Impairments otherwise as the simulator's defaults (CFO/STO/SFO phase, 25 dB SNR, 2 % loss, jitter).

Rooms: the simulator's test split (80-99), on which no sensing threshold is tuned; DEFAULT_ROOMS lists the
ones this bench uses by default. Truth per second: presence (a person in the room), motion (a person's
fastest joint moves faster than MOTION_SPEED_MPS for at least half the second; breathing and postural sway
stay below it), still (present and not moving) and breathing_bpm (the scripted rate while still, else None).
Props and AGC are not motion. Determinism: the same arguments give identical arrays.

Run as a script to print the shapes, rates and truth summary of each scene.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from wdp.csi.simulator import (
    Band,
    Impairments,
    Lie,
    PersonSpec,
    RotatingBlades,
    SceneSimulator,
    SimConfig,
    Sit,
    Stand,
    SwayingSheet,
    Walk,
    room_from_id,
    scripted_scene,
)
from wdp.csi.simulator.body import N_JOINTS, forward_kinematics

KINDS = ("empty", "still_breathing", "walking", "empty_then_walk", "fan", "curtain", "agc_steps")
DEFAULT_ROOMS = (83, 88, 91, 96)  # simulator test split (80-99): never used to tune sensing thresholds
MOTION_SPEED_MPS = 0.15
STILL_SETTLE_S = 5.0  # still scenes start this long after the scene's start (lie-down / sit blend done)
_SALT = 0x53454E53  # "SENS"


@dataclass(frozen=True)
class Hardware:
    name: str
    band: Band
    n_rx: int
    n_tx: int
    rate_hz: float
    live: tuple[int, ...]  # indices (into the reported subcarriers) that carry signal; the rest read 0
    impairments: Impairments
    int16_rms: float | None = None  # int16 I/Q: scale to this rms and round (instead of 8-bit quantisation)


def hardware_preset(name: str, rate_hz: float | None = None) -> Hardware:
    if name == "intel5300":
        band = Band()  # 30 groups, 20 MHz, 2.437 GHz
        hw = Hardware(name, band, 3, 1, 100.0, tuple(range(30)), Impairments())
    elif name == "esp32":
        idx = tuple(range(-32, 32))
        band = Band(center_hz=2.437e9, subcarrier_index=idx, fft_size=64)
        live = tuple(i for i, k in enumerate(idx) if 1 <= abs(k) <= 26)
        hw = Hardware(name, band, 1, 1, 100.0, live, Impairments(agc_step_rate_hz=0.0))
    elif name == "nexmon":
        idx = tuple(range(-128, 128))
        band = Band(center_hz=5.21e9, subcarrier_index=idx, fft_size=256)
        live = tuple(i for i, k in enumerate(idx) if 2 <= abs(k) <= 122)
        hw = Hardware(name, band, 1, 1, 50.0, live, Impairments(quantize=False), int16_rms=300.0)
    else:
        raise ValueError(f"unknown hardware {name!r}; one of intel5300, esp32, nexmon")
    return dataclasses.replace(hw, rate_hz=float(rate_hz)) if rate_hz else hw


@dataclass(frozen=True)
class SecondTruth:
    t: float  # the whole second that ends the interval [t - 1, t)
    motion: bool
    presence: bool
    still: bool
    breathing_bpm: float | None


@dataclass(frozen=True, eq=False)
class SensingScene:
    kind: str
    hardware: str
    room: int
    seed: int
    rate_hz: float
    times: np.ndarray  # (n,) float64 seconds
    csi: np.ndarray  # (n, S, R, T) complex64
    truth: list[SecondTruth]
    notes: str = ""

    def truth_array(self, field: str) -> np.ndarray:
        return np.array([getattr(s, field) for s in self.truth])


def _floor_points(room_id: int, cfg: SimConfig, rng: np.random.Generator, n: int) -> list[tuple[float, float]]:
    walk = room_from_id(room_id, cfg).walkable
    return [tuple(map(float, walk[rng.integers(len(walk))])) for _ in range(n)]


def make_sensing_scene(
    kind: str,
    hardware: str = "intel5300",
    room: int = DEFAULT_ROOMS[0],
    seed: int = 0,
    duration_s: float = 60.0,
    *,
    breath_bpm: float = 15.0,
    posture: str = "lie",
    enter_s: float | None = None,
    rate_hz: float | None = None,
) -> SensingScene:
    """A labelled CSI stream (see the module docstring). Returns a SensingScene (times, csi, truth)."""
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; one of {KINDS}")
    hw = hardware_preset(hardware, rate_hz)
    imp = hw.impairments
    if kind == "agc_steps":
        imp = dataclasses.replace(imp, agc_step_rate_hz=2.0, agc_step_db=3.0, agc_range_db=9.0)
    cfg = SimConfig(band=hw.band, n_rx=hw.n_rx, n_tx=hw.n_tx, rate_hz=hw.rate_hz, impairments=imp)
    rng = np.random.default_rng([_SALT, int(room), int(seed), KINDS.index(kind)])
    rm = room_from_id(room, cfg)
    w, d, h = rm.size
    people: list[PersonSpec] = []
    props: tuple = ()
    present_from = 0.0
    bpm: float | None = None
    notes = ""
    if kind == "still_breathing":
        (start,) = _floor_points(room, cfg, rng, 1)
        bpm = float(breath_bpm)
        if posture == "lie":
            act = Lie(breath_bpm=bpm, breath_amp_m=0.005)
        elif posture == "sit":
            act = Sit(breath_bpm=bpm, breath_amp_m=0.005)
        elif posture == "stand":
            act = Stand(breath_bpm=bpm, breath_amp_m=0.005)
        else:
            raise ValueError("posture must be lie, sit or stand")
        # A person already settled: the scene starts well after lying down (see _still_offset).
        people.append(PersonSpec(start, (act,)))
        notes = f"{posture}, {bpm:g} bpm, 5 mm"
    elif kind in ("walking", "empty_then_walk"):
        pts = _floor_points(room, cfg, rng, 1 + int(duration_s))
        speed = float(rng.uniform(0.8, 1.3))
        acts: list = []
        if kind == "empty_then_walk":
            present_from = float(enter_s if enter_s is not None else min(20.0, duration_s / 2))
            # enter at the floor's edge nearest the first walk target
            x0, y0 = pts[0]
            start = (float(np.clip(x0, 0.45, w - 0.45)), 0.45 if y0 < d / 2 else float(d - 0.45))
            acts.append(Stand(until=present_from))
        else:
            start = pts[0]
        acts += [Walk(to=p, speed=speed) for p in pts[1:]]
        people.append(PersonSpec(start, tuple(acts)))
        notes = f"speed {speed:.2f} m/s" + (f", enters at {present_from:g} s" if present_from else "")
    elif kind == "fan":
        c = (float(rng.uniform(0.3, 0.7) * w), float(rng.uniform(0.3, 0.7) * d), 1.1)
        props = (RotatingBlades(center=c, hz=3.0, facing=float(rng.uniform(0, np.pi))),)
        notes = f"desk fan at {tuple(round(v, 2) for v in c)}, 3 Hz"
    elif kind == "curtain":
        c = (float(rng.uniform(0.3, 0.7) * w), float(d - 0.15), min(1.3, h / 2))
        props = (SwayingSheet(center=c, along=0.0, amp_m=0.05, hz=0.3),)
        notes = f"curtain on the y={d:.1f} wall, 5 cm at 0.3 Hz"
    elif kind == "agc_steps":
        notes = "AGC steps: 2 / s, 3 dB std, within +-9 dB"

    t_offset = STILL_SETTLE_S if kind == "still_breathing" else 0.0
    scene = scripted_scene(room, people, duration=duration_s + t_offset + 1.0, seed=seed, config=cfg)
    sim = SceneSimulator(scene, cfg, props=props)
    times, csi, moving, present = _stream(sim, hw, duration_s, t_offset, present_from, (room, seed, kind))
    truth = _truth(times, moving, present, duration_s, bpm)
    return SensingScene(kind, hardware, int(room), int(seed), hw.rate_hz, times, csi, truth, notes)


def _stream(
    sim: SceneSimulator,
    hw: Hardware,
    duration_s: float,
    t_offset: float,
    present_from: float,
    rng_seed: tuple[int, int, str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Received packets over [0, duration) of output time (scene time + t_offset), in 1 s chunks, with
    per-packet truth (moving, present). Before present_from people are absent: the channel is the empty
    room's (with its props)."""
    rate = hw.rate_hz
    rng = np.random.default_rng([_SALT, rng_seed[0], rng_seed[1], KINDS.index(rng_seed[2]), 1])
    ts, hs, mv, pr = [], [], [], []
    empty_sim = SceneSimulator(dataclasses.replace(sim.scene, people=()), sim.config, props=sim.props)
    n_end = int(math.ceil(duration_s * rate))
    step = int(round(rate))
    dead = np.ones(len(hw.band.subcarrier_index), bool)
    dead[list(hw.live)] = False
    for a in range(0, n_end, step):
        b = min(a + step, n_end)
        t, _ = sim.impairments.packets(a, b, rate, rng)
        t = t[(t >= 0) & (t < duration_s)]
        if len(t) == 0:
            continue
        ts_scene = t + t_offset
        phys = sim.physical_csi(ts_scene)
        absent = t < present_from
        if absent.any() and sim.scene.people:
            phys[absent] = empty_sim.physical_csi(ts_scene[absent])
        rep = sim.impairments.apply(phys, ts_scene, rng)
        if hw.int16_rms is not None:
            rep = rep * (hw.int16_rms / sim.impairments.imp.target_rms)
            rep = np.clip(np.round(rep.real), -32768, 32767) + 1j * np.clip(np.round(rep.imag), -32768, 32767)
        rep = rep.astype(np.complex64)
        rep[:, dead] = 0
        ts.append(t)
        hs.append(rep)
        present = ~absent & bool(sim.scene.people)
        mv.append(_moving(sim, ts_scene) & present)
        pr.append(present)
    return np.concatenate(ts), np.concatenate(hs), np.concatenate(mv), np.concatenate(pr)


def _moving(sim: SceneSimulator, t: np.ndarray) -> np.ndarray:
    """Per instant: does any person's fastest joint move faster than MOTION_SPEED_MPS (central difference)?"""
    if not sim.scene.people:
        return np.zeros(len(t), bool)
    dt = 0.02
    out = np.zeros(len(t), bool)
    for p in sim.scene.people:
        ja = forward_kinematics(p.shape, p.timeline.params(t - dt)).joints[:, :N_JOINTS]
        jb = forward_kinematics(p.shape, p.timeline.params(t + dt)).joints[:, :N_JOINTS]
        speed = np.linalg.norm(jb - ja, axis=-1).max(axis=1) / (2 * dt)
        out |= speed > MOTION_SPEED_MPS
    return out


def _truth(
    times: np.ndarray, moving: np.ndarray, present_pk: np.ndarray, duration_s: float, bpm: float | None
) -> list[SecondTruth]:
    """Per whole second: the majority over its packets (presence, motion)."""
    out = []
    for s in range(1, int(math.floor(duration_s)) + 1):
        m = (times >= s - 1) & (times < s)
        present = bool(m.any() and present_pk[m].mean() >= 0.5)
        motion = bool(m.any() and moving[m].mean() >= 0.5)
        still = bool(present and not motion)
        out.append(SecondTruth(float(s), motion, bool(present), still, bpm if still and bpm is not None else None))
    return out


def _main() -> None:  # pragma: no cover - manual run
    import argparse
    import time

    ap = argparse.ArgumentParser(description="simulated sensing scenes: shapes, rates, truth")
    ap.add_argument("--hardware", nargs="+", default=["intel5300", "esp32", "nexmon"])
    ap.add_argument("--kinds", nargs="+", default=list(KINDS))
    ap.add_argument("--room", type=int, default=DEFAULT_ROOMS[0])
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args()
    for hwn in args.hardware:
        for kind in args.kinds:
            t0 = time.perf_counter()
            sc = make_sensing_scene(kind, hwn, args.room, 0, args.duration)
            el = time.perf_counter() - t0
            tr = {f: int(sc.truth_array(f).sum()) for f in ("motion", "presence", "still")}
            rate = (len(sc.times) - 1) / (sc.times[-1] - sc.times[0])
            print(f"{hwn:10} {kind:16} {sc.csi.shape!s:22} {rate:6.1f} Hz {el:5.2f} s  {tr}  {sc.notes}")


if __name__ == "__main__":  # pragma: no cover
    _main()
