"""wdp in a real Home Assistant (issue 13): runs bench/check_home_assistant.py, which installs Home Assistant
2024.3.3 in its own venv (.ha/venv, kept between runs), onboards it, adds the MQTT integration and checks every
entity wdp announces through Home Assistant's APIs. About 3 minutes the first time (the install), 1-2 after.
Deselect with ``-m "not home_assistant"``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_broker import MOSQUITTO

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.home_assistant,
    pytest.mark.timeout(900),
    pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto binary not found (.ci/setup installs it)"),
]


def test_every_announced_entity_works_in_a_real_home_assistant(tmp_path: Path) -> None:
    report = tmp_path / "ha.json"
    cmd = [sys.executable, str(ROOT / "bench" / "check_home_assistant.py"), "--json", str(report)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=850)
    out = proc.stdout + proc.stderr
    assert report.exists(), out[-6000:]
    result = json.loads(report.read_text())
    failed = [what for ok, what in result["results"] if not ok]
    assert proc.returncode == 0 and result["passed"] and not failed, "\n".join(failed) + "\n" + out[-6000:]
    # what the issue asks for, by name: these checks ran (a check that silently stopped early would pass less)
    ran = " ".join(what for _, what in result["results"])
    for needle in ("one device", "fall event fired", "zone created", "renamed", "disappears", "clean stop", "kill -9"):
        assert needle in ran, f"check {needle!r} did not run:\n{ran}"
