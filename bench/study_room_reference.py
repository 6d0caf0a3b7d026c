"""Does an installer's knowledge help place people in rooms never trained in? A small regression study.

Question (issue 16 item 3): with an empty-room reference recording of the room and the router positions as
inputs, does a model trained across many simulated rooms place people better in the unseen rooms 80-99?

Protocol: one person per scene, random scenes of the training rooms 0-63 (train) and the test rooms 80-99
(test, test-split seeds), ``--scenes-per-room`` scenes of 12 s each, 16 windows per scene, the hardware preset
given (default intel5300). Per room, the *empty-room reference* is the mean of the same features over the
windows of one 12 s scene with nobody in it (a different seed: other AGC steps, noise, chain phases) - what an
installer records once. Target: the person's floor position (pelvis x, y) relative to the receiver.

Features per window (the nets' input normalisation, averaged over the window's frames): amplitude divided by
its mean per frame and rx chain; for tx antennas 1.. the phase difference to tx 0 as cos/sin (CFO, STO and
chain phases cancel); with a single tx antenna (ESP32, nexmon) the sanitised phase as cos/sin. Variants:
  raw         the features alone (what the nets see today)
  reference   amplitude / reference amplitude - 1 and the phase difference rotated by the reference's
  ref+geom    reference plus the router geometry (tx centre - rx centre, x and y)
Regressors (scikit-learn): ridge regression and gradient-boosted trees (HistGradientBoostingRegressor, 100
iterations), one per coordinate. Baselines: the constant guess (the mean training position relative to the
receiver) and each room's own mean position in hindsight (bench/eval_site_engine.py's constant guess).
Figures: median floor error (m) on the unseen rooms, and on held-out scenes of the training rooms.

Usage: PYTHONPATH=python python bench/study_room_reference.py [--scenes-per-room 2] [--hardware intel5300]
       PYTHONPATH=python python bench/study_room_reference.py --ceiling 101 [--ceiling-scenes 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler

from wdp.csi.sanitize_numpy import sanitize_phase
from wdp.csi.simulator import SceneSimulator, SimConfig, random_scene, scene_seed
from wdp.csi.simulator.body import PELVIS

EMPTY_SEED = 990_001  # the reference scene's seed (no person; never a scene seed of the splits' people scenes)


def features(batch: dict[str, np.ndarray], cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N, W, K, R, X) windows -> amplitude features (N, K, R, X) and unit tx-difference phasors (N, K, R, X-1);
    with one tx antenna the unit phasors of the sanitised phase (N, K, R, 1)."""
    amp = batch["amplitude"].astype(np.float64)
    amp = amp / (amp.mean(axis=(2, 4), keepdims=True) + 1e-9)
    ph = sanitize_phase(batch["phase"], axis=-3, subcarrier_index=cfg.band.subcarrier_index, tx_difference=True)
    # one tx antenna (ESP32, nexmon): the sanitised phase itself (linear fit removed), as the 1x1 nets see it
    ph = ph if ph.shape[-1] == 1 else ph[..., 1:]
    z = np.exp(1j * ph.astype(np.float64)).mean(axis=1)
    return amp.mean(axis=1), z / np.maximum(np.abs(z), 1e-9)


def room_data(room: int, split: str, scenes: int, cfg: SimConfig, base: int) -> dict[str, np.ndarray]:
    amps, zs, pos = [], [], []
    for i in range(scenes):
        scene = random_scene(room, scene_seed(split, base + room, i), cfg, n_people=1)
        sim = SceneSimulator(scene, cfg)
        batch = sim.sample()
        a, z = features(batch, cfg)
        pelvis = sim.poses(batch["t"])[0].joints[:, PELVIS, :2]
        amps.append(a)
        zs.append(z)
        pos.append(pelvis - scene.room.rx.mean(axis=0)[:2])
    empty = SceneSimulator(random_scene(room, EMPTY_SEED + room, cfg, n_people=0), cfg)
    ra, rz = features(empty.sample(), cfg)
    r = random_scene(room, EMPTY_SEED, cfg, n_people=0).room
    return {
        "amp": np.concatenate(amps),
        "z": np.concatenate(zs),
        "pos": np.concatenate(pos),
        "ref_amp": ra.mean(axis=0),
        "ref_z": rz.mean(axis=0),
        "geom": (r.tx.mean(axis=0) - r.rx.mean(axis=0))[:2],
        "scene": np.repeat(np.arange(scenes), [len(p) for p in pos]),
    }


def design(d: dict[str, np.ndarray], variant: str) -> np.ndarray:
    n = len(d["amp"])
    if variant == "raw":
        a, z = d["amp"], d["z"]
    else:
        a = d["amp"] / (d["ref_amp"][None] + 1e-9) - 1.0
        rz = d["ref_z"][None]
        z = d["z"] * np.conj(rz / np.maximum(np.abs(rz), 1e-9))
    cols = [a.reshape(n, -1), z.real.reshape(n, -1), z.imag.reshape(n, -1)]
    if variant == "ref+geom":
        cols.append(np.broadcast_to(d["geom"], (n, 2)))
    return np.concatenate(cols, axis=1)


