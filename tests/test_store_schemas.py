"""Wire types: tagged event union, strict inbound config, codec round trips."""

from __future__ import annotations

import msgspec
import pytest

from wdp import schemas as s

SEED_EVENT_NAMES = {
    "person.detected",
    "person.lost",
    "person.entered_zone",
    "person.left_zone",
    "person.fall_detected",
    "person.activity_detected",
    "system.started",
    "system.stopped",
    "router.connected",
    "router.disconnected",
    "alert.high_occupancy",
    "alert.restricted_zone_breach",
    "alert.system_error",
    "alert.performance_degraded",
    "analytics.report_generated",
    "analytics.threshold_exceeded",
}


def test_every_seed_event_name_has_a_struct():
    # the seed's 16 events plus the training-free sensing events of issue 11
    sensing = {"motion.started", "motion.stopped", "presence.changed", "breathing.updated"}
    assert set(s.EVENT_NAMES) == SEED_EVENT_NAMES | sensing and len(s.EVENT_NAMES) == 20


def test_event_decodes_to_its_type_by_tag():
    raw = (
        b'{"type":"person.fall_detected","event_id":"e1","timestamp":1.5,"track_id":4,'
        b'"confidence":0.89,"severity":"high","zone_id":"zone_2","position":[0.3,0.4],"alert_triggered":true}'
    )
    ev = s.EVENT_JSON.decode(raw)
    assert isinstance(ev, s.PersonFallDetected)
    assert (ev.event_id, ev.track_id, ev.severity, ev.position) == ("e1", 4, "high", (0.3, 0.4))
    assert s.event_type(ev) == "person.fall_detected"
    assert s.EVENT_JSON.decode(s.JSON_ENCODER.encode(ev)) == ev
    with pytest.raises(msgspec.ValidationError):
        s.EVENT_JSON.decode(
            b'{"type":"person.fall_detected","timestamp":1,"track_id":4,"confidence":1,"severity":"apocalyptic"}'
        )
    with pytest.raises(msgspec.ValidationError):
        s.EVENT_JSON.decode(b'{"type":"person.teleported","timestamp":1}')


def test_events_get_unique_uuid_ids():
    a = s.PersonDetected(timestamp=0.0, track_id=1, confidence=1.0)
    b = s.PersonDetected(timestamp=0.0, track_id=1, confidence=1.0)
    assert a.event_id != b.event_id and len(a.event_id) == 36


def test_pose_frame_round_trip_and_source_is_required():
    p = s.Person(
        track_id=1,
        keypoints=[[0.1, 0.2, 0.9]] * 17,
        box=(0.0, 0.1, 0.5, 0.9),
        confidence=0.8,
        zone_ids=["a"],
        activity="walking",
        position=(1.0, 2.0),
    )
    f = s.PoseFrame(frame_id=3, timestamp=10.0, source="live", persons=[p], router_ids=["r1"], latency_ms=12.0)
    assert s.POSE_FRAME_JSON.decode(s.JSON_ENCODER.encode(f)) == f
    with pytest.raises(msgspec.ValidationError, match="source"):
        s.POSE_FRAME_JSON.decode(b'{"frame_id":1,"timestamp":1.0,"persons":[]}')
    with pytest.raises(msgspec.ValidationError):
        s.POSE_FRAME_JSON.decode(b'{"frame_id":1,"timestamp":1.0,"source":"dream"}')


def test_inbound_config_forbids_unknown_fields():
    with pytest.raises(msgspec.ValidationError, match="max_ocupancy"):
        s.ZONE_JSON.decode(b'{"id":"z","name":"Z","polygon":[[0,0],[1,0],[1,1]],"max_ocupancy":3}')
    sub = s.WEBHOOK_JSON.decode(b'{"id":"w","url":"https://example.org/hook","events":["person.detected"]}')
    assert sub.retry == s.RetryPolicy() and sub.active and sub.wants("person.detected")
    assert not sub.wants("person.lost")
    assert s.RetryPolicy(backoff_base_s=1, backoff_max_s=10).delay_s(1) == 1
    assert s.RetryPolicy(backoff_base_s=1, backoff_max_s=10).delay_s(3) == 4
    assert s.RetryPolicy(backoff_base_s=1, backoff_max_s=10).delay_s(9) == 10


def test_structs_are_frozen():
    z = s.Zone(id="z", name="Z", polygon=[(0, 0), (1, 0), (1, 1)])
    with pytest.raises(AttributeError):
        z.name = "other"  # type: ignore[misc]


def test_keypoint_shape_is_checked_on_decode():
    person = b'{"track_id":1,"keypoints":%s,"box":[0,0,1,1],"confidence":0.5}'
    ok = s.PERSON_JSON.decode(person % s.JSON_ENCODER.encode([[0.5, 0.5, 1.0]] * 17))
    assert ok.keypoints[16] == [0.5, 0.5, 1.0]
    for bad in ([[0.5, 0.5, 1.0]] * 16, [[0.5, 0.5, 1.0]] * 16 + [[0.5, 0.5]]):
        with pytest.raises(msgspec.ValidationError):
            s.PERSON_JSON.decode(person % s.JSON_ENCODER.encode(bad))
