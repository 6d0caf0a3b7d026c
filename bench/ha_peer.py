"""A real Home Assistant for checks: installed in its own venv, started on 127.0.0.1, onboarded and given the
MQTT integration through its own REST API, read through its REST and WebSocket APIs.

Home Assistant 2024.3.3 is the last release that runs on Python 3.11, and since 2022 the MQTT broker can no
longer be set in configuration.yaml, so the integration is added the way the UI does it: onboarding
(``/api/onboarding/*``), then a config flow (``/api/config/config_entries/flow``). Pins it needs:
``josepy<2`` (with 2.x every request of Home Assistant's web server answers 500: acme imports a removed
josepy name), and, installed up front so the check needs no pip at run time, the requirements of the MQTT
integration (paho-mqtt 1.6.1), of the frontend (home-assistant-frontend 20240307.0; the device-page
screenshot needs it) and of the default integrations (recorder & co.: without them Home Assistant starts in
recovery mode).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HA_VERSION = "2024.3.3"
HA_PINS = (
    f"homeassistant=={HA_VERSION}",
    "josepy<2",
    "paho-mqtt==1.6.1",
    "home-assistant-frontend==20240307.0",
    "numpy==1.26.0",  # the camera integration (a frontend dependency) imports it; Home Assistant's own pin
    # what the default integrations (recorder, auth's TOTP, backup, hardware, ...) would pip-install at the first
    # start (their manifests' requirements, at Home Assistant's own pins): without them it runs in recovery mode
    "SQLAlchemy==2.0.27",
    "fnv-hash-fast==0.5.0",
    "psutil-home-assistant==0.0.1",
    "janus==1.0.0",
    "Pillow==10.2.0",
    "pyotp==2.8.0",
    "PyQRCode==1.2.1",
    "securetar==2024.2.1",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_installed(venv: Path, log: Any = print) -> Path:
    """Home Assistant in ``venv`` (created and installed when missing or another version); returns ``hass``."""
    hass = venv / "bin" / "hass"
    marker = venv / "wdp-ha-pins.json"
    if hass.exists() and marker.exists() and json.loads(marker.read_text()) == list(HA_PINS):
        return hass
    log(f"installing Home Assistant {HA_VERSION} into {venv} (about 90 s) ...")
    t0 = time.monotonic()
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    result = subprocess.run([*pip, *HA_PINS], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(HA_PINS)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    marker.write_text(json.dumps(list(HA_PINS)))
    log(f"installed in {time.monotonic() - t0:.0f} s")
    return hass


class Mosquitto:
    """A mosquitto broker on 127.0.0.1 (anonymous, no persistence)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if binary is None:
            raise RuntimeError("mosquitto not found (apt-get install mosquitto; .ci/setup does)")
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.log = workdir / "mosquitto.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.port, 10, self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s") from None
            time.sleep(0.2)


CONFIGURATION = """\
homeassistant:
  name: wdp check
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: {port}
logger:
  default: warning
automation: !include automations.yaml
"""


