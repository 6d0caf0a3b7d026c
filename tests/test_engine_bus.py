"""The engine's pub/sub: bounded drop-oldest queues, topic filters, thread and asyncio consumers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from wdp.engine.bus import Bus, SubscriptionClosed, Topic


def test_topics_order_and_drop_oldest() -> None:
    bus = Bus()
    poses = bus.subscribe({Topic.POSE}, maxsize=3, name="ws")
    everything = bus.subscribe(maxsize=100)
    for i in range(5):
        bus.publish(Topic.POSE, i)
        bus.publish(Topic.EVENT, f"e{i}")
    # the slow pose consumer lost the two oldest frames, counted; nothing else was affected
    assert [m.payload for m in poses.drain()] == [2, 3, 4]
    assert poses.dropped == 2
    msgs = everything.drain()
    assert [m.payload for m in msgs] == [0, "e0", 1, "e1", 2, "e2", 3, "e3", 4, "e4"]
    assert [m.seq for m in msgs] == sorted(m.seq for m in msgs) and everything.dropped == 0
    assert bus.published[Topic.POSE] == 5 and bus.published[Topic.ROUTER] == 0


def test_get_timeout_close_and_unsubscribe() -> None:
    bus = Bus()
    sub = bus.subscribe({"event"})
    t0 = time.perf_counter()
    assert sub.get(timeout=0.05) is None
    assert time.perf_counter() - t0 >= 0.04
    bus.publish(Topic.EVENT, "a")
    sub.close()
    bus.publish(Topic.EVENT, "b")  # after close: not delivered
    assert sub.get(timeout=0).payload == "a"
    with pytest.raises(SubscriptionClosed):
        sub.get(timeout=1)
    assert sub not in bus.subscriptions
    with pytest.raises(ValueError):
        bus.subscribe(maxsize=0)
    with pytest.raises(ValueError):
        bus.subscribe({"nonsense"})


def test_blocking_get_wakes_on_publish_from_another_thread() -> None:
    bus = Bus()
    sub = bus.subscribe()
    threading.Timer(0.05, lambda: bus.publish(Topic.ROUTER, "r")).start()
    msg = sub.get(timeout=5)
    assert msg is not None and msg.topic is Topic.ROUTER and msg.payload == "r"


def test_async_consumer_fed_by_a_thread() -> None:
    bus = Bus()

    async def consume() -> list[int]:
        sub = bus.subscribe({Topic.POSE}, maxsize=1000)

        def produce() -> None:
            for i in range(200):
                bus.publish(Topic.POSE, i)
                if i % 50 == 0:
                    time.sleep(0.01)
            sub.close()

        threading.Thread(target=produce).start()
        got = []
        async for msg in sub:  # ends when the producer closes the subscription and the queue is empty
            got.append(msg.payload)
        return got

    assert asyncio.run(asyncio.wait_for(consume(), 10)) == list(range(200))


def test_cancelled_async_waiter_is_forgotten() -> None:
    bus = Bus()
    sub = bus.subscribe()

    async def main() -> str:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sub.aget(), 0.05)
        assert sub._waiters == []
        bus.publish(Topic.EVENT, "x")
        return (await asyncio.wait_for(sub.aget(), 1)).payload

    assert asyncio.run(main()) == "x"
