"""`wdp record` at the issue-17 load: 4 simulated routers x 100 Hz over UDP (wdp raw datagrams, 30x3x3, each
from its own socket, sent by a separate process) and a 30 FPS 1280x720 video file as the camera (a real camera
frame of a person, the shared WiSPPN sample, panned about), recorded by `wdp record` as a user runs it; then
`wdp label` on the recording. Prints: CSI packets sent vs recorded per router and the dropped %, camera frames,
the summary's alignment error, CPU of the recorder (+ ffmpeg), disk rate, and the teacher's frames/s.

    python bench/bench_record.py [--seconds 60] [--label-seconds 20] [--keep DIR]

Baseline for the figures: what was sent (the sender counts its datagrams); the target is < 1 % dropped CSI and
>= 15 labelled frames/s on CPU. The machine is shared: the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
POSE_MAT = REPO.parent / "shared" / "data" / "csi" / "pose" / "wisppn_intel5300_pose_sample_oct17set1_fw_1814.mat"


def make_video(out: Path, seconds: float, size: str = "1280x720") -> Path:
    import h5py
    from PIL import Image

    with h5py.File(POSE_MAT, "r") as f:
        frame = np.array(f["frame"]).transpose(2, 1, 0)
    png = out.with_suffix(".png")
    Image.fromarray(frame).save(png)
    w, h = size.split("x")
    vf = f"crop=480:270:x='80+60*sin(2*t)':y='45+20*cos(3*t)',scale={w}:{h},format=yuv420p"
    subprocess.run(
        ["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-loop", "1", "-framerate", "30", "-i", str(png)]
        + ["-vf", vf, "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", str(out)],
        check=True,
    )
    return out


def sender_main(port: int, routers: int, seconds: float, stats_file: str) -> None:
    from wdp.recording.sim_router import SimulatedRouters, simulated_packets

    pk = simulated_packets(routers, 4.0)
    s = SimulatedRouters(port, routers=routers, packets=pk, duration_s=seconds).start()
    s.wait()
    Path(stats_file).write_text(json.dumps({"sent": s.stats.sent, "ports": s.source_ports}))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_of_tree(pid: int) -> float:
    """user + system seconds of a process and its (still running) children, from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):  # ffmpeg is the child of the camera thread, not of main
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
        except (OSError, IndexError):
            pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--routers", type=int, default=4)
    ap.add_argument("--label-seconds", type=float, default=20.0, help="label the first this many seconds (0: skip)")
    ap.add_argument("--keep", default=None, help="keep the recording in this folder")
    ap.add_argument("--sender", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sender:
        sender_main(int(args.sender[0]), int(args.sender[1]), float(args.sender[2]), args.sender[3])
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-record-"))
    try:
        video = make_video(work / "cam720.mp4", args.seconds + 5)
        rec = Path(args.keep) if args.keep else work / "rec"
        port = _free_port()
        cmd = [sys.executable, "-m", "wdp", "record", str(rec), "source.host=127.0.0.1", f"source.port={port}"]
        cmd += ["source.format=raw", "source.shape=[30,3,3]", "--camera", str(video), "--json", "-q"]
        load0 = os.getloadavg()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not (rec / "recording.json").is_file():
            time.sleep(0.05)
        stats_file = work / "sent.json"
        snd = subprocess.Popen(
            [sys.executable, __file__, "--sender", str(port), str(args.routers), str(args.seconds), str(stats_file)]
        )
        t0 = time.monotonic()
        cpu0 = _cpu_of_tree(proc.pid)
        cpu_peak = 0.0
        while snd.poll() is None:
            time.sleep(1.0)
            cpu_peak = max(cpu_peak, _cpu_of_tree(proc.pid))
        wall = time.monotonic() - t0
        cpu = _cpu_of_tree(proc.pid) - cpu0
        time.sleep(0.5)
        proc.send_signal(2)
        out, err = proc.communicate(60)
        summary = json.loads(out)
        sent = json.loads(stats_file.read_text())
        by_port = {int(r["router"].rsplit(":", 1)[1]): r for r in summary["routers"]}
        print(f"wdp record, {args.routers} routers x 100 Hz + 30 FPS 1280x720 video, {args.seconds:.0f} s")
        print(f"  load average before: {load0[0]:.2f} (2 cores shared with other work)")
        tot_sent = tot_rec = 0
        for i, p in enumerate(sent["ports"]):
            s = sent["sent"][str(i)]
            r = by_port.get(p, {"packets": 0, "missing_packets": 0})
            tot_sent += s
            tot_rec += r["packets"]
            print(f"  router {i}: sent {s}, recorded {r['packets']}, lost {100 * (s - r['packets']) / s:.3f} %")
        print(f"  dropped CSI: {100 * (tot_sent - tot_rec) / tot_sent:.3f} % of {tot_sent} sent (target < 1 %)")
        print(f"  summary's own estimate (gaps + ring drops): {summary['dropped_csi_pct']:.3f} %")
        cam = summary["camera"]
        print(
            f"  camera: {cam['frames']} frames {cam['width']}x{cam['height']} at {cam['fps']:.2f} fps, "
            f"{cam['frame_gaps']} gaps, {cam['pts_missing']} without pts"
        )
        print(
            f"  alignment error (summary): rms {summary['alignment_error_rms_ms']:.1f} ms, max "
            f"{summary['alignment_error_max_ms']:.1f} ms; camera clock fit rms {cam['clock_fit_rms_ms']:.2f} ms, "
            f"arrival jitter p95 {cam['arrival_jitter_p95_ms']:.1f} ms"
        )
        size = sum(f.stat().st_size for f in rec.iterdir() if f.is_file())
        print(f"  recorder CPU (wdp record + ffmpeg): {cpu / wall:.2f} cores; disk {size / 1e6 / wall:.2f} MB/s")
        if args.label_seconds > 0:
            lab = (
                rec if args.label_seconds >= args.seconds else _first_seconds(rec, work / "rec-cut", args.label_seconds)
            )
            t = time.perf_counter()
            r = subprocess.run(
                [sys.executable, "-m", "wdp", "label", str(lab), "--json", "-q"], capture_output=True, text=True
            )
            if r.returncode:
                print(f"  wdp label failed: {r.stderr.strip()}")
                return 1
            li = json.loads(r.stdout)
            print(
                f"  wdp label: {li['frames']} frames of 1280x720 in {li['seconds']:.1f} s = {li['frames_per_s']:.1f} "
                f"frames/s on CPU (teacher only; whole command {time.perf_counter() - t:.1f} s); "
                f"{li['with_person']} with a person, {li['empty']} empty (target >= 15 frames/s)"
            )
        print(f"  maxrss of this script {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        if err.strip():
            print(err.strip()[-500:], file=sys.stderr)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _first_seconds(rec: Path, out: Path, seconds: float) -> Path:
    """A copy of a recording's first ``seconds`` of camera frames (and its other files) for labelling."""
    import msgspec

    from wdp.recording.layout import CAMERA_FILE, CAMERA_MAGIC, CameraFrame
    from wdp.recording.reader import iter_camera
    from wdp.recording.records import RecordWriter

    out.mkdir()
    for f in rec.iterdir():
        if f.is_file() and f.name != CAMERA_FILE:
            shutil.copy(f, out / f.name)
    enc = msgspec.msgpack.Encoder()
    t0 = None
    with RecordWriter(out / CAMERA_FILE, CAMERA_MAGIC) as w:
        for fr in iter_camera(rec):
            t0 = fr.arrival if t0 is None else t0
            if fr.arrival - t0 > seconds:
                break
            w.append(enc.encode(fr))
    assert CameraFrame
    return out


if __name__ == "__main__":
    sys.exit(main())
