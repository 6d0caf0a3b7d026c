"""Outbox claim semantics, retries with backoff, leases, the delivery log; config CRUD."""

from __future__ import annotations

import threading

import duckdb
import msgspec
import psycopg
import pytest

from wdp.schemas import (
    AlertRule,
    PersonDetected,
    PersonFallDetected,
    RetryPolicy,
    Router,
    SystemStarted,
    WebhookSubscription,
    Zone,
    ZoneAlertSettings,
)
from wdp.store import config, events, outbox, queries
from wdp.store.postgres import open_store

T = 1_000.0
FAST = RetryPolicy(max_attempts=3, backoff_base_s=1.0, backoff_max_s=3.0)


@pytest.fixture()
def con(store_backend):
    with open_store(store_backend) as store:
        yield store.cursor()


def _event(i: int) -> PersonDetected:
    return PersonDetected(timestamp=T + i, track_id=i, confidence=0.9)


def test_enqueue_matches_subscriptions_and_is_idempotent(con):
    subs = [
        WebhookSubscription(id="all", url="http://a", events=["*"], retry=FAST),
        WebhookSubscription(id="falls", url="http://b", events=["person.fall_detected"]),
        WebhookSubscription(id="off", url="http://c", events=["*"], active=False),
    ]
    det = _event(1)
    fall = PersonFallDetected(timestamp=T, track_id=1, confidence=0.8, severity="critical")
    ids = outbox.enqueue(con, [det, fall], subs, now=T)
    assert len(ids) == 3  # det->all, fall->all, fall->falls
    assert outbox.enqueue(con, [det, fall], subs, now=T) == []
    pending = outbox.items(con, status="pending")
    assert {(i.event_id, i.subscription_id) for i in pending} == {
        (det.event_id, "all"),
        (fall.event_id, "all"),
        (fall.event_id, "falls"),
    }
    item = outbox.get_item(con, ids[0])
    assert item is not None and item.max_attempts == 3 and item.attempts == 0
    assert msgspec.json.decode(item.payload)["type"] == "person.detected"


def test_claimed_item_is_not_claimed_twice(con):
    sub = WebhookSubscription(id="s", url="http://a", events=["*"], retry=FAST)
    outbox.enqueue(con, [_event(i) for i in range(5)], [sub], now=T)
    first = outbox.claim_due(con, now=T, limit=3, lease_s=30)
    second = outbox.claim_due(con, now=T, limit=3, lease_s=30)
    assert len(first) == 3 and len(second) == 2
    assert not {i.delivery_id for i in first} & {i.delivery_id for i in second}
    assert all(i.status == "in_flight" and i.attempts == 1 for i in first + second)
    assert outbox.claim_due(con, now=T + 29, limit=10) == []
    # lease expired (worker died): handed out again as attempt 2, and the old attempt's report is stale
    again = outbox.claim_due(con, now=T + 30, limit=10)
    assert len(again) == 5 and all(i.attempts == 2 for i in again)
    assert outbox.mark_result(con, again[0].delivery_id, 1, ok=True, now=T + 31) is None
    assert outbox.mark_result(con, again[0].delivery_id, 2, ok=True, now=T + 31) == "delivered"


def test_concurrent_claimers_never_share_an_item(tmp_path, store_backend):
    # PostgreSQL: SKIP LOCKED hands disjoint rows to concurrent claimers, so no conflict retries are needed
    pg = store_backend != ":memory:"
    with open_store(store_backend if pg else str(tmp_path / "o.duckdb")) as store:
        sub = WebhookSubscription(id="s", url="http://a", events=["*"])
        outbox.enqueue(store.cursor(), [_event(i) for i in range(200)], [sub], now=T)
        claimed: list[list[str]] = [[] for _ in range(4)]
        errors: list[BaseException] = []

        def worker(k: int) -> None:
            con = store.cursor()
            try:
                while batch := outbox.claim_due(con, now=T, limit=7, lease_s=60, retries=0 if pg else 50):
                    claimed[k] += [i.delivery_id for i in batch]
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        flat = [d for c in claimed for d in c]
        assert len(flat) == len(set(flat)) == 200


def test_failed_items_retry_after_backoff_then_fail(con):
    sub = WebhookSubscription(id="s", url="http://a", events=["*"], retry=FAST)
    (did,) = outbox.enqueue(con, [_event(1)], [sub], now=T)
    (item,) = outbox.claim_due(con, now=T)
    assert (
        outbox.mark_result(con, did, item.attempts, ok=False, status_code=503, latency_ms=12.5, now=T + 1) == "pending"
    )
    assert outbox.get_item(con, did).next_attempt_at == T + 2  # base 1 s * 2**0
    assert outbox.claim_due(con, now=T + 1.99) == []
    (item,) = outbox.claim_due(con, now=T + 2)
    assert item.attempts == 2
    assert outbox.mark_result(con, did, 2, ok=False, error="timeout", now=T + 3) == "pending"
    assert outbox.get_item(con, did).next_attempt_at == T + 5  # 1 s * 2**1
    assert outbox.claim_due(con, now=T + 4.9) == []
    (item,) = outbox.claim_due(con, now=T + 5)
    assert outbox.mark_result(con, did, 3, ok=False, status_code=500, now=T + 6) == "failed"  # 3 of 3 used
    assert outbox.claim_due(con, now=T + 1e6) == []
    final = outbox.get_item(con, did)
    assert final.status == "failed" and final.last_error == "HTTP 500"

    log = outbox.delivery_log(con, subscription_id="s")
    assert [(a.attempt, a.ok, a.status_code, a.error) for a in log] == [
        (3, False, 500, None),
        (2, False, None, "timeout"),
        (1, False, 503, None),
    ]
    assert log[-1].latency_ms == 12.5

    assert outbox.requeue(con, did, now=T + 10)
    assert not outbox.requeue(con, did, now=T + 10)  # only failed items
    (item,) = outbox.claim_due(con, now=T + 10)
    assert item.attempts == 1


