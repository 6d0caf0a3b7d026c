"""In-process publish/subscribe for the engine's outputs (pose frames, events, router status).

Publishers never block: each subscriber owns a bounded queue, and when it is full the OLDEST message is
dropped and counted (``Subscription.dropped``), so a slow consumer (a stuck WebSocket, a lagging MQTT link)
loses history rather than stalling the engine or growing memory. Publishing is thread-safe; consuming works
from a thread (``get``) or from asyncio (``await sub.aget()`` / ``async for msg in sub``), whatever thread
published.

    bus = Bus()
    with bus.subscribe({Topic.POSE}, maxsize=64, name="ws") as sub:
        async for msg in sub:          # msg.topic, msg.payload (PoseFrame), msg.seq
            ...
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any


class Topic(enum.StrEnum):
    POSE = "pose"  # schemas.PoseFrame, one per processed time slot
    EVENT = "event"  # a schemas.Event (tagged union member)
    ROUTER = "router"  # schemas.Router status snapshot (on change and periodically)
    SENSING = "sensing"  # schemas.SensingState of a router or a zone, once a second each (wdp.sensing)
    DENSE = "dense"  # schemas.PoseFrame with Person.dense set: the POSE frame's dense twin (engine.dense on)


ALL_TOPICS: frozenset[Topic] = frozenset(Topic)


@dataclass(frozen=True, slots=True)
class Message:
    topic: Topic
    payload: Any
    seq: int  # bus-wide publish order


class SubscriptionClosed(Exception):
    """Raised by get()/aget() on a closed subscription once its queue is empty."""


class Subscription:
    """A bounded FIFO of messages for one consumer (drop-oldest when full)."""

    def __init__(self, bus: Bus, topics: frozenset[Topic], maxsize: int, name: str) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.topics = topics
        self.maxsize = maxsize
        self.name = name
        self.dropped = 0
        self.delivered = 0
        self._bus = bus
        self._items: deque[Message] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closed = False

    # ------------------------------------------------------------------------------------- producer side
    def _put(self, msg: Message) -> None:
        with self._cond:
            if self._closed:
                return
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(msg)
            self._cond.notify()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            _wake(loop, fut)

    # ------------------------------------------------------------------------------------- consumer side
    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def get_nowait(self) -> Message | None:
        with self._cond:
            return self._pop()

    def get(self, timeout: float | None = None) -> Message | None:
        """The oldest message, waiting up to ``timeout`` seconds (None: forever); None on timeout.
        Raises SubscriptionClosed when closed and drained."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait_for(lambda: self._items or self._closed, timeout)
            msg = self._pop()
            if msg is None and self._closed:
                raise SubscriptionClosed(self.name)
            return msg

    def drain(self) -> list[Message]:
        """Everything queued now, oldest first."""
        with self._cond:
            out = list(self._items)
            self._items.clear()
            self.delivered += len(out)
            return out

    async def aget(self) -> Message:
        """The oldest message, awaiting one if needed. Raises SubscriptionClosed when closed and drained."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                msg = self._pop()
                if msg is not None:
                    return msg
                if self._closed:
                    raise SubscriptionClosed(self.name)
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, fut))
            try:
                await fut
            finally:
                if fut.cancelled() or not fut.done():  # the awaiting task was cancelled: forget the waiter
                    with self._cond:
                        self._waiters = [(lp, f) for lp, f in self._waiters if f is not fut]

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.aget()
            except SubscriptionClosed:
                return

    def close(self) -> None:
        """Unsubscribe; queued messages can still be read, then get()/aget() raise SubscriptionClosed."""
        self._bus._remove(self)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            _wake(loop, fut)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _pop(self) -> Message | None:
        if self._items:
            self.delivered += 1
            return self._items.popleft()
        return None


def _wake(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
    def done() -> None:
        if not fut.done():
            fut.set_result(None)

    try:
        loop.call_soon_threadsafe(done)
    except RuntimeError:  # loop already closed: nobody is waiting any more
        pass


class Bus:
    """Topic fan-out to subscriptions. Thread-safe; publish() never blocks on consumers."""

    def __init__(self) -> None:
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self.published: dict[Topic, int] = {t: 0 for t in Topic}

    def subscribe(
        self, topics: Iterable[Topic | str] | None = None, *, maxsize: int = 1024, name: str = ""
    ) -> Subscription:
        chosen = ALL_TOPICS if topics is None else frozenset(Topic(t) for t in topics)
        sub = Subscription(self, chosen, maxsize, name)
        with self._lock:
            self._subs = (*self._subs, sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    def publish(self, topic: Topic, payload: Any) -> Message:
        with self._lock:  # one lock so seq order = delivery order in every queue
            msg = Message(topic, payload, next(self._seq))
            self.published[topic] += 1
            for sub in self._subs:
                if topic in sub.topics:
                    sub._put(msg)
        return msg

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return self._subs
