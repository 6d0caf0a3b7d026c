"""Skeleton frames drawn on the server (numpy background + Pillow drawing) for the MJPEG/HLS/RTMP streams.

Keypoints are in normalized image coordinates (0..1 of the model's square image); they are drawn in the
centred square of the output, with the side bands for text. Colours follow the track id the same way the
browser dashboard colours it (golden-angle hue), so a person has one colour everywhere. Given the frame's
dense twin (persons with ``dense``), the body parts are painted under the skeletons in DensePose colouring
(PART_COLORS, the page's skeleton.js list).
"""

from __future__ import annotations

import colorsys
import functools
import io
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wdp.densepose_codec import dense_to_map
from wdp.schemas import DensePose, PoseFrame
from wdp.schemas_sample import COCO_SKELETON

# COCO-17 limbs (the same list as serve/dashboard/static/skeleton.js)
SKELETON: tuple[tuple[int, int], ...] = COCO_SKELETON
MIN_KEYPOINT_SCORE = 0.3
SIMULATED_SOURCES = ("simulator", "replay")
BACKGROUND = (17, 20, 26)
GRID = (34, 40, 50)
TEXT = (210, 216, 226)
BADGE = (200, 40, 40)


def _jet(t: float) -> tuple[int, int, int]:
    c = [round(255 * min(1.0, max(0.0, 1.5 - abs(4 * t - x)))) for x in (3, 2, 1)]
    return c[0], c[1], c[2]


# DensePose colouring: part id i (1..24) takes the jet colormap at i / 24 (index 0, background, is unused)
PART_COLORS: tuple[tuple[int, int, int], ...] = ((0, 0, 0),) + tuple(_jet(i / 24) for i in range(1, 25))
DENSE_MAX_AGE = 5  # frames: an older dense twin is not painted under newer skeletons (as the page)


def paint_parts(img: np.ndarray, dense: DensePose, x0: int, y0: int, side: int) -> None:
    """Paint one person's labelled cells into ``img`` (H, W, 3 uint8) over the pose square at (x0, y0)."""
    parts, _ = dense_to_map(dense)
    mh, mw = parts.shape
    cols = np.minimum((np.arange(side) * mw) // side, mw - 1)  # square pixel -> map cell
    rows = np.minimum((np.arange(side) * mh) // side, mh - 1)
    labels = parts[rows[:, None], cols[None, :]]
    on = labels > 0
    if on.any():
        view = img[y0 : y0 + side, x0 : x0 + side]
        view[on] = np.asarray(PART_COLORS, np.uint8)[labels[on]]


def track_color(track_id: int) -> tuple[int, int, int]:
    """hsl((id * 137.508) mod 360, 75 %, 55 %) as RGB: neighbouring ids get far-apart hues."""
    hue = (track_id * 137.508) % 360.0
    r, g, b = colorsys.hls_to_rgb(hue / 360.0, 0.55, 0.75)
    return round(r * 255), round(g * 255), round(b * 255)


@functools.lru_cache(maxsize=8)
def _background(width: int, height: int) -> Image.Image:
    """Dark canvas with a 10 % grid over the pose square (built once per size with numpy)."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BACKGROUND
    side, x0, y0 = _square(width, height)
    for k in range(11):
        off = round(k * (side - 1) / 10)
        img[y0 : y0 + side, x0 + off] = GRID
        img[y0 + off, x0 : x0 + side] = GRID
    return Image.fromarray(img, "RGB")


def _square(width: int, height: int) -> tuple[int, int, int]:
    side = min(width, height)
    return side, (width - side) // 2, (height - side) // 2


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def render_frame(
    frame: PoseFrame | None,
    width: int = 640,
    height: int = 360,
    now: float | None = None,
    dense: PoseFrame | None = None,
) -> Image.Image:
    """One RGB image of the frame's skeletons, track ids, source badge and frame info; ``dense`` (the frame's
    dense twin) adds the body parts beneath."""
    img = _background(width, height).copy()
    side, x0, y0 = _square(width, height)
    if (
        frame is not None
        and dense is not None
        and 0 <= frame.frame_id - dense.frame_id <= DENSE_MAX_AGE
        and any(isinstance(p.dense, DensePose) for p in dense.persons)
    ):
        pixels = np.array(img)
        for person in dense.persons:
            if isinstance(person.dense, DensePose):
                paint_parts(pixels, person.dense, x0, y0, side)
        img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    font = _font(max(10, height // 28))
    font_px = int(getattr(font, "size", 11))
    line_w = max(2, side // 120)
    joint_r = max(2, side // 110)
    if frame is not None:
        for person in frame.persons:
            color = track_color(person.track_id)
            kp = np.asarray(person.keypoints, np.float64)
            px = x0 + np.clip(kp[:, 0], -0.5, 1.5) * (side - 1)
            py = y0 + np.clip(kp[:, 1], -0.5, 1.5) * (side - 1)
            ok = kp[:, 2] >= MIN_KEYPOINT_SCORE
            for a, b in SKELETON:
                if ok[a] and ok[b]:
                    draw.line([(px[a], py[a]), (px[b], py[b])], fill=color, width=line_w)
            for j in np.flatnonzero(ok):
                draw.ellipse([px[j] - joint_r, py[j] - joint_r, px[j] + joint_r, py[j] + joint_r], fill=color)
            bx0, by0 = x0 + person.box[0] * (side - 1), y0 + person.box[1] * (side - 1)
            label = f"#{person.track_id}" + (f" {person.activity}" if person.activity else "")
            draw.text((bx0, max(0.0, by0 - font_px - 4)), label, fill=color, font=font)
    # side band text: what is shown and how fresh it is
    info = [time.strftime("%H:%M:%S", time.localtime(now if now is not None else time.time()))]
    if frame is None:
        info.append("no frames yet")
    else:
        info += [
            f"frame {frame.frame_id}",
            f"{len(frame.persons)} person(s)",
            f"latency {frame.latency_ms:.0f} ms",
            f"source {frame.source}",
        ]
    y = height - 6 - len(info) * (font_px + 4)
    for line in info:
        draw.text((6, y), line, fill=TEXT, font=font)
        y += font_px + 4
    if frame is not None and frame.source in SIMULATED_SOURCES:
        text = "SIMULATED SOURCE" if frame.source == "simulator" else "SIMULATED SOURCE (replay)"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        draw.rectangle([4, 4, 4 + (right - left) + 12, 4 + (bottom - top) + 10], fill=BADGE)
        draw.text((10 - left, 9 - top), text, fill=(255, 255, 255), font=font)
    return img


def encode_jpeg(img: Image.Image, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def render_jpeg(
    frame: PoseFrame | None,
    width: int = 640,
    height: int = 360,
    quality: int = 80,
    now: float | None = None,
    dense: PoseFrame | None = None,
) -> bytes:
    return encode_jpeg(render_frame(frame, width, height, now, dense), quality)
