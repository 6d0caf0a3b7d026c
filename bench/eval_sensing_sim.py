"""Training-free sensing on the simulator: hardware shapes, rooms no threshold was tuned on, and non-human
disturbances (a fan, a curtain, AGC gain steps), with ESPectre's MVS detector in the same run.

    python bench/eval_sensing_sim.py [--rooms 83 88 91 96] [--seeds 2] [--hardware esp32 intel5300 nexmon]

Protocol: the simulator's test rooms (80-99; bench/sim_sensing.py), shipped thresholds (SensingConfig
defaults, fitted on the real sets' training parts; nothing is fitted here). Per room, hardware and seed: the
link is calibrated on a 30 s empty-room scene (an installer's empty recording, ``empty=True``), then scored
per second on: empty, still_breathing (a person lying still, 5 mm chest motion at 12-20 BPM), walking,
empty_then_walk (enters at 30 s), fan, curtain, agc_steps. Motion is scored per second against the scene
truth (seconds within 2 s after a truth change are not scored: the 2 s motion window straddles them);
disturbance scenes count false motion/presence onsets. CPU: LinkSensor.push_many in batches of 10 packets
(what a 100 Hz link delivers per 0.1 s engine read), process time per packet.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_sensing import DEFAULT_ROOMS, make_sensing_scene  # noqa: E402

from wdp.sensing import LinkSensor, SensingConfig  # noqa: E402

DISTURBANCES = ("empty", "fan", "curtain", "agc_steps")


def _run(scene, cal, cfg: SensingConfig, batch: int = 10):
    s = LinkSensor("sim", cfg, source="simulator")
    s.calibrate(cal.times, cal.csi, mode="baseline", empty=True)
    states = []
    cpu = 0.0
    for i in range(0, len(scene.times), batch):
        c0 = time.process_time()
        states += s.push_many(scene.times[i : i + batch], scene.csi[i : i + batch])
        cpu += time.process_time() - c0
    return states, cpu


def _mvs(scene, cal) -> dict[float, bool]:
    from mvs_baseline import MVSDetector

    d = MVSDetector()
    d.calibrate(cal.times, cal.csi)
    _, moving = d.run(scene.times, scene.csi)
    out = {}
    for tk in np.arange(1.0, scene.times[-1] + 1e-9, 1.0):
        m = (scene.times >= tk - 1.0) & (scene.times < tk)
        out[float(tk)] = bool(moving[m].mean() > 0.5) if m.any() else False
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", type=int, nargs="*", default=list(DEFAULT_ROOMS))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--hardware", nargs="*", default=["esp32", "intel5300", "nexmon"])
    a = ap.parse_args()
    cfg = SensingConfig()
    acc: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for hw in a.hardware:
        for room in a.rooms:
            for seed in range(a.seeds):
                cal = make_sensing_scene("empty", hw, room=room, seed=1000 + seed, duration_s=30.0)
                for kind in ("empty", "still_breathing", "walking", "empty_then_walk", "fan", "curtain", "agc_steps"):
                    kw = {"breath_bpm": float(12 + 4 * ((room + seed) % 3))} if kind == "still_breathing" else {}
                    kw |= {"enter_s": 30.0} if kind == "empty_then_walk" else {}
                    sc = make_sensing_scene(kind, hw, room=room, seed=seed, duration_s=60.0, **kw)
                    states, cpu = _run(sc, cal, cfg)
                    mvs = _mvs(sc, cal)
                    truth = {round(x.t): x for x in sc.truth}
                    r = acc[hw]
                    r["cpu"].append((cpu, len(sc.times)))
                    changes = {round(x.t) for i, x in enumerate(sc.truth[1:], 1) if x.motion != sc.truth[i - 1].motion}
                    for st in states:
                        t = round(st.timestamp)
                        tr = truth.get(t)
                        if tr is None or any(0 <= t - c < 2 for c in changes) or t < 3:
                            continue
                        r["motion"].append((tr.motion, st.motion, mvs.get(float(t), False), kind))
                        if kind == "still_breathing" and tr.still:
                            r["still_presence"].append(st.presence)
                            if st.breathing_bpm is not None and tr.breathing_bpm is not None:
                                r["bpm_err"].append(abs(st.breathing_bpm - tr.breathing_bpm))
                            r["bpm_reported"].append(st.breathing_bpm is not None)
                    if kind in DISTURBANCES:
                        mo = np.array([st.motion for st in states if st.timestamp >= 3])
                        pr = np.array([st.presence for st in states if st.timestamp >= 3])
                        mv = np.array(
                            [mvs.get(float(round(st.timestamp)), False) for st in states if st.timestamp >= 3]
                        )
                        r["fa_" + kind].append((_onsets(mo), _onsets(pr), _onsets(mv), len(mo)))
                    if kind == "empty_then_walk":
                        hit = [st.timestamp for st in states if st.timestamp >= 30.0 and st.motion]
                        r["latency"].append(hit[0] - 30.0 if hit else float("nan"))
    print(
        f"{'hardware':10s} {'motion F1 wdp':>13s} {'MVS':>6s} | still presence | breathing MAE | latency | CPU/packet"
    )
    for hw, r in acc.items():
        m = np.array([(x[0], x[1], x[2]) for x in r["motion"]], bool)
        fw, fm = _f1(m[:, 0], m[:, 1]), _f1(m[:, 0], m[:, 2])
        cpu = sum(c for c, _ in r["cpu"]) / max(1, sum(n for _, n in r["cpu"]))
        sp = np.mean(r["still_presence"]) if r["still_presence"] else float("nan")
        mae = np.mean(r["bpm_err"]) if r["bpm_err"] else float("nan")
        rep = np.mean(r["bpm_reported"]) if r["bpm_reported"] else float("nan")
        lat = np.nanmedian(r["latency"]) if r["latency"] else float("nan")
        print(
            f"{hw:10s} {fw:13.3f} {fm:6.3f} | recall {sp:5.2f}     | {mae:4.1f} BPM ({rep:.0%} of s) | "
            f"{lat:4.1f} s  | {cpu * 1e6:5.1f} us"
        )
        for kind in DISTURBANCES:
            v = np.array(r["fa_" + kind])
            if len(v):
                hours = v[:, 3].sum() / 3600
                print(
                    f"    {kind:9s}: false motion onsets wdp {v[:, 0].sum()} ({v[:, 0].sum() / hours:.0f}/h), "
                    f"MVS {v[:, 2].sum()} ({v[:, 2].sum() / hours:.0f}/h); false presence onsets {v[:, 1].sum()} "
                    f"({v[:, 1].sum() / hours:.0f}/h) over {hours * 60:.0f} min"
                )
    return 0


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    tp = int((y & p).sum())
    fp = int((~y & p).sum())
    fn = int((y & ~p).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _onsets(x: np.ndarray) -> int:
    if len(x) == 0:
        return 0
    return int(x[0]) + int((x[1:] & ~x[:-1]).sum())


if __name__ == "__main__":
    raise SystemExit(main())
