"""bench/soak.py runs end to end in a short version: a real server and mosquitto, WebSocket clients, REST
polling, zone edits and two broker restarts; no QoS 1 event lost, no 5xx, server and broker stopped after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_broker import MOSQUITTO

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_short_soak_delivers_every_event_and_cleans_up(tmp_path: Path) -> None:
    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not found (.ci/setup installs it)")
    out = tmp_path / "soak.json"
    cmd = [
        sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "0.35", "--ws-clients", "3",
        "--broker-restart-s", "8", "--broker-down-s", "1", "--zone-every-s", "1", "--report-s", "10",
        "--drain-s", "20", "--keep", str(tmp_path / "work"), "--json", str(out),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=220)
    # 1: a target failed (the RSS bound of so short a run is only indicative); 2: the soak could not run
    assert run.returncode in (0, 1), run.stdout[-3000:] + run.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["events"]["lost"] == 0 and res["events"]["in_window"] > 0, res["events"]
    assert res["rest"]["requests"] > 0 and not [s for s in res["rest"]["by_status"] if s.startswith("5")]
    assert res["ws"]["messages"] > 0 and res["broker_restarts"] >= 1
    assert res["clean_shutdown"], run.stdout[-3000:]
    # the server and the broker are gone
    assert not Path(f"/proc/{res['server_pid']}").exists()
    pid_file = tmp_path / "work" / "broker" / "mosquitto.pid"
    if pid_file.exists():
        assert not Path(f"/proc/{pid_file.read_text().strip()}").exists()
