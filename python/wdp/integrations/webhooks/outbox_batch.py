"""Batched outcome reporting for the webhook outbox: ``wdp.store.outbox.mark_result`` for many attempts in one
transaction with two set-based statements.

Why: one ``mark_result`` is a transaction of a lookup, a log insert and an update, several ms in DuckDB; at
one per delivery it capped delivery at a few hundred per second. Semantics are exactly ``mark_result``'s
(tested side by side in tests/test_integrations_webhooks.py): every report of a known delivery is logged;
only a report that quotes the current attempt of an in-flight item moves it on (delivered / pending after
backoff / failed when not retryable or out of attempts); stale reports change nothing else. A retry may carry
its own due time (jitter, Retry-After) instead of the plain backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

from wdp.store.connection import transaction
from wdp.store.outbox import OutboxStatus


@dataclass(frozen=True, slots=True)
class Report:
    delivery_id: str
    attempt: int
    ok: bool
    now: float
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    retryable: bool = True
    retry_at: float | None = None  # due time of the retry if pending; None: the policy's backoff


_LOG = """
INSERT INTO delivery_log
SELECT r.delivery_id, o.event_id, o.subscription_id, r.attempt, r.ts, r.ok, r.status_code::INTEGER,
       r.latency_ms, r.error
FROM _wdp_reports r JOIN outbox o ON o.delivery_id = r.delivery_id
ORDER BY r.seq"""

_UPDATE = """
UPDATE outbox SET
    status = CASE WHEN r.ok THEN 'delivered'
                  WHEN r.retryable AND outbox.attempts < outbox.max_attempts THEN 'pending'
                  ELSE 'failed' END,
    next_attempt_at = CASE
        WHEN NOT r.ok AND r.retryable AND outbox.attempts < outbox.max_attempts
        THEN coalesce(r.retry_at, r.ts + least(outbox.backoff_max_s,
                                               outbox.backoff_base_s * pow(2.0, outbox.attempts - 1)))
        ELSE r.ts END,
    claimed_until = NULL,
    last_error = CASE WHEN r.ok THEN NULL ELSE coalesce(r.error, 'HTTP ' || r.status_code::INTEGER) END
FROM _wdp_reports r
WHERE outbox.delivery_id = r.delivery_id AND outbox.status = 'in_flight' AND outbox.attempts = r.attempt
RETURNING outbox.delivery_id, outbox.status"""


def _nullable(values: Sequence[float | None]) -> np.ndarray:
    # DuckDB reads NaN in a registered float column as NULL
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def mark_results(con: duckdb.DuckDBPyConnection, reports: Sequence[Report]) -> dict[str, OutboxStatus | None]:
    """Apply ``reports`` (at most one per delivery id) in one transaction. Returns delivery id -> new status,
    None for a stale or unknown report, like ``mark_result``."""
    if not reports:
        return {}
    ids = [r.delivery_id for r in reports]
    if len(set(ids)) != len(ids):
        raise ValueError("one report per delivery id per batch")
    columns = {
        "seq": np.arange(len(reports), dtype=np.int64),
        "delivery_id": np.array(ids, dtype=object),
        "attempt": np.array([r.attempt for r in reports], dtype=np.int64),
        "ts": np.array([r.now for r in reports], dtype=np.float64),
        "ok": np.array([r.ok for r in reports], dtype=bool),
        "status_code": _nullable([r.status_code for r in reports]),
        "latency_ms": _nullable([r.latency_ms for r in reports]),
        "error": np.array([r.error for r in reports], dtype=object),
        "retryable": np.array([r.retryable for r in reports], dtype=bool),
        "retry_at": _nullable([r.retry_at for r in reports]),
    }
    con.register("_wdp_reports", columns)
    try:
        with transaction(con):
            con.execute(_LOG)
            moved = dict(con.execute(_UPDATE).fetchall())
    finally:
        con.unregister("_wdp_reports")
    return {delivery_id: moved.get(delivery_id) for delivery_id in ids}
