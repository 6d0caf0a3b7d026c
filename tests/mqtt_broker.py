"""A real mosquitto broker for tests: started on a free 127.0.0.1 port, restartable on the same port with its
persistence (sessions, queued QoS1 messages, retained messages) kept, plus an MQTT collector that reconnects,
a fast-reconnecting bridge config for it and a runner for a test's coroutine. The ``broker`` fixture is in
conftest.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
from server_process import free_port

from wdp.integrations.mqtt import MqttConfig

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run a test's coroutine to its end on a fresh event loop, failing it after ``timeout`` s."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def bridge_config(port: int, **kw: Any) -> MqttConfig:
    """An MqttConfig for a broker on 127.0.0.1:``port`` with a unique client id, short timeouts and fast
    reconnects (a restarted broker is found again within a fraction of a second); ``kw`` overrides."""
    base: dict[str, Any] = dict(
        host="127.0.0.1",
        port=port,
        client_id=f"wdp-{uuid.uuid4().hex[:8]}",
        keepalive_s=5,
        connect_timeout_s=2.0,
        reconnect_min_s=0.05,
        reconnect_max_s=0.4,
    )
    return MqttConfig(**(base | kw))


def wait_port(port: int, timeout: float = 5.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class MosquittoBroker:
    """``extra`` lines go into the listener's config (TLS, password_file...)."""

    def __init__(self, workdir: Path, port: int | None = None, *, extra: str = "", anonymous: bool = True) -> None:
        if MOSQUITTO is None:
            raise RuntimeError("mosquitto not installed")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = extra
        self.anonymous = anonymous
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"

    def _write_conf(self) -> None:
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            self.extra,
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 0",
            "max_queued_messages 100000",
            "max_inflight_messages 0",
            f"pid_file {self.workdir}/mosquitto.pid",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to a user that cannot write the pid/persistence files
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> MosquittoBroker:
        self._write_conf()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf), "-v"], stdout=log, stderr=log)
        try:
            wait_port(self.port)
        except OSError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start:\n{self.log.read_text()[-2000:]}") from None
        return self

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its persistence file and exits."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class Collector:
    """Subscribes to ``topic_filter`` and records every message; reconnects (same client id, persistent
    session when ``clean_session`` is False) until stopped."""

    port: int
    topic_filter: str
    qos: int = 2
    client_id: str = "collector"
    clean_session: bool = True
    messages: list[Received] = field(default_factory=list)
    connects: int = 0
    _task: asyncio.Task[None] | None = None
    _subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=self.client_id,
                    clean_session=self.clean_session,
                    keepalive=10,
                ) as client:
                    self.connects += 1
                    await client.subscribe(self.topic_filter, qos=self.qos)
                    self._subscribed.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                        self.messages.append(Received(m.topic.value, payload, m.qos, m.retain))
            except aiomqtt.MqttError:
                self._subscribed.clear()
                await asyncio.sleep(0.05)

    async def start(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._subscribed.wait(), 5)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def wait_for(self, predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out; got {len(self.messages)} messages: {[m.topic for m in self.messages][-20:]}"
                )
            await asyncio.sleep(0.01)

    def on(self, suffix: str) -> list[Received]:
        return [m for m in self.messages if m.topic.endswith(suffix)]

    async def __aenter__(self) -> Collector:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def retained(port: int, topic_filter: str, settle_s: float = 0.3) -> dict[str, Received]:
    """The retained messages under ``topic_filter``: subscribe with a fresh client, collect for a moment."""
    got: dict[str, Received] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"retained-{time.monotonic_ns()}") as client:
        await client.subscribe(topic_filter, qos=2)

        async def read() -> None:
            async for m in client.messages:
                if m.retain:
                    payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                    got[m.topic.value] = Received(m.topic.value, payload, m.qos, m.retain)

        try:
            await asyncio.wait_for(read(), settle_s)
        except TimeoutError:
            pass
    return got
