"""Training-free sensing inside the engine: one wdp.sensing.LinkSensor per router, zone states combined from
the routers placed in each zone, and the events of both (wdp.sensing.SensingEvents).

A router's state says ``router_id`` (``zone_id`` None); a zone's says ``zone_id`` (``router_id`` None), so a
filter on one never mixes in the other. Events follow the same rule.

Threads: ``on_packets`` runs in the reader thread of the source that owns the router (a router belongs to
one source), so a link's sensor and event tracker are only ever touched by that thread. A zone combines
routers of possibly different sources, so the zone side runs under one lock. ``current`` and ``links`` are
snapshots for the API.

Zone ticks: a zone publishes its state for report tick T once every live member has reported T (a member is
live while its latest state is at most ``zone_stale_s`` older than the newest member's), so aligned routers
give one zone state per tick, and a router that stops sending stops holding its zone back.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wdp import schemas
from wdp.sensing import LinkSensor, SensingConfig, SensingEvents, combine_zone

_log = logging.getLogger(__name__)
_PLAIN = (str, int, float, bool, type(None))
_ZONE_HISTORY = 64  # states kept per zone member: a member may run this many ticks ahead of the others


@dataclass(frozen=True)
class SensingSettings:
    """``EngineConfig.sensing`` (serve config ``sensing:``)."""

    enabled: bool = True
    detector: SensingConfig = field(default_factory=SensingConfig)  # thresholds of every link
    zones: Mapping[str, Sequence[str]] = field(default_factory=dict)  # zone id -> router ids placed in it
    baselines: Mapping[str, str] = field(default_factory=dict)  # router id -> quiet recording (capture file)
    breathing_step_bpm: float = 1.0  # breathing.updated when the rate moves this much
    breathing_min_interval_s: float = 10.0  # ... at most this often
    zone_stale_s: float = 3.0  # a zone member silent this long (stream time) no longer holds the zone back

    def __post_init__(self) -> None:
        for zone_id, routers in self.zones.items():
            if isinstance(routers, str) or not all(isinstance(r, str) for r in routers):
                raise ValueError(f"sensing.zones.{zone_id} must be a list of router ids")


@dataclass(eq=False)
class _Link:
    sensor: LinkSensor
    events: SensingEvents
    zone_ids: tuple[str, ...]
    details: Callable[[], Mapping[str, Any]] | None = None
    latest: schemas.SensingState | None = None
    errors: int = 0


@dataclass(eq=False)
class _Zone:
    zone_id: str
    events: SensingEvents
    members: dict[str, deque[schemas.SensingState]] = field(default_factory=dict)  # recent states per member
    last_tick: float = -math.inf
    latest: schemas.SensingState | None = None


class SensingStage:
    def __init__(self, settings: SensingSettings, *, event_ids: Callable[[], str] = schemas.new_id) -> None:
        self.settings = settings
        self._event_ids = event_ids
        self._links: dict[str, _Link] = {}
        self._zone_state = {zid: _Zone(zid, self._events_for(zone_id=zid)) for zid in settings.zones}
        self._zones_of: dict[str, tuple[str, ...]] = {}
        for zid, routers in settings.zones.items():
            for rid in routers:
                self._zones_of[rid] = (*self._zones_of.get(rid, ()), zid)
        self._lock = threading.Lock()
        self.states = 0  # states produced (routers and zones)

    def _events_for(self, *, router_id: str | None = None, zone_id: str | None = None) -> SensingEvents:
        s = self.settings
        return SensingEvents(
            router_id=router_id,
            zone_id=zone_id,
            breathing_step_bpm=s.breathing_step_bpm,
            breathing_min_interval_s=s.breathing_min_interval_s,
            event_ids=self._event_ids,
        )

    def _link(self, router_id: str, kind: schemas.FrameSource) -> _Link:
        with self._lock:
            link = self._links.get(router_id)
            if link is None:
                sensor = LinkSensor(router_id, self.settings.detector, source=kind)
                link = _Link(sensor, self._events_for(router_id=router_id), self._zones_of.get(router_id, ()))
                self._links[router_id] = link
            return link

    # ------------------------------------------------------------------------------------------ input
    def calibrate_baselines(self) -> None:
        """Calibrate the routers ``baselines`` names from their quiet recordings (raises on a bad file)."""
        from wdp.csi import read_capture

        for router_id, path in self.settings.baselines.items():
            cap = read_capture(path)
            times = np.asarray(cap.meta["timestamp"], np.float64)
            try:
                self._link(router_id, "live").sensor.calibrate(times, list(cap.csi), mode="baseline")
            except ValueError as e:
                raise ValueError(f"sensing baseline of router {router_id!r} ({path}): {e}") from None

    def on_packets(
        self,
        router_id: str,
        kind: schemas.FrameSource,
        times: np.ndarray,
        csi: Sequence[np.ndarray],
        details: Callable[[], Mapping[str, Any]] | None = None,
    ) -> tuple[list[schemas.SensingState], list[schemas.EventBase]]:
        """One batch of one router's packets (call from the thread that owns the router). Returns the states
        it completed (the router's, then its zones') and their events."""
        link = self._links.get(router_id) or self._link(router_id, kind)
        link.sensor.source = kind
        if details is not None:
            link.details = details
        try:
            states = link.sensor.push_many(times, csi)
        except Exception:  # the detector promises not to raise; if it ever does, pose must go on
            link.errors += 1
            if link.errors == 1:
                _log.exception("sensing failed on router %s (counted from now on)", router_id)
            return [], []
        if not states:
            return [], []
        events: list[schemas.EventBase] = []
        for s in states:
            events += link.events.update(s)
        link.latest = states[-1]
        out = list(states)
        if link.zone_ids:
            with self._lock:
                for zid in link.zone_ids:
                    self._zone_update(self._zone_state[zid], router_id, states, out, events)
        with self._lock:
            self.states += len(out)
        return out, events

    def _zone_update(
        self,
        zone: _Zone,
        router_id: str,
        states: list[schemas.SensingState],
        out: list[schemas.SensingState],
        events: list[schemas.EventBase],
    ) -> None:
        stale = self.settings.zone_stale_s
        recent = zone.members.setdefault(router_id, deque(maxlen=_ZONE_HISTORY))
        for s in states:
            recent.append(s)
            newest = max(q[-1].timestamp for q in zone.members.values())
            live = [q for q in zone.members.values() if q[-1].timestamp >= newest - stale]
            tick = min(q[-1].timestamp for q in live)
            if tick <= zone.last_tick:
                continue
            zone.last_tick = tick
            # each live member's state AT the tick (a member that ran ahead has later ones too)
            at_tick = [m for q in live if (m := _at(q, tick)) is not None]
            zs = combine_zone(zone.zone_id, at_tick, tick)
            if zs is None:  # none of the members is calibrated yet
                continue
            zone.latest = zs
            out.append(zs)
            events += zone.events.update(zs)

    # ------------------------------------------------------------------------------------------ snapshots
    def current(self) -> list[schemas.SensingState]:
        """The latest state of every router, then of every zone."""
        with self._lock:
            links = list(self._links.values())
            zones = list(self._zone_state.values())
        return [x.latest for x in links if x.latest is not None] + [z.latest for z in zones if z.latest is not None]

    def links(self) -> list[schemas.SensingLinkStatus]:
        with self._lock:
            items = list(self._links.items())
        return [_link_status(rid, link) for rid, link in items]


def _at(states: deque[schemas.SensingState], t: float) -> schemas.SensingState | None:
    """The latest of a member's recent states at or before ``t``."""
    for s in reversed(states):
        if s.timestamp <= t + 1e-6:
            return s
    return None


def _link_status(router_id: str, link: _Link) -> schemas.SensingLinkStatus:
    st = link.sensor.status()
    source: dict[str, Any] = {}
    if link.details is not None:
        try:
            source = {str(k): v if isinstance(v, _PLAIN) else str(v) for k, v in dict(link.details()).items()}
        except Exception as e:  # a source's report must not break the status page
            source = {"status_details_error": f"{type(e).__name__}: {e}"}
    notes = list(st.notes)
    if link.errors:
        notes.append(f"sensing failed on {link.errors} batches (see the server log)")
    return schemas.SensingLinkStatus(
        router_id=router_id,
        calibration=st.calibration,
        packets=st.packets,
        bad_frames=st.bad_frames,
        shape_changes=st.shape_changes,
        time_jumps=st.time_jumps,
        recalibrations=st.recalibrations,
        features=st.features,
        shape=[int(n) for n in st.shape],
        zone_ids=list(link.zone_ids),
        last_state_at=link.latest.timestamp if link.latest is not None else None,
        notes=notes,
        source=source,
    )
