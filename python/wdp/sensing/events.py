"""Sensing states -> events, and zone states from the links placed in a zone.

``SensingEvents`` watches one link's (or zone's) states and emits ``motion.started`` / ``motion.stopped``
(with the duration), ``presence.changed`` and ``breathing.updated`` (when a rate first appears, moves by
``breathing_step_bpm`` or more, or disappears; at most once per ``breathing_min_interval_s``).
``combine_zone`` merges the states of a zone's links: motion if any link moves (score: the highest),
presence if any link sees someone, breathing from the most confident link.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from wdp import schemas


class SensingEvents:
    def __init__(
        self,
        *,
        router_id: str | None = None,
        zone_id: str | None = None,
        breathing_step_bpm: float = 1.0,
        breathing_min_interval_s: float = 10.0,
        event_ids: Callable[[], str] = schemas.new_id,
    ) -> None:
        self.router_id = router_id
        self.zone_id = zone_id
        self.step = breathing_step_bpm
        self.min_interval = breathing_min_interval_s
        self._ids = event_ids
        self._motion = False
        self._motion_t0 = 0.0
        self._presence: bool | None = None
        self._bpm: float | None = None
        self._bpm_t = -1e18

    def update(self, s: schemas.SensingState) -> list[schemas.EventBase]:
        out: list[schemas.EventBase] = []
        where = {"router_id": self.router_id, "zone_id": self.zone_id}
        if s.calibration == "calibrating":
            return out
        if s.motion and not self._motion:
            self._motion, self._motion_t0 = True, s.timestamp
            out.append(
                schemas.MotionStarted(timestamp=s.timestamp, motion_score=s.motion_score, event_id=self._ids(), **where)
            )
        elif not s.motion and self._motion:
            self._motion = False
            out.append(
                schemas.MotionStopped(
                    timestamp=s.timestamp, duration_s=s.timestamp - self._motion_t0, event_id=self._ids(), **where
                )
            )
        if self._presence is None or s.presence != self._presence:
            if self._presence is not None or s.presence:
                out.append(
                    schemas.PresenceChanged(
                        timestamp=s.timestamp, presence=s.presence, still=s.still, event_id=self._ids(), **where
                    )
                )
            self._presence = s.presence
        bpm = s.breathing_bpm
        changed = (bpm is None) != (self._bpm is None) or (
            bpm is not None and self._bpm is not None and abs(bpm - self._bpm) >= self.step
        )
        if changed and (s.timestamp - self._bpm_t >= self.min_interval or bpm is None or self._bpm is None):
            if bpm is not None or s.still:  # a breath stopping while still (apnea) is news; leaving is not
                out.append(
                    schemas.BreathingUpdated(
                        timestamp=s.timestamp,
                        breathing_bpm=bpm,
                        confidence=s.breathing_confidence,
                        event_id=self._ids(),
                        **where,
                    )
                )
            self._bpm, self._bpm_t = bpm, s.timestamp
        return out


def combine_zone(zone_id: str, states: Sequence[schemas.SensingState], timestamp: float) -> schemas.SensingState | None:
    """A zone's state from its links' latest states (None when none of them is calibrated yet)."""
    live = [s for s in states if s.calibration != "calibrating"]
    if not live:
        return None
    motion = any(s.motion for s in live)
    presence = any(s.presence for s in live)
    best = max(live, key=lambda s: (s.breathing_bpm is not None, s.breathing_confidence))
    return schemas.SensingState(
        timestamp=timestamp,
        zone_id=zone_id,
        source=schemas.most_simulated(s.source for s in live),  # as simulated as its most simulated link
        motion=motion,
        motion_score=max(s.motion_score for s in live),
        threshold=max(s.threshold for s in live),
        presence=presence,
        still=presence and not motion and any(s.still for s in live),
        breathing_bpm=best.breathing_bpm if presence and not motion else None,
        breathing_confidence=best.breathing_confidence if presence and not motion else 0.0,
        calibration="baseline" if all(s.calibration == "baseline" for s in live) else "auto",
        packet_rate=sum(s.packet_rate for s in live),
    )
