"""Training-free sensing (wdp.sensing.LinkSensor) vs ESPectre's MVS detector on the real labelled recordings.

    WDP_REAL_DATA=/path/to/restore python bench/eval_sensing_real.py [--datasets D1 D2 D3 D4 D5] [--json out.json]

The development sets of ../shared/data/real/MANIFEST.md, restored with its restore.sh ($WDP_REAL_DATA, or
--root). Protocols (recordings, never windows, are split; thresholds are fitted on the training part only,
calibration recordings are an installer's quiet recording of the test room and never scored):

* D3 (ESPectre, ESP32 family): train = the current recordings, test = the 18 deleted ones (other sessions).
  A session is a baseline + movement pair (same chip, recorded minutes apart); calibration = the first half of
  the baseline, negatives = the seconds of its second half, positives = the seconds of the movement recording.
  ``test_*`` recordings: calibration = their first 20 s (quiet), then seconds before the change point are
  negatives, seconds from 2 s after it positives; detection latency = first motion second - change point.
* D1 (Intel 5300, 5 volunteers, 2 rooms): leave-one-volunteer-out (thresholds fitted on the other four) and
  cross-room. Units: an action take (positive: motion in any second) and the authors' 10 s windows of the
  lying/sitting recordings (negatives: no motion second), from 30 s on. Calibration per room: the first 30 s of
  a training volunteer's lying recording in that room (abid, or hhj when abid is tested), never scored.
* D2 (nexmon, 2 users in 2 positions): user1 -> user2 and back. Units: takes (10 s); calibration: the test
  room's "no movement" take 1, never scored.
* D4 (ESP32, empty vs occupied, LOS / NLOS): the authors' training/testing split; calibration per condition:
  the training empty recordings (their variance and empty-room profile are the learned part; training
  recordings are scored in-sample, testing ones are held out), the first 10 s of every recording dropped
  (operator leaving; the authors' cutoff). Presence per second on the testing recordings;
  motion on dataset/ 180 s (moving vs empty and still) and on the empty testing recordings (false alarms).
* D5 (ESP32, breathing): calibration: the first 20 s of each take (the person keeps still); motion false alarms
  per second of the non-noise takes; breathing: the rate estimator's median over a take against the nominal
  rate (a per-scenario label, see the manifest), and what the takes show (dominant rate per scenario).

MVS (bench/mvs_baseline.py) gets the same calibration data and is scored the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wdp.data.real import Recording, iter_recordings  # noqa: E402
from wdp.sensing import LinkSensor, SensingConfig  # noqa: E402
from wdp.sensing.link import motion_decisions  # noqa: E402

RAW = SensingConfig(motion_on=math.inf, motion_off=math.inf, presence_distance=math.inf, presence_snr=math.inf)
GRID = np.round(np.concatenate([np.arange(1.5, 4, 0.25), np.arange(4, 12, 0.5), np.arange(12, 40, 2)]), 3)
OFF_RATIO = 0.625  # motion_off / motion_on, as SensingConfig's defaults


# ------------------------------------------------------------------------------------------ running


@dataclasses.dataclass
class Run:
    """Per-second output of one recording under one calibration."""

    t: np.ndarray  # tick times (s from the recording's first frame)
    score: np.ndarray  # motion score (NaN: not calibrated)
    motion: np.ndarray  # LinkSensor's motion state
    presence: np.ndarray
    still: np.ndarray
    bpm: np.ndarray  # reported rate (NaN: none)
    est_bpm: np.ndarray  # the estimator's rate whatever the presence decision (NaN: no estimate)
    est_conf: np.ndarray
    band_snr: np.ndarray
    profile: np.ndarray  # empty-room profile distance (NaN: no empty baseline)
    mvs: np.ndarray | None  # MVS per second (bool)
    packets: int
    cpu_s: float


def _cut(t: np.ndarray, c: np.ndarray, lo: float = -math.inf, hi: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    m = (t >= lo) & (t < hi)
    return t[m], c[m]


def run(
    t: np.ndarray,
    c: np.ndarray,
    cfg: SensingConfig,
    calib: tuple[np.ndarray, np.ndarray] | None,
    *,
    empty: bool = False,
    with_mvs: bool = True,
    chunk: int = 32,
) -> Run:
    s = LinkSensor("bench", cfg, source="replay", trace=True)
    if calib is not None:
        s.calibrate(*calib, mode="baseline", empty=empty)
    rows = []
    cpu = 0.0
    for i in range(0, len(t), chunk):
        c0 = time.process_time()
        states = s.push_many(t[i : i + chunk], c[i : i + chunk])
        cpu += time.process_time() - c0
        for st in states:
            rows.append(
                (
                    st.timestamp,
                    st.motion_score if st.calibration != "calibrating" else np.nan,
                    st.motion,
                    st.presence,
                    st.still,
                    st.breathing_bpm if st.breathing_bpm is not None else np.nan,
                )
            )
    tr = np.array(s.trace, dtype=np.float64).reshape(-1, 5)
    assert len(tr) == len(rows) and np.array_equal(tr[:, 0], np.array([r[0] for r in rows]))
    rows = [(*r, *tr[k, 2:4], tr[k, 1], tr[k, 4]) for k, r in enumerate(rows)]
    a = np.array(rows, dtype=np.float64).reshape(-1, 10)
    mvs = None
    if with_mvs and calib is not None:
        mvs = _mvs_per_second(calib, t, c, a[:, 0])
    return Run(
        t=a[:, 0],
        score=a[:, 1],
        motion=a[:, 2] > 0,
        presence=a[:, 3] > 0,
        still=a[:, 4] > 0,
        bpm=a[:, 5],
        est_bpm=a[:, 6],
        est_conf=a[:, 7],
        band_snr=a[:, 8],
        profile=a[:, 9],
        mvs=mvs,
        packets=len(t),
        cpu_s=cpu,
    )


def _mvs_per_second(calib, t, c, ticks) -> np.ndarray:
    from mvs_baseline import MVSDetector

    d = MVSDetector()
    d.calibrate(*calib)
    _, moving = d.run(t, c)
    out = np.zeros(len(ticks), bool)
    # a second is "motion" if MVS flagged most of its packets (its per-packet state at the tick, like ours)
    for k, tk in enumerate(ticks):
        m = (t >= tk - 1.0) & (t < tk)
        out[k] = bool(moving[m].mean() > 0.5) if m.any() else False
    return out


# ------------------------------------------------------------------------------------------ scoring


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f = 2 * p * r / (p + r) if tp else 0.0
    return p, r, f


@dataclasses.dataclass
class Units:
    """Scoring units of one protocol part: per unit its label and the per-second score/decision arrays."""

    label: list[bool] = dataclasses.field(default_factory=list)
    scores: list[np.ndarray] = dataclasses.field(default_factory=list)  # raw motion scores per second
    mvs: list[np.ndarray] = dataclasses.field(default_factory=list)
    per_second: bool = False  # True: every second is a unit (label repeated); else any-second decides

    def add(self, label: bool, scores: np.ndarray, mvs: np.ndarray | None) -> None:
        self.label.append(label)
        self.scores.append(scores)
        self.mvs.append(mvs if mvs is not None else np.zeros(len(scores), bool))

    def counts(self, decide) -> tuple[int, int, int, int]:
        tp = fp = fn = tn = 0
        for lab, sc, mv in zip(self.label, self.scores, self.mvs, strict=True):
            d = decide(sc, mv)
            if self.per_second:
                n_pos = int(d.sum())
                n = len(d)
                if lab:
                    tp += n_pos
                    fn += n - n_pos
                else:
                    fp += n_pos
                    tn += n - n_pos
            else:
                hit = bool(d.any())
                tp += lab and hit
                fn += lab and not hit
                fp += (not lab) and hit
                tn += (not lab) and not hit
        return tp, fp, fn, tn

    def f1_at(self, on: float) -> float:
        tp, fp, fn, _ = self.counts(lambda sc, mv: motion_decisions(sc, on, on * OFF_RATIO))
        return f1(tp, fp, fn)[2]

    def ours(self, on: float) -> dict:
        return _report(self.counts(lambda sc, mv: motion_decisions(sc, on, on * OFF_RATIO)))

    def baseline(self) -> dict:
        return _report(self.counts(lambda sc, mv: mv))


def _report(c: tuple[int, int, int, int]) -> dict:
    tp, fp, fn, tn = c
    p, r, f = f1(tp, fp, fn)
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def fit_threshold(*parts: Units) -> float:
    """motion_on with the best F1 over the training units of all parts, counts summed (each part scored its
    own way: per second or per unit); ties: the higher, more conservative threshold."""
    best, best_on = -1.0, float(GRID[len(GRID) // 2])
    for on in GRID:
        tp = fp = fn = 0
        for p in parts:
            a, b, c, _ = p.counts(lambda sc, mv, on=on: motion_decisions(sc, float(on), float(on) * OFF_RATIO))
            tp, fp, fn = tp + a, fp + b, fn + c
        f = f1(tp, fp, fn)[2]
        if f >= best:
            best, best_on = f, float(on)
    return best_on


def fit_threshold_balanced(parts: list[Units]) -> float:
    """One motion_on for every hardware: the best mean of the per-dataset training F1s (each dataset counts
    once, whatever its number of units); ties: the higher threshold."""
    best, best_on = -1.0, float(GRID[len(GRID) // 2])
    for on in GRID:
        f = float(np.mean([p.f1_at(float(on)) for p in parts]))
        if f >= best:
            best, best_on = f, float(on)
    return best_on


def _concat(recs: list[Recording], lo: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Several recordings of one room as one calibration stream (each after ``lo`` s, 10 s apart)."""
    ts, cs, off = [], [], 0.0
    for r in recs:
        t, c = _cut(r.times, r.csi, lo=lo)
        if len(t) < 4:
            continue
        ts.append(t - t[0] + off)
        cs.append(c)
        off = ts[-1][-1] + 10.0
    return np.concatenate(ts), np.concatenate(cs)


