"""wdp record: simulated routers over real UDP on 127.0.0.1 + a video file through real ffmpeg as the camera."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wdp.csi.sources import LiveUdpSource
from wdp.recording import Recorder, camera_times, read_csi, summarize_recording
from wdp.recording.layout import CAMERA_FILE, CSI_FILE, CSI_MAGIC, EVENTS_FILE, read_events
from wdp.recording.records import ReadStats, RecordWriter, iter_records
from wdp.recording.sim_router import SimulatedRouters, simulated_packets

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is installed by .ci/setup")


def _video(path: Path, seconds: float, extra_vf: str | None = None, size: str = "320x180") -> Path:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30"]
    cmd += ["-t", str(seconds)]
    if extra_vf:
        cmd += ["-vf", extra_vf, "-fps_mode", "passthrough"]
    cmd += ["-c:v", "mjpeg", "-q:v", "8", str(path)]
    subprocess.run(cmd, check=True)
    return path


@pytest.fixture(scope="module")
def packets():
    return simulated_packets(2, 1.0)


def _wait_until(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_records_keep_a_readable_prefix(tmp_path):
    p = tmp_path / "x.rec"
    with RecordWriter(p, CSI_MAGIC) as w:
        for i in range(5):
            w.append(bytes([i]) * (10 + i))
    whole = p.read_bytes()
    p.write_bytes(whole[:-3])  # a write cut short
    st = ReadStats()
    got = list(iter_records(p, CSI_MAGIC, st))
    assert [len(g) for g in got] == [10, 11, 12, 13]
    assert st.torn_tail_bytes == 8 + 14 - 3
    flipped = bytearray(whole)
    flipped[len(CSI_MAGIC) + 8] ^= 0xFF  # a corrupt first payload: nothing after it is trusted
    p.write_bytes(bytes(flipped))
    assert list(iter_records(p, CSI_MAGIC)) == []


def test_record_routers_and_camera_on_one_clock(tmp_path, packets):
    video = _video(tmp_path / "cam.mkv", 3.0)
    src = LiveUdpSource(host="127.0.0.1", port=0, format="raw", shape=(30, 3, 3))
    rec = Recorder(tmp_path / "rec", src, camera=str(video)).start()
    sender = SimulatedRouters(src.port, routers=2, packets=packets, duration_s=3.0, skip={1: [(1.0, 1.5)]}).start()
    sender.wait(10)
    assert _wait_until(lambda: sum(rec.packets.values()) >= sum(sender.stats.sent.values()), 5)
    assert _wait_until(lambda: rec.camera.finished.is_set(), 10)
    s = rec.stop()
    assert s.complete and s.torn_tail_bytes == 0
    by_port = {int(r.router.rsplit(":", 1)[1]): r for r in s.routers}
    ports = sender.source_ports
    assert by_port[ports[0]].packets == sender.stats.sent[0] == 300
    gap = by_port[ports[1]]
    assert gap.packets == sender.stats.sent[1] == 250
    assert gap.gaps >= 1 and abs(gap.missing_packets - 50) <= 2  # the CSI gap is counted, not hidden
    assert s.dropped_csi_pct > 5
    cam = s.camera
    assert cam is not None and cam.frames == 90 and cam.sessions == 1 and cam.frame_gaps == 0
    assert (cam.width, cam.height) == (320, 180) and abs(cam.fps - 30) < 0.1
    assert s.alignment_error_rms_ms is not None and s.alignment_error_rms_ms < 50
    # one clock: camera frames and CSI packets are both host epoch times of the same few seconds
    ct = camera_times(tmp_path / "rec")
    csi = read_csi(tmp_path / "rec")
    t_csi = np.concatenate([r.t for r in csi.values()])
    assert abs(np.median(ct.arrival) - np.median(t_csi)) < 1.0
    assert json.loads((tmp_path / "rec" / "summary.json").read_text())["complete"] is True


def test_camera_frame_drops_and_disconnects_are_counted(tmp_path, packets):
    # frames 30..44 missing from the file (their pts are skipped), and the camera "disconnects" at the file's
    # end and comes back (reconnect as for a device)
    video = _video(tmp_path / "holes.mkv", 2.0, extra_vf="select='not(between(n\\,30\\,44))'")
    src = LiveUdpSource(host="127.0.0.1", port=0, format="raw", shape=(30, 3, 3))
    rec = Recorder(tmp_path / "rec", src, camera=str(video), camera_reconnect=True).start()
    sender = SimulatedRouters(src.port, routers=1, packets=packets, duration_s=6.0).start()
    assert _wait_until(lambda: rec.camera.stats.sessions >= 2 and rec.camera.stats.frames >= 60, 15)
    sender.stop()
    s = rec.stop()
    cam = s.camera
    assert cam.sessions >= 2 and cam.outage_s > 0
    assert cam.frame_gaps >= 1 and cam.missing_frames >= 14
    ev = [e["event"] for e in read_events(tmp_path / "rec" / EVENTS_FILE)]
    assert "camera_disconnected" in ev and ev[-1] == "recording_stopped"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kill_9_leaves_a_readable_recording(tmp_path, packets):
    video = _video(tmp_path / "cam.mkv", 20.0)
    port = _free_udp_port()
    out = tmp_path / "rec"
    cmd = [sys.executable, "-m", "wdp", "record", str(out)]
    cmd += ["source.host=127.0.0.1", f"source.port={port}", "source.format=raw", "source.shape=[30,3,3]"]
    cmd += ["--camera", str(video), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _wait_until(lambda: (out / "recording.json").is_file(), 30), proc.stderr.read() if proc.poll() else ""
        sender = SimulatedRouters(port, routers=1, packets=packets, duration_s=30.0).start()
        assert _wait_until(
            lambda: (
                (out / CSI_FILE).is_file()
                and (out / CSI_FILE).stat().st_size > 250_000
                and (out / CAMERA_FILE).is_file()
                and (out / CAMERA_FILE).stat().st_size > 20_000
            ),
            30,
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        sender.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
    assert not (out / "summary.json").exists()
    s = summarize_recording(out)
    assert not s.complete and "killed" in s.notes[0]
    assert s.routers and s.routers[0].packets > 50 and s.routers[0].dropped_in_capture == -1
    assert s.camera is not None and s.camera.frames > 5
    # a torn last record (the kill can land mid-write) costs that record only
    with (out / CSI_FILE).open("ab") as fh:
        fh.write(b"\x40\x00\x00\x00\x01\x02\x03")
    s2 = summarize_recording(out)
    assert s2.torn_tail_bytes >= 7 and s2.routers[0].packets == s.routers[0].packets
    r = subprocess.run(
        [sys.executable, "-m", "wdp", "record", str(out), "--summarize", "--json"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["routers"][0]["packets"] == s.routers[0].packets


def test_bad_camera_or_source_fails_before_writing(tmp_path) -> None:
    src = LiveUdpSource(host="127.0.0.1", port=0, format="raw", shape=(30, 3, 3))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Recorder(tmp_path / "rec", src, camera=str(tmp_path / "missing.mp4"))
    assert not (tmp_path / "rec").exists()
    r = subprocess.run(
        [sys.executable, "-m", "wdp", "record", str(tmp_path / "r2"), "source=serial", "--source", "serial"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "once" in r.stderr and not (tmp_path / "r2").exists()


def test_record_from_a_followed_capture_file(tmp_path, csi_dir) -> None:
    """Any live source records: here a real ESP32 log being appended to (source=follow), the 60 rows arriving
    in two writes, no camera."""
    lines = (csi_dir / "esp32" / "esp32_csikit_example_data.csv").read_bytes().splitlines(keepends=True)
    log = tmp_path / "esp32.csv"
    log.write_bytes(b"".join(lines[:31]))
    from wdp.csi.follow import FollowSource

    rec = Recorder(tmp_path / "rec", FollowSource(path=log, from_start=True, poll_s=0.02)).start()
    assert _wait_until(lambda: sum(rec.packets.values()) == 30, 10)
    with log.open("ab") as fh:
        fh.write(b"".join(lines[31:]))
    assert _wait_until(lambda: sum(rec.packets.values()) == 60, 10)
    s = rec.stop()
    assert s.complete and s.camera is None and [r.packets for r in s.routers] == [60]
    assert list(read_csi(tmp_path / "rec").values())[0].shapes == {(64, 1, 1): 60}
