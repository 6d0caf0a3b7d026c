"""Shared helpers of the dashboard tests: a real `python -m wdp.serve` process (engine with the scripted
simulator scene, ground-truth detector), tool lookups (chromium, ffmpeg) that skip locally but fail in CI,
ffprobe, and an in-process app over a store-backed engine view."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from server_process import free_port, password_token, stop_process, wait_healthy

SECRET = "dashboard-test-secret-0123456789abcdef0123"
ADMIN_PASSWORD = "admin-password-for-dashboard-tests"
BIG = {"limit": 10**9, "window_s": 60.0}
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def need_tool(name: str, *candidates: str) -> str:
    """The tool's path; a missing tool skips the test on a developer machine and fails it in CI (where
    .ci/setup installs it)."""
    for c in (name, *candidates):
        path = shutil.which(c)
        if path:
            return path
    message = f"{name} is not installed (apt-get install {name})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def artifacts_dir() -> Path:
    d = Path(os.environ.get("WDP_ARTIFACTS_DIR", REPO / "artifacts"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def ffprobe(path: Path | str) -> dict[str, Any]:
    """Streams and format of a media file, with every video frame decoded and counted."""
    tool = need_tool("ffprobe")
    out = subprocess.run(
        [tool, "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def server_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),  # the child imports what this process imports
        "WDP_JWT_SECRET": SECRET,
        "WDP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WDP_API__AUTH__ARGON2_TIME_COST": "1",
        "WDP_API__AUTH__ARGON2_MEMORY_KIB": "8192",
        "WDP_API__AUTH__ARGON2_PARALLELISM": "1",
        "WDP_API__RATE_LIMIT__TIERS": json.dumps(
            {t: BIG for t in ("default", "authenticated", "premium", "streaming")}
        ),
        **extra,
    }


@dataclass
class EngineServer:
    base: str
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextlib.contextmanager
def run_engine_server(
    workdir: Path,
    *overrides: str,
    scene: tuple[str, ...] = ("detector=ground_truth", "source=demo_fall"),
    **env: str,
) -> Iterator[EngineServer]:
    """`python -m wdp.serve` on a free 127.0.0.1 port: by default the realtime engine on the scripted demo_fall
    scene (two simulated routers, a fall every 10 s) with the ground-truth detector; ``scene=()`` runs the
    README's configuration (simulator source, shipped model). History in workdir."""
    port = free_port()
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wdp.serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
                *scene,
                f"store.path={workdir / 'history.duckdb'}",
                *overrides,
            ],
            env=server_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, log, timeout=60, interval=0.2)
        token = password_token(base, ADMIN_PASSWORD)
        yield EngineServer(base=base, port=port, token=token, proc=proc, log=log)
    finally:
        stop_process(proc, timeout=20)
    text = log.read_text()
    assert "Traceback" not in text, text


@pytest.fixture(scope="session")
def engine_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    with run_engine_server(tmp_path_factory.mktemp("engine-server")) as srv:
        yield srv


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