# ------------------------------------------------------------------------------------------ datasets


def load(root: Path, ds: str) -> list[Recording]:
    return [r for r in iter_recordings(root, [ds]) if len(r.times) > 0]


def eval_d3(recs: list[Recording], cfg: SensingConfig, stats: dict) -> dict:
    import re

    def when(r: Recording) -> str:
        m = re.search(r"(\d{8}_\d{6})|_(\d{3})\.npz$", r.path)
        return (m.group(1) or m.group(2)) if m else ""

    base = [r for r in recs if r.labels.get("label") == "baseline"]
    parts = {"train": Units(per_second=True), "test": Units(per_second=True)}
    latency: dict[str, list[float]] = defaultdict(list)
    for r in recs:
        part = "train" if r.labels.get("in_head") == "yes" else "test"
        lab = r.labels.get("label")
        if lab == "movement":
            same = [b for b in base if b.labels.get("chip") == r.labels.get("chip") and b.labels.get("variant") is None]
            earlier = [b for b in same if when(b) <= when(r)]
            b = max(earlier, key=when) if earlier else min(same, key=when)
            half = b.times[-1] / 2
            calib = _cut(b.times, b.csi, hi=half)
            neg = run(*_cut(b.times, b.csi, lo=half), cfg, calib)
            pos = run(r.times, r.csi, cfg, calib)
            _acc(stats, pos)
            parts[part].add(False, neg.score, neg.mvs)
            parts[part].add(True, pos.score, pos.mvs)
        elif lab == "test":
            t0 = r.truth.motion_from_s
            calib = _cut(r.times, r.csi, hi=20.0)
            out = run(*_cut(r.times, r.csi, lo=20.0), cfg, calib)
            before = out.t < t0
            after = out.t >= t0 + 2.0
            parts[part].add(False, out.score[before], out.mvs[before])
            parts[part].add(True, out.score[after], out.mvs[after])
            latency[r.path] = [float("nan"), float("nan")]
            # latency at the fitted threshold is filled in by the caller (needs the threshold)
            stats.setdefault("d3_test_runs", []).append((r.path, part, t0, out))
    return parts


