"""wdp against a real Home Assistant (issue 13): every entity wdp announces over MQTT discovery, checked through
Home Assistant's own APIs.

    .venv/bin/python bench/check_home_assistant.py [--ha-venv .ha/venv] [--screenshot docs/img/ha_device.png]

Installs Home Assistant 2024.3.3 in its own venv (bench/ha_peer.py says why that version and which pins), starts
a mosquitto and a Home Assistant with a fresh configuration on 127.0.0.1, onboards it and adds the MQTT
integration through its REST API, then starts ``wdp serve`` (simulator, the scripted fall scene
``source=demo_fall`` with ``detector=ground_truth``, MQTT on) and asserts, through ``/api/states`` and the entity
and device registries:

* every discovery config wdp published (read back from the broker) is an entity of the MQTT integration, all on
  one device "WiFi DensePose": person count, presence, fall event, engine state, per-zone occupancy, and the
  sensing entities (motion, presence, breathing rate, motion score) of every router and zone;
* every entity gets a state (none stays unavailable), the live ones change (zone occupancy as the scripted
  person walks in, the motion scores), the engine state says running, and the fall event fires with event type
  person.fall_detected in the fall scene;
* a zone created, renamed and deleted over wdp's REST API appears, is renamed and disappears in Home Assistant
  (entity registry and states), each within ``--within`` seconds (the seconds taken are printed);
* availability follows a clean stop (SIGTERM) and a crash (kill -9: the broker sends wdp's last will);
* Home Assistant's log has no warning or error about MQTT, templates or wdp.

Exit status 0 when everything holds, 1 otherwise; ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ha_peer import HA_VERSION, HomeAssistant, Mosquitto, ensure_installed, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AUTOMATION = ROOT / "docs" / "ha_fall_automation.yaml"  # the README's example, installed as is
NODE = "wdp"
ADMIN_PASSWORD = "ha-check-admin-1"
# Zones: "desk" is where the scripted walker ends up (room 101, walking from (1.0, 2.6) to (3.7, 4.3)), so its
# occupancy changes every loop of the scene, and it is a sensing zone (sensing.zones); "hall" is created, renamed
# and deleted during the check.
DESK = {"id": "desk", "name": "Desk", "polygon": [[3.0, 3.6], [4.6, 3.6], [4.6, 5.0], [3.0, 5.0]]}
HALL = {"id": "hall", "name": "Hall", "polygon": [[0.2, 0.2], [1.5, 0.2], [1.5, 1.5], [0.2, 1.5]]}
SENSING = ("motion", "presence", "breathing_rate", "motion_score")


class Check:
    """Collects pass/fail lines and figures."""

    def __init__(self) -> None:
        self.results: list[tuple[bool, str]] = []
        self.figures: dict[str, Any] = {"home_assistant": HA_VERSION}

    def __call__(self, ok: bool, what: str) -> bool:
        self.results.append((bool(ok), what))
        print(f"  [{'PASS' if ok else 'FAIL'}] {what}", flush=True)
        return bool(ok)

    @property
    def passed(self) -> bool:
        return all(ok for ok, _ in self.results)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.25) -> tuple[Any, float]:
    """(the first truthy value of ``predicate()``, seconds taken), or (None, timeout)."""
    t0 = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return None, timeout
        time.sleep(interval)


class Wdp:
    """``wdp serve`` as a new user runs it, plus MQTT, on the scripted fall scene."""

    def __init__(self, workdir: Path, broker_port: int) -> None:
        self.workdir = workdir
        self.broker_port = broker_port
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.http: httpx.Client | None = None

    def start(self, timeout: float = 240) -> float:
        t0 = time.monotonic()
        self.port = free_port()
        env = {**os.environ, "WDP_ADMIN_PASSWORD": ADMIN_PASSWORD, "WDP_JWT_SECRET": "h" * 40, "OMP_NUM_THREADS": "1"}
        cmd = [
            sys.executable, "-m", "wdp", "serve", "--port", str(self.port),
            "source=demo_fall", "detector=ground_truth",
            f"store.path={self.workdir / 'history.duckdb'}",
            "mqtt.enabled=true", "mqtt.host=127.0.0.1", f"mqtt.port={self.broker_port}",
            "+sensing.zones.desk=[sim-0,sim-1]",  # the desk zone's sensing combines both routers
        ]  # fmt: skip
        with (self.workdir / f"wdp-{self.port}.log").open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{self.port}"
        while True:
            try:
                if httpx.get(f"{base}/api/v1/system/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                raise RuntimeError(f"wdp serve did not start:\n{self.log_tail()}")
            time.sleep(0.2)
        r = httpx.post(
            f"{base}/api/v1/auth/token",
            json={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD},
        )
        r.raise_for_status()
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {r.json()['access_token']}"}, timeout=10
        )
        return time.monotonic() - t0

    def log_tail(self) -> str:
        logs = sorted(self.workdir.glob("wdp-*.log"), key=lambda p: p.stat().st_mtime)
        return logs[-1].read_text(errors="replace")[-4000:] if logs else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def announced(broker_port: int, settle_s: float = 0.5) -> dict[str, dict[str, Any]]:
    """unique_id -> discovery config, for every non-empty retained config of wdp's node on the broker."""

    async def read() -> dict[str, dict[str, Any]]:
        got: dict[str, dict[str, Any]] = {}
        async with aiomqtt.Client("127.0.0.1", broker_port, identifier=f"ha-check-{time.monotonic_ns()}") as c:
            await c.subscribe(f"homeassistant/+/{NODE}/+/config", qos=1)

            async def collect() -> None:
                async for m in c.messages:
                    if m.retain and m.payload:
                        config = json.loads(m.payload)  # type: ignore[arg-type]
                        got[config["unique_id"]] = config | {"_component": m.topic.value.split("/")[1]}

            try:
                await asyncio.wait_for(collect(), settle_s)
            except TimeoutError:
                pass
        return got

    return asyncio.run(read())


