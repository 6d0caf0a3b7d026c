"""The dashboard paints the persons' body parts (DensePose colouring) under their skeletons: headless Chromium
(Debian's, via Playwright) against a real `python -m wdp.serve` running the README's configuration (simulator
source, shipped model, engine.dense on). The part colours are the page's palette (checked against the server's
PART_COLORS in test_render_dense); the test counts canvas pixels of exactly those colours inside the reported
person's box, where the skeleton is drawn."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from dashboard_support import ADMIN_PASSWORD, CHROMIUM_ARGS, artifacts_dir, need_tool, run_engine_server

from wdp.densepose_codec import decode_dense
from wdp.schemas import DensePose
from wdp.serve.dashboard.render import PART_COLORS

try:
    import playwright.sync_api as playwright_api
except ImportError:  # pip install -e ".[test]" brings it; CI must not skip silently
    if os.environ.get("CI"):
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

# Canvas pixels of a part colour inside the boxes of the persons of the drawn dense frame (box grown by 10 %).
COUNT_PART_PIXELS = """(colors) => {
    const s = window.wdp.state, d = s.dense, f = s.frame;
    if (!d || !f || d.frame_id > f.frame_id || f.frame_id - d.frame_id > 5) return 0;
    const c = document.getElementById('pose-canvas');
    const w = c.width, h = c.height, side = Math.min(w, h), x0 = (w - side) / 2, y0 = (h - side) / 2;
    const data = c.getContext('2d').getImageData(0, 0, w, h).data;
    const want = new Set(colors.map(([r, g, b]) => (r << 16) | (g << 8) | b));
    let n = 0;
    for (const p of d.persons) {
        if (!p.dense) continue;
        const [bx0, by0, bx1, by1] = p.box, mx = 0.1 * (bx1 - bx0), my = 0.1 * (by1 - by0);
        const X0 = Math.max(0, Math.floor(x0 + (bx0 - mx) * side)), X1 = Math.min(w, Math.ceil(x0 + (bx1 + mx) * side));
        const Y0 = Math.max(0, Math.floor(y0 + (by0 - my) * side)), Y1 = Math.min(h, Math.ceil(y0 + (by1 + my) * side));
        for (let y = Y0; y < Y1; y++) for (let x = X0; x < X1; x++) {
            const i = 4 * (y * w + x);
            if (want.has((data[i] << 16) | (data[i + 1] << 8) | data[i + 2])) n++;
        }
    }
    return n;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = need_tool("chromium", "chromium-browser")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_body_parts_painted_under_the_skeleton(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    with run_engine_server(tmp_path_factory.mktemp("dense-server"), "store.dense=true", scene=()) as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            page.goto(server.base + "/")
            page.wait_for_selector("#login-form", state="visible")
            page.fill("#login-username", "admin")
            page.fill("#login-password", ADMIN_PASSWORD)
            page.click("#login-submit")
            # the page subscribed to dense_poses and gets persons with body parts
            has_parts = "p => p.dense && p.dense.parts.length > 2"
            page.wait_for_function(
                f"window.wdp.state.dense && window.wdp.state.dense.persons.some({has_parts})", timeout=30_000
            )
            colors = json.dumps([list(c) for c in PART_COLORS[1:]])
            # the canvas changes every frame: take the count the wait saw (a truthy value ends the wait)
            seen = page.wait_for_function(
                f"(() => {{ const n = ({COUNT_PART_PIXELS})({colors}); return n > 50 ? n : 0; }})()", timeout=30_000
            )
            assert seen.json_value() > 50
            page.screenshot(path=str(artifacts_dir() / "dashboard-dense.png"))
        finally:
            context.close()
        assert not errors, errors
        _check_rest(server)


def _check_rest(server: Any) -> None:
    """The same server over REST: dense output only with ?dense=true, also from the history (store.dense)."""
    url = f"{server.base}/api/v1/pose/current?min_confidence=0"
    plain = httpx.get(url, headers=server.auth).json()
    assert all("dense" not in p for p in plain["persons"])
    deadline = time.monotonic() + 10
    while True:  # the model reports the person in most frames, not all: poll for a frame with someone
        dense = httpx.get(url + "&dense=true", headers=server.auth).json()
        if dense["persons"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert dense["persons"] and all("dense" in p for p in dense["persons"])
    for p in dense["persons"]:
        decode_dense(msgspec.convert(p["dense"], DensePose))
    time.sleep(1.5)  # the store flushes every second
    now = time.time()
    hist = f"{server.base}/api/v1/pose/history?start_time={now - 60}&end_time={now}&limit=200"
    frames = httpx.get(hist, headers=server.auth).json()["frames"]
    assert frames and all("dense" not in p for f in frames for p in f["persons"])
    frames = httpx.get(hist + "&dense=true", headers=server.auth).json()["frames"]
    assert any("dense" in p for f in frames for p in f["persons"])