def eval_d1(recs: list[Recording], cfg: SensingConfig, stats: dict) -> dict[str, Units]:
    """Returns units keyed (calibrator, person, room)."""
    static = [r for r in recs if r.labels.get("kind") == "long_static_6min"]
    units: dict[tuple[str, str, str], Units] = {}
    for room in sorted({r.environment for r in recs}):
        for calibrator in ("abid", "hhj"):
            cal = next(
                r
                for r in static
                if r.environment == room and r.person == calibrator and r.labels["activity"] == "lying"
            )
            calib = _cut(cal.times, cal.csi, hi=30.0)
            for r in recs:
                if r.environment != room:
                    continue
                u = units.setdefault((calibrator, r.person or "-", room), Units())
                if r.labels.get("kind") == "long_static_6min":
                    if r is cal:
                        continue
                    out = run(*_cut(r.times, r.csi, lo=28.0), cfg, calib)
                    # the authors' windows: 200 packets (10 s) every 300 packets (15 s) from packet 600 (30 s)
                    for k in range(20):
                        lo, hi = 30.0 + 15.0 * k, 40.0 + 15.0 * k
                        m = (out.t > lo) & (out.t <= hi)
                        if m.sum() >= 5:
                            u.add(False, out.score[m], out.mvs[m] if out.mvs is not None else None)
                    _acc(stats, out, still=True)
                else:
                    out = run(r.times, r.csi, cfg, calib)
                    u.add(True, out.score, out.mvs)
                    _acc(stats, out)
    return units


