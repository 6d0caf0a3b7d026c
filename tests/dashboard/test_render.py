"""Server-side skeleton rendering: joints land where the keypoints say, in the track's colour (the same
formula as the page's skeleton.js), and the simulated-source badge appears exactly for simulator/replay."""

from __future__ import annotations

import colorsys
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wdp.schemas import N_KEYPOINTS, Person, PoseFrame
from wdp.serve.dashboard.render import SKELETON, render_frame, render_jpeg, track_color

STATIC = Path(__file__).resolve().parents[2] / "serve" / "dashboard" / "static"


def _person(track_id: int, dx: float = 0.0, score: float = 0.9) -> Person:
    kp = [[0.5 + dx + 0.03 * ((j % 2) * 2 - 1), 0.15 + 0.045 * j, score] for j in range(N_KEYPOINTS)]
    return Person(track_id=track_id, keypoints=kp, box=(0.4 + dx, 0.1, 0.6 + dx, 0.95), confidence=0.9)


def _frame(source: str, persons: list[Person]) -> PoseFrame:
    return PoseFrame(frame_id=7, timestamp=1_700_000_000.0, source=source, persons=persons)  # type: ignore[arg-type]


def test_track_color_matches_the_page_formula() -> None:
    # hsl(id * 137.508 mod 360, 75 %, 55 %) -- the formula in static/skeleton.js
    js = (STATIC / "skeleton.js").read_text()
    assert "(trackId * 137.508) % 360" in js and "75% 55%" in js
    for tid in (0, 1, 2, 17, 12345):
        r, g, b = colorsys.hls_to_rgb(((tid * 137.508) % 360) / 360, 0.55, 0.75)
        assert track_color(tid) == (round(r * 255), round(g * 255), round(b * 255))
    assert len({track_color(t) for t in range(1, 9)}) == 8


def test_skeleton_edges_match_the_page() -> None:
    js = (STATIC / "skeleton.js").read_text()
    pairs = [tuple(map(int, m)) for m in re.findall(r"\[(\d+), (\d+)\]", js.split("MIN_KEYPOINT_SCORE")[0])]
    assert tuple(pairs) == SKELETON


def test_joints_are_drawn_at_their_keypoints_in_the_track_colour() -> None:
    frame = _frame("live", [_person(3, -0.2), _person(4, 0.2)])
    img = np.asarray(render_frame(frame, 640, 360))
    assert img.shape == (360, 640, 3)
    side, x0 = 360, (640 - 360) // 2
    for person in frame.persons:
        color = np.array(track_color(person.track_id))
        for x, y, _ in person.keypoints:
            px, py = round(x0 + x * (side - 1)), round(y * (side - 1))
            assert np.abs(img[py, px].astype(int) - color).max() <= 2, (person.track_id, px, py, img[py, px])
    # low-score keypoints are not drawn
    faint = np.asarray(render_frame(_frame("live", [_person(5, score=0.1)]), 640, 360))
    assert not np.any(np.all(np.abs(faint.astype(int) - np.array(track_color(5))) <= 2, axis=-1))


@pytest.mark.parametrize(("source", "badge"), [("simulator", True), ("replay", True), ("live", False)])
def test_simulated_source_badge(source: str, badge: bool) -> None:
    img = render_frame(_frame(source, [_person(1)]), 640, 360)
    r, g, b = img.getpixel((6, 6))
    assert (r > 150 and g < 90 and b < 90) == badge


def test_jpeg_without_frames_and_size() -> None:
    data = render_jpeg(None, 320, 240, quality=70)
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG" and im.size == (320, 240)