def ceiling(args: argparse.Namespace) -> None:
    """--ceiling ROOM: the same regression inside one room (training-split seeds to fit, test-split seeds to
    score) with the receiver's impairments on (as shipped), all off (no CFO/STO/SFO, AGC, noise, 8-bit
    quantisation, loss, jitter) and with twice the data: what limits placing a person there, the signal or the
    amount of data?"""
    t0 = time.perf_counter()
    print(f"ceiling study in room {args.ceiling}, hardware {args.hardware}, one person, raw features")
    print("| simulator | fitting windows | ridge (m) | boosted trees (m) | constant guess (m) |")
    print("|---|---|---|---|---|")
    for label, imp, scenes in (
        ("impairments on (as trained)", {}, args.ceiling_scenes),
        ("quantisation off, other impairments on", {"quantize": False}, args.ceiling_scenes),
        ("impairments and quantisation off", {"enabled": False}, args.ceiling_scenes),
        ("impairments on, 2x data", {}, 2 * args.ceiling_scenes),
    ):
        cfg = SimConfig.from_dict({"hardware": args.hardware, "impairments": imp})
        fit = room_data(args.ceiling, "train", scenes, cfg, 0)
        test = room_data(args.ceiling, "test", 16, cfg, 0)
        x_fit, x_test = design(fit, "raw"), design(test, "raw")
        scaler = StandardScaler().fit(x_fit)
        x_fit, x_test = scaler.transform(x_fit), scaler.transform(x_test)
        errs = []
        for make in (
            lambda: RidgeCV(alphas=np.logspace(-1, 4, 12)),
            lambda: HistGradientBoostingRegressor(max_iter=100, random_state=0),
        ):
            pred = np.stack([make().fit(x_fit, fit["pos"][:, c]).predict(x_test) for c in (0, 1)], axis=1)
            errs.append(float(np.median(np.hypot(*(pred - test["pos"]).T))))
        const = float(np.median(np.hypot(*(test["pos"] - fit["pos"].mean(axis=0)).T)))
        print(f"| {label} | {len(fit['pos'])} | {errs[0]:.2f} | {errs[1]:.2f} | {const:.2f} |")
    print(f"({time.perf_counter() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes-per-room", type=int, default=2)
    ap.add_argument("--hardware", default="intel5300")
    ap.add_argument("--train-rooms", type=int, default=64, help="the first N of the training rooms 0-63")
    ap.add_argument("--ceiling", type=int, help="run the ceiling study in this room instead (e.g. 101)")
    ap.add_argument("--ceiling-scenes", type=int, default=32, help="fitting scenes of the ceiling study")
    args = ap.parse_args()
    if args.ceiling is not None:
        ceiling(args)
        return
    cfg = SimConfig.from_dict({"hardware": args.hardware})
    t0 = time.perf_counter()
    train = [room_data(r, "train", args.scenes_per_room, cfg, 0) for r in range(args.train_rooms)]
    test = [room_data(r, "test", args.scenes_per_room, cfg, 0) for r in range(80, 100)]
    sim_s = time.perf_counter() - t0
    # held-out scenes of the training rooms: the last scene of each training room
    fit = [
        {
            k: (v[d["scene"] < args.scenes_per_room - 1] if np.ndim(v) and len(v) == len(d["scene"]) else v)
            for k, v in d.items()
        }
        for d in train
    ]
    seen = [
        {
            k: (v[d["scene"] == args.scenes_per_room - 1] if np.ndim(v) and len(v) == len(d["scene"]) else v)
            for k, v in d.items()
        }
        for d in train
    ]
    y_fit = np.concatenate([d["pos"] for d in fit])
    const = y_fit.mean(axis=0)
    n_fit = len(y_fit)
    n_test = sum(len(d["pos"]) for d in test)
    print(
        f"hardware {args.hardware}; {args.train_rooms} training rooms x {args.scenes_per_room - 1} scenes "
        f"({n_fit} windows) to fit, 1 held-out scene per training room, unseen rooms 80-99 x "
        f"{args.scenes_per_room} scenes ({n_test} windows); one person; simulated in {sim_s:.0f} s"
    )
    print("| features | regressor | unseen rooms 80-99: median floor error (m) | held-out scenes, training rooms (m) |")
    print("|---|---|---|---|")
    errs = [np.median(np.hypot(*(np.concatenate([d["pos"] for d in s]) - const).T)) for s in (test, seen)]
    print(f"| constant guess (mean training position) | - | {errs[0]:.2f} | {errs[1]:.2f} |")
    # the best constant in hindsight per room (what bench/eval_site_engine.py's constant guess is)
    errs = [
        np.median(np.concatenate([np.hypot(*(d["pos"] - d["pos"].mean(axis=0)).T) for d in s])) for s in (test, seen)
    ]
    print(f"| constant guess (each room's own mean, in hindsight) | - | {errs[0]:.2f} | {errs[1]:.2f} |")
    for variant in ("raw", "reference", "ref+geom"):
        x_fit = np.concatenate([design(d, variant) for d in fit])
        scaler = StandardScaler().fit(x_fit)
        x_fit = scaler.transform(x_fit)
        xs = [scaler.transform(np.concatenate([design(d, variant) for d in s])) for s in (test, seen)]
        ys = [np.concatenate([d["pos"] for d in s]) for s in (test, seen)]
        for reg_name, make in (
            ("ridge", lambda: RidgeCV(alphas=np.logspace(-1, 4, 12))),
            ("boosted trees", lambda: HistGradientBoostingRegressor(max_iter=100, random_state=0)),
        ):
            pred = [np.zeros_like(y) for y in ys]
            for c in (0, 1):
                m = make().fit(x_fit, y_fit[:, c])
                for p, x in zip(pred, xs, strict=True):
                    p[:, c] = m.predict(x)
            errs = [float(np.median(np.hypot(*(p - y).T))) for p, y in zip(pred, ys, strict=True)]
            print(f"| {variant} | {reg_name} | {errs[0]:.2f} | {errs[1]:.2f} |")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
