"""The activity/fall model inside the engine: one window stream per router, classified off the reader threads,
``person.activity_detected`` / ``person.fall_detected`` (``detector="model"``, ``router_id`` set, no track) on
the bus like every other event.

Per router (a link): the first ``decide_frames`` usable frames fix its transmitter (the most common source MAC,
where the source reports MACs: a capture or a nexmon router hears other devices too) and its frame shape (the
most common one of that transmitter); ``model: auto`` then picks the shipped model whose card matches that
shape (wdp.activity.find_shipped), a configured model directory must match it. No match: the link is "off"
with the reason in its status (EngineMetrics.activity, the ``engine.activity`` health component, the status
line) and one log line; its packets are still counted. Frames of other transmitters or another shape are
counted and skipped (a router that keeps sending another sender or shape for ``redecide_frames`` frames has
changed: the link decides again). Empty or non-finite frames, and timestamps that do not advance, are counted
and skipped; a gap longer than ``max_gap_s`` restarts the window.

Windows: the card's ``window_s`` seconds ending every ``hop_s`` seconds of stream time after the link's first
frame (wdp.activity.window_ends: ``wdp classify`` on the same recording has the same window ends), as the
card's preprocessing makes them (resampled to its packet rate) from the frames of the live buffer: the same
values offline and live where the card has no occupancy filter (Intel 5300); with one (nexmon) its median is
the buffer's, not the whole capture's, and probabilities differ a little (tests/test_engine_activity.py).
The reader thread only buffers frames and cuts windows; one worker thread runs the model (about a millisecond
a window) from a bounded queue that drops its oldest window when inference lags (counted per link).

Events per link: a fall on the first window whose ``p_fall`` reaches the card's threshold (or
``fall_threshold``) after a window below it, at most one per ``fall_cooldown_s``; an activity when the most
probable class changes (at least ``min_confidence``, leading in ``activity_hold_windows`` windows in a row).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wdp import schemas
from wdp.engine.metrics import LatencyRecorder

_log = logging.getLogger(__name__)
ActivitySource = Literal["model", "keypoints", "both"]


@dataclass(frozen=True)
class ActivitySettings:
    """``EngineConfig.activity`` (serve config ``activity:``)."""

    detector: ActivitySource = "both"  # which detector's activity/fall events are published
    model: str = "auto"  # auto: the shipped model whose card matches each router's frame shape; or a model dir
    min_confidence: float = 0.5  # activity events only for a class at least this probable ...
    activity_hold_windows: int = 2  # ... leading in this many windows in a row
    fall_threshold: float | None = None  # None: the card's (chosen on validation folds)
    fall_cooldown_s: float = 10.0  # at most one model fall event per router this often
    hop_s: float | None = None  # None: the card's
    max_gap_s: float = 1.0  # a longer gap between a router's packets restarts its window
    decide_frames: int = 20  # frames that fix a router's transmitter and shape
    redecide_frames: int = 200  # consecutive frames of one other shape that make a router decide again
    queue_windows: int = 32  # windows waiting for the model (all routers); the oldest is dropped beyond

    def __post_init__(self) -> None:
        if self.detector not in ("model", "keypoints", "both"):
            raise ValueError(f"activity.detector must be model, keypoints or both, not {self.detector!r}")
        if not self.model:
            raise ValueError("activity.model must be 'auto' or a model directory")
        if min(self.decide_frames, self.redecide_frames, self.queue_windows, self.activity_hold_windows) < 1:
            raise ValueError("activity: decide_frames, redecide_frames, queue_windows, activity_hold_windows >= 1")
        if not (self.max_gap_s > 0 and self.fall_cooldown_s >= 0 and 0 <= self.min_confidence <= 1):
            raise ValueError("activity: max_gap_s > 0, fall_cooldown_s >= 0, 0 <= min_confidence <= 1")
        if self.hop_s is not None and not self.hop_s > 0:
            raise ValueError("activity.hop_s must be > 0")

    @property
    def runs_model(self) -> bool:
        return self.detector in ("model", "both")

    @property
    def keeps_keypoints(self) -> bool:
        return self.detector in ("keypoints", "both")


@dataclass(eq=False)
class _Job:
    link: _Link
    classifier: Any  # the link's model when the window was cut (the link may decide again meanwhile)
    times: np.ndarray  # (n,) engine clock
    csi: np.ndarray  # (n, S, R, T)
    cut_at: float  # time.perf_counter() when the window was cut (the packet that completed it came)


@dataclass(eq=False)
class _Link:
    router_id: str
    state: Literal["deciding", "on", "off"] = "deciding"
    reason: str | None = None
    classifier: Any = None  # wdp.activity.ActivityClassifier when on
    model_dir: str | None = None
    shape: tuple[int, ...] | None = None
    window_s: float = 0.0
    hop_s: float = 0.0
    fall_threshold: float = 0.5
    mac: int = -1  # the transmitter it reads (48-bit; -1: unknown)
    pending: list[tuple[float, np.ndarray, int]] = field(default_factory=list)  # frames while deciding
    frames: deque[tuple[float, np.ndarray]] = field(default_factory=deque)
    origin: float | None = None  # stream time of the window grid's start (first frame, or after a gap)
    next_end: float = math.inf
    last_t: float = -math.inf
    other_run: int = 0  # consecutive frames of one other sender or shape ...
    other_run_key: tuple[int, tuple[int, ...]] | None = None  # ... this (mac, shape)
    # counters (reader thread) and results (worker thread)
    packets: int = 0
    bad_frames: int = 0
    other_shape: int = 0
    other_sender: int = 0
    gaps: int = 0
    windows: int = 0
    windows_dropped: int = 0
    errors: int = 0
    last_window_at: float | None = None
    last: Any = None  # the latest WindowResult
    activity: str | None = None  # the latest activity published
    candidate: str | None = None  # the confident leader of the latest window ...
    streak: int = 0  # ... and in how many windows in a row it led
    was_fall: bool = False
    last_fall_at: float = -math.inf


class ActivityStage:
    """Feed with ``on_packets`` from each router's reader thread; ``start``/``stop`` the model worker;
    ``publish`` receives every event (the engine's event path)."""

    def __init__(
        self,
        settings: ActivitySettings,
        publish: Callable[[schemas.EventBase], None],
        *,
        event_ids: Callable[[], str] = schemas.new_id,
        shipped_root: Path | None = None,
    ) -> None:
        from wdp.activity import ActivityClassifier

        self.settings = settings
        self._publish = publish
        self._event_ids = event_ids
        self._shipped_root = shipped_root
        self._links: dict[str, _Link] = {}
        self._classifiers: dict[str, Any] = {}  # model dir -> classifier (routers of one shape share it)
        self._configured: Any = None
        if settings.model != "auto":  # a configured model that cannot load fails the engine before it runs
            self._configured = ActivityClassifier.load(settings.model)
            self._classifiers[str(Path(settings.model))] = self._configured
        self._lock = threading.Lock()  # links dict, classifier cache
        self._qcond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        # "model": preprocessing + inference of one window; "window_to_event": the packet that completed a
        # window -> its events published (queue wait included)
        self.latency = LatencyRecorder(("model", "window_to_event"))

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._worker, name="wdp-engine-activity", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._qcond:
            self._stopping = True
            self._qcond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every window cut so far is classified and its events published."""
        with self._qcond:
            return self._qcond.wait_for(lambda: not self._queue and not self._busy, timeout)

    # ------------------------------------------------------------------------------------------ input
    def on_packets(
        self,
        router_id: str,
        times: np.ndarray,
        csi: Sequence[np.ndarray],
        mac: np.ndarray | None = None,
        *,
        block: bool = False,
    ) -> None:
        """One batch of one router's packets (call from the thread that owns the router). ``mac``: each packet's
        transmitter as a 48-bit number (-1 unknown; None: the source does not say). ``block``: wait for room in
        the window queue instead of dropping its oldest window (sources that are not realtime)."""
        link = self._links.get(router_id)
        if link is None:
            with self._lock:
                link = self._links.setdefault(router_id, _Link(router_id))
        for i in range(len(times)):
            link.packets += 1
            self._push(link, float(times[i]), csi[i], int(mac[i]) if mac is not None else -1, block)

    def _push(self, link: _Link, t: float, h: Any, mac: int, block: bool) -> None:
        if link.state == "off" and mac == link.mac and getattr(h, "shape", None) == link.shape:
            return  # the common case of a router no model reads: no per-frame checks
        if not _usable(t, h):
            link.bad_frames += 1
            return
        if link.state == "deciding":
            if t <= link.last_t:
                link.bad_frames += 1
                return
            link.pending.append((t, h, mac))
            link.last_t = t
            if len(link.pending) >= self.settings.decide_frames:
                self._decide(link, block)
            return
        if h.shape != link.shape or mac != link.mac:  # on or off: another sender or shape, counted and skipped
            if mac != link.mac:
                link.other_sender += 1
            else:
                link.other_shape += 1
            key = (mac, h.shape)
            if key == link.other_run_key:
                link.other_run += 1
            else:
                link.other_run_key, link.other_run = key, 1
            if link.other_run >= self.settings.redecide_frames:  # the router itself changed: decide again
                _log.warning(
                    "activity model: router %s now sends frames of shape %s from %s (was %s from %s): deciding again",
                    link.router_id,
                    _shape_str(h.shape),
                    _mac_str(mac),
                    _shape_str(link.shape),
                    _mac_str(link.mac),
                )
                self._reset(link)
            return
        link.other_run, link.other_run_key = 0, None
        if link.state == "off":
            return
        if t <= link.last_t:  # time went back or stood still: the window grid cannot place it
            link.bad_frames += 1
            return
        self._add_frame(link, t, h, block)

    def _add_frame(self, link: _Link, t: float, h: np.ndarray, block: bool) -> None:
        if link.origin is None or t - link.last_t > self.settings.max_gap_s:
            if link.origin is not None:
                link.gaps += 1
            link.frames.clear()
            link.origin = t
            link.next_end = t + link.window_s
        link.last_t = t
        link.frames.append((t, h))
        keep_from = t - link.window_s - self.settings.max_gap_s  # one frame before the window interpolates
        while len(link.frames) > 2 and link.frames[1][0] < keep_from:
            link.frames.popleft()
        if t + 1e-9 >= link.next_end:
            times = np.fromiter((f[0] for f in link.frames), np.float64, len(link.frames))
            job = _Job(link, link.classifier, times, np.stack([f[1] for f in link.frames]), time.perf_counter())
            self._enqueue(job, block)
            # the next window end after this frame (a late frame skips the ends it passed)
            k = math.floor((t - link.next_end) / link.hop_s + 1e-9) + 1
            link.next_end += k * link.hop_s

    def _decide(self, link: _Link, block: bool) -> None:
        pending, link.pending = link.pending, []
        # the dominant transmitter, then its dominant frame shape (as `wdp classify` picks a capture's link)
        mac = Counter(m for _, _, m in pending).most_common(1)[0][0]
        shape = Counter(h.shape for _, h, m in pending if m == mac).most_common(1)[0][0]
        link.mac, link.shape = mac, shape
        clf, model_dir, reason = self._model_for(shape)
        if clf is None:
            link.state, link.reason = "off", reason
            # a warning when the model is all there is; with detector=both the keypoint heuristic still covers
            # the router (e.g. README command 1's simulated 3x3 routers), so it is worth an info line only
            level = logging.WARNING if self.settings.detector == "model" else logging.INFO
            _log.log(level, "activity model off for router %s: %s", link.router_id, reason)
            link.other_sender += sum(m != mac for _, _, m in pending)
            link.other_shape += sum(m == mac and h.shape != shape for _, h, m in pending)
            return
        s = self.settings
        card = clf.card
        link.classifier, link.model_dir = clf, model_dir
        link.window_s = float(card.window_s)
        link.hop_s = float(s.hop_s if s.hop_s is not None else card.hop_s)
        link.fall_threshold = float(s.fall_threshold if s.fall_threshold is not None else card.fall_threshold)
        link.state, link.reason = "on", None
        _log.info(
            "activity model on for router %s: %s (%s frames, %.1f s windows every %.1f s)",
            link.router_id,
            model_dir,
            _shape_str(shape),
            link.window_s,
            link.hop_s,
        )
        link.last_t = -math.inf
        for t, h, m in pending:
            if m != mac:
                link.other_sender += 1
            elif h.shape != shape:
                link.other_shape += 1
            else:
                self._add_frame(link, t, h, block)

    def _model_for(self, shape: tuple[int, ...]) -> tuple[Any, str | None, str]:
        """(classifier, model dir, reason when None)."""
        from wdp.activity import ActivityClassifier, find_shipped
        from wdp.activity_offline import shipped_shapes

        if len(shape) != 3:
            return None, None, f"frames of shape {_shape_str(shape)} are not (subcarriers, rx, tx)"
        if self._configured is not None:
            if not self._configured.matches(shape):
                want = _shape_str(self._configured.card.shape)
                why = f"model {self.settings.model} expects {want} frames, the router sends {_shape_str(shape)}"
                return None, None, why
            return self._configured, str(Path(self.settings.model)), ""
        found = find_shipped(shape, self._shipped_root)  # type: ignore[arg-type]
        if found is None:
            have = ", ".join(shipped_shapes(self._shipped_root)) or "none"
            why = (
                f"no shipped activity model matches frames of shape {_shape_str(shape)} (subcarriers x rx x tx; "
                f"shipped: {have}); set activity.model to a model trained for this hardware"
            )
            return None, None, why
        key = str(found)
        with self._lock:
            clf = self._classifiers.get(key)
        if clf is None:
            try:
                clf = ActivityClassifier.load(found)
            except Exception as e:  # a broken shipped model must not take the router's reader down
                return None, None, f"shipped model {found} failed to load: {type(e).__name__}: {e}"
            with self._lock:
                clf = self._classifiers.setdefault(key, clf)
        return clf, key, ""

    def _reset(self, link: _Link) -> None:
        link.state, link.reason, link.classifier, link.shape = "deciding", None, None, None
        link.frames.clear()
        link.pending = []
        link.origin, link.next_end, link.last_t = None, math.inf, -math.inf
        link.other_run, link.other_run_key = 0, None

    def _enqueue(self, job: _Job, block: bool) -> None:
        cap = self.settings.queue_windows
        with self._qcond:
            if block:
                self._qcond.wait_for(lambda: len(self._queue) < cap or self._stopping)
            if len(self._queue) >= cap:
                self._queue.popleft().link.windows_dropped += 1
            self._queue.append(job)
            self._qcond.notify_all()

    # ------------------------------------------------------------------------------------------ worker
    def _worker(self) -> None:
        while True:
            with self._qcond:
                self._qcond.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    self._queue.clear()
                    self._qcond.notify_all()
                    return
                job = self._queue.popleft()
                self._busy = True
            try:
                self._classify(job)
            finally:
                with self._qcond:
                    self._busy = False
                    self._qcond.notify_all()

    def _classify(self, job: _Job) -> None:
        link = job.link
        end = float(job.times[-1])
        t0 = time.perf_counter()
        try:
            res = job.classifier.classify_window(job.csi, job.times, t=end)
        except Exception:  # one bad window must not stop the others
            link.errors += 1
            if link.errors == 1:
                _log.exception("activity model failed on router %s (counted from now on)", link.router_id)
            return
        if res is None:  # fewer than two usable frames (cannot happen for a window the stage cut)
            return
        t1 = time.perf_counter()
        link.windows += 1
        link.last_window_at = end
        link.last = res
        for ev in self._events(link, res):
            self._publish(ev)
        self.latency.add("model", t1 - t0)
        self.latency.add("window_to_event", time.perf_counter() - job.cut_at)

    def _events(self, link: _Link, res: Any) -> list[schemas.EventBase]:
        s = self.settings
        out: list[schemas.EventBase] = []
        # a new activity once it has led, confidently, for activity_hold_windows windows in a row (no flicker)
        confident = res.activity if res.p_activity >= s.min_confidence else None
        link.streak = link.streak + 1 if confident is not None and confident == link.candidate else 1
        link.candidate = confident
        if confident is not None and confident != link.activity and link.streak >= s.activity_hold_windows:
            link.activity = confident
            out.append(
                schemas.PersonActivityDetected(
                    timestamp=res.t,
                    activity=res.activity,
                    confidence=float(res.p_activity),
                    detector="model",
                    router_id=link.router_id,
                    event_id=self._event_ids(),
                )
            )
        fall = res.p_fall >= link.fall_threshold
        if fall and not link.was_fall and res.t - link.last_fall_at >= s.fall_cooldown_s:
            link.last_fall_at = res.t
            # "high" when the model is at least halfway from its threshold to certainty
            high = res.p_fall >= link.fall_threshold + 0.5 * (1.0 - link.fall_threshold)
            out.append(
                schemas.PersonFallDetected(
                    timestamp=res.t,
                    confidence=float(res.p_fall),
                    severity="high" if high else "medium",
                    detector="model",
                    router_id=link.router_id,
                    event_id=self._event_ids(),
                )
            )
        link.was_fall = fall
        return out

    # ------------------------------------------------------------------------------------------ status
    def links(self) -> list[schemas.ActivityLinkStatus]:
        with self._lock:
            links = list(self._links.values())
        return [_status(x) for x in links]


def _usable(t: float, h: Any) -> bool:
    if not math.isfinite(t) or not isinstance(h, np.ndarray) or h.size == 0 or h.ndim != 3:
        return False
    return bool(np.isfinite(h).all())


def _mac_str(mac: int) -> str:
    return "an unknown sender" if mac < 0 else ":".join(f"{(mac >> (8 * i)) & 0xFF:02x}" for i in range(5, -1, -1))


def _shape_str(shape: Sequence[int] | None) -> str:
    return "x".join(str(int(n)) for n in shape) if shape is not None else "?"


def _status(x: _Link) -> schemas.ActivityLinkStatus:
    last = x.last
    return schemas.ActivityLinkStatus(
        router_id=x.router_id,
        state=x.state,
        reason=x.reason,
        model=x.model_dir,
        shape=[int(n) for n in x.shape] if x.shape is not None else [],
        packets=x.packets,
        bad_frames=x.bad_frames,
        other_shape=x.other_shape,
        other_sender=x.other_sender,
        mac=_mac_str(x.mac) if x.mac >= 0 else None,
        gaps=x.gaps,
        windows=x.windows,
        windows_dropped=x.windows_dropped,
        errors=x.errors,
        last_window_at=x.last_window_at,
        activity=last.activity if last is not None else None,
        p_fall=float(last.p_fall) if last is not None else None,
    )
