"""Training-free sensing over a whole capture file (`wdp sense`): the engine's LinkSensor, one record a second.

The link under test is the capture's dominant transmitter (most frames; ``mac=`` picks another) and its
dominant frame shape; frames of other senders or shapes are counted, not mixed in. Calibration: an installer's
quiet recording of the same room and hardware (``baseline``; ``baseline_empty=True`` when nobody was in the
room, which also enables still-person presence by the empty-room profile), else the quietest
``calibration_s`` stretch of the capture itself (two passes over the file), and the report says which.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np

from wdp.csi import read_capture
from wdp.sensing.link import LinkSensor, SensingConfig


class SenseRecord(msgspec.Struct, kw_only=True, frozen=True):
    """One second of a capture (``t``: seconds from its first kept frame)."""

    t: float
    motion: bool
    motion_score: float
    presence: bool
    breathing_bpm: float | None


class LinkFrames(msgspec.Struct, kw_only=True, frozen=True):
    times: np.ndarray  # seconds from the first kept frame
    csi: np.ndarray  # (n, S, R, T) complex64
    format: str
    mac: str
    shape: tuple[int, ...]
    dropped_other_mac: int
    dropped_other_shape: int
    frames: int
    malformed: int


def link_frames(path: str | Path, format: str | None = None, mac: str | None = None) -> LinkFrames:
    """The frames of one link of a capture, in time order; a 32-bit microsecond clock that wraps is unwrapped."""
    cap = read_capture(path, format)
    n = len(cap)
    if n == 0:
        raise ValueError(f"{path}: no CSI frames (format {cap.format}, {cap.stats.malformed} malformed records)")
    macs = np.asarray(cap.meta["mac"]).reshape(n, -1)
    mac_str = np.array([":".join(f"{b:02x}" for b in m) for m in macs])
    want = mac.lower() if mac else Counter(mac_str.tolist()).most_common(1)[0][0]
    keep = mac_str == want
    if not keep.any():
        raise ValueError(f"{path}: no frame from {want} (senders: {sorted(set(mac_str.tolist()))})")
    shapes = [np.shape(cap.csi[i]) for i in range(n)]
    shape = Counter(s for s, k in zip(shapes, keep, strict=True) if k).most_common(1)[0][0]
    ok = keep & np.array([s == shape for s in shapes])
    idx = np.flatnonzero(ok)
    t = np.asarray(cap.meta["timestamp"], np.float64)[idx]
    d = np.diff(t)
    wrap = 2.0**32 / 1e6
    d[d < -wrap / 2] += wrap  # Intel 5300 timestamp_low
    t = np.concatenate([[0.0], np.cumsum(d)])
    order = np.argsort(t, kind="stable")
    return LinkFrames(
        times=t[order],
        csi=np.stack([cap.csi[i] for i in idx])[order],
        format=cap.format,
        mac=want,
        shape=tuple(shape),
        dropped_other_mac=int((~keep).sum()),
        dropped_other_shape=int((keep & ~ok).sum()),
        frames=n,
        malformed=cap.stats.malformed,
    )


def sense_capture(
    path: str | Path,
    *,
    format: str | None = None,
    baseline: str | Path | None = None,
    baseline_empty: bool = False,
    mac: str | None = None,
    config: SensingConfig | None = None,
    notes: list[str] | None = None,
) -> Iterator[SenseRecord]:
    """Yield one SenseRecord per second of the capture; ``notes`` collects what the caller should be told."""
    notes = notes if notes is not None else []
    link = link_frames(path, format, mac)
    notes.append(
        f"{Path(path).name}: {link.format}, link {link.mac}, frames {len(link.times)} of {link.frames} "
        f"(other senders {link.dropped_other_mac}, other shapes {link.dropped_other_shape}, malformed "
        f"{link.malformed}), shape {'x'.join(map(str, link.shape))}, "
        f"{len(link.times) / max(link.times[-1], 1e-9):.1f} packets/s"
    )
    sensor = LinkSensor(Path(path).name, config)
    if baseline is not None:
        base = link_frames(baseline, None, mac or None)
        if base.shape != link.shape:
            raise ValueError(f"baseline {baseline} has frames of shape {base.shape}, the capture {link.shape}")
        sensor.calibrate(base.times, base.csi, mode="baseline", empty=baseline_empty)
        notes.append(
            f"calibrated on {Path(baseline).name} ({base.times[-1]:.0f} s{', empty room' if baseline_empty else ''})"
        )
    else:
        sensor.calibrate(link.times, link.csi, mode="auto")
        notes.append(
            f"no --baseline: calibrated on the quietest {sensor.cfg.calibration_s:.0f} s of the capture itself; "
            "if the room was never quiet, motion is under-reported"
        )
    for lo in range(0, len(link.times), 64):
        for st in sensor.push_many(link.times[lo : lo + 64], link.csi[lo : lo + 64]):
            if st.calibration == "calibrating":
                continue
            yield SenseRecord(
                t=round(st.timestamp, 3),
                motion=st.motion,
                motion_score=st.motion_score,
                presence=st.presence,
                breathing_bpm=st.breathing_bpm,
            )
    status = sensor.status()
    if status.time_jumps or status.bad_frames or status.recalibrations:
        notes.append(
            f"time jumps {status.time_jumps}, bad frames {status.bad_frames}, recalibrations {status.recalibrations}"
        )
