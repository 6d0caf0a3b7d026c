"""One realtime step: detections -> tracks -> floor positions -> zones, activity, falls -> persons + events.

``AnalyticsPipeline.update(timestamp, detections)`` returns the frame's ``schemas.Person`` list (keypoints
and boxes normalized to 0..1 by ``image_size``) and its events in a fixed order: person.detected, zone
events and alerts, person.activity_detected, person.fall_detected, person.lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec
import numpy as np

from wdp import schemas
from wdp.analytics.activity import ActivityClassifier, ActivityConfig, ActivityEstimate
from wdp.analytics.falls import FallConfig, FallDetector
from wdp.analytics.pose_features import pose_features
from wdp.analytics.zones import ZoneMonitor, ZoneMonitorConfig
from wdp.tracking.detections import Detections
from wdp.tracking.floor import FloorProjector
from wdp.tracking.tracker import Tracker, TrackerConfig, TrackSnapshot

Position = tuple[float, float]


@dataclass(frozen=True)
class PipelineConfig:
    image_size: tuple[float, float] = (256.0, 256.0)  # (width, height) in input units; (1, 1) if normalized
    publish_coast_s: float = 0.5  # a track unseen longer than this is still tracked but not published
    min_keypoint_score: float = 0.3  # for choosing the foot point
    tracker: TrackerConfig | None = None  # default: TrackerConfig(scale=image width)
    zones: ZoneMonitorConfig = field(default_factory=ZoneMonitorConfig)
    activity: ActivityConfig = field(default_factory=ActivityConfig)
    falls: FallConfig = field(default_factory=FallConfig)


class AnalyticsPipeline:
    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        projector: FloorProjector | None = None,
        zones: Iterable[schemas.Zone] = (),
        event_ids: Callable[[], str] = schemas.new_id,
        track_ids: Callable[[], int] | None = None,  # public track ids (default: 1, 2, ...; see wdp.engine.ids)
    ):
        self.config = c = config or PipelineConfig()
        self.projector = projector  # image (input units) -> floor metres; None: no positions, no zones
        self.tracker = Tracker(
            c.tracker or TrackerConfig(scale=float(c.image_size[0])),
            event_ids=event_ids,
            track_ids=track_ids,
            projector=projector,
        )
        self.zones = ZoneMonitor(zones, c.zones, event_ids=event_ids)
        self.activity = ActivityClassifier(c.activity, event_ids=event_ids)
        self.falls = FallDetector(c.falls, event_ids=event_ids)
        self._last_position: dict[int, Position] = {}
        self.occupancy: dict[str, int] = self.zones.occupancy()

    def set_zones(self, zones: Iterable[schemas.Zone]) -> None:
        """Replace the zone set live; tracks are re-evaluated at the next update."""
        self.zones.set_zones(zones)

    def update(
        self, timestamp: float, detections: Detections | None
    ) -> tuple[list[schemas.Person], list[schemas.Event]]:
        c = self.config
        t = float(timestamp)
        tracked = self.tracker.update(t, detections if detections is not None else Detections.empty())
        tracks = tracked.tracks

        positions = self._locate(tracks)  # None for tracks not measured this update
        for tid, p in positions.items():
            if p is not None:
                self._last_position[tid] = p
        zones_before = self.zones.memberships()
        zone_update = self.zones.update(t, positions)
        self.occupancy = zone_update.occupancy
        members = zone_update.memberships
        feats = (
            pose_features(np.stack([tr.keypoints for tr in tracks]), c.activity.min_keypoint_score) if tracks else None
        )
        estimates, activity_events = self.activity.update(t, tracks, positions, feats)
        fall_events = self.falls.update(t, tracks, estimates, feats)

        def zone_of(tid: int) -> str | None:
            ids = members.get(tid) or self.zones.zones_at(self._last_position.get(tid))
            return ids[0] if ids else None

        events: list[schemas.Event] = []
        for ev in tracked.events:
            if isinstance(ev, schemas.PersonDetected):
                events.append(
                    msgspec.structs.replace(
                        ev,
                        position=self._last_position.get(ev.track_id),
                        zone_id=zone_of(ev.track_id),
                    )
                )
        events.extend(zone_update.events)
        events.extend(msgspec.structs.replace(ev, zone_id=zone_of(ev.track_id)) for ev in activity_events)
        for ev in fall_events:
            zone_ids = members.get(ev.track_id) or self.zones.zones_at(self._last_position.get(ev.track_id))
            zone_settings = {z.id: z.alerts for z in self.zones.zones}
            # Zones can switch fall alerts off (e.g. an exercise mat); outside every zone a fall alerts.
            alert = not zone_ids or any(zone_settings[z].fall for z in zone_ids if z in zone_settings)
            events.append(
                msgspec.structs.replace(
                    ev,
                    zone_id=zone_ids[0] if zone_ids else None,
                    position=self._last_position.get(ev.track_id),
                    alert_triggered=alert,
                )
            )
        for snap in tracked.lost:
            before = zones_before.get(snap.track_id)
            pos = self._last_position.pop(snap.track_id, None)
            for ev in tracked.events:
                if isinstance(ev, schemas.PersonLost) and ev.track_id == snap.track_id:
                    events.append(msgspec.structs.replace(ev, position=pos, zone_id=before[0] if before else None))

        persons = [
            self._person(tr, members.get(tr.track_id, []), estimates.get(tr.track_id))
            for tr in tracks
            if tr.shown and t - tr.last_seen <= c.publish_coast_s
        ]
        return persons, events

    def _locate(self, tracks: list[TrackSnapshot]) -> dict[int, Position | None]:
        out: dict[int, Position | None] = {tr.track_id: None for tr in tracks}
        measured = [tr for tr in tracks if not tr.coasting]
        if self.projector is None or not measured:
            return out
        floor = self.projector.locate(
            np.stack([tr.keypoints for tr in measured]),
            np.stack([tr.box for tr in measured]),
            self.config.min_keypoint_score,
        )
        for tr, p in zip(measured, floor, strict=True):
            if np.isfinite(p).all():
                out[tr.track_id] = (float(p[0]), float(p[1]))
        return out

    def _person(self, tr: TrackSnapshot, zone_ids: list[str], est: ActivityEstimate | None) -> schemas.Person:
        w, h = self.config.image_size
        kp = tr.shown_keypoints  # temporally smoothed for display (the analytics used tr.keypoints)
        return schemas.Person(
            track_id=tr.track_id,
            keypoints=[[float(x / w), float(y / h), float(s)] for x, y, s in kp],
            box=(float(tr.box[0] / w), float(tr.box[1] / h), float(tr.box[2] / w), float(tr.box[3] / h)),
            confidence=float(tr.confidence),
            zone_ids=list(zone_ids),
            activity=est.activity if est is not None else None,
            position=self._last_position.get(tr.track_id),
        )
