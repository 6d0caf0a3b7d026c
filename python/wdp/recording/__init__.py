"""Own-room recordings: `wdp record` (CSI + camera on one clock into an append-only folder), `wdp label`
(a 2D pose teacher on the camera frames) and reading them back for training (wdp.recording.windows)."""

from __future__ import annotations

from wdp.recording.clock import ClockFit, fit_camera_clock
from wdp.recording.layout import CameraFrame, CsiChunk, RecordingInfo
from wdp.recording.reader import RouterCsi, camera_times, iter_camera, read_csi, read_info
from wdp.recording.recorder import Recorder, run_recording
from wdp.recording.summary import RecordingSummary, load_summary, summarize_recording

__all__ = [
    "CameraFrame",
    "ClockFit",
    "CsiChunk",
    "Recorder",
    "RecordingInfo",
    "RecordingSummary",
    "RouterCsi",
    "camera_times",
    "fit_camera_clock",
    "iter_camera",
    "load_summary",
    "read_csi",
    "read_info",
    "run_recording",
    "summarize_recording",
]
