"""Zone membership, occupancy and zone alerts for tracked floor positions.

Membership has hysteresis so a person standing on a border does not flicker in and out: entering needs
the position ``enter_margin_m`` inside the polygon, leaving needs it ``exit_margin_m`` outside, each for
``confirm_frames`` consecutive updates. A track without a position in an update (not localized, coasting)
keeps its memberships; a track that disappears from the input leaves all its zones.

Alerts follow each zone's ZoneAlertSettings: ``min_duration_s`` is how long the condition must hold (count
above max_occupancy; a person inside a restricted zone) and ``cooldown_s`` how long before the same alert
repeats (per zone for occupancy, per zone and track for breaches).

The zone set can be replaced at run time (``set_zones``); the change takes effect at the next update:
members of removed zones leave them, edited zones are re-evaluated with their new polygon (members keep
their entry time), and a zone that becomes restricted raises breaches for the people already in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from wdp import schemas
from wdp.analytics.geometry import as_polygon, points_in_polygon, signed_distance

ZoneEvent = (
    schemas.PersonEnteredZone | schemas.PersonLeftZone | schemas.AlertHighOccupancy | schemas.AlertRestrictedZoneBreach
)
Position = tuple[float, float]


@dataclass(frozen=True)
class ZoneMonitorConfig:
    enter_margin_m: float = 0.1
    exit_margin_m: float = 0.1
    confirm_frames: int = 2

    def __post_init__(self) -> None:
        if self.confirm_frames < 1:
            raise ValueError("confirm_frames must be >= 1")


@dataclass(frozen=True)
class ZoneUpdate:
    memberships: dict[int, list[str]]  # track id -> ids of the zones it is in (zone-set order)
    occupancy: dict[str, int]  # zone id -> people in it
    events: list[ZoneEvent]


@dataclass
class _Member:
    entered_at: float
    breach_alerted: bool = False


@dataclass
class _ZoneState:
    zone: schemas.Zone
    polygon: np.ndarray
    members: dict[int, _Member] = field(default_factory=dict)
    streak: dict[int, int] = field(default_factory=dict)  # consecutive updates meeting the switch condition
    over_since: float | None = None
    last_occupancy_alert: float | None = None
    last_breach_alert: dict[int, float] = field(default_factory=dict)


class ZoneMonitor:
    def __init__(
        self,
        zones: Iterable[schemas.Zone] = (),
        config: ZoneMonitorConfig | None = None,
        *,
        event_ids: Callable[[], str] = schemas.new_id,
    ):
        self.config = config or ZoneMonitorConfig()
        self._event_ids = event_ids
        self._states: dict[str, _ZoneState] = {}
        self._pending: list[schemas.Zone] | None = None
        self._last_positions: dict[int, Position] = {}
        self._apply_zones(list(zones), None, [])

    @property
    def zones(self) -> list[schemas.Zone]:
        """The zone set in force (a pending replacement shows after the next update)."""
        return [s.zone for s in self._states.values()]

    def set_zones(self, zones: Iterable[schemas.Zone]) -> None:
        """Replace the whole zone set; takes effect at the next update."""
        zones = list(zones)
        ids = [z.id for z in zones]
        if len(set(ids)) != len(ids):
            raise ValueError("zone ids must be unique")
        for z in zones:
            as_polygon(z.polygon)  # reject bad polygons now, not in the realtime loop
        self._pending = zones

    def zones_at(self, point: Position | None) -> list[str]:
        """Ids of the zones whose polygon contains ``point`` (no hysteresis)."""
        if point is None:
            return []
        p = np.asarray([point], np.float64)
        return [zid for zid, s in self._states.items() if bool(points_in_polygon(p, s.polygon)[0])]

    def memberships(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for zid, s in self._states.items():
            for tid in s.members:
                out.setdefault(tid, []).append(zid)
        return {tid: out[tid] for tid in sorted(out)}

    def occupancy(self) -> dict[str, int]:
        return {zid: len(s.members) for zid, s in self._states.items()}

    def update(self, timestamp: float, positions: Mapping[int, Position | None]) -> ZoneUpdate:
        """Advance to ``timestamp`` with the live tracks' floor positions (None: not localized now)."""
        t = float(timestamp)
        events: list[ZoneEvent] = []
        live = sorted(positions)
        for tid in live:
            p = positions[tid]
            if p is not None and np.isfinite(p).all():
                self._last_positions[tid] = (float(p[0]), float(p[1]))
        if self._pending is not None:
            zones, self._pending = self._pending, None
            self._apply_zones(zones, t, events)

        live_set = set(live)
        for s in self._states.values():
            for tid in [tid for tid in s.members if tid not in live_set]:
                self._leave(s, tid, t, events)
            s.streak = {tid: n for tid, n in s.streak.items() if tid in live_set}
            s.last_breach_alert = {tid: v for tid, v in s.last_breach_alert.items() if tid in live_set}
        self._last_positions = {tid: p for tid, p in self._last_positions.items() if tid in live_set}

        located = [tid for tid in live if positions[tid] is not None and np.isfinite(positions[tid]).all()]
        pts = np.array([positions[tid] for tid in located], np.float64).reshape(-1, 2)
        c = self.config
        for s in self._states.values():
            depth = signed_distance(pts, s.polygon) if len(pts) else np.zeros(0)
            for tid, d in zip(located, depth, strict=True):
                inside = tid in s.members
                switching = d <= -c.exit_margin_m if inside else d >= c.enter_margin_m
                if not switching:
                    s.streak.pop(tid, None)
                    continue
                s.streak[tid] = s.streak.get(tid, 0) + 1
                if s.streak[tid] < c.confirm_frames:
                    continue
                del s.streak[tid]
                if inside:
                    self._leave(s, tid, t, events)
                else:
                    s.members[tid] = _Member(entered_at=t)
                    events.append(
                        schemas.PersonEnteredZone(
                            timestamp=t,
                            track_id=tid,
                            zone_id=s.zone.id,
                            position=self._last_positions.get(tid),
                            event_id=self._event_ids(),
                        )
                    )
            self._check_breaches(s, t, events)
            self._check_occupancy(s, t, events)
        return ZoneUpdate(self.memberships(), self.occupancy(), events)

    # ------------------------------------------------------------------------------------------ internals

    def _apply_zones(self, zones: list[schemas.Zone], t: float | None, events: list[ZoneEvent]) -> None:
        new_ids = {z.id for z in zones}
        for zid in [zid for zid in self._states if zid not in new_ids]:
            s = self._states.pop(zid)
            if t is not None:
                for tid in list(s.members):
                    self._leave(s, tid, t, events)
        states: dict[str, _ZoneState] = {}
        for z in zones:
            old = self._states.get(z.id)
            if old is None:
                states[z.id] = _ZoneState(zone=z, polygon=as_polygon(z.polygon))
                continue
            if z.restricted and not old.zone.restricted:
                for m in old.members.values():
                    m.breach_alerted = False  # people already inside are now in breach
            if z.max_occupancy != old.zone.max_occupancy:
                old.over_since = None
            old.zone, old.polygon = z, as_polygon(z.polygon)
            old.streak.clear()
            states[z.id] = old
        self._states = states

    def _leave(self, s: _ZoneState, tid: int, t: float, events: list[ZoneEvent]) -> None:
        m = s.members.pop(tid)
        events.append(
            schemas.PersonLeftZone(
                timestamp=t,
                track_id=tid,
                zone_id=s.zone.id,
                dwell_s=max(0.0, t - m.entered_at),
                position=self._last_positions.get(tid),
                event_id=self._event_ids(),
            )
        )

    def _check_breaches(self, s: _ZoneState, t: float, events: list[ZoneEvent]) -> None:
        z = s.zone
        if not (z.restricted and z.alerts.restricted_breach):
            return
        for tid, m in s.members.items():
            if m.breach_alerted or t - m.entered_at < z.alerts.min_duration_s:
                continue
            m.breach_alerted = True  # one decision per visit, alerted or suppressed by the cooldown
            last = s.last_breach_alert.get(tid)
            if last is not None and t - last < z.alerts.cooldown_s:
                continue
            s.last_breach_alert[tid] = t
            events.append(
                schemas.AlertRestrictedZoneBreach(
                    timestamp=t,
                    zone_id=z.id,
                    track_id=tid,
                    position=self._last_positions.get(tid),
                    event_id=self._event_ids(),
                )
            )

    def _check_occupancy(self, s: _ZoneState, t: float, events: list[ZoneEvent]) -> None:
        z = s.zone
        count = len(s.members)
        if z.max_occupancy is None or not z.alerts.high_occupancy or count <= z.max_occupancy:
            s.over_since = None
            return
        if s.over_since is None:
            s.over_since = t
        held = t - s.over_since
        if held < z.alerts.min_duration_s:
            return
        if s.last_occupancy_alert is not None and t - s.last_occupancy_alert < z.alerts.cooldown_s:
            return
        s.last_occupancy_alert = t
        events.append(
            schemas.AlertHighOccupancy(
                timestamp=t,
                zone_id=z.id,
                current_occupancy=count,
                max_occupancy=z.max_occupancy,
                duration_seconds=held,
                severity="high" if count >= 2 * max(z.max_occupancy, 1) else "medium",
                event_id=self._event_ids(),
            )
        )