def test_non_retryable_failure_and_backoff_cap(con):
    sub = WebhookSubscription(
        id="s", url="http://a", events=["*"], retry=RetryPolicy(max_attempts=10, backoff_base_s=2.0, backoff_max_s=5.0)
    )
    a, b = outbox.enqueue(con, [_event(1), _event(2)], [sub], now=T)
    assert len(outbox.claim_due(con, now=T)) == 2
    assert outbox.mark_result(con, a, 1, ok=False, status_code=410, retryable=False, now=T) == "failed"
    t = T
    for attempt in range(1, 5):
        assert outbox.mark_result(con, b, attempt, ok=False, now=t) == "pending"
        expected = min(5.0, 2.0 * 2 ** (attempt - 1))
        assert outbox.get_item(con, b).next_attempt_at == t + expected
        t += expected
        (item,) = outbox.claim_due(con, now=t)
        assert item.delivery_id == b
    assert outbox.mark_result(con, "nope", 1, ok=True) is None


def test_record_events_stores_event_and_deliveries_atomically(con):
    sub = WebhookSubscription(id="s", url="http://a", events=["system.started"])
    ev, det = SystemStarted(timestamp=T, version="0.1", source="live"), _event(3)
    ids = events.record_events(con, [ev, det], [sub], now=T)
    assert len(ids) == 1 and outbox.get_item(con, ids[0]).event_id == ev.event_id
    assert queries.events(con, 0, 2e9) == [ev, det]
    # a failure inside rolls both back
    bad = WebhookSubscription(id="s2", url="http://a", events=["*"])
    con.execute("ALTER TABLE outbox RENAME TO outbox_away")
    ev2 = SystemStarted(timestamp=T + 1, version="0.1", source="live")
    with pytest.raises((duckdb.CatalogException, psycopg.errors.UndefinedTable), match="outbox"):
        events.record_events(con, [ev2], [bad], now=T)
    con.execute("ALTER TABLE outbox_away RENAME TO outbox")
    assert con.execute("SELECT count(*) FROM events WHERE event_id = ?", [ev2.event_id]).fetchone() == (0,)


def test_config_crud(con):
    z = Zone(
        id="kitchen",
        name="Kitchen",
        polygon=[(0, 0), (4, 0), (4, 3), (0, 3)],
        max_occupancy=4,
        restricted=True,
        alerts=ZoneAlertSettings(cooldown_s=10),
    )
    config.ZONES.put(con, z, now=1.0)
    assert config.ZONES.get(con, "kitchen") == z
    z2 = msgspec.structs.replace(z, max_occupancy=6)
    config.ZONES.put(con, z2, now=2.0)
    assert config.ZONES.list(con) == [z2]
    assert config.ZONES.delete(con, "kitchen") and not config.ZONES.delete(con, "kitchen")
    assert config.ZONES.get(con, "kitchen") is None

    r = Router(
        id="r1",
        name="Lab AP",
        kind="nexmon",
        host="10.0.0.2",
        port=5500,
        status="connected",
        packet_rate=100.0,
        loss=0.01,
    )
    rule = AlertRule(id="a1", name="falls", event_types=["person.fall_detected"], min_severity="high")
    subs = [
        WebhookSubscription(id="w1", url="http://x", events=["person.detected"], secret="k"),
        WebhookSubscription(id="w2", url="http://y", events=["*"], active=False),
    ]
    config.ROUTERS.put(con, r)
    config.ALERT_RULES.put(con, rule)
    for s in subs:
        config.WEBHOOKS.put(con, s)
    assert config.ROUTERS.get(con, "r1") == r
    assert config.ALERT_RULES.list(con) == [rule]
    assert config.WEBHOOKS.list(con) == subs
    assert config.active_webhooks(con) == subs[:1]
    assert config.active_webhooks(con, "person.lost") == []


def test_users_and_api_keys(con):
    u = config.put_user(con, "ana", "argon2$x", ["pose:read"], now=5.0)
    assert u.created_at == 5.0
    u2 = config.put_user(con, "ana", "argon2$y", ["admin:all"], now=9.0)
    assert (u2.password_hash, u2.scopes, u2.created_at) == ("argon2$y", ["admin:all"], 5.0)
    assert config.get_user(con, "ana") == u2 and config.list_users(con) == [u2]
    assert config.delete_user(con, "ana") and config.get_user(con, "ana") is None

    k = config.add_api_key(con, "k1", "sha256:abc", "ana", ["stream:subscribe"], now=1.0)
    assert config.find_api_key(con, "sha256:abc") == k
    config.touch_api_key(con, "k1", now=7.0)
    assert config.find_api_key(con, "sha256:abc").last_used == 7.0
    assert config.revoke_api_key(con, "k1") and not config.revoke_api_key(con, "k1")
    assert config.find_api_key(con, "sha256:abc") is None
    assert [x.key_id for x in config.list_api_keys(con, owner="ana")] == ["k1"]
