"""``wdp serve role=edge`` and ``role=hub`` as real processes: an edge running the simulator publishes to a real
mosquitto, a hub on a real PostgreSQL stores it and serves it through the REST API in the fleet namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from server_process import free_port, password_token, stop_process, wait_healthy


def _serve(tmp: Path, name: str, overrides: list[str]) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = tmp / f"{name}.log"
    env = {**os.environ, "WDP_JWT_SECRET": "x" * 40, "WDP_ADMIN_PASSWORD": "pw-123456", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "wdp", "serve", "--port", str(port), *overrides]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


def test_edge_and_hub_roles_end_to_end(broker, postgres, tmp_path):
    dsn = postgres.fresh_database()
    hub, hub_base, hub_log = _serve(
        tmp_path,
        "hub",
        ["role=hub", "store.backend=postgres", f"store.dsn={dsn}", f"mqtt.port={broker.port}", "fleet.hub_id=hub-a"],
    )
    edge = None
    try:
        wait_healthy(hub_base, hub, hub_log, timeout=60)
        edge, edge_base, edge_log = _serve(
            tmp_path,
            "edge",
            [
                "role=edge",
                "detector=ground_truth",
                f"store.path={tmp_path / 'edge.duckdb'}",  # the edge's id sequences (and its own record)
                f"mqtt.port={broker.port}",
                "fleet.site=home",
                "fleet.edge=floor1",
                "fleet.edge_index=3",
                f"fleet.queue_path={tmp_path / 'edge-queue.sqlite3'}",
            ],
        )
        wait_healthy(edge_base, edge, edge_log, timeout=60)
        token = password_token(hub_base, "pw-123456")
        with httpx.Client(base_url=hub_base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            deadline = time.monotonic() + 30
            page: dict = {}
            while time.monotonic() < deadline:
                r = http.get("/api/v1/pose/history", params={"start_time": 0, "end_time": 4e9, "limit": 50})
                assert r.status_code == 200, r.text
                page = r.json()
                if page["total"] >= 20:
                    break
                time.sleep(0.3)
        assert page["total"] >= 20, hub_log.read_text()[-3000:]
        frame = page["frames"][0]
        assert frame["frame_id"] >> 52 == 3  # the edge index namespaces frame ids
        assert frame["router_ids"] and all(r.startswith("home/floor1/") for r in frame["router_ids"])
    finally:
        if edge is not None:
            stop_process(edge, 30)
        stop_process(hub, 30)
