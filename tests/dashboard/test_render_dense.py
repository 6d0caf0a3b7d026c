"""Server-side DensePose painting (MJPEG/HLS): a person's labelled cells land where the label map puts them, in
the part's colour (the same list as the page's skeleton.js), beneath the skeleton, and only for the frame shown."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import numpy as np
import pytest
from PIL import Image

from wdp.densepose_codec import encode_dense
from wdp.schemas import N_KEYPOINTS, Person, PoseFrame
from wdp.serve.dashboard.render import PART_COLORS, render_frame
from wdp.serve.dashboard.settings import VisualizationSettings
from wdp.serve.dashboard.visual import FrameTicker
from wdp.serve.engine_view import StoreBackedEngineView
from wdp.store import Store

STATIC = Path(__file__).resolve().parents[2] / "serve" / "dashboard" / "static"
W, H = 640, 360  # pose square: side 360 at x0 = 140


def _frames(frame_id: int = 7, dense_id: int = 7) -> tuple[PoseFrame, PoseFrame]:
    kp = [[0.5, 0.15 + 0.045 * j, 0.9] for j in range(N_KEYPOINTS)]
    person = Person(track_id=3, keypoints=kp, box=(0.4, 0.1, 0.6, 0.95), confidence=0.9)
    parts = np.zeros((20, 8), np.uint8)
    parts[:10] = 2  # torso_front on the upper half of the crop
    parts[10:] = 9  # upper_leg_right_front below
    dense = encode_dense(parts, np.full((2, 20, 8), 0.5), (10, 30, 8, 20), (64, 64))  # cells x 10..17, y 30..49
    frame = PoseFrame(frame_id=frame_id, timestamp=1.7e9, source="live", persons=[person])
    twin = PoseFrame(
        frame_id=dense_id, timestamp=1.7e9, source="live", persons=[msgspec.structs.replace(person, dense=dense)]
    )
    return frame, twin


def _px(cell_x: float, cell_y: float) -> tuple[int, int]:
    side, x0 = 360, 140
    return int(x0 + (cell_x + 0.5) * side / 64), int((cell_y + 0.5) * side / 64)


def test_part_colours_match_the_page_formula() -> None:
    js = (STATIC / "skeleton.js").read_text()
    assert "1.5 - Math.abs(4 * t - x)" in js and "jet(i / 24)" in js and "[c(3), c(2), c(1)]" in js
    assert len(PART_COLORS) == 25 and len(set(PART_COLORS[1:])) == 24


def test_parts_painted_where_the_map_says() -> None:
    frame, twin = _frames()
    img = np.asarray(render_frame(frame, W, H, now=0.0, dense=twin))
    assert tuple(img[_px(12, 33)[1], _px(12, 33)[0]]) == PART_COLORS[2]
    assert tuple(img[_px(15, 45)[1], _px(15, 45)[0]]) == PART_COLORS[9]
    outside = _px(40, 33)
    assert tuple(img[outside[1], outside[0]]) not in PART_COLORS[1:]
    plain = np.asarray(render_frame(frame, W, H, now=0.0))
    assert tuple(plain[_px(12, 33)[1], _px(12, 33)[0]]) != PART_COLORS[2]
    # the skeleton is drawn over the parts: the torso column keeps the track colour where the limbs run
    assert (img != plain).any(axis=2).sum() > 1000


def test_stale_dense_frame_is_not_painted() -> None:
    frame, twin = _frames(frame_id=20, dense_id=7)
    img = np.asarray(render_frame(frame, W, H, now=0.0, dense=twin))
    plain = np.asarray(render_frame(frame, W, H, now=0.0))
    assert np.array_equal(img, plain)


@pytest.mark.anyio
@pytest.mark.parametrize("dense", [True, False])
async def test_mjpeg_ticker_paints_the_engines_dense_frame(dense: bool) -> None:
    """The stream's ticker takes the engine view's dense twin (visualization.dense) for the frame it renders."""
    frame, twin = _frames()
    with Store(":memory:") as store:
        view = StoreBackedEngineView(store)
        view.publish_frame(twin)  # the view splits it like the engine's two topics
        assert view.current_frame() == frame and view.current_dense_frame() == twin
        ticker = FrameTicker(view, VisualizationSettings(dense=dense))
        img = np.asarray(Image.open(io.BytesIO(await ticker.render_now())).convert("RGB")).astype(int)
    x, y = _px(12, 35)
    painted = np.abs(img[y, x] - np.array(PART_COLORS[2])).max() < 40  # JPEG
    assert painted == dense
