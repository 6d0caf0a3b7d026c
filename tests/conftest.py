from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mqtt_broker import MosquittoBroker


def _find_shared_csi() -> Path | None:
    env = os.environ.get("WDP_SHARED_CSI")
    if env:
        return Path(env)
    # The repo sits beside ../shared (CI clones main with shared next to it).
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "data" / "csi"
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def csi_dir() -> Path:
    d = _find_shared_csi()
    if d is None:
        pytest.fail("../shared/data/csi not found (set WDP_SHARED_CSI)")
    return d


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto on a free 127.0.0.1 port for one test (skipped where mosquitto is not installed)."""
    from mqtt_broker import MOSQUITTO, MosquittoBroker  # here: only MQTT tests need aiomqtt

    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not found (apt-get install mosquitto; .ci/setup installs it)")
    with MosquittoBroker(tmp_path / "broker") as b:
        yield b


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL cluster for the session (tests/pg_server.py); each test takes ``fresh_database()``.
    Skipped where the postgresql package is not installed (.ci/setup installs it)."""
    import pg_server

    if not pg_server.available():
        pytest.skip("PostgreSQL not installed (apt-get install postgresql; .ci/setup installs it)")
    with pg_server.PostgresServer() as server:
        yield server


@pytest.fixture(params=["duckdb", "postgres"])
def store_backend(request: pytest.FixtureRequest) -> str:
    """Run a store test on each backend: "duckdb" (in memory) or "postgres" (a fresh database)."""
    if request.param == "duckdb":
        return ":memory:"
    return str(request.getfixturevalue("postgres").fresh_database())  # type: ignore[attr-defined]
