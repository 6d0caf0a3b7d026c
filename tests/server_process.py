"""Helpers for tests that run a real server process on 127.0.0.1: a free port, waiting for health, an admin
token, and a stop that never leaves the process behind."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout: float, interval: float = 0.1) -> None:
    """Poll GET {base}/api/v1/system/health until 200; fail with the server log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/api/v1/system/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the server did not start:\n{log.read_text()}")
        time.sleep(interval)


def password_token(base: str, password: str, username: str = "admin") -> str:
    r = httpx.post(
        f"{base}/api/v1/auth/token",
        json={"grant_type": "password", "username": username, "password": password},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
