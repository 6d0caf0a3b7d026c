"""A webhook subscription to motion.started gets a signed delivery, at a real HTTP receiver, of the event the
engine's sensing raised (synthetic ESP32 stream: a person walks by one router); no other sensing event goes
to it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sensing_fixtures import synthetic_stream
from webhook_receiver import Receiver

from wdp.csi.sources import ArraySource
from wdp.engine import Engine, EngineConfig
from wdp.integrations.webhooks import WebhookDispatcher, WebhookSettings, verify_signature
from wdp.schemas import EVENT_JSON, MotionStarted, RetryPolicy, WebhookSubscription
from wdp.store import Store, config

pytestmark = pytest.mark.timeout(60)
FAST = WebhookSettings(poll_interval_s=0.02, allowed_networks=["127.0.0.1/32"], total_timeout_s=3)


def test_motion_started_is_delivered_signed(tmp_path: Path) -> None:
    async def scenario(receiver: Receiver) -> None:
        with Store(":memory:") as store:
            sub = WebhookSubscription(
                id="motion",
                url=receiver.url,
                events=["motion.started"],
                secret="motion-secret-0123",
                retry=RetryPolicy(max_attempts=3, backoff_base_s=0.05, backoff_max_s=0.2),
            )
            config.WEBHOOKS.put(store.cursor(), sub)
            t, csi = synthetic_stream(moves=True, seed=5)
            engine = Engine(
                [ArraySource({"esp": (t, csi)}, realtime=False)], config=EngineConfig(detector="none"), store=store
            )

            def run_engine() -> None:
                with engine:
                    assert engine.wait(60)

            await asyncio.to_thread(run_engine)  # stop() flushed the events and their outbox rows
            async with WebhookDispatcher(store, FAST) as hooks:
                deadline = time.monotonic() + 20
                while hooks.stats.delivered < 1:
                    assert time.monotonic() < deadline, "no delivery"
                    await asyncio.sleep(0.02)

    with Receiver(tmp_path / "log.jsonl") as receiver:
        asyncio.run(asyncio.wait_for(scenario(receiver), 40))
        records = receiver.records()
    assert len(records) == 1
    h = {k.lower(): v for k, v in records[0]["headers"].items()}
    body = records[0]["body"].encode()
    assert h["x-event-type"] == "motion.started"
    assert verify_signature("motion-secret-0123", h["x-timestamp"], body, h["x-signature"])
    event = EVENT_JSON.decode(body)
    assert isinstance(event, MotionStarted) and event.router_id == "esp" and event.motion_score > 4.0