class HomeAssistant:
    """One Home Assistant process with a fresh configuration directory."""

    def __init__(self, hass: Path, config_dir: Path) -> None:
        self.hass = hass
        self.config_dir = config_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.client_id = f"{self.base}/"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        (config_dir / "automations.yaml").write_text("[]\n")
        self.token = ""
        self.refresh_token = ""
        self.proc: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.base, timeout=30)

    @property
    def log_file(self) -> Path:
        return self.config_dir / "home-assistant.log"

    def start(self, timeout: float = 240) -> float:
        """Start and wait until its API answers; returns the seconds it took."""
        t0 = time.monotonic()
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        with (self.config_dir / "stdout.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [str(self.hass), "-c", str(self.config_dir), "--skip-pip"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = t0 + timeout
        while True:
            try:
                if self.http.get("/api/onboarding", timeout=2).status_code == 200:
                    return time.monotonic() - t0
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Home Assistant did not start:\n{self.tail_log()}")
            if self.log_file.exists() and "'recovery_mode'" in self.log_file.read_text(errors="replace"):
                raise RuntimeError(
                    f"Home Assistant started in recovery mode (a requirement missing?):\n{self.tail_log()}"
                )
            time.sleep(0.5)

    def tail_log(self, n: int = 4000) -> str:
        text = ""
        for f in (self.config_dir / "stdout.log", self.log_file):
            if f.exists():
                text += f.read_text(errors="replace")[-n:]
        return text

    def stop(self) -> None:
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # ------------------------------------------------------------------------------------------ set-up
    def onboard(self, username: str = "wdp", password: str = "wdp-check-password") -> None:
        """The onboarding steps the UI takes: owner user (its auth code gives the tokens), location, analytics,
        integration."""
        r = self.http.post(
            "/api/onboarding/users",
            json={
                "client_id": self.client_id,
                "name": "wdp",
                "username": username,
                "password": password,
                "language": "en",
            },
        )
        r.raise_for_status()
        tokens = self.http.post(
            "/auth/token",
            data={"grant_type": "authorization_code", "code": r.json()["auth_code"], "client_id": self.client_id},
        )
        tokens.raise_for_status()
        self.token = tokens.json()["access_token"]
        self.refresh_token = tokens.json()["refresh_token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        # core_config marks itself done, then sets up the integrations onboarding suggests (met, radio_browser,
        # google_translate, shopping_list); without their requirements (--skip-pip: nothing is installed at run
        # time) that answers 500 while the step is done: checked below through the onboarding status instead
        self.http.post("/api/onboarding/core_config", json={})
        self.http.post("/api/onboarding/analytics", json={}).raise_for_status()
        self.http.post(
            "/api/onboarding/integration",
            json={"client_id": self.client_id, "redirect_uri": f"{self.base}/?auth_callback=1"},
        ).raise_for_status()
        status = self.http.get("/api/onboarding").json()
        if not all(step["done"] for step in status):
            raise RuntimeError(f"onboarding did not finish: {status}")

    def add_mqtt(self, broker_port: int) -> dict[str, Any]:
        """The MQTT integration against 127.0.0.1:broker_port through its config flow (discovery on, prefix
        homeassistant: the defaults)."""
        flow = self.http.post(
            "/api/config/config_entries/flow", json={"handler": "mqtt", "show_advanced_options": False}
        )
        flow.raise_for_status()
        step = flow.json()
        if step.get("type") != "form":
            raise RuntimeError(f"MQTT config flow did not ask for the broker: {step}")
        done = self.http.post(
            f"/api/config/config_entries/flow/{step['flow_id']}", json={"broker": "127.0.0.1", "port": broker_port}
        )
        done.raise_for_status()
        entry = done.json()
        if entry.get("type") != "create_entry":
            raise RuntimeError(f"MQTT config flow did not create the entry: {entry}")
        return entry

    # ------------------------------------------------------------------------------------------ reading
    def states(self) -> dict[str, dict[str, Any]]:
        r = self.http.get("/api/states")
        r.raise_for_status()
        return {s["entity_id"]: s for s in r.json()}

    def add_automation(self, ident: str, config: dict[str, Any]) -> None:
        """Create (or replace) an automation the way the UI's editor saves one (automations.yaml + reload)."""
        r = self.http.post(f"/api/config/automation/config/{ident}", json=config)
        r.raise_for_status()
        if r.json().get("result") != "ok":
            raise RuntimeError(f"automation {ident} not saved: {r.text}")

    def notifications(self) -> list[dict[str, Any]]:
        """The persistent notifications (not states since 2023.6: read over the WebSocket API)."""
        (result,) = self.ws_calls("persistent_notification/get")
        return list(result)

    def registry(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(entity registry, device registry) through the WebSocket API (the REST API has neither)."""
        entities, devices = self.ws_calls("config/entity_registry/list", "config/device_registry/list")
        return entities, devices

    def ws_calls(self, *kinds: str) -> list[Any]:
        """The results of WebSocket API commands without arguments, in order."""
        import asyncio

        import websockets

        async def read() -> list[Any]:
            url = self.base.replace("http", "ws", 1) + "/api/websocket"
            async with websockets.connect(url, max_size=2**24) as ws:
                json.loads(await ws.recv())  # auth_required
                await ws.send(json.dumps({"type": "auth", "access_token": self.token}))
                auth = json.loads(await ws.recv())
                if auth.get("type") != "auth_ok":
                    raise RuntimeError(f"Home Assistant WebSocket auth failed: {auth}")
                out = []
                for i, kind in enumerate(kinds, 1):
                    await ws.send(json.dumps({"id": i, "type": kind}))
                    while True:
                        msg = json.loads(await ws.recv())
                        if msg.get("id") == i:
                            break
                    if not msg.get("success"):
                        raise RuntimeError(f"{kind} failed: {msg}")
                    out.append(msg["result"])
                return out

        return asyncio.run(read())

    def log_complaints(self, words: tuple[str, ...] = ("mqtt", "template", "wdp")) -> list[str]:
        """WARNING/ERROR lines of its log that mention MQTT, templates or wdp (payload or template trouble)."""
        if not self.log_file.exists():
            return []
        out = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            if (" WARNING " in line or " ERROR " in line) and any(w in line.lower() for w in words):
                out.append(line)
        return out
