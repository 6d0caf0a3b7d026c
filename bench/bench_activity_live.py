"""The engine's activity/fall stage live: every real fixture recording of a model's hardware family replayed at
once as its own router (D1 Intel 5300 fixtures: 20 routers; D2 nexmon fixtures: 6), paced at ``--speed`` times
their recorded rate, through the real Engine (no pose model, no sensing). Prints per model: routers, windows
classified and dropped, the model's time per window (preprocessing + ONNX, one thread) and the latency from the
packet that completes a window to its events on the bus (p50 / p99 / max), the engine process's CPU time per
second of stream, and the events (falls per router).

    python bench/bench_activity_live.py [--model DIR ...] [--speed 4]

Without --model: the shipped models (wdp/models/activity/*). The recordings are the shared fixtures
(../shared/data/real/fixtures); nothing is trained or tuned here.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import Counter
from pathlib import Path

from wdp import schemas
from wdp.activity import ActivityClassifier, shipped_models
from wdp.csi import read_capture
from wdp.csi.sources import ReplaySource
from wdp.data.real import fixtures_dir
from wdp.engine import Engine, EngineConfig, Topic
from wdp.engine.activity_stage import ActivitySettings
from wdp.engine.sensing_stage import SensingSettings


def recordings_of(shape: tuple[int, int, int]) -> list[Path]:
    """Fixture captures whose frames (mostly) have this shape."""
    out = []
    for f in sorted(fixtures_dir().rglob("*")):
        if f.suffix not in (".dat", ".pcap", ".csv") or not f.is_file() or f.stat().st_size == 0:
            continue
        try:
            cap = read_capture(f)
        except Exception:  # not a capture wdp reads (metadata)
            continue
        if len(cap) and tuple(cap.csi[0].shape) == shape:
            out.append(f)
    return out


def run(model: Path, speed: float) -> None:
    card = ActivityClassifier.load(model).card
    files = recordings_of(card.shape)
    if not files:
        print(f"{model}: no fixture recording of shape {card.shape}")
        return
    sources = [ReplaySource(f, router_id=f"r{i:02d}", realtime=True, speed=speed) for i, f in enumerate(files)]
    cfg = EngineConfig(
        detector="none",
        sensing=SensingSettings(enabled=False),
        activity=ActivitySettings(detector="model", model=str(model)),
    )
    engine = Engine(sources, config=cfg)
    sub = engine.bus.subscribe({Topic.EVENT}, maxsize=1_000_000)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with engine:
        assert engine.wait(3600)
        links = engine.metrics().activity
        lat = engine.activity.latency.snapshot() if engine.activity is not None else {}
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    events = [m.payload for m in sub.drain()]
    falls = Counter(e.router_id for e in events if isinstance(e, schemas.PersonFallDetected))
    acts = sum(isinstance(e, schemas.PersonActivityDetected) for e in events)
    on = [x for x in links if x.state == "on"]
    stream_s = wall * speed
    print(f"model {model} ({card.family}, {card.window_s:g} s windows every {card.hop_s:g} s), speed x{speed:g}")
    print(
        f"  routers {len(links)} ({len(on)} on), windows {sum(x.windows for x in links)} classified, "
        f"{sum(x.windows_dropped for x in links)} dropped, {sum(x.errors for x in links)} errors, "
        f"other senders {sum(x.other_sender for x in links)}, bad frames {sum(x.bad_frames for x in links)}"
    )
    for name in ("model", "window_to_event"):
        s = lat.get(name)
        if s is not None:
            print(f"  {name:16s} p50 {s.p50_ms:6.2f} ms  p99 {s.p99_ms:6.2f} ms  max {s.max_ms:6.2f} ms  (n={s.count})")
    print(f"  CPU {cpu:.2f} s over {wall:.1f} s wall = {cpu / max(stream_s, 1e-9) * 1e3:.1f} ms per stream second")
    names = {f"r{i:02d}": f.relative_to(fixtures_dir()) for i, f in enumerate(files)}
    print(f"  events: {acts} activity, {sum(falls.values())} falls:")
    for rid, n in sorted(falls.items()):
        print(f"    {rid} {names[rid]}: {n}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", type=Path, help="model directory (default: the shipped ones)")
    ap.add_argument("--speed", type=float, default=4.0, help="replay pace, times the recorded rate")
    args = ap.parse_args()
    models = args.model or shipped_models()
    if not models:
        raise SystemExit("no shipped activity model (wdp/models/activity/) and no --model")
    for m in models:
        run(Path(m), args.speed)


if __name__ == "__main__":
    main()
