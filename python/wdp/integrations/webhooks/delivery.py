"""WebhookDispatcher: durable webhook delivery through the store's outbox.

    submit(events) --record_events (one transaction: events + one outbox row per interested subscription)-->
    dispatcher loop --claim_due (lease)--> delivery tasks (httpx, bounded concurrency) --mark_result-->
        2xx: delivered | retryable (network error, timeout, retry_on_status e.g. 5xx/429): pending again after
        exponential backoff with jitter (never earlier than Retry-After) | anything else: failed

``submit`` returns only after the events and their deliveries are committed, so an accepted event survives a
crash of this process; on ``start`` deliveries left in flight by a previous run are released at once and,
with every pending one, delivered. Delivery is at least once: a crash after the receiver got a request but
before the result was recorded sends it again, with the same ``X-Delivery-ID`` (stable across retries and
manual redelivery) for the receiver to deduplicate.

All DuckDB work runs on one dedicated thread (one connection), so the event loop never blocks on the
database and the dispatcher's own statements never conflict with each other. Outcomes are recorded in
batches (``outbox_batch.mark_results``: ``mark_result``'s semantics, one transaction for all the attempts that
finished meanwhile); each attempt is appended to the store's delivery log (status code, latency, error).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import AsyncIterable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import duckdb
import httpx
import msgspec

from wdp import __version__
from wdp.integrations.webhooks.headers import sendable_headers
from wdp.integrations.webhooks.outbox_batch import Report, mark_results
from wdp.integrations.webhooks.signing import (
    ATTEMPT_HEADER,
    DELIVERY_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign_payload,
)
from wdp.integrations.webhooks.ssrf import UrlGuard, UrlRefusedError
from wdp.schemas import EventBase, WebhookSubscription
from wdp.store import Store, config, events, outbox
from wdp.store.outbox import OutboxItem

_log = logging.getLogger(__name__)
T = TypeVar("T")


class WebhookSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    concurrency: int = 16  # deliveries in flight at once (all subscriptions together)
    claim_batch: int = 64
    lease_s: float = 120.0  # an attempt not reported within this is handed out again; > total_timeout_s
    poll_interval_s: float = 0.5  # how often due retries are looked for when nothing wakes the loop
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    total_timeout_s: float = 30.0  # per attempt, whole request/response (a slow-drip receiver is cut off)
    max_connections: int = 100
    max_response_bytes: int = 65_536  # read (and discard) at most this much of a response body
    max_retry_after_s: float = 3600.0  # a Retry-After beyond this is capped
    jitter: float = 0.5  # backoff delay d becomes d * (1 - jitter * U[0,1)); 0 disables
    allowed_networks: list[str] = []  # CIDRs exempt from the SSRF guard, e.g. ["127.0.0.1/32"]
    subscription_cache_s: float = 1.0
    # While attempts are running, outcomes are gathered this long into one batch (a batch costs ~5 ms of
    # DuckDB whatever its size). A crash in that window only means those requests are sent again.
    report_linger_s: float = 0.05
    user_agent: str = f"wdp-webhooks/{__version__}"


@dataclass
class WebhookStats:
    submitted_events: int = 0
    queued_deliveries: int = 0
    attempts: int = 0
    delivered: int = 0
    retries_scheduled: int = 0
    failed: int = 0
    refused: int = 0  # attempts refused by the SSRF guard (failed without a request)
    network_errors: int = 0
    recovered_in_flight: int = 0  # deliveries left in flight by a previous run, released on start
    stale_reports: int = 0  # results for attempts whose lease had expired and been re-claimed


@dataclass(frozen=True, slots=True)
class AttemptResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    retryable: bool = True
    retry_after_s: float | None = None
    latency_ms: float | None = None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _release_in_flight(con: duckdb.DuckDBPyConnection, now: float) -> int:
    if getattr(con, "dialect", "duckdb") == "postgres":
        # a shared outbox: the in-flight rows may be another live hub's attempts; their leases expire instead
        return 0
    rows = con.execute(
        "UPDATE outbox SET claimed_until = ? WHERE status = 'in_flight' RETURNING delivery_id", [now]
    ).fetchall()
    return len(rows)


def _redeliver(con: duckdb.DuckDBPyConnection, delivery_id: str, now: float) -> bool:
    """Failed or delivered -> pending with a fresh set of attempts, same delivery id."""
    rows = con.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, claimed_until = NULL, "
        "last_error = NULL WHERE delivery_id = ? AND status IN ('failed', 'delivered') RETURNING delivery_id",
        [now, delivery_id],
    ).fetchall()
    return bool(rows)


class WebhookDispatcher:
    """Delivers the store's webhook outbox. Use ``async with`` (or start()/stop())."""

    def __init__(
        self,
        store: Store,
        settings: WebhookSettings | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        guard: UrlGuard | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.settings = settings or WebhookSettings()
        if self.settings.lease_s <= self.settings.total_timeout_s:
            raise ValueError("lease_s must exceed total_timeout_s, or live attempts would be handed out twice")
        self.guard = guard or UrlGuard(self.settings.allowed_networks)
        self.clock = clock
        self.rng = rng
        self.stats = WebhookStats()
        self._client = client
        self._owns_client = client is None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._active: set[asyncio.Task[None]] = set()
        self._reports: list[tuple[Report, OutboxItem]] = []
        self._reports_ready = asyncio.Event()
        self._reporter_done = False
        self._reporter_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._subs: dict[str, WebhookSubscription] = {}
        self._subs_loaded_at = -math.inf
        self._subs_lock = asyncio.Lock()
        self._claim_lock = asyncio.Lock()
        self._want_slots = False  # one claimer at a time, so claims never exceed the free slots

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> WebhookDispatcher:
        if self._task is not None:
            raise RuntimeError("dispatcher already started")
        s = self.settings
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s, pool=s.connect_timeout_s),
                limits=httpx.Limits(max_connections=s.max_connections, max_keepalive_connections=s.max_connections),
                follow_redirects=False,  # a redirect could point anywhere, past the SSRF check
                trust_env=False,
            )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wdp-webhooks-db")
        self._stopping = False
        recovered = await self._db(_release_in_flight, self.clock())
        self.stats.recovered_in_flight += recovered
        if recovered:
            _log.info("webhooks: %d deliveries were in flight when the previous run ended; resending", recovered)
        self._reporter_done = False
        self._reporter_task = asyncio.create_task(self._reporter(), name="webhook-reporter")
        self._task = asyncio.create_task(self._loop(), name="webhook-dispatcher")
        return self

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop claiming; let running attempts finish for ``grace_s``, then cancel them (they stay in flight
        in the outbox and are resent by the next start)."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        await asyncio.gather(task, return_exceptions=True)
        if self._active:
            _, pending = await asyncio.wait(set(self._active), timeout=grace_s)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._reporter_task is not None:  # record the outcomes still queued
            self._reporter_done = True
            self._reports_ready.set()
            await asyncio.gather(self._reporter_task, return_exceptions=True)
            self._reporter_task = None
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> WebhookDispatcher:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------------ API
    async def submit(self, batch: Iterable[EventBase]) -> list[str]:
        """Store events and queue their deliveries (one transaction), then wake the delivery loop. Returns the
        new delivery ids. When this returns, the events are durable."""
        items = list(batch)
        if not items:
            return []
        s = self.settings
        async with self._claim_lock:
            # Claim right after the commit, on the same trip to the DB thread: the new deliveries start
            # without waiting for the loop to wake up and claim them.
            limit = 0 if self._stopping else min(s.concurrency - len(self._active), s.claim_batch)
            job = asyncio.ensure_future(self._db(self._record_and_claim, items, self.clock(), limit, s.lease_s))
            try:
                ids, claimed = await asyncio.shield(job)
            except asyncio.CancelledError:
                # The caller gave up, but the DB thread finishes the job: still deliver what it claims.
                job.add_done_callback(self._spawn_when_done)
                raise
            self._spawn(claimed)
        self.stats.submitted_events += len(items)
        self.stats.queued_deliveries += len(ids)
        if ids and len(claimed) >= limit:  # some may still be due: let the loop look
            self._wake.set()
        return ids

    async def consume(self, source: AsyncIterable[EventBase], *, max_batch: int = 256) -> None:
        """Submit every event an async iterator yields; events that arrive while a submit is running are
        batched into the next transaction."""
        pending: asyncio.Queue[EventBase | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for event in source:
                    pending.put_nowait(event)
            finally:
                pending.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            done = False
            while not done:
                batch = [await pending.get()]
                while not pending.empty() and len(batch) < max_batch:
                    batch.append(pending.get_nowait())
                if None in batch:
                    done = True
                    batch = [e for e in batch if e is not None]
                await self.submit(batch)  # type: ignore[arg-type]
            await reader
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def redeliver(self, delivery_id: str) -> bool:
        """Send a failed or delivered delivery again (fresh attempts, same X-Delivery-ID). False if unknown or
        still pending/in flight."""
        ok = await self._db(_redeliver, delivery_id, self.clock())
        if ok:
            self._wake.set()
        return ok

    def invalidate_subscriptions(self) -> None:
        """Call after webhook CRUD so the next attempt sees the new URL/secret at once (else within
        ``subscription_cache_s``)."""
        self._subs_loaded_at = -math.inf

    def wake(self) -> None:
        """Look for due deliveries now (e.g. after another component enqueued or requeued some)."""
        self._wake.set()

    # ------------------------------------------------------------------------------------------ internals
    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._executor is None:
            raise RuntimeError("dispatcher is not started")
        store = self.store

        def run() -> T:
            return fn(store.cursor(), *args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    @staticmethod
    def _record_and_claim(
        con: duckdb.DuckDBPyConnection, items: list[EventBase], now: float, limit: int, lease_s: float
    ) -> tuple[list[str], list[OutboxItem]]:
        ids = events.record_events(con, items, config.active_webhooks(con), now=now)
        claimed: list[OutboxItem] = []
        if ids and limit > 0:
            try:
                claimed = outbox.claim_due(con, now=now, limit=limit, lease_s=lease_s)
            except duckdb.Error:  # the events are stored; the loop will claim them
                _log.exception("webhooks: claiming after submit failed")
        return ids, claimed

    def _spawn_when_done(self, job: asyncio.Future[tuple[list[str], list[OutboxItem]]]) -> None:
        if not job.cancelled() and job.exception() is None:
            self._spawn(job.result()[1])

    def _spawn(self, claimed: list[OutboxItem]) -> None:
        for item in claimed:
            task = asyncio.create_task(self._deliver(item))
            self._active.add(task)
            task.add_done_callback(self._active.discard)

    async def _subscription(self, subscription_id: str) -> WebhookSubscription | None:
        requested_at = self.clock()
        if requested_at - self._subs_loaded_at > self.settings.subscription_cache_s or (
            subscription_id not in self._subs
        ):
            async with self._subs_lock:
                if self._subs_loaded_at < requested_at:  # else another task reloaded while we waited
                    subs = await self._db(config.WEBHOOKS.list)
                    self._subs = {s.id: s for s in subs}
                    self._subs_loaded_at = self.clock()
        return self._subs.get(subscription_id)

    async def _loop(self) -> None:
        s = self.settings
        while not self._stopping:
            self._wake.clear()
            async with self._claim_lock:
                free = s.concurrency - len(self._active)
                # A claim costs a few ms whatever its size: while deliveries are running, wait until half the
                # slots are free instead of claiming one item per finished attempt.
                wanted = 1 if not self._active else max(1, min(s.claim_batch, s.concurrency // 2))
                claimed: list[OutboxItem] = []
                if free >= wanted and not self._stopping:
                    try:
                        claimed = await self._db(
                            outbox.claim_due,
                            now=self.clock(),
                            limit=min(free, s.claim_batch),
                            lease_s=s.lease_s,
                        )
                    except duckdb.Error:
                        _log.exception("webhooks: claiming due deliveries failed")
                    self._spawn(claimed)
            # due work may be left over (the claim was full) or waiting for slots: wake on completions
            self._want_slots = free < wanted or len(claimed) == min(free, s.claim_batch)
            if claimed and len(claimed) == min(free, s.claim_batch):
                continue  # more may be due right now
            try:
                await asyncio.wait_for(self._wake.wait(), s.poll_interval_s)
            except TimeoutError:
                pass

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            sub = await self._subscription(item.subscription_id)
            if sub is None:
                result = AttemptResult(ok=False, error="subscription deleted", retryable=False)
            elif not sub.active:
                result = AttemptResult(ok=False, error="subscription inactive", retryable=False)
            else:
                result = await self._attempt(item, sub)
            self._report(item, sub, result)
        except asyncio.CancelledError:
            raise
        except Exception:  # the outbox keeps it in flight; the lease hands it out again later
            _log.exception("webhooks: delivery %s attempt %d crashed", item.delivery_id, item.attempts)
        finally:
            if self._want_slots:  # the loop is waiting for a free slot (else it would claim nothing)
                self._wake.set()

    async def _attempt(self, item: OutboxItem, sub: WebhookSubscription) -> AttemptResult:
        s = self.settings
        self.stats.attempts += 1
        try:
            target = await self.guard.resolve(sub.url)
        except UrlRefusedError as exc:
            self.stats.refused += 1
            return AttemptResult(ok=False, error=f"refused: {exc}", retryable=False)
        except OSError as exc:
            self.stats.network_errors += 1
            return AttemptResult(ok=False, error=f"resolve failed: {exc}")
        body = item.payload.encode()
        timestamp = str(int(self.clock()))
        headers = {
            # custom headers first (only valid, unreserved ones: see headers.py); ours below cannot be overridden
            **sendable_headers(sub.headers),
            "Content-Type": "application/json",
            "User-Agent": s.user_agent,
            "Host": target.host_header,
            EVENT_TYPE_HEADER: item.event_type,
            DELIVERY_ID_HEADER: item.delivery_id,
            TIMESTAMP_HEADER: timestamp,
            ATTEMPT_HEADER: str(item.attempts),
        }
        if sub.secret:
            headers[SIGNATURE_HEADER] = sign_payload(sub.secret, timestamp, body)
        extensions = {"sni_hostname": target.server_name} if target.server_name else None
        assert self._client is not None
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(s.total_timeout_s):
                async with self._client.stream(
                    "POST", target.url, content=body, headers=headers, extensions=extensions
                ) as response:
                    received = 0
                    async for chunk in response.aiter_raw():
                        received += len(chunk)
                        if received >= s.max_response_bytes:
                            break
        except TimeoutError:
            self.stats.network_errors += 1
            return AttemptResult(
                ok=False,
                error=f"timeout after {s.total_timeout_s:g} s",
                latency_ms=(time.perf_counter() - t0) * 1e3,
            )
        except httpx.HTTPError as exc:
            self.stats.network_errors += 1
            return AttemptResult(
                ok=False,
                error=f"{type(exc).__name__}: {exc}"[:500],
                latency_ms=(time.perf_counter() - t0) * 1e3,
            )
        latency_ms = (time.perf_counter() - t0) * 1e3
        code = response.status_code
        if 200 <= code < 300:
            return AttemptResult(ok=True, status_code=code, latency_ms=latency_ms)
        retryable = code in sub.retry.retry_on_status
        return AttemptResult(
            ok=False,
            status_code=code,
            latency_ms=latency_ms,
            retryable=retryable,
            error=f"HTTP {code}" + ("" if 300 > code or code >= 400 else " (redirects are not followed)"),
            retry_after_s=parse_retry_after(response.headers.get("Retry-After"), self.clock()) if retryable else None,
        )

    def _report(self, item: OutboxItem, sub: WebhookSubscription | None, result: AttemptResult) -> None:
        """Queue the outcome for the reporter, which records outcomes in batches (one transaction each)."""
        now = self.clock()
        retry_at = None
        if not result.ok and result.retryable and sub is not None:
            delay = sub.retry.delay_s(item.attempts) * (1.0 - self.settings.jitter * self.rng())
            if result.retry_after_s is not None:
                delay = max(delay, min(result.retry_after_s, self.settings.max_retry_after_s))
            retry_at = now + delay
        report = Report(
            item.delivery_id,
            item.attempts,
            result.ok,
            now,
            result.status_code,
            result.latency_ms,
            result.error,
            result.retryable,
            retry_at,
        )
        self._reports.append((report, item))
        self._reports_ready.set()

    async def _reporter(self) -> None:
        while True:
            await self._reports_ready.wait()
            self._reports_ready.clear()
            if len(self._reports) < 64 and self._active and not self._reporter_done:
                # Let outcomes of the attempts still running join this batch: a batch costs about the same
                # whatever its size. Only the bookkeeping waits; the receivers already have their requests.
                await asyncio.sleep(self.settings.report_linger_s)
            batch: list[tuple[Report, OutboxItem]] = []
            ids: set[str] = set()
            while self._reports and len(batch) < 512 and self._reports[0][0].delivery_id not in ids:
                entry = self._reports.pop(0)
                ids.add(entry[0].delivery_id)
                batch.append(entry)
            if batch:
                try:
                    statuses = await self._db(self._mark, [r for r, _ in batch])
                except Exception:
                    # Not recorded: the items stay in flight and their lease hands them out again.
                    _log.exception("webhooks: recording %d delivery results failed", len(batch))
                else:
                    for report, item in batch:
                        self._count(statuses.get(report.delivery_id), item, report)
            if self._reports:
                self._reports_ready.set()
            elif self._reporter_done:
                return

    def _count(self, status: str | None, item: OutboxItem, report: Report) -> None:
        if status == "delivered":
            self.stats.delivered += 1
        elif status == "pending":
            self.stats.retries_scheduled += 1
        elif status == "failed":
            self.stats.failed += 1
            _log.warning(
                "webhooks: delivery %s to %s failed for good: %s",
                item.delivery_id,
                item.subscription_id,
                report.error,
            )
        else:
            self.stats.stale_reports += 1

    @staticmethod
    def _mark(con: duckdb.DuckDBPyConnection, reports: list[Report]) -> dict[str, str | None]:
        for tries in range(5):
            try:
                return mark_results(con, reports)  # type: ignore[return-value]
            except duckdb.TransactionException:
                # Another connection (e.g. the API requeueing) touched one of the rows: try again.
                if tries == 4:
                    raise
        raise AssertionError("unreachable")
