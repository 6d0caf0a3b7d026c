"""Zone geometry, membership with hysteresis, occupancy and restricted-zone alerts, live zone edits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wdp import schemas
from wdp.analytics import ZoneMonitor, ZoneMonitorConfig, points_in_polygon, signed_distance
from wdp.analytics.geometry import distance_to_boundary

SQUARE = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]
L_SHAPE = [(0, 0), (3, 0), (3, 1), (1, 1), (1, 3), (0, 3)]  # concave


def winding_number(p, poly) -> int:
    """Reference containment by winding number (a different algorithm from the even-odd ray test)."""
    wn = 0
    n = len(poly)
    for i in range(n):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % n]
        cross = (x1 - x0) * (p[1] - y0) - (p[0] - x0) * (y1 - y0)
        if y0 <= p[1] < y1 and cross > 0:
            wn += 1
        elif y1 <= p[1] < y0 and cross < 0:
            wn -= 1
    return wn


def test_point_in_polygon_known_points():
    pts = np.array([[0.5, 0.5], [2, 2], [0.5, 2.5], [2.5, 0.5], [-1, 0.5], [5, 5], [np.nan, 1]])
    np.testing.assert_array_equal(points_in_polygon(pts, L_SHAPE), [1, 0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(points_in_polygon(pts, L_SHAPE[::-1]), [1, 0, 1, 1, 0, 0, 0])  # clockwise
    closed = [*L_SHAPE, L_SHAPE[0]]  # a repeated first vertex changes nothing
    np.testing.assert_array_equal(points_in_polygon(pts, closed), points_in_polygon(pts, L_SHAPE))
    with pytest.raises(ValueError):
        points_in_polygon(pts, [(0, 0), (1, 1)])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5)), min_size=3, max_size=9),
    st.lists(st.tuples(st.floats(-6, 6), st.floats(-6, 6)), min_size=1, max_size=30),
)
def test_point_in_polygon_matches_winding_number(poly, pts):
    # Simple polygons from random points: sort them by angle around their centroid (star-shaped).
    c = np.mean(poly, axis=0)
    poly = sorted(poly, key=lambda p: np.arctan2(p[1] - c[1], p[0] - c[0]))
    poly_a = np.array(poly)
    area = 0.5 * np.sum(poly_a[:, 0] * np.roll(poly_a[:, 1], -1) - np.roll(poly_a[:, 0], -1) * poly_a[:, 1])
    if abs(area) < 1e-3:
        return
    got = points_in_polygon(np.array(pts), poly)
    d = distance_to_boundary(np.array(pts), poly)
    for p, g, dist in zip(pts, got, d, strict=True):
        if dist > 1e-9:  # on-boundary points may go either way
            assert g == (winding_number(p, poly) != 0)


def test_signed_distance():
    pts = np.array([[2.0, 2.0], [1.0, 3.5], [5.0, 2.0], [5.0, 7.0], [np.nan, 0.0]])
    np.testing.assert_allclose(signed_distance(pts, SQUARE), [2.0, 0.5, -1.0, -np.hypot(1, 3), np.nan])
    # the notch of the L: (2, 2) is outside, 1 from both inner edges; (0.5, 0.5) is 0.5 inside
    assert signed_distance(np.array([[2.0, 2.0]]), L_SHAPE)[0] == pytest.approx(-1.0)
    assert signed_distance(np.array([[0.5, 0.5]]), L_SHAPE)[0] == pytest.approx(0.5)


# -------------------------------------------------------------------------------------------- monitor


def ids():
    c = itertools.count()
    return lambda: f"z-{next(c)}"


def zone(zid="a", polygon=SQUARE, **kw) -> schemas.Zone:
    return schemas.Zone(id=zid, name=zid.upper(), polygon=polygon, **kw)


def kinds(events):
    return [schemas.event_type(e) for e in events]


def test_enter_and_leave_with_dwell():
    mon = ZoneMonitor(
        [zone()], ZoneMonitorConfig(enter_margin_m=0.1, exit_margin_m=0.1, confirm_frames=2), event_ids=ids()
    )
    events = []
    xs = np.arange(-1.0, 6.0, 0.05)  # walk through the square along y = 2
    for k, x in enumerate(xs):
        up = mon.update(k * 0.1, {7: (float(x), 2.0)})
        events += up.events
        inside = up.memberships.get(7) == ["a"]
        # in only after 0.1 m deep for two updates, out only after 0.1 m outside for two updates
        if 0.2 <= x <= 4.1:
            assert inside, x
        if x < 0.1 or x > 4.2:
            assert not inside, x
    assert kinds(events) == ["person.entered_zone", "person.left_zone"]
    enter, leave = events
    assert enter.position == pytest.approx((0.15, 2.0)) and enter.track_id == 7 and enter.zone_id == "a"
    assert enter.timestamp == pytest.approx(23 * 0.1)  # x = 0.10 at k=22 (first deep enough), confirmed k=23
    assert leave.timestamp == pytest.approx(103 * 0.1)  # x = 4.10 at k=102, confirmed at k=103
    assert leave.dwell_s == pytest.approx(8.0)


def test_no_flicker_on_the_border():
    mon = ZoneMonitor([zone()], ZoneMonitorConfig(enter_margin_m=0.1, exit_margin_m=0.1, confirm_frames=2))
    rng = np.random.default_rng(0)
    events = []
    # standing on the x = 4 edge with 5 cm of jitter, after having entered
    for k in range(10):
        events += mon.update(k * 0.1, {1: (2.0, 2.0)}).events
    for k in range(10, 300):
        events += mon.update(k * 0.1, {1: (4.0 + rng.normal(0, 0.05), 2.0)}).events
    assert kinds(events) == ["person.entered_zone"]
    # without hysteresis the same jitter flickers
    bare = ZoneMonitor([zone()], ZoneMonitorConfig(enter_margin_m=0.0, exit_margin_m=0.0, confirm_frames=1))
    rng = np.random.default_rng(0)
    n = sum(len(bare.update(k * 0.1, {1: (4.0 + rng.normal(0, 0.05), 2.0)}).events) for k in range(290))
    assert n > 50


def test_single_frame_excursion_is_ignored_and_unlocalized_tracks_hold():
    mon = ZoneMonitor([zone()], ZoneMonitorConfig(confirm_frames=3))
    ev = []
    for k in range(5):
        ev += mon.update(k, {1: (2.0, 2.0)}).events
    ev += mon.update(5, {1: (9.0, 9.0)}).events  # one wild position
    for k in range(6, 10):
        ev += mon.update(k, {1: None}).events  # not localized: keeps its membership
    assert kinds(ev) == ["person.entered_zone"] and mon.memberships() == {1: ["a"]}


def test_track_gone_leaves_its_zones():
    mon = ZoneMonitor([zone("a"), zone("b", [(1, 1), (3, 1), (3, 3), (1, 3)])], ZoneMonitorConfig(confirm_frames=1))
    mon.update(0.0, {1: (2.0, 2.0), 2: (0.5, 0.5)})
    assert mon.memberships() == {1: ["a", "b"], 2: ["a"]}
    assert mon.occupancy() == {"a": 2, "b": 1}
    up = mon.update(3.0, {2: (0.5, 0.5)})
    assert sorted((e.zone_id, e.track_id, e.dwell_s) for e in up.events) == [("a", 1, 3.0), ("b", 1, 3.0)]
    assert up.occupancy == {"a": 1, "b": 0}


def occupancy_monitor(max_occ=2, min_duration_s=2.0, cooldown_s=10.0):
    z = zone(
        max_occupancy=max_occ,
        alerts=schemas.ZoneAlertSettings(min_duration_s=min_duration_s, cooldown_s=cooldown_s),
    )
    return ZoneMonitor([z], ZoneMonitorConfig(confirm_frames=1), event_ids=ids())


def test_high_occupancy_alert_timing_duration_and_cooldown():
    mon = occupancy_monitor()
    inside = {i: (1.0 + 0.5 * i, 2.0) for i in range(3)}
    alerts = []
    for k in range(0, 401):  # 100 Hz for 4 s, then one more person
        t = k * 0.01
        pos = dict(inside) if t >= 1.0 else {0: inside[0], 1: inside[1]}
        if t >= 3.5:
            pos[3] = (3.0, 3.0)
        alerts += [e for e in mon.update(t, pos).events if isinstance(e, schemas.AlertHighOccupancy)]
    (a,) = alerts  # 3 > 2 from t = 1.0; held 2 s at t = 3.0; cooldown 10 s
    assert a.timestamp == pytest.approx(3.0)
    assert a.duration_seconds == pytest.approx(2.0)
    assert (a.current_occupancy, a.max_occupancy, a.zone_id, a.severity) == (3, 2, "a", "medium")
    # after the cooldown it repeats with the whole duration so far, and 4 >= 2 * 2 is high severity
    more = []
    for k in range(401, 1400):
        t = k * 0.01
        pos = {**inside, 3: (3.0, 3.0)}
        more += [e for e in mon.update(t, pos).events if isinstance(e, schemas.AlertHighOccupancy)]
    (b,) = more
    assert b.timestamp == pytest.approx(13.0)
    assert b.duration_seconds == pytest.approx(12.0)
    assert (b.current_occupancy, b.severity) == (4, "high")


def test_occupancy_dipping_resets_the_timer():
    mon = occupancy_monitor(min_duration_s=1.0, cooldown_s=0.0)
    out = []
    for k in range(300):
        t = k * 0.01
        n = 3 if (k // 50) % 2 == 0 else 2  # over for 0.5 s, then not, ... never 1 s in a row
        out += mon.update(t, {i: (1.0 + 0.5 * i, 2.0) for i in range(n)}).events
    assert not any(isinstance(e, schemas.AlertHighOccupancy) for e in out)


def test_occupancy_alert_disabled_or_unlimited():
    for z in (zone(max_occupancy=1, alerts=schemas.ZoneAlertSettings(high_occupancy=False)), zone()):
        mon = ZoneMonitor([z], ZoneMonitorConfig(confirm_frames=1))
        ev = mon.update(0.0, {1: (1.0, 1.0), 2: (2.0, 2.0), 3: (3.0, 3.0)}).events
        assert kinds(ev) == ["person.entered_zone"] * 3


def test_restricted_breach_on_entry_once_per_visit_with_cooldown():
    z = zone(restricted=True, alerts=schemas.ZoneAlertSettings(cooldown_s=5.0))
    mon = ZoneMonitor([z], ZoneMonitorConfig(confirm_frames=1), event_ids=ids())
    path = [(-1.0, 2.0)] * 3 + [(2.0, 2.0)] * 5 + [(-1.0, 2.0)] * 5 + [(2.0, 2.0)] * 5  # in, out, in (t = 1.3)
    events = []
    for k, p in enumerate(path):
        events += mon.update(k * 0.1, {4: p}).events
    assert kinds(events) == [
        "person.entered_zone",
        "alert.restricted_zone_breach",
        "person.left_zone",
        "person.entered_zone",
    ]  # the second entry is within the 5 s cooldown
    breach = events[1]
    assert (breach.track_id, breach.zone_id, breach.severity, breach.position) == (4, "a", "high", (2.0, 2.0))
    events = []
    for k in range(60, 70):  # out, then in again after the cooldown
        events += mon.update(k * 0.1, {4: (-1.0, 2.0) if k < 65 else (2.0, 2.0)}).events
    assert kinds(events) == ["person.left_zone", "person.entered_zone", "alert.restricted_zone_breach"]


def test_restricted_breach_waits_for_min_duration():
    z = zone(restricted=True, alerts=schemas.ZoneAlertSettings(min_duration_s=1.0))
    mon = ZoneMonitor([z], ZoneMonitorConfig(confirm_frames=1))
    events = []
    for k in range(20):
        t = k * 0.1
        events += [(t, e) for e in mon.update(t, {1: (2.0, 2.0)}).events]
    (t_breach,) = [t for t, e in events if isinstance(e, schemas.AlertRestrictedZoneBreach)]
    assert t_breach == pytest.approx(1.0)
    # a short visit raises nothing
    mon = ZoneMonitor([z], ZoneMonitorConfig(confirm_frames=1))
    ev = []
    for k in range(20):
        ev += mon.update(k * 0.1, {1: (2.0, 2.0) if k < 5 else (9.0, 9.0)}).events
    assert kinds(ev) == ["person.entered_zone", "person.left_zone"]


def test_live_zone_replacement():
    mon = ZoneMonitor(
        [zone("a"), zone("b", [(10, 10), (12, 10), (12, 12)])],
        ZoneMonitorConfig(confirm_frames=1),
        event_ids=ids(),
    )
    mon.update(0.0, {1: (1.0, 1.0), 2: (3.0, 3.0)})
    assert mon.occupancy() == {"a": 2, "b": 0}
    # move zone a so that only track 2 is in it, drop b, add c around track 1, make a restricted
    moved = zone("a", [(2.5, 2.5), (5, 2.5), (5, 5), (2.5, 5)], restricted=True)
    mon.set_zones([moved, zone("c", [(0, 0), (2, 0), (2, 2), (0, 2)])])
    assert [z.id for z in mon.zones] == ["a", "b"]  # takes effect at the next update
    up = mon.update(1.0, {1: (1.0, 1.0), 2: (3.0, 3.0)})
    got = sorted((schemas.event_type(e), e.track_id, e.zone_id) for e in up.events)
    assert got == [
        ("alert.restricted_zone_breach", 2, "a"),  # already inside when it became restricted
        ("person.entered_zone", 1, "c"),
        ("person.left_zone", 1, "a"),  # re-evaluated against the new polygon
    ]
    left = next(e for e in up.events if isinstance(e, schemas.PersonLeftZone))
    assert left.dwell_s == pytest.approx(1.0)
    assert up.occupancy == {"a": 1, "c": 1} and [z.id for z in mon.zones] == ["a", "c"]
    # removing a zone makes its members leave it
    mon.set_zones([zone("c", [(0, 0), (2, 0), (2, 2), (0, 2)])])
    up = mon.update(2.0, {1: (1.0, 1.0), 2: (3.0, 3.0)})
    assert [(schemas.event_type(e), e.track_id, e.zone_id, e.dwell_s) for e in up.events] == [
        ("person.left_zone", 2, "a", 2.0),
    ]
    with pytest.raises(ValueError):
        mon.set_zones([zone("x"), zone("x")])
    with pytest.raises(ValueError):
        mon.set_zones([zone("x", [(0, 0), (1, 1)])])


def test_zones_at_without_hysteresis():
    mon = ZoneMonitor([zone("a"), zone("l", L_SHAPE)])
    assert mon.zones_at((0.5, 2.5)) == ["a", "l"]
    assert mon.zones_at((2.0, 2.0)) == ["a"]
    assert mon.zones_at(None) == []