def _merge(units: list[Units]) -> Units:
    m = Units(per_second=units[0].per_second if units else False)
    for u in units:
        m.label += u.label
        m.scores += u.scores
        m.mvs += u.mvs
    return m


def _acc(stats: dict, out: Run, still: bool = False) -> None:
    stats["packets"] = stats.get("packets", 0) + out.packets
    stats["cpu_s"] = stats.get("cpu_s", 0.0) + out.cpu_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("WDP_REAL_DATA"))
    ap.add_argument("--datasets", nargs="*", default=["D3", "D1", "D2", "D4", "D5"])
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not a.root or not Path(a.root).is_dir():
        print(
            "eval_sensing_real needs the restored development sets: fetch the five repositories of "
            "../shared/data/real/MANIFEST.md, run ../shared/data/real/restore.sh MIRROR_ROOT DEST and set "
            "WDP_REAL_DATA=DEST (or pass --root DEST)",
            file=sys.stderr,
        )
        return 2
    root = Path(a.root)
    cfg = SensingConfig()
    raw = dataclasses.replace(cfg, motion_on=math.inf, motion_off=math.inf)
    results: dict = {"config": dataclasses.asdict(cfg)}
    stats: dict = {}
    train_pool: list[Units] = []
    report_rows = []

    def row(name: str, on: float, part: Units, latency: str = "") -> None:
        o, b = part.ours(on), part.baseline()
        report_rows.append((name, on, o, b, latency))
        results[name] = {"threshold": on, "wdp": o, "mvs": b, "latency": latency}

    if "D3" in a.datasets:
        recs = load(root, "D3")
        parts = eval_d3(recs, raw, stats)
        on = fit_threshold(parts["train"])
        train_pool.append(parts["train"])
        lat = []
        lat_mvs = []
        for _path, _part, t0, out in stats.pop("d3_test_runs", []):
            mo = motion_decisions(out.score, on, on * OFF_RATIO)
            hits = out.t[(out.t >= t0) & mo]
            lat.append(float(hits[0] - t0) if len(hits) else float("nan"))
            hm = out.t[(out.t >= t0) & out.mvs]
            lat_mvs.append(float(hm[0] - t0) if len(hm) else float("nan"))
        latency = f"change-point latency wdp {np.round(lat, 1).tolist()} s, MVS {np.round(lat_mvs, 1).tolist()} s"
        row("D3 current (train, in-sample threshold)", on, parts["train"])
        row("D3 deleted sessions (test)", on, parts["test"], latency)
    if "D1" in a.datasets:
        recs = load(root, "D1")
        units = eval_d1(recs, raw, stats)
        people = sorted({k[1] for k in units})
        rooms = sorted({k[2] for k in units})
        test_parts = []
        for p in people:
            cal = "hhj" if p == "abid" else "abid"
            train = [u for k, u in units.items() if k[0] == cal and k[1] != p]
            on = fit_threshold(*train)
            test_parts.append((on, _merge([u for k, u in units.items() if k[0] == cal and k[1] == p])))
        # pooled LOVO: each fold's units scored at its own threshold
        pooled = _pool_scored(test_parts)
        report_rows.append(("D1 leave-one-volunteer-out (5 folds)", float("nan"), pooled[0], pooled[1], ""))
        results["D1 LOVO"] = {"wdp": pooled[0], "mvs": pooled[1], "thresholds": [t for t, _ in test_parts]}
        train_pool.append(_merge([u for k, u in units.items() if k[0] == "abid"]))
        for tr, te in ((rooms[0], rooms[1]), (rooms[1], rooms[0])):
            on = fit_threshold(*[u for k, u in units.items() if k[0] == "abid" and k[2] == tr])
            row(
                f"D1 cross-room {tr} -> {te}",
                on,
                _merge([u for k, u in units.items() if k[0] == "abid" and k[2] == te]),
            )
    if "D2" in a.datasets:
        recs = load(root, "D2")
        by_user: dict[str, Units] = {}
        for user in sorted({r.person for r in recs}):
            cal = next(
                r
                for r in recs
                if r.person == user and r.labels["activity"] == "no_movement" and r.labels["take"] == "1"
            )
            u = by_user.setdefault(user, Units())
            for r in recs:
                if r.person != user or r is cal:
                    continue
                out = run(r.times, r.csi, raw, (cal.times, cal.csi))
                _acc(stats, out)
                u.add(r.labels["activity"] != "no_movement", out.score, out.mvs)
        users = sorted(by_user)
        train_pool.append(by_user[users[0]])
        for tr, te in ((users[0], users[1]), (users[1], users[0])):
            on = fit_threshold(by_user[tr])
            row(f"D2 {tr} -> {te}", on, by_user[te])
    default_on = fit_threshold_balanced(train_pool) if train_pool else cfg.motion_on
    results["pooled_training_threshold"] = default_on
    if "D4" in a.datasets:
        results.update(eval_d4(load(root, "D4"), cfg, default_on, stats, report_rows))
    if "D5" in a.datasets:
        results.update(eval_d5(load(root, "D5"), cfg, default_on, stats, report_rows))
    results["cpu_us_per_packet"] = 1e6 * stats.get("cpu_s", 0.0) / max(1, stats.get("packets", 1))

    print(
        f"\nmotion threshold fitted on the training parts of D1 (LOVO, all volunteers), D2 (user1) and D3 (current), "
        f"each dataset weighted once: {default_on} (shipped default: {cfg.motion_on}); D4 and D5 use it"
    )
    print(f"{'protocol':48s} {'thr':>5s} | {'wdp P':>6s} {'R':>6s} {'F1':>6s} | {'MVS P':>6s} {'R':>6s} {'F1':>6s}")
    for name, on, o, b, lat in report_rows:
        print(
            f"{name:48s} {on:5.2f} | {o['precision']:6.3f} {o['recall']:6.3f} {o['f1']:6.3f} | "
            f"{b['precision']:6.3f} {b['recall']:6.3f} {b['f1']:6.3f} {lat}"
        )
    for k in ("presence", "breathing"):
        for line in results.get(k + "_lines", []):
            print(line)
    print(f"sensing CPU per packet: {results['cpu_us_per_packet']:.1f} us (LinkSensor.push_many in chunks of 32)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=_json_default))
    return 0


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def _pool_scored(parts: list[tuple[float, Units]]) -> tuple[dict, dict]:
    ours = np.zeros(4, int)
    base = np.zeros(4, int)
    for on, u in parts:
        ours += u.counts(lambda sc, mv, on=on: motion_decisions(sc, on, on * OFF_RATIO))
        base += u.counts(lambda sc, mv: mv)
    return _report(tuple(int(x) for x in ours)), _report(tuple(int(x) for x in base))


def eval_d4(recs: list[Recording], cfg: SensingConfig, on: float, stats: dict, rows: list) -> dict:
    upd = [r for r in recs if r.labels.get("set") != "dataset_180s"]
    s180 = [r for r in recs if r.labels.get("set") == "dataset_180s"]
    cfg_on = dataclasses.replace(cfg, motion_on=on, motion_off=on * OFF_RATIO, presence_distance=math.inf)
    out: dict = {}
    lines = []
    fa_seconds = 0.0
    fa_motion = fa_presence = 0
    fa_motion_mvs = 0
    dist: dict[tuple[str, str, str], list[np.ndarray]] = defaultdict(list)
    runs: dict[tuple[str, str], list[tuple[bool, Run]]] = defaultdict(list)
    recs_of: dict[tuple[str, str], list[tuple[bool, Recording]]] = defaultdict(list)
    cals = {}
    for cond in ("LOS", "NLOS"):
        empties = [
            r
            for r in upd
            if r.labels["condition"] == cond and r.labels["split"] == "training" and r.labels["occupancy"] == "empty"
        ]
        # the empty-room reference (motion variance and profile) is learned from every training empty recording
        calib = _concat(empties, lo=10.0)
        cals[cond] = calib
        for r in upd:
            if r.labels["condition"] != cond:
                continue
            o = run(*_cut(r.times, r.csi, lo=10.0), cfg_on, calib, empty=True, with_mvs=False)
            _acc(stats, o)
            occ = r.labels["occupancy"] == "occupied"
            dist[(cond, r.labels["split"], r.labels["occupancy"])].append(o.profile[~np.isnan(o.profile)])
            recs_of[(cond, r.labels["split"])].append((occ, r))
    # presence threshold per room (condition), fitted on its training recordings (empty vs occupied seconds)
    ths = {}
    for cond in ("LOS", "NLOS"):
        tr_neg = np.concatenate([d for k, v in dist.items() if k[:3] == (cond, "training", "empty") for d in v])
        tr_pos = np.concatenate([d for k, v in dist.items() if k[:3] == (cond, "training", "occupied") for d in v])
        grid = np.unique(np.quantile(np.concatenate([tr_neg, tr_pos]), np.linspace(0.01, 0.99, 197)))
        best = (-1.0, float(cfg.presence_distance))
        for th in grid:
            tp, fp, fn = int((tr_pos >= th).sum()), int((tr_neg >= th).sum()), int((tr_pos < th).sum())
            f = f1(tp, fp, fn)[2]
            if f > best[0]:
                best = (f, float(th))
        ths[cond] = best[1]
    out["d4_presence_distance"] = ths
    # the test: the sensor itself at the fitted threshold (presence = profile, motion, hold and absence delay)
    for cond in ("LOS", "NLOS"):
        cfg_p = dataclasses.replace(cfg_on, presence_distance=ths[cond])
        for part in ("training", "testing"):
            runs[(cond, part)] = [
                (occ, run(*_cut(r.times, r.csi, lo=10.0), cfg_p, cals[cond], empty=True, with_mvs=True))
                for occ, r in recs_of[(cond, part)]
            ]
    for cond in ("LOS", "NLOS"):
        th = ths[cond]
        for part in ("training", "testing"):
            tp = fp = fn = tn = 0
            onsets = 0
            secs = 0.0
            m_onsets = mvs_onsets = 0
            for occ, o in runs[(cond, part)]:
                pres = o.presence
                if occ:
                    tp += int(pres.sum())
                    fn += int((~pres).sum())
                else:
                    fp += int(pres.sum())
                    tn += int((~pres).sum())
                    onsets += _onsets(pres)
                    secs += len(pres)
                    m_onsets += _onsets(o.motion)
                    mvs_onsets += _onsets(o.mvs) if o.mvs is not None else 0
            p, rc, f = f1(tp, fp, fn)
            lines.append(
                f"D4 presence {cond:4s} {part:8s} (profile distance >= {th:.2f} or motion): precision {p:.3f} "
                f"recall {rc:.3f} F1 {f:.3f}; empty room "
                f"{secs / 3600:.2f} h: presence onsets {onsets} ({onsets / max(secs / 3600, 1e-9):.1f}/h), motion "
                f"onsets wdp {m_onsets}, MVS {mvs_onsets}"
            )
            if part == "testing":
                fa_seconds += secs
                fa_presence += onsets
                fa_motion += m_onsets
                fa_motion_mvs += mvs_onsets
    out["d4_empty_hours_testing"] = fa_seconds / 3600
    out["d4_false_presence_onsets_testing"] = fa_presence
    out["d4_false_motion_onsets_testing"] = [fa_motion, fa_motion_mvs]
    # motion on the 180 s scenario recordings, calibrated on the LOS empty training recording
    u = Units(per_second=True)
    calib = cals["LOS"]
    for r in s180:
        sc = r.labels.get("scenario", "")
        if sc not in ("empty_room", "person_still", "person_moving"):
            continue
        o = run(*_cut(r.times, r.csi, lo=10.0), cfg_on, calib)
        u.add(sc == "person_moving", o.score, o.mvs)
        if sc == "person_still":
            lines.append(f"D4 dataset/ person_still (180 s): motion seconds {int(o.motion.sum())}/{len(o.motion)}")
    if u.label:
        rows.append(("D4 dataset/ 180 s: moving vs empty+still", on, u.ours(on), u.baseline(), ""))
    out["presence_lines"] = out.get("presence_lines", []) + lines
    return out


def _onsets(x: np.ndarray | None) -> int:
    if x is None or len(x) == 0:
        return 0
    x = x.astype(bool)
    return int(x[0]) + int((x[1:] & ~x[:-1]).sum())


def eval_d5(recs: list[Recording], cfg: SensingConfig, on: float, stats: dict, rows: list) -> dict:
    cfg_on = dataclasses.replace(cfg, motion_on=on, motion_off=on * OFF_RATIO)
    lines = []
    u = Units(per_second=True)
    errs = []
    by_scen: dict[str, list[float]] = defaultdict(list)
    apnea_rate_seconds = [0, 0]
    for r in recs:
        calib = _cut(r.times, r.csi, hi=20.0)
        o = run(*_cut(r.times, r.csi, lo=20.0), cfg_on, calib)
        _acc(stats, o)
        scen = r.labels.get("scenario", "")
        if scen != "noise":
            u.add(False, o.score, o.mvs)
        ok = ~np.isnan(o.est_bpm) & (o.est_conf >= cfg.breathing_min_confidence)
        med = float(np.median(o.est_bpm[ok])) if ok.any() else float("nan")
        by_scen[scen].append(med)
        if r.truth.apnea:
            apnea_rate_seconds[0] += int(ok.sum())
            apnea_rate_seconds[1] += int((~np.isnan(o.est_bpm)).sum())
        elif r.truth.breathing_bpm_nominal is not None and scen != "noise" and not math.isnan(med):
            errs.append(abs(med - r.truth.breathing_bpm_nominal))
    o_, b_ = u.ours(on), u.baseline()
    lines.append(
        f"D5 still person, 50 takes after 20 s of calibration: motion seconds wdp {o_['fp']}/{o_['fp'] + o_['tn']} "
        f"({o_['fp'] / max(1, o_['fp'] + o_['tn']):.1%}), MVS {b_['fp']}/{b_['fp'] + b_['tn']} "
        f"({b_['fp'] / max(1, b_['fp'] + b_['tn']):.1%}) (no motion expected; F1 undefined)"
    )
    lines.append(
        f"D5 breathing: MAE vs nominal {np.mean(errs):.1f} BPM over {len(errs)} takes (slow/normal/fast); "
        f"apnea takes: a rate in {apnea_rate_seconds[0]} of {apnea_rate_seconds[1]} estimated seconds"
    )
    for scen, v in sorted(by_scen.items()):
        v = np.array(v)
        lines.append(f"D5 {scen:7s}: measured median rate per take {np.round(v, 1).tolist()} BPM")
    return {"breathing_lines": lines, "d5_breathing_mae": float(np.mean(errs)) if errs else float("nan")}


if __name__ == "__main__":
    raise SystemExit(main())
