"""Shared helpers and fixtures for the API tests: a populated in-memory store, a store-backed engine view, the
AsyncTestClient, and tokens with chosen scopes."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from wdp.schemas import N_KEYPOINTS, Person, PoseFrame, Zone
from wdp.serve import StoreBackedEngineView, create_app, load_settings
from wdp.serve.services import Services
from wdp.serve.settings import ServeSettings
from wdp.store import Store
from wdp.store import config as store_config

SECRET = "test-secret-0123456789abcdef0123456789abcdef"
T0 = 1_700_000_000.0
FPS = 10.0
N_FRAMES = 200
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1}
ZONES = [
    Zone(id="left", name="Left half", polygon=[(0.0, 0.0), (5.0, 0.0), (5.0, 8.0), (0.0, 8.0)], max_occupancy=1),
    Zone(id="right", name="Right half", polygon=[(5.0, 0.0), (10.0, 0.0), (10.0, 8.0), (5.0, 8.0)]),
]


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def make_settings(**overrides: Any) -> ServeSettings:
    base = {"auth": {"jwt": {"secret": SECRET}, **FAST_ARGON2}}
    return load_settings(_merge(base, overrides), env={})


def person(track_id: int, x: float, y: float, confidence: float, activity: str | None = "walking") -> Person:
    kp = [[0.1 + 0.01 * j, 0.2 + 0.01 * j, 0.5] for j in range(N_KEYPOINTS)]
    return Person(
        track_id=track_id,
        keypoints=kp,
        box=(0.1, 0.1, 0.3, 0.6),
        confidence=confidence,
        zone_ids=["left"] if x < 5.0 else ["right"],
        activity=activity,
        position=(x, y),
    )


def history_frames(n: int = N_FRAMES) -> list[PoseFrame]:
    """Track 1 walks left -> right across the room; track 2 sits in the right half from frame 50 on
    (confidence 0.25, below the default filter); values are float32-exact."""
    frames = []
    for f in range(n):
        persons = [person(1, 0.5 + 9.0 * f / n, 4.0, 0.875, "walking")]
        if f >= 50:
            persons.append(person(2, 8.0, 2.0, 0.25, "sitting"))
        frames.append(
            PoseFrame(
                frame_id=f,
                timestamp=T0 + f / FPS,
                source="replay",
                persons=persons,
                router_ids=["r1"],
                latency_ms=5.0,
            )
        )
    return frames


def live_frame(frame_id: int, timestamp: float | None = None) -> PoseFrame:
    return PoseFrame(
        frame_id=frame_id,
        timestamp=T0 + 1000.0 if timestamp is None else timestamp,
        source="simulator",
        persons=[person(7, 2.0, 2.0, 0.9, "standing"), person(8, 7.5, 3.0, 0.4, None)],
        router_ids=["r1"],
        latency_ms=12.5,
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as s:
        with s.writer() as writer:
            for frame in history_frames():
                writer.append(frame)
        con = s.cursor()
        for zone in ZONES:
            store_config.ZONES.put(con, zone)
        yield s


@dataclass
class Api:
    app: Litestar
    client: AsyncTestClient[Litestar]
    view: StoreBackedEngineView
    store: Store

    @property
    def services(self) -> Services:
        return self.app.state["services"]

    def token(self, *scopes: str, subject: str = "alice", ttl_s: int | None = None) -> str:
        return self.services.tokens.issue(subject, scopes, ttl_s=ttl_s)[0]

    def auth(self, *scopes: str, subject: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes, subject=subject)}"}

    def publish(self, item: Any) -> None:
        """Publish a frame or event on the app's event loop. The test client runs the lifespan (hub) and
        WebSocket handlers in its portal thread, and asyncio objects are not thread-safe."""
        publish = self.view.publish_frame if isinstance(item, PoseFrame) else self.view.publish_event
        self.client.blocking_portal.call(publish, item)


async def open_api(store: Store, settings: ServeSettings | None = None) -> AsyncIterator[Api]:
    view = StoreBackedEngineView(store)
    app = create_app(settings or make_settings(), engine_view=view, store=store)
    async with AsyncTestClient(app) as client:
        yield Api(app=app, client=client, view=view, store=store)


@pytest.fixture
async def api(store: Store) -> AsyncIterator[Api]:
    async for a in open_api(store):
        yield a


def finite(x: float) -> bool:
    return math.isfinite(x)


UNDELIVERABLE_TARGETS = [  # webhook targets no delivery may reach (issue 12, item 9)
    "http://127.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "https://user:pw@hooks.example.test/in",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://2130706433/",
    "http://127.1:8080/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://localhost:9000/",
    "http://LOCALHOST./",
    "http://10.0.0.8/",
    "http://[fd00::1]/",
    "http://0.0.0.0/",
    "ftp://hooks.example.test/",
    "file:///etc/passwd",
    "https://hooks.example.test/" + "a" * 2100,
]