def expected_unique_ids(routers: list[str], zones: list[str]) -> set[str]:
    ids = {f"{NODE}_{o}" for o in ("person_count", "presence", "fall", "engine_state")}
    for z in zones:
        ids.add(f"{NODE}_zone_{z}_occupancy")
        ids |= {f"{NODE}_sensing_zone_{z}_{w}" for w in SENSING}
    for r in routers:
        ids |= {f"{NODE}_sensing_router_{r}_{w}" for w in SENSING}
    return ids


def superset_or_none(found: dict[str, Any], want: set[str]) -> dict[str, Any] | None:
    return found if want <= found.keys() else None


def wdp_entities(ha: HomeAssistant) -> dict[str, dict[str, Any]]:
    """unique_id -> entity registry entry, for the MQTT entities whose unique id is wdp's node's."""
    entities, _ = ha.registry()
    return {e["unique_id"]: e for e in entities if e["platform"] == "mqtt" and e["unique_id"].startswith(f"{NODE}_")}


def screenshot(ha: HomeAssistant, device_id: str, path: Path) -> str:
    """The device page of the Home Assistant frontend in headless Chromium (the owner's tokens put in the
    frontend's localStorage, as its login would)."""
    from playwright.sync_api import sync_playwright

    tokens = {
        "access_token": ha.token,
        "refresh_token": ha.refresh_token,
        "token_type": "Bearer",
        "expires_in": 1800,
        "expires": int(time.time() * 1000) + 1_800_000,
        "hassUrl": ha.base,
        "clientId": ha.client_id,
    }
    chromium = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.add_init_script(f"window.localStorage.setItem('hassTokens', {json.dumps(json.dumps(tokens))});")
            page.goto(f"{ha.base}/config/devices/device/{device_id}", wait_until="networkidle", timeout=60_000)
            page.wait_for_timeout(4000)
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path))
            return page.title()
        finally:
            browser.close()


