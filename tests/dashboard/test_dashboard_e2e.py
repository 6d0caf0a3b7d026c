"""The dashboard in headless Chromium (Debian's, driven by Playwright) against a real `python -m wdp.serve`
process: sign in, skeletons within seconds, the scripted fall in the event feed, the simulated-source badge,
a zone drawn and saved through the editor (and then used by the engine), the WebSocket reconnecting after a
drop, and a screenshot as an artifact."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashboard_support import (
    ADMIN_PASSWORD,
    CHROMIUM_ARGS,
    EngineServer,
    artifacts_dir,
    need_tool,
    run_engine_server,
)

try:
    import playwright.sync_api as playwright_api
except ImportError:  # pip install -e ".[test]" brings it; CI must not skip silently
    if os.environ.get("CI"):
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

# A square in the floor plan where the walking person of the demo scene ends up (it walks to (3.7, 4.3)).
ZONE = [(3.2, 3.8), (4.2, 3.8), (4.2, 4.8), (3.2, 4.8)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = need_tool("chromium", "chromium-browser")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Script errors and failed requests the page logged (a test clears the ones it provoked)."""
    return []


@pytest.fixture
def page(browser: Any, page_errors: list[str]) -> Iterator[Any]:
    # bypass_csp: the page's CSP forbids eval, which Playwright's wait_for_function/evaluate strings use
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    pg = context.new_page()
    errors = page_errors
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield pg
    finally:
        context.close()
    assert not errors, errors


def sign_in(page: Any, server: EngineServer) -> float:
    page.goto(server.base + "/")
    page.wait_for_selector("#login-form", state="visible")
    page.fill("#login-username", "admin")
    page.fill("#login-password", ADMIN_PASSWORD)
    page.click("#login-submit")
    return time.monotonic()


def colourful_pixels(page: Any, canvas: str) -> int:
    """Pixels of a canvas whose colour is saturated (skeleton strokes; the background is grey)."""
    return int(
        page.evaluate(f"""() => {{
        const c = document.getElementById('{canvas}');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {{
            if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 80) n++;
        }}
        return n;
    }}""")
    )


