"""What a recording holds and how well it is aligned, computed from its files (works on a killed one)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from wdp.recording.clock import ClockFit, fit_camera_clock
from wdp.recording.layout import EVENTS_FILE, SUMMARY_FILE, read_events
from wdp.recording.reader import CameraTimes, camera_times, iter_csi_chunks, read_info
from wdp.recording.records import ReadStats


class RouterSummary(msgspec.Struct, frozen=True, kw_only=True):
    router: str
    packets: int
    duration_s: float
    rate_hz: float | None  # median packet rate
    shapes: dict[str, int]  # "SxRxT" -> packets
    gaps: int  # intervals of 2.5 packet periods or more
    missing_packets: int  # packets the span should hold at the median rate, less those received
    dropped_in_capture: int  # lost in the receiver's ring (the source's own count; -1: unknown after a crash)
    dropped_pct: float  # (missing + dropped in capture) / (received + those) * 100


class CameraSummary(msgspec.Struct, frozen=True, kw_only=True):
    frames: int
    sessions: int  # ffmpeg runs (more than 1: the camera dropped and came back)
    duration_s: float
    fps: float | None
    frame_gaps: int  # pts steps beyond 1.5 frame periods within a session
    missing_frames: int  # frames those gaps stand for
    outage_s: float  # time between sessions (camera disconnected)
    pts_missing: int  # frames without a presentation time (timed by arrival)
    width: int | None
    height: int | None
    clock_offset_s: float | None  # host - camera clock (session 0)
    clock_drift_ppm: float | None
    clock_fit_rms_ms: float | None
    arrival_jitter_p95_ms: float | None


class RecordingSummary(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    complete: bool  # stopped cleanly (else: a crashed recording, read up to its last whole record)
    torn_tail_bytes: int  # bytes after the last whole record (csi + camera)
    duration_s: float
    routers: list[RouterSummary]
    dropped_csi_pct: float  # over all routers
    camera: CameraSummary | None
    csi_clock: str
    # alignment of a CSI instant with the camera frame used as its label (see notes)
    alignment_error_rms_ms: float | None
    alignment_error_max_ms: float | None
    camera_latency_s: float
    notes: list[str]


def _router_summary(router: str, t: np.ndarray, shapes: dict[str, int], lost: int) -> RouterSummary:
    t = np.sort(t)
    dt = np.diff(t)
    dt = dt[dt > 0]
    period = float(np.median(dt)) if len(dt) else None
    gaps = missing = 0
    if period and len(t) > 1:
        # missing: the packets the span at the median rate should hold, less those received (a sender's
        # scheduling jitter moves packets, it does not lose them); a gap: an interval of 2.5 periods or more
        gaps = int((dt >= 2.5 * period).sum())
        missing = max(0, int(round((t[-1] - t[0]) / period)) + 1 - len(t))
    received = len(t)
    lost_known = max(lost, 0)
    total = received + missing + lost_known
    return RouterSummary(
        router=router,
        packets=received,
        duration_s=float(t[-1] - t[0]) if received > 1 else 0.0,
        rate_hz=1.0 / period if period else None,
        shapes=shapes,
        gaps=gaps,
        missing_packets=missing,
        dropped_in_capture=lost,
        dropped_pct=100.0 * (missing + lost_known) / total if total else 0.0,
    )


def camera_fit(ct: CameraTimes, session: int | None = None) -> ClockFit | None:
    m = np.isfinite(ct.pts) if session is None else (np.isfinite(ct.pts) & (ct.session == session))
    return fit_camera_clock(ct.arrival[m], ct.pts[m])


def _jpeg_size(folder: Path) -> tuple[int | None, int | None]:
    from wdp.recording.reader import iter_camera

    for f in iter_camera(folder):
        try:
            import io

            from PIL import Image

            with Image.open(io.BytesIO(f.jpeg)) as im:
                return im.size
        except Exception:  # noqa: BLE001 - a bad first frame: size unknown
            return None, None
    return None, None


def summarize_recording(folder: str | Path) -> RecordingSummary:
    folder = Path(folder)
    info = read_info(folder)
    events = read_events(folder / EVENTS_FILE)
    stopped = [e for e in events if e.get("event") == "recording_stopped"]
    lost = stopped[-1].get("source_lost", {}) if stopped else {}
    cs = ReadStats()
    ts: dict[str, list[np.ndarray]] = {}
    shapes: dict[str, dict[str, int]] = {}
    for c in iter_csi_chunks(folder, cs):
        ts.setdefault(c.router, []).append(np.frombuffer(c.t, np.float64))
        key = "x".join(map(str, c.shape[1:]))
        sh = shapes.setdefault(c.router, {})
        sh[key] = sh.get(key, 0) + c.shape[0]
    routers = [
        _router_summary(r, np.concatenate(v), shapes[r], int(lost.get(r, 0 if stopped else -1))) for r, v in ts.items()
    ]
    notes: list[str] = []
    if not stopped:
        notes.append("recording did not stop cleanly (killed?): read up to its last whole record")
    received = sum(r.packets for r in routers)
    dropped = sum(r.missing_packets + max(r.dropped_in_capture, 0) for r in routers)
    all_t = [np.concatenate(v) for v in ts.values()]
    t0 = min((float(a.min()) for a in all_t), default=info.created)
    t1 = max((float(a.max()) for a in all_t), default=info.created)

    cam_summary = None
    rms = mx = None
    kst = ReadStats()
    if info.camera:
        ct = camera_times(folder, kst)
        n = len(ct.arrival)
        fit = camera_fit(ct, 0)
        frame_gaps = missing_frames = 0
        period = None
        outage = 0.0
        for s in np.unique(ct.session):
            m = ct.session == s
            p = ct.pts[m][np.isfinite(ct.pts[m])]
            d = np.diff(p)
            d = d[d > 0]
            if len(d):
                per = float(np.median(d))
                big = d[d > 1.5 * per]
                frame_gaps += len(big)
                miss = int(np.round(big / per).sum() - len(big))
                missing_frames += miss
                # the mean period over the session counting the missing frames (pts may be rounded to ms)
                period = period or float(p[-1] - p[0]) / (len(p) - 1 + miss)
        sess = np.unique(ct.session)
        for a, b in zip(sess[:-1], sess[1:], strict=False):
            outage += float(ct.arrival[ct.session == b].min() - ct.arrival[ct.session == a].max())
        w, h = _jpeg_size(folder) if n else (None, None)
        cam_summary = CameraSummary(
            frames=n,
            sessions=len(sess),
            duration_s=float(ct.arrival.max() - ct.arrival.min()) if n > 1 else 0.0,
            fps=1.0 / period if period else None,
            frame_gaps=frame_gaps,
            missing_frames=missing_frames,
            outage_s=outage,
            pts_missing=int((~np.isfinite(ct.pts)).sum()),
            width=w,
            height=h,
            clock_offset_s=fit.offset_s if fit else None,
            clock_drift_ppm=fit.drift_ppm if fit else None,
            clock_fit_rms_ms=fit.fit_rms_ms if fit else None,
            arrival_jitter_p95_ms=fit.jitter_p95_ms if fit else None,
        )
        if fit is not None and period:
            # mapped camera times (fit rms) + nearest-frame choice (uniform within +-period/2: rms period/sqrt(12))
            rms = float(np.hypot(fit.fit_rms_ms, period * 1e3 / np.sqrt(12)))
            mx = float(3 * fit.fit_rms_ms + period * 1e3 / 2)
        notes.append(
            "alignment error = camera clock fit (lower envelope of arrival - pts) + nearest-frame choice; not "
            "included: the camera's constant capture latency (set --camera-latency-ms once measured) and the "
            "router-to-host network delay of the CSI arrival stamps (sub-millisecond on a LAN)"
        )
        if cam_summary.sessions > 1:
            notes.append(f"camera was out for {outage:.1f} s in {cam_summary.sessions - 1} disconnect(s)")
    return RecordingSummary(
        path=str(folder),
        complete=bool(stopped),
        torn_tail_bytes=cs.torn_tail_bytes + kst.torn_tail_bytes,
        duration_s=t1 - t0,
        routers=routers,
        dropped_csi_pct=100.0 * dropped / (received + dropped) if received + dropped else 0.0,
        camera=cam_summary,
        csi_clock="host clock on arrival (live sources stamp packets as they are received)",
        alignment_error_rms_ms=rms,
        alignment_error_max_ms=mx,
        camera_latency_s=info.camera_latency_s,
        notes=notes,
    )


def load_summary(folder: str | Path) -> RecordingSummary:
    """summary.json when the recording stopped cleanly, else computed now."""
    p = Path(folder) / SUMMARY_FILE
    if p.is_file():
        return msgspec.json.decode(p.read_bytes(), type=RecordingSummary)
    return summarize_recording(folder)