def run(args: argparse.Namespace) -> Check:
    check = Check()
    hass = ensure_installed(Path(args.ha_venv).resolve())
    work = Path(tempfile.mkdtemp(prefix="wdp-ha-check-"))
    broker = Mosquitto(work / "broker")
    ha = HomeAssistant(hass, work / "ha")
    wdp = Wdp(work, broker.port)
    try:
        t = ha.start()
        check.figures["ha_start_s"] = round(t, 1)
        print(f"Home Assistant {HA_VERSION} up in {t:.0f} s on {ha.base}; mosquitto on {broker.port}", flush=True)
        ha.onboard()
        check(True, "onboarded through /api/onboarding")

        # wdp first, set up with its zone, then Home Assistant's MQTT integration (as a user would add it)
        t = wdp.start()
        assert wdp.http is not None
        print(f"wdp serve up in {t:.1f} s on port {wdp.port}", flush=True)
        r = wdp.http.post("/api/v1/config/zones", json=DESK)
        check(r.status_code == 201, f"zone 'desk' created over wdp's REST API ({r.status_code})")
        http = wdp.http

        def sensing_routers() -> list[str]:
            return sorted({x["router_id"] for x in http.get("/api/v1/sensing/current").json()["routers"]})

        routers, _ = wait_for(sensing_routers, 30)
        check(bool(routers), f"wdp senses routers {routers}")
        routers = routers or []
        ha.add_mqtt(broker.port)
        check(True, "MQTT integration added through its config flow")
        automation_text = AUTOMATION.read_text()
        check(automation_text in (ROOT / "README.md").read_text(), "README shows docs/ha_fall_automation.yaml as is")
        ha.add_automation("wdp_fall", yaml.safe_load(automation_text))

        # -- every announced entity exists in Home Assistant, on one device
        want = expected_unique_ids(routers, ["desk"])
        configs, took = wait_for(lambda: superset_or_none(announced(broker.port), want), args.within)
        configs = configs or announced(broker.port)
        check(
            want <= configs.keys(),
            f"wdp announced {len(configs)} entities, all {len(want)} expected among them"
            + ("" if want <= configs.keys() else f"; missing {sorted(want - configs.keys())}"),
        )
        entities, took = wait_for(lambda: superset_or_none(wdp_entities(ha), set(configs)), 60)
        entities = entities or wdp_entities(ha)
        missing = sorted(configs.keys() - entities.keys())
        check(
            not missing,
            f"all {len(configs)} announced entities exist in Home Assistant's registry"
            + (f"; missing {missing}" if missing else f" ({took:.1f} s)"),
        )
        devices = {e["device_id"] for e in entities.values()}
        _, device_list = ha.registry()
        device = next((d for d in device_list if d["id"] in devices), None)
        check(
            len(devices) == 1 and device is not None and device["name"] == "WiFi DensePose",
            f"all on one device: {[d['name'] for d in device_list if d['id'] in devices]}",
        )
        ids = {u: e["entity_id"] for u, e in entities.items()}

        def misnamed() -> list[tuple[str, str, str]]:
            """(entity, Home Assistant's name, the name wdp announces now) where they differ."""
            now, states = announced(broker.port), ha.states()
            return [
                (ids[u], name, f"WiFi DensePose {c['name']}")
                for u, c in now.items()
                if u in ids
                and (name := states.get(ids[u], {}).get("attributes", {}).get("friendly_name"))
                and name != f"WiFi DensePose {c['name']}"
            ]

        wrong, took = wait_for(lambda: not misnamed(), args.within)
        wrong = misnamed()
        check(
            not wrong,
            "every entity is named as announced (the desk zone's sensing entities after its creation)"
            + (f"; differ: {wrong}" if wrong else ""),
        )

        # -- states: every entity gets one, the live ones change, the fall event fires
        seen: dict[str, list[str]] = {eid: [] for eid in ids.values()}
        attrs: dict[str, dict[str, Any]] = {}
        t_end = time.monotonic() + args.observe
        while time.monotonic() < t_end:
            states = ha.states()
            for eid in seen:
                s = states.get(eid)
                value = s["state"] if s else "<absent>"
                if not seen[eid] or seen[eid][-1] != value:
                    seen[eid].append(value)
                if s:
                    attrs[eid] = s["attributes"]
            time.sleep(0.5)
        never = sorted(e for e, v in seen.items() if set(v) <= {"unavailable", "<absent>"})
        check(not never, "every entity got a state" + (f"; never available: {never}" if never else ""))
        live = [ids[f"{NODE}_zone_desk_occupancy"], ids[f"{NODE}_fall"]] + [
            ids[f"{NODE}_sensing_router_{r}_motion_score"] for r in routers
        ]
        still = [e for e in live if len({v for v in seen[e] if v not in ("unavailable", "<absent>")}) < 2]
        check(
            not still,
            "the live entities changed state (desk occupancy, fall event, motion scores)"
            + (f"; unchanged: {[(e, seen[e]) for e in still]}" if still else ""),
        )
        fall_id = ids[f"{NODE}_fall"]
        check(
            attrs.get(fall_id, {}).get("event_type") == "person.fall_detected",
            f"the fall event fired: {fall_id} = {seen[fall_id][-1]}, {attrs.get(fall_id, {}).get('event_type')}",
        )
        automation = ha.states().get("automation.fall_detected_by_wdp", {})
        notes = [n for n in ha.notifications() if n.get("title") == "Fall detected"]
        message = notes[-1]["message"] if notes else ""
        check(
            bool(automation.get("attributes", {}).get("last_triggered"))
            and "Someone fell at" in message
            and "detector" in message,
            f"the README's fall automation fired and notified: {message!r}",
        )
        engine_id = ids[f"{NODE}_engine_state"]
        check(seen[engine_id][-1] == "running", f"{engine_id} says {seen[engine_id][-1]!r}")
        check.figures["states"] = {e: v[-6:] for e, v in sorted(seen.items())}

        # -- zones created / renamed / deleted over wdp's REST API
        hall_uid = f"{NODE}_zone_hall_occupancy"
        hall_sensing: set[str] = set()  # hall is not a sensing zone: its occupancy only
        wdp.http.post("/api/v1/config/zones", json=HALL).raise_for_status()
        created, took = wait_for(
            lambda: (superset_or_none(wdp_entities(ha), hall_sensing | {hall_uid}) or {}).get(hall_uid), args.within
        )
        check.figures["zone_created_s"] = round(took, 2)
        hall_entity = created["entity_id"] if created else None
        name = ha.states().get(hall_entity or "", {}).get("attributes", {}).get("friendly_name")
        check(
            created is not None and bool(name) and str(name).endswith("Hall occupancy"),
            f"zone created over REST appears in Home Assistant in {took:.1f} s: {hall_entity} ({name!r})",
        )
        wdp.http.put("/api/v1/config/zones/hall", json=HALL | {"name": "Corridor"}).raise_for_status()

        def renamed() -> str | None:
            n = ha.states().get(hall_entity or "", {}).get("attributes", {}).get("friendly_name")
            return n if n and "Corridor" in n else None

        name, took = wait_for(renamed, args.within)
        check.figures["zone_renamed_s"] = round(took, 2)
        check(name is not None, f"zone renamed over REST is renamed in Home Assistant in {took:.1f} s ({name!r})")
        wdp.http.delete("/api/v1/config/zones/hall").raise_for_status()

        def gone() -> bool:
            e = wdp_entities(ha)
            return hall_uid not in e and not (hall_sensing & e.keys()) and hall_entity not in ha.states()

        ok, took = wait_for(gone, args.within)
        check.figures["zone_deleted_s"] = round(took, 2)
        check(bool(ok), f"zone deleted over REST disappears from Home Assistant (registry and states) in {took:.1f} s")

        # -- availability: clean stop, restart, kill -9
        def all_state(value: str) -> Callable[[], bool]:
            def test() -> bool:
                states = ha.states()
                return all(states.get(e, {}).get("state") == value for e in ids.values())

            return test

        def none_unavailable() -> bool:
            states = ha.states()
            return all(states.get(e, {}).get("state") not in (None, "unavailable") for e in [engine_id, *live])

        wdp.stop(signal.SIGTERM)
        ok, took = wait_for(all_state("unavailable"), args.within)
        check.figures["unavailable_after_stop_s"] = round(took, 2)
        check(bool(ok), f"a clean stop makes every wdp entity unavailable in {took:.1f} s")
        wdp.start()
        ok, took = wait_for(none_unavailable, 60)
        check.figures["available_after_restart_s"] = round(took, 2)
        check(bool(ok), f"after a restart the entities are available again in {took:.1f} s")
        assert wdp.proc is not None
        wdp.stop(signal.SIGKILL)
        ok, took = wait_for(all_state("unavailable"), args.within)
        check.figures["unavailable_after_kill_s"] = round(took, 2)
        check(bool(ok), f"kill -9 (last will) makes every wdp entity unavailable in {took:.1f} s")

        complaints = ha.log_complaints()
        check(
            not complaints,
            "Home Assistant logged no warning/error about MQTT, templates or wdp"
            + ("".join(f"\n      {c}" for c in complaints[:10]) if complaints else ""),
        )

        check.figures["entities"] = {
            ids[u]: {"name": c.get("name"), "component": c["_component"]}
            for u, c in sorted(configs.items())
            if u in ids
        }
        if args.screenshot and device is not None:
            wdp.start()  # the page shows live values
            wait_for(none_unavailable, 60)
            time.sleep(3)
            title = screenshot(ha, device["id"], Path(args.screenshot))
            print(f"screenshot of the device page ({title}) written to {args.screenshot}", flush=True)
    except Exception as exc:  # report what broke with both logs
        check(False, f"{type(exc).__name__}: {exc}")
        print("---- Home Assistant log tail ----\n" + ha.tail_log(), file=sys.stderr)
        print("---- wdp log tail ----\n" + wdp.log_tail(), file=sys.stderr)
    finally:
        wdp.stop()
        ha.stop()
        broker.stop()
    return check


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ha-venv", default=str(ROOT / ".ha" / "venv"), help="Home Assistant's own venv (made if missing)")
    p.add_argument("--within", type=float, default=30.0, help="seconds allowed for each zone/availability change")
    p.add_argument("--observe", type=float, default=25.0, help="seconds of state observation (>= 2 scene loops)")
    p.add_argument("--screenshot", default="", help="PNG path for the device page (needs playwright + chromium)")
    p.add_argument("--json", default="", help="write the figures and results here")
    args = p.parse_args()
    check = run(args)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"passed": check.passed, "results": check.results, **check.figures}, indent=2)
        )
    print(f"\n{'PASS' if check.passed else 'FAIL'}: {sum(ok for ok, _ in check.results)}/{len(check.results)} checks")
    return 0 if check.passed else 1


if __name__ == "__main__":
    sys.exit(main())