def test_live_dashboard(page: Any, engine_server: EngineServer) -> None:
    signed_in = sign_in(page, engine_server)
    page.wait_for_function("window.wdp.state.frame && window.wdp.state.frame.persons.length === 2", timeout=10_000)
    assert time.monotonic() - signed_in < 5.0  # skeletons within seconds of signing in
    page.wait_for_function("document.getElementById('conn-state').dataset.state === 'open'")
    # the stream authenticates with its first message: no credentials in the URL (URLs end up in logs)
    assert page.evaluate("window.wdp.stream.ws.url").endswith("/ws/v1/stream")
    assert page.text_content("#who").startswith("admin")
    # the canvas shows the skeletons (the page draws on the next animation frame)
    page.wait_for_function("document.getElementById('person-count').textContent === '2'")
    assert colourful_pixels(page, "pose-canvas") > 300
    assert page.is_visible("#source-badge") and page.text_content("#source-badge") == "SIMULATED SOURCE"
    assert not page.is_visible("#source-live")

    # the scripted fall (every 10 s in the looping scene) shows up highlighted in the feed
    page.wait_for_selector("#event-feed li.fall", timeout=25_000)
    fall = page.text_content("#event-feed li.fall")
    assert "FALL DETECTED" in fall and "person #" in fall

    # pipeline and router status come from the REST API
    page.wait_for_function("document.getElementById('stat-engine').textContent.startsWith('running (simulator)')")
    rows = page.locator("#router-rows tr")
    assert rows.count() == 2 and "sim-0" in rows.nth(0).text_content() and "connected" in rows.nth(0).text_content()
    assert float(page.text_content("#stat-fps").split()[0]) > 5

    # draw a zone with the editor and save it through the config API
    page.click("#zone-new")
    page.fill("#zone-name", "Reading corner")
    assert page.input_value("#zone-id") == "reading-corner"
    page.fill("#zone-max", "1")
    for x, y in ZONE:
        page.mouse.click(*_client_point(page, x, y))
    page.click("#zone-save")
    page.wait_for_selector("#zone-list li[data-zone-id='reading-corner']", timeout=5_000)
    assert page.text_content("#zone-error") == ""
    r = httpx.get(f"{engine_server.base}/api/v1/config/zones/reading-corner", headers=engine_server.auth)
    assert r.status_code == 200, r.text
    zone = r.json()
    assert zone["name"] == "Reading corner" and zone["max_occupancy"] == 1
    got = [c for point in zone["polygon"] for c in point]
    assert got == pytest.approx([c for point in ZONE for c in point], abs=0.051)  # clicks snap to 5 cm
    # the engine got the new zone set: the person who walks there is reported in it
    page.wait_for_function(
        "window.wdp.state.frame.persons.some(p => p.zone_ids.includes('reading-corner'))", timeout=25_000
    )
    page.wait_for_function(
        "document.querySelector(\"#zone-list li[data-zone-id='reading-corner']\").textContent.includes(': 1/1')"
    )

    # a dropped WebSocket comes back by itself and frames keep flowing
    before = page.evaluate("window.wdp.state.frames")
    page.evaluate("window.wdp.stream.ws.close(4000, 'test drop')")
    page.wait_for_function("window.wdp.stream.connections >= 2 && window.wdp.state.conn === 'open'", timeout=15_000)
    page.wait_for_function(f"window.wdp.state.frames > {before + 10}", timeout=10_000)

    time.sleep(0.3)  # let one more animation frame paint the latest state
    shot = artifacts_dir() / "dashboard-e2e.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_bad_password_and_api_key_sign_in(page: Any, engine_server: EngineServer, page_errors: list[str]) -> None:
    page.goto(engine_server.base + "/")
    page.fill("#login-password", "wrong")
    page.click("#login-submit")
    page.wait_for_function("document.getElementById('login-error').textContent.includes('invalid credentials')")
    assert not page.is_visible("#dashboard")
    assert page_errors == ["Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
    page_errors.clear()

    # an API key with read and stream scopes only: the dashboard works, the zone editor is off
    r = httpx.post(
        f"{engine_server.base}/api/v1/auth/keys",
        headers=engine_server.auth,
        json={"owner": "viewer", "scopes": ["pose:read", "system:read", "stream:subscribe"]},
    )
    assert r.status_code == 201, r.text
    page.click(".tab[data-mode='api_key']")
    page.fill("#login-apikey", r.json()["api_key"])
    page.click("#login-submit")
    page.wait_for_function("window.wdp.state.frame && window.wdp.state.frame.persons.length > 0", timeout=10_000)
    assert page.is_disabled("#zone-new")
    assert page.text_content("#who").startswith("API key")
    # signing out closes the stream and shows the form again
    page.click("#logout")
    page.wait_for_selector("#login-form", state="visible")
    page.wait_for_function("document.getElementById('conn-state').dataset.state === 'offline'")


def test_mjpeg_toggle_shows_server_rendered_stream(page: Any, engine_server: EngineServer) -> None:
    sign_in(page, engine_server)
    page.wait_for_function("window.wdp.state.frame !== null", timeout=10_000)
    page.check("#show-mjpeg")
    page.wait_for_function(
        "() => { const i = document.getElementById('mjpeg'); return i.complete && "
        "i.naturalWidth === 640 && i.naturalHeight === 360; }",
        timeout=10_000,
    )
    assert not page.is_visible("#pose-canvas")
    page.uncheck("#show-mjpeg")
    assert page.is_visible("#pose-canvas")


def _client_point(page: Any, x: float, y: float) -> tuple[float, float]:
    cx, cy = page.evaluate(f"""() => {{
        const f = window.wdp.floorView, [px, py] = f.toCanvas({x}, {y});
        const r = f.canvas.getBoundingClientRect();
        return [r.left + px * r.width / f.canvas.width, r.top + py * r.height / f.canvas.height];
    }}""")
    return float(cx), float(cy)


def test_zone_editor_moves_a_vertex_and_deletes(page: Any, engine_server: EngineServer) -> None:
    zones = f"{engine_server.base}/api/v1/config/zones"
    body = {
        "id": "e2e-edit",
        "name": "Edit me",
        "polygon": [[0.5, 0.5], [1.5, 0.5], [1.5, 1.5], [0.5, 1.5]],
        "restricted": True,
    }
    assert httpx.post(zones, json=body, headers=engine_server.auth).status_code == 201
    sign_in(page, engine_server)
    page.wait_for_selector("#zone-list li[data-zone-id='e2e-edit']", timeout=10_000)
    assert "restricted" in page.text_content("#zone-list li[data-zone-id='e2e-edit']")

    page.select_option("#zone-select", "e2e-edit")
    assert page.input_value("#zone-name") == "Edit me" and page.is_disabled("#zone-id")
    assert page.is_checked("#zone-restricted")
    page.mouse.move(*_client_point(page, 1.5, 1.5))  # drag the (1.5, 1.5) corner to (2.0, 2.5)
    page.mouse.down()
    page.mouse.move(*_client_point(page, 1.8, 2.0), steps=3)
    page.mouse.move(*_client_point(page, 2.0, 2.5), steps=3)
    page.mouse.up()
    page.fill("#zone-name", "Edited")
    page.uncheck("#zone-restricted")
    page.click("#zone-save")
    page.wait_for_function("document.getElementById('zone-form').hidden")
    saved = httpx.get(f"{zones}/e2e-edit", headers=engine_server.auth).json()
    assert saved["name"] == "Edited" and saved["restricted"] is False
    flat = [c for point in saved["polygon"] for c in point]
    assert flat == pytest.approx([0.5, 0.5, 1.5, 0.5, 2.0, 2.5, 0.5, 1.5], abs=0.051)

    # a polygon the API refuses (fewer than 3 vertices) is reported, not lost
    page.click("#zone-new")
    page.fill("#zone-name", "Too small")
    page.mouse.click(*_client_point(page, 0.2, 0.2))
    page.click("#zone-save")
    assert page.text_content("#zone-error") == "a zone needs at least 3 vertices"
    page.click("#zone-cancel")

    page.select_option("#zone-select", "e2e-edit")
    page.click("#zone-delete")
    page.wait_for_function("!document.querySelector(\"#zone-list li[data-zone-id='e2e-edit']\")")
    assert httpx.get(f"{zones}/e2e-edit", headers=engine_server.auth).status_code == 404


def test_readme_run_shows_moving_skeletons_from_the_shipped_model(
    page: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The README's run command as it is (simulator source, shipped model, no detector override): people the
    model detects appear on the canvas within seconds and move."""
    with run_engine_server(tmp_path_factory.mktemp("readme-run"), scene=()) as srv:
        signed_in = sign_in(page, srv)
        page.wait_for_function("window.wdp.state.frame && window.wdp.state.frame.persons.length > 0", timeout=15_000)
        assert time.monotonic() - signed_in < 15.0
        assert page.text_content("#source-badge") == "SIMULATED SOURCE"
        samples = []
        for _ in range(30):  # 6 s of the live stream
            samples.append(
                page.evaluate("() => window.wdp.state.frame.persons.map(p => p.keypoints.map(k => [k[0], k[1]]))")
            )
            time.sleep(0.2)
        seen = [s for s in samples if s]
        # the model's track drops out now and then (78 % of frames have one, bench/eval_site_engine.py)
        assert len(seen) >= 0.3 * len(samples), f"a person in only {len(seen)} of {len(samples)} samples"
        first_kp = {tuple(map(tuple, s[0])) for s in seen}
        assert len(first_kp) >= 0.5 * len(seen)  # the skeleton changes from frame to frame
        page.wait_for_function("Number(document.getElementById('person-count').textContent) > 0")
        assert colourful_pixels(page, "pose-canvas") > 200
        shot = artifacts_dir() / "dashboard-shipped-model.png"
        page.screenshot(path=str(shot))
        page.goto("about:blank")  # close the stream before the server stops (else: reconnect errors)


def _pixels_near(page: Any, selector: str, rgb: tuple[int, int, int], tol: int = 40) -> int:
    """Pixels of the canvas at ``selector`` within ``tol`` of a colour (one line of a chart)."""
    r, g, b = rgb
    return int(
        page.evaluate(f"""() => {{
        const c = document.querySelector("{selector}");
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {{
            if (Math.abs(d[i] - {r}) + Math.abs(d[i + 1] - {g}) + Math.abs(d[i + 2] - {b}) < {tol}) n++;
        }}
        return n;
    }}""")
    )


def test_sensing_panel_draws_motion_and_breathing_per_router_and_zone(
    page: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Training-free sensing on the simulator's frames: one card per router and for the configured zone, with
    the motion score line and its threshold drawn from history (GET /api/v1/sensing/history) and kept going by
    the stream's sensing_updates."""
    with run_engine_server(tmp_path_factory.mktemp("sensing"), "+sensing.zones.room=[sim-0,sim-1]") as srv:
        # states stored before the page opens: the panel must show them (the stream only brings newer ones)
        deadline = time.monotonic() + 60
        while True:
            now = time.time()
            r = httpx.get(
                f"{srv.base}/api/v1/sensing/history",
                params={"start_time": now - 300, "end_time": now + 60, "limit": 1000},
                headers=srv.auth,
            )
            assert r.status_code == 200, r.text
            stored = r.json()["states"]
            if len({s["router_id"] or s["zone_id"] for s in stored}) == 3 and len(stored) >= 9:
                break
            assert time.monotonic() < deadline, f"no stored sensing states: {len(stored)}"
            time.sleep(0.5)
        earliest: dict[str, float] = {}  # series key -> its first stored state
        for st in stored:
            key = f"router:{st['router_id']}" if st["router_id"] is not None else f"zone:{st['zone_id']}"
            earliest.setdefault(key, st["timestamp"])

        sign_in(page, srv)
        page.wait_for_function("document.querySelectorAll('#sensing-list .sense-card').length === 3", timeout=20_000)
        keys = page.eval_on_selector_all("#sensing-list .sense-card", "cs => cs.map(c => c.dataset.key)")
        assert keys == ["router:sim-0", "router:sim-1", "zone:room"]  # routers first, then zones
        assert not page.is_visible("#sensing-empty")
        page.wait_for_function(
            "(first) => Object.entries(first).every(([key, t]) => "
            "(window.wdp.sensingPanel.series.get(key)?.points[0]?.timestamp ?? Infinity) <= t)",
            arg=earliest,
            timeout=10_000,
        )
        latest = page.evaluate("window.wdp.sensingPanel.latest")
        page.wait_for_function(f"window.wdp.sensingPanel.latest >= {latest + 2}", timeout=20_000)  # live states

        page.wait_for_function("!window.wdp.sensingPanel.dirty")  # the render loop painted the newest states
        shot = artifacts_dir() / "dashboard-sensing.png"
        page.locator("section.sensing").screenshot(path=str(shot))
        assert shot.stat().st_size > 5_000
        for key in keys:
            canvas = f".sense-card[data-key='{key}'] canvas"
            # the score line (blue once calibrated, grey while calibrating; a few seconds of a five-minute chart:
            # short, but there) and the dashed red threshold
            score = _pixels_near(page, canvas, (0x4A, 0xA3, 0xFF)) + _pixels_near(page, canvas, (0x5B, 0x64, 0x73))
            assert score > 15, (key, score)
            assert _pixels_near(page, canvas, (0xE0, 0x45, 0x4B)) > 100, key  # dashed, across the chart
            card = f".sense-card[data-key='{key}']"
            assert page.get_attribute(card, "data-motion") in ("true", "false", "unknown")
            assert page.get_attribute(card, "data-presence") in ("true", "false", "unknown")
            assert "breaths/min" in page.text_content(f"{card} .sense-bpm")
        page.goto("about:blank")  # close the stream before the server stops (else: reconnect errors)
