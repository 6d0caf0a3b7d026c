"""Webhook delivery against a real HTTP receiver process on 127.0.0.1: signatures, retries with backoff and
Retry-After, receiver down then back (every event exactly once after dedup by X-Delivery-ID), restart replay,
kill -9 of the delivering process mid-stream, manual redelivery, SSRF refusals."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from integration_samples import T0, detected, fall
from mqtt_broker import free_port
from webhook_receiver import Receiver

from wdp.integrations.webhooks import (
    UrlGuard,
    UrlRefusedError,
    WebhookDispatcher,
    WebhookSettings,
    parse_retry_after,
    sign_payload,
    verify_signature,
)
from wdp.schemas import EVENT_JSON, RetryPolicy, WebhookSubscription
from wdp.store import Store, config, outbox

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.timeout(60)
FAST = WebhookSettings(
    poll_interval_s=0.02,
    allowed_networks=["127.0.0.1/32"],
    lease_s=10,
    total_timeout_s=3,
    connect_timeout_s=1,
    read_timeout_s=3,
)
QUICK_RETRY = RetryPolicy(max_attempts=6, backoff_base_s=0.05, backoff_max_s=0.3)


def run(coro, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout))


def subscribe(
    store: Store,
    url: str,
    *,
    sub_id: str = "sub",
    secret: str | None = "topsecret",
    events: list[str] | None = None,
    retry: RetryPolicy = QUICK_RETRY,
) -> WebhookSubscription:
    sub = WebhookSubscription(
        id=sub_id,
        url=url,
        events=events or ["*"],
        secret=secret,
        retry=retry,
        headers={"X-Custom": "yes", "X-Delivery-ID": "forged"},
    )
    config.WEBHOOKS.put(store.cursor(), sub)
    return sub


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def open_deliveries(store: Store) -> int:
    (n,) = store.cursor().execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone()
    return int(n)


# ---------------------------------------------------------------------------------------------- signatures


def test_signature_is_hmac_sha256_over_timestamp_then_body() -> None:
    body = b'{"type":"person.detected","track_id":1}'
    expected = hmac.new(b"k", b"1750000000" + body, hashlib.sha256).hexdigest()
    assert sign_payload("k", 1750000000, body) == "sha256=" + expected
    sig = sign_payload("k", "1750000000", body)
    assert verify_signature("k", "1750000000", body, sig, now=1750000100)
    assert verify_signature(b"k", 1750000000, body, sig, tolerance_s=300, now=1749999800)
    assert not verify_signature("k", "1750000000", body + b" ", sig, now=1750000000)  # body changed
    assert not verify_signature("other", "1750000000", body, sig, now=1750000000)  # wrong secret
    assert not verify_signature("k", "1750000001", body, sig, now=1750000000)  # timestamp changed
    assert not verify_signature("k", "1750000000", body, sig, now=1750000301)  # replay outside window
    assert not verify_signature("k", "1750000000", body, sig, now=1749999699)  # from the future
    for bad_ts in ("", "abc", "-5", "1e9", "１７５", "1750000000.5"):
        assert not verify_signature("k", bad_ts, body, sig, now=1750000000)
    for bad_sig in ("", "sha256=", "sha1=" + expected, expected, "sha256=" + expected.upper(), "sha256=é"):
        assert not verify_signature("k", "1750000000", body, bad_sig, now=1750000000)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3", 0.0) == 3.0
    assert parse_retry_after(" 120 ", 0.0) == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490.0) == 0.0
    for bad in (None, "", "soon", "-1", "1.5"):
        assert parse_retry_after(bad, 0.0) is None


# ---------------------------------------------------------------------------------------------- SSRF


def test_ssrf_guard_refuses_internal_targets() -> None:
    guard = UrlGuard()

    async def check(url: str) -> None:
        await guard.resolve(url)

    refused = [
        "http://127.0.0.1:8080/x",
        "http://127.1.2.3/",
        "http://localhost/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.10/",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://224.0.0.1/",
        "http://198.18.0.1/",
        "http://2130706433/",  # decimal 127.0.0.1
        "ftp://8.8.8.8/",
        "file:///etc/passwd",
        "http://user:pw@8.8.8.8/",
        "not a url",
        "http:///nohost",
    ]
    for url in refused:
        with pytest.raises(UrlRefusedError):
            run(check(url))
    # public literals pass (no DNS, no connection needed); the request is pinned to the checked address
    target = run(guard.resolve("https://8.8.8.8:8443/hook?x=1"))
    assert str(target.url) == "https://8.8.8.8:8443/hook?x=1" and target.server_name == "8.8.8.8"
    guard.check_url("https://example.com/hook")  # hostnames are checked at delivery time
    with pytest.raises(UrlRefusedError):
        guard.check_url("http://10.0.0.1/hook")
    # explicitly allowed networks
    allowed = UrlGuard(["127.0.0.1/32", "10.20.0.0/16"])
    run(allowed.resolve("http://127.0.0.1:9/x"))
    run(allowed.resolve("http://10.20.3.4/x"))
    run(allowed.resolve("http://[::ffff:127.0.0.1]/x"))
    with pytest.raises(UrlRefusedError):
        run(allowed.resolve("http://127.0.0.2/x"))
    with pytest.raises(UrlRefusedError):
        run(allowed.resolve("http://[::1]/x"))
    assert allowed.allowed_networks[0] == ipaddress.ip_network("127.0.0.1/32")


def test_ssrf_refusal_fails_the_delivery_without_a_request(tmp_path: Path) -> None:
    async def scenario(receiver: Receiver) -> None:
        with Store(":memory:") as store:
            subscribe(store, receiver.url)  # 127.0.0.1, but this dispatcher allows no private network
            async with WebhookDispatcher(store, WebhookSettings(poll_interval_s=0.02)) as hooks:
                (delivery_id,) = await hooks.submit([detected(1)])
                await until(lambda: open_deliveries(store) == 0)
            assert hooks.stats.refused == 1 and hooks.stats.failed == 1  # after stop(): counters follow the commit
            item = outbox.get_item(store.cursor(), delivery_id)
            assert item is not None and item.status == "failed" and item.attempts == 1
            assert "refused: address 127.0.0.1 is loopback" in (item.last_error or "")
            (attempt,) = outbox.delivery_log(store.cursor(), delivery_id=delivery_id)
            assert not attempt.ok and attempt.status_code is None

    with Receiver(tmp_path / "log.jsonl") as receiver:
        run(scenario(receiver))
        assert receiver.records() == []


# ---------------------------------------------------------------------------------------------- delivery


def test_delivered_requests_are_signed_and_carry_the_headers(tmp_path: Path) -> None:
    events = [detected(1), fall(2), detected(3)]

    async def scenario(receiver: Receiver) -> dict[str, str]:
        with Store(":memory:") as store:
            subscribe(store, receiver.url)
            subscribe(
                store,
                receiver.url.replace("/hook", "/falls"),
                sub_id="falls",
                secret=None,
                events=["person.fall_detected"],
            )
            async with WebhookDispatcher(store, FAST) as hooks:
                ids = await hooks.submit(events)
                assert len(ids) == 4  # 3 to "sub", the fall also to "falls"
                await until(lambda: open_deliveries(store) == 0)
            assert hooks.stats.delivered == 4 and hooks.stats.attempts == 4  # after stop(): counters follow the commit
            log = outbox.delivery_log(store.cursor(), subscription_id="sub")
            assert len(log) == 3 and all(a.ok and a.status_code == 200 and a.latency_ms for a in log)
            return {i.delivery_id: i.event_id for i in outbox.items(store.cursor())}

    with Receiver(tmp_path / "log.jsonl") as receiver:
        outbox_ids = run(scenario(receiver))
        records = receiver.records()
    assert len(records) == 4
    by_event = {}
    for r in records:
        h = {k.lower(): v for k, v in r["headers"].items()}
        body = r["body"].encode()
        event = EVENT_JSON.decode(body)
        assert h["x-delivery-id"] in outbox_ids and outbox_ids[h["x-delivery-id"]] == event.event_id
        assert h["x-event-type"] == event.__struct_config__.tag
        assert h["content-type"] == "application/json" and h["x-custom"] == "yes"
        assert h["host"] == f"127.0.0.1:{receiver.port}"
        assert abs(int(h["x-timestamp"]) - time.time()) < 30
        if r["path"] == "/hook":
            assert verify_signature("topsecret", h["x-timestamp"], body, h["x-signature"])
            assert not verify_signature("wrong", h["x-timestamp"], body, h["x-signature"])
            by_event[event.event_id] = event
        else:
            assert (
                r["path"] == "/falls"
                and "x-signature" not in h
                and event.__struct_config__.tag == "person.fall_detected"
            )
    assert by_event == {e.event_id: e for e in events}


def test_5xx_then_success_keeps_the_delivery_id_and_logs_each_attempt(tmp_path: Path) -> None:
    async def scenario(receiver: Receiver) -> str:
        with Store(":memory:") as store:
            subscribe(store, receiver.url)
            async with WebhookDispatcher(store, FAST) as hooks:
                (delivery_id,) = await hooks.submit([detected(1)])
                await until(lambda: open_deliveries(store) == 0)
            assert (
                hooks.stats.retries_scheduled == 2 and hooks.stats.delivered == 1
            )  # after stop(): counters follow the commit
            log = outbox.delivery_log(store.cursor(), delivery_id=delivery_id)
            assert [(a.attempt, a.ok, a.status_code) for a in reversed(log)] == [
                (1, False, 500),
                (2, False, 500),
                (3, True, 200),
            ]
            assert outbox.get_item(store.cursor(), delivery_id).status == "delivered"  # type: ignore[union-attr]
            return delivery_id

    with Receiver(tmp_path / "log.jsonl", fail_first=2, fail_status=500) as receiver:
        delivery_id = run(scenario(receiver))
        records = receiver.records()
    assert [r["status"] for r in records] == [500, 500, 200]
    assert {r["headers"]["X-Delivery-ID"] for r in records} == {delivery_id}
    assert [r["headers"]["X-Delivery-Attempt"] for r in records] == ["1", "2", "3"]
    gaps = [b["t"] - a["t"] for a, b in zip(records, records[1:], strict=False)]
    # backoff base 0.05 s: attempt 2 after >= 0.025 s (jitter halves at most), attempt 3 after >= 0.05 s
    assert gaps[0] >= 0.02 and gaps[1] >= 0.045


def test_429_retry_after_is_honoured(tmp_path: Path) -> None:
    async def scenario(receiver: Receiver) -> None:
        with Store(":memory:") as store:
            subscribe(store, receiver.url)
            async with WebhookDispatcher(store, FAST) as hooks:
                await hooks.submit([detected(1)])
                await until(lambda: open_deliveries(store) == 0)

    with Receiver(tmp_path / "log.jsonl", fail_first=1, fail_status=429, retry_after="1") as receiver:
        run(scenario(receiver))
        records = receiver.records()
    assert [r["status"] for r in records] == [429, 200]
    assert records[1]["t"] - records[0]["t"] >= 0.95  # not the 0.05 s backoff


def test_non_retryable_4xx_fails_at_once_and_manual_redeliver_resends(tmp_path: Path) -> None:
    async def scenario(receiver: Receiver) -> str:
        with Store(":memory:") as store:
            subscribe(store, receiver.url)
            async with WebhookDispatcher(store, FAST) as hooks:
                (delivery_id,) = await hooks.submit([detected(1)])
                await until(lambda: open_deliveries(store) == 0)
                assert outbox.get_item(store.cursor(), delivery_id).status == "failed"  # type: ignore[union-attr]
                assert await hooks.redeliver(delivery_id)
                await until(lambda: open_deliveries(store) == 0)
                assert outbox.get_item(store.cursor(), delivery_id).status == "delivered"  # type: ignore[union-attr]
                # a delivered one can be redelivered too (same id: receivers that dedupe will ignore it)
                assert await hooks.redeliver(delivery_id)
                await until(lambda: open_deliveries(store) == 0)
                assert not await hooks.redeliver("no-such-delivery")
            log = outbox.delivery_log(store.cursor(), delivery_id=delivery_id)
            assert [(a.ok, a.status_code) for a in reversed(log)] == [(False, 400), (True, 200), (True, 200)]
            return delivery_id

    with Receiver(tmp_path / "log.jsonl", fail_first=1, fail_status=400) as receiver:
        delivery_id = run(scenario(receiver))
        records = receiver.records()
    assert [r["status"] for r in records] == [400, 200, 200]
    assert {r["headers"]["X-Delivery-ID"] for r in records} == {delivery_id}


def test_receiver_down_then_back_delivers_every_event_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    n = 60
    events = [detected(i) for i in range(n)]
    receiver = Receiver(tmp_path / "log.jsonl", port)

    async def scenario() -> None:
        with Store(":memory:") as store:
            subscribe(
                store,
                receiver.url,
                retry=RetryPolicy(max_attempts=50, backoff_base_s=0.05, backoff_max_s=0.2),
            )
            async with WebhookDispatcher(store, FAST) as hooks:
                for i in range(0, n, 6):
                    await hooks.submit(events[i : i + 6])
                await until(lambda: hooks.stats.network_errors >= n, what="connection failures")
                assert hooks.stats.delivered == 0
                await asyncio.to_thread(receiver.start)  # receiver comes up on the subscribed port
                await until(lambda: open_deliveries(store) == 0, timeout=15)
            assert hooks.stats.delivered == n and hooks.stats.failed == 0  # after stop(): counters follow the commit

    try:
        run(scenario())
    finally:
        receiver.stop()
    records = receiver.records()
    first_copy = {}
    for r in records:
        first_copy.setdefault(r["headers"]["X-Delivery-ID"], r)
    received = sorted(EVENT_JSON.decode(r["body"]).event_id for r in first_copy.values())
    assert received == sorted(e.event_id for e in events)


def test_restart_replays_pending_and_in_flight_deliveries(tmp_path: Path) -> None:
    db = tmp_path / "hooks.duckdb"
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"

    async def first_run() -> list[str]:
        with Store(db) as store:
            subscribe(store, url, retry=RetryPolicy(max_attempts=50, backoff_base_s=0.05, backoff_max_s=0.1))
            async with WebhookDispatcher(store, FAST) as hooks:
                ids = await hooks.submit([detected(i) for i in range(5)])
                await until(lambda: hooks.stats.network_errors >= 5)
            # a worker that died mid-attempt: two deliveries claimed with a long lease, never reported
            claimed = outbox.claim_due(store.cursor(), now=time.time() + 60, limit=2, lease_s=3600)
            assert len(claimed) == 2
            return ids

    async def second_run() -> int:
        with Store(db) as store:
            async with WebhookDispatcher(store, FAST) as hooks:
                await until(lambda: open_deliveries(store) == 0)
            # stats are read after stop(): the outbox row can be committed a moment before the counter moves
            assert hooks.stats.recovered_in_flight == 2
            return hooks.stats.delivered

    ids = run(first_run())
    with Receiver(tmp_path / "log.jsonl", port) as receiver:
        assert run(second_run()) == 5
        records = receiver.records()
    assert sorted(r["headers"]["X-Delivery-ID"] for r in records) == sorted(ids)


def test_kill_9_of_the_delivering_process_loses_no_accepted_event(tmp_path: Path) -> None:
    db, accepted = tmp_path / "hooks.duckdb", tmp_path / "accepted.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent / "python"), str(HERE)]))

    def child(mode: str, url: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(HERE / "_webhook_worker_child.py"), mode, str(db), url, str(accepted)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    with Receiver(tmp_path / "log.jsonl", delay_ms=3) as receiver:
        proc = child("stream", receiver.url)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "streaming", proc.stderr.read()
            deadline = time.monotonic() + 20
            while len(receiver.records()) < 60 or len(accepted.read_text().split()) < 150:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.communicate()
        accepted_ids = set(accepted.read_text().split())
        before_restart = len(receiver.records())
        drain = child("drain", receiver.url)
        out, err = drain.communicate(timeout=60)
        assert drain.returncode == 0, err
        _, recovered, left = out.split()
        assert left == "0"
        records = receiver.records()
    assert len(records) > before_restart  # the second process delivered the rest
    event_of: dict[str, str] = {}
    for r in records:
        event_id = EVENT_JSON.decode(r["body"]).event_id
        assert event_of.setdefault(r["headers"]["X-Delivery-ID"], event_id) == event_id
        h = r["headers"]
        assert verify_signature("k", h["X-Timestamp"], r["body"].encode(), h["X-Signature"])
    received_events = set(event_of.values())
    assert accepted_ids <= received_events, f"lost: {sorted(accepted_ids - received_events)[:5]}"
    with Store(db) as store:
        stored = {e for (e,) in store.cursor().execute("SELECT event_id FROM events").fetchall()}
        statuses = dict(store.cursor().execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
    # every committed event (accepted or committed just before the kill) was delivered exactly once per id
    assert received_events == stored and len(event_of) == len(stored)
    assert statuses == {"delivered": len(stored)}
    assert int(recovered) >= 0  # usually > 0: attempts in flight at the kill are resent (same delivery id)


def test_consume_batches_an_async_stream(tmp_path: Path) -> None:
    async def source():  # type: ignore[no-untyped-def]
        for i in range(20):
            yield detected(i)
            if i % 5 == 0:
                await asyncio.sleep(0)

    async def scenario(receiver: Receiver) -> None:
        with Store(":memory:") as store:
            subscribe(store, receiver.url)
            async with WebhookDispatcher(store, FAST) as hooks:
                await hooks.consume(source())
                assert hooks.stats.submitted_events == 20
                await until(lambda: open_deliveries(store) == 0)
            (count,) = store.cursor().execute("SELECT count(*) FROM events").fetchone()
            assert count == 20

    with Receiver(tmp_path / "log.jsonl") as receiver:
        run(scenario(receiver))
        assert len(receiver.records()) == 20


def test_deleted_subscription_fails_its_pending_deliveries(tmp_path: Path) -> None:
    async def scenario() -> None:
        with Store(":memory:") as store:
            subscribe(store, "http://127.0.0.1:9/hook")
            con = store.cursor()
            from wdp.store import events as store_events

            ids = store_events.record_events(con, [detected(1)], config.active_webhooks(con), now=T0)
            config.WEBHOOKS.delete(con, "sub")
            async with WebhookDispatcher(store, FAST):
                await until(lambda: open_deliveries(store) == 0)
            item = outbox.get_item(con, ids[0])
            assert item is not None and item.status == "failed" and item.last_error == "subscription deleted"

    run(scenario())


def test_settings_reject_a_lease_shorter_than_an_attempt() -> None:
    with Store(":memory:") as store, pytest.raises(ValueError, match="lease_s"):
        WebhookDispatcher(store, WebhookSettings(lease_s=10, total_timeout_s=30))


# ---------------------------------------------------------------------------------------------- batch marking


def test_batched_mark_results_match_mark_result_row_for_row() -> None:
    """outbox_batch.mark_results is the store's mark_result for many reports at once: same outbox rows, same
    delivery log, same returned statuses, including stale, unknown, exhausted and non-retryable reports."""
    from wdp.integrations.webhooks.outbox_batch import Report, mark_results

    policy = RetryPolicy(max_attempts=2, backoff_base_s=1.5, backoff_max_s=2.0)

    def build(store: Store) -> list[outbox.OutboxItem]:
        con = store.cursor()
        sub = WebhookSubscription(id="s", url="http://x/", events=["*"], retry=policy)
        from wdp.store import events as store_events

        store_events.record_events(con, [detected(i) for i in range(8)], [sub], now=T0)
        items = sorted(outbox.claim_due(con, now=T0, limit=8, lease_s=1000), key=lambda i: i.event_id)
        # item 7: first attempt failed earlier, claimed again (attempt 2 = the last one)
        outbox.mark_result(con, items[7].delivery_id, 1, ok=False, now=T0, status_code=503)
        (again,) = outbox.claim_due(con, now=T0 + 10, limit=1, lease_s=5)
        return [*items[:7], again]

    def reports(items: list[outbox.OutboxItem]) -> list[Report]:
        t = T0 + 1
        return [
            Report(items[0].delivery_id, 1, True, t, 200, 3.5),
            Report(items[1].delivery_id, 1, False, t, 500, 9.0, "HTTP 500"),  # backoff
            Report(items[2].delivery_id, 1, False, t, 429, 1.0, "HTTP 429", retry_at=t + 30),  # Retry-After
            Report(items[3].delivery_id, 1, False, t, 400, 1.0, "HTTP 400", retryable=False),
            Report(items[4].delivery_id, 1, False, t, None, None, "ConnectError: refused"),
            Report(items[5].delivery_id, 2, True, t, 200, 1.0),  # stale: quotes the wrong attempt
            Report(items[6].delivery_id, 1, False, t, 502, 2.0, None),  # no error text: "HTTP 502"
            Report(items[7].delivery_id, 2, False, t, 500, 2.0, "HTTP 500"),  # attempts exhausted
            Report("unknown", 1, True, t, 200, 1.0),
        ]

    def snapshot(store: Store) -> tuple[list, list]:
        con = store.cursor()
        rows = con.execute(
            "SELECT e.event_id, o.status, o.attempts, o.next_attempt_at, o.claimed_until, o.last_error "
            "FROM outbox o JOIN events e USING (event_id) ORDER BY e.event_id"
        ).fetchall()
        log = con.execute(
            "SELECT event_id, attempt, ts, ok, status_code, latency_ms, error FROM delivery_log "
            "ORDER BY event_id, attempt, ts"
        ).fetchall()
        return rows, log

    with Store(":memory:") as one, Store(":memory:") as batch:
        items_one, items_batch = build(one), build(batch)
        expected = {}
        for r in reports(items_one):
            status = outbox.mark_result(
                one.cursor(),
                r.delivery_id,
                r.attempt,
                ok=r.ok,
                now=r.now,
                status_code=r.status_code,
                latency_ms=r.latency_ms,
                error=r.error,
                retryable=r.retryable,
            )
            if status == "pending" and r.retry_at is not None:  # what the dispatcher does after mark_result
                one.cursor().execute(
                    "UPDATE outbox SET next_attempt_at = ? WHERE delivery_id = ?", [r.retry_at, r.delivery_id]
                )
            expected[r.delivery_id] = status
        got = mark_results(batch.cursor(), reports(items_batch))
        by_event_one = {i.delivery_id: i.event_id for i in items_one} | {"unknown": "unknown"}
        by_event_batch = {i.delivery_id: i.event_id for i in items_batch} | {"unknown": "unknown"}
        got_by_event = {by_event_batch[k]: v for k, v in got.items()}
        assert got_by_event == {by_event_one[k]: v for k, v in expected.items()}
        assert list(expected.values()) == [
            "delivered",
            "pending",
            "pending",
            "failed",
            "pending",
            None,
            "pending",
            "failed",
            None,
        ]
        assert snapshot(batch) == snapshot(one)


def test_hostname_target_is_pinned_to_the_checked_address(tmp_path: Path) -> None:
    """A hostname URL is resolved and checked once; the request goes to that address with the original Host
    header (so a DNS answer that changes between check and connect cannot redirect it)."""
    import socket

    if {info[4][0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)} != {"127.0.0.1"}:
        pytest.skip("localhost does not resolve to 127.0.0.1 only here")
    target = run(UrlGuard(["127.0.0.1/32"]).resolve("https://localhost:8443/x?y=1"))
    assert str(target.url) == "https://127.0.0.1:8443/x?y=1"
    assert target.host_header == "localhost:8443" and target.server_name == "localhost"
    with pytest.raises(UrlRefusedError):
        run(UrlGuard().resolve("http://localhost/x"))

    with Receiver(tmp_path / "log.jsonl") as receiver:

        async def run_it() -> None:
            with Store(":memory:") as store:
                subscribe(store, f"http://localhost:{receiver.port}/named")
                async with WebhookDispatcher(store, FAST) as hooks:
                    await hooks.submit([detected(1)])
                    await until(lambda: open_deliveries(store) == 0)

        run(run_it())
        (record,) = receiver.records()
    assert record["path"] == "/named" and record["headers"]["Host"] == f"localhost:{receiver.port}"


def test_https_target_verifies_the_certificate_of_the_hostname_not_the_pinned_ip(tmp_path: Path) -> None:
    """The request connects to the checked IP but TLS uses the URL's hostname (SNI and certificate check): the
    receiver's certificate names only DNS:localhost, so checking it against 127.0.0.1 would fail."""
    import shutil
    import socket
    import ssl

    import httpx
    from tls_certs import make_certs

    if shutil.which("openssl") is None:
        pytest.skip("openssl not found")
    if {info[4][0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)} != {"127.0.0.1"}:
        pytest.skip("localhost does not resolve to 127.0.0.1 only here")
    make_certs(tmp_path, san="DNS:localhost")
    trust = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))

    async def scenario(receiver: Receiver) -> None:
        async with httpx.AsyncClient(verify=trust, trust_env=False) as client:
            with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
                await client.post(f"https://127.0.0.1:{receiver.port}/ip", content=b"{}")  # no IP in the cert
            with Store(":memory:") as store:
                subscribe(store, f"https://localhost:{receiver.port}/tls")
                async with WebhookDispatcher(store, FAST, client=client) as hooks:
                    await hooks.submit([detected(1)])
                    await until(lambda: open_deliveries(store) == 0)
                assert hooks.stats.delivered == 1 and hooks.stats.network_errors == 0

    with Receiver(tmp_path / "log.jsonl", tls=(tmp_path / "server.crt", tmp_path / "server.key")) as receiver:
        run(scenario(receiver))
        (record,) = receiver.records()
    assert record["path"] == "/tls" and record["headers"]["Host"] == f"localhost:{receiver.port}"
    assert verify_signature(
        "topsecret",
        record["headers"]["X-Timestamp"],
        record["body"].encode(),
        record["headers"]["X-Signature"],
    )
