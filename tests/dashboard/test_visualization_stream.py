"""The server-rendered visualization stream: MJPEG and HLS from the real server (decoded with Pillow and
ffprobe), 503-with-reason when ffmpeg is missing, the RTMP push into a local ffmpeg receiver, and the
stream routes' authentication."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from dashboard_support import SECRET, EngineServer, ffprobe, free_port, need_tool
from litestar.testing import AsyncTestClient
from PIL import Image

from wdp.schemas import N_KEYPOINTS, Person, PoseFrame
from wdp.serve import StoreBackedEngineView, create_app, load_settings
from wdp.store import Store

FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1}


def read_mjpeg_parts(server: EngineServer, n: int, **params: str) -> list[bytes]:
    parts: list[bytes] = []
    with httpx.stream("GET", f"{server.base}/api/v1/visualization/mjpeg", params=params, timeout=10.0) as r:
        assert r.status_code == 200, r.read()
        ctype = r.headers["content-type"]
        assert ctype.startswith("multipart/x-mixed-replace")
        boundary = ctype.split("boundary=")[1].encode()
        buf = b""
        for chunk in r.iter_bytes():
            buf += chunk
            while True:
                m = re.search(
                    rb"--" + boundary + rb"\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n", buf
                )
                if m is None or len(buf) < m.end() + int(m.group(1)):
                    break
                size = int(m.group(1))
                parts.append(buf[m.end() : m.end() + size])
                buf = buf[m.end() + size :]
            if len(parts) >= n:
                return parts
    return parts


def test_mjpeg_stream_decodes_and_needs_credentials(engine_server: EngineServer) -> None:
    started = time.monotonic()
    parts = read_mjpeg_parts(engine_server, 12, token=engine_server.token)
    elapsed = time.monotonic() - started
    assert len(parts) == 12
    assert elapsed < 4.0  # 10 frames per second, the first at once
    images = [Image.open(io.BytesIO(p)) for p in parts]
    assert all(im.format == "JPEG" and im.size == (640, 360) for im in images)
    # the badge corner is red (simulated source); skeleton strokes are saturated colours
    first = images[-1].convert("RGB")
    r, g, b = first.getpixel((8, 8))
    assert r > 150 and g < 90 and b < 90
    assert len(set(parts)) > 1  # frames change (the scene moves)

    base = f"{engine_server.base}/api/v1/visualization"
    deadline = time.monotonic() + 5  # the closed connection released its consumer
    while httpx.get(f"{base}/status", headers=engine_server.auth).json()["mjpeg"]["clients"] != 0:
        assert time.monotonic() < deadline, "the MJPEG client was never released"
        time.sleep(0.1)
    assert httpx.get(f"{base}/mjpeg").status_code == 401
    assert httpx.get(f"{base}/mjpeg", params={"token": "forged"}).status_code == 401
    key_refused = httpx.get(f"{base}/snapshot.jpg", params={"token": "wdp_abc_def"})
    assert key_refused.status_code == 401 and "X-API-Key" in key_refused.json()["reason"]
    snap = httpx.get(f"{base}/snapshot.jpg", headers=engine_server.auth)
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(snap.content)).size == (640, 360)


def test_hls_playlist_and_segments_decode(engine_server: EngineServer, tmp_path: Path) -> None:
    need_tool("ffmpeg")
    base = f"{engine_server.base}/api/v1/visualization"
    assert httpx.get(f"{base}/hls/index.m3u8").status_code == 401
    deadline = time.monotonic() + 20
    while True:
        r = httpx.get(f"{base}/hls/index.m3u8", params={"token": engine_server.token}, timeout=15.0)
        if r.status_code == 200 and len(re.findall(r"^seg_\d+\.ts", r.text, re.M)) >= 2:
            break
        assert r.status_code in (200, 503), r.text
        assert time.monotonic() < deadline, f"no HLS playlist with two segments: {r.status_code} {r.text}"
        time.sleep(0.5)
    assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    lines = r.text.splitlines()
    assert lines[0] == "#EXTM3U" and any(line.startswith("#EXT-X-TARGETDURATION") for line in lines)
    segments = [line for line in lines if line.startswith("seg_")]
    assert all(line.endswith("?token=" + engine_server.token) for line in segments)  # credentials carried on
    total = 0
    for uri in segments[:2]:
        seg = httpx.get(f"{base}/hls/{uri}")
        assert seg.status_code == 200 and seg.headers["content-type"] == "video/mp2t"
        path = tmp_path / uri.split("?")[0]
        path.write_bytes(seg.content)
        info = ffprobe(path)
        video = [s for s in info["streams"] if s["codec_type"] == "video"]
        assert len(video) == 1 and video[0]["codec_name"] == "h264"
        assert (video[0]["width"], video[0]["height"]) == (640, 360)
        total += int(video[0]["nb_read_frames"])
    assert total >= 10  # 1 s segments at 10 fps
    # segment names are checked; nothing outside the HLS directory is reachable
    assert httpx.get(f"{base}/hls/..%2Fserver.log", headers=engine_server.auth).status_code == 404
    assert httpx.get(f"{base}/hls/seg_999999.ts", headers=engine_server.auth).status_code == 404
    status = httpx.get(f"{base}/status", headers=engine_server.auth).json()
    assert status["hls"]["available"] and status["hls"]["running"] and status["hls"]["frames_written"] > 0
    assert status["source"] == "simulator" and status["rtmp"]["state"] == "off"


# ------------------------------------------------------------------------------------------------ in-process


def _frame(i: int) -> PoseFrame:
    kp = [[0.3 + 0.01 * (i % 20) + 0.02 * j, 0.2 + 0.04 * j, 0.9] for j in range(N_KEYPOINTS)]
    return PoseFrame(
        frame_id=i,
        timestamp=time.time(),
        source="live",
        persons=[Person(track_id=1, keypoints=kp, box=(0.3, 0.2, 0.7, 0.9), confidence=0.9)],
    )


async def _app(
    store: Store, **visualization: object
) -> AsyncIterator[tuple[AsyncTestClient, StoreBackedEngineView, dict[str, str]]]:
    settings = load_settings(
        {"auth": {"jwt": {"secret": SECRET}, **FAST_ARGON2}, "visualization": visualization}, env={}
    )
    view = StoreBackedEngineView(store, source="live")
    app = create_app(settings, engine_view=view, store=store)
    async with AsyncTestClient(app) as client:
        token = app.state["services"].tokens.issue("viewer", ["pose:read", "system:read"])[0]
        yield client, view, {"Authorization": f"Bearer {token}"}


@pytest.mark.anyio
async def test_without_ffmpeg_hls_is_unavailable_with_a_reason() -> None:
    with Store(":memory:") as store:
        async for client, view, auth in _app(
            store, ffmpeg="/nonexistent/ffmpeg", rtmp_url="rtmp://127.0.0.1:1/live/key"
        ):
            r = await client.get("/api/v1/visualization/hls/index.m3u8", headers=auth)
            assert r.status_code == 503
            assert r.json()["reason"].startswith("ffmpeg not found ('/nonexistent/ffmpeg')")
            status = (await client.get("/api/v1/visualization/status", headers=auth)).json()
            assert status["hls"]["available"] is False and "ffmpeg not found" in status["hls"]["reason"]
            assert status["rtmp"]["state"] == "unavailable" and status["rtmp"]["url"] == "rtmp://127.0.0.1:1/live/***"
            # the rest of the visualization still works without ffmpeg
            client.blocking_portal.call(view.publish_frame, _frame(1))  # on the app's loop (the portal thread)
            snap = await client.get("/api/v1/visualization/snapshot.jpg", headers=auth)
            assert snap.status_code == 200 and Image.open(io.BytesIO(snap.content)).size == (640, 360)
            r = await client.get("/api/v1/visualization/status")
            assert r.status_code == 401


@pytest.mark.anyio
async def test_rtmp_push_reaches_a_local_receiver(tmp_path: Path) -> None:
    ffmpeg = need_tool("ffmpeg")
    port = free_port()
    out = tmp_path / "received.flv"
    receiver = subprocess.Popen(
        [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-listen",
            "1",
            "-i",
            f"rtmp://127.0.0.1:{port}/live/test",
            "-c",
            "copy",
            "-f",
            "flv",
            str(out),
        ],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await asyncio.sleep(0.5)  # the receiver listens before the push connects (the push retries anyway)
        with Store(":memory:") as store:
            async for client, view, auth in _app(
                store, rtmp_url=f"rtmp://127.0.0.1:{port}/live/test", rtmp_retry_s=0.5, fps=10.0
            ):
                for i in range(40):  # 4 s of moving frames
                    client.blocking_portal.call(view.publish_frame, _frame(i))
                    await asyncio.sleep(0.1)
                status = (await client.get("/api/v1/visualization/status", headers=auth)).json()["rtmp"]
                assert status["state"] == "pushing", status
                assert status["url"] == f"rtmp://127.0.0.1:{port}/live/***"  # the stream key is not shown
                assert status["frames_written"] >= 25
        # the app's shutdown closed the push: the receiver finishes its file
        _, err = receiver.communicate(timeout=20)
        assert receiver.returncode == 0, err
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.communicate()
    info = ffprobe(out)
    video = [s for s in info["streams"] if s["codec_type"] == "video"]
    assert len(video) == 1 and video[0]["codec_name"] == "h264"
    assert (video[0]["width"], video[0]["height"]) == (640, 360)
    assert int(video[0]["nb_read_frames"]) >= 25
    assert info["format"]["format_name"] == "flv" and float(info["format"]["duration"]) >= 2.5


def _fake_ffmpeg(tmp_path: Path, body: str) -> str:
    path = tmp_path / "ffmpeg"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_hls_playlist_while_starting_and_after_the_encoder_failed(tmp_path: Path) -> None:
    """An encoder with no segment yet: an empty live playlist (players reload it), not an error; an encoder
    that exited: 503 with its reason."""
    from litestar.testing import TestClient

    for body, expect in (("exec cat > /dev/null", 200), ("echo 'Unknown encoder libx264' >&2; exit 1", 503)):
        settings = load_settings(
            {
                "auth": {"jwt": {"secret": SECRET}, **FAST_ARGON2},
                "visualization": {"ffmpeg": _fake_ffmpeg(tmp_path, body), "hls_start_timeout_s": 0.5},
            },
            env={},
        )
        with Store(":memory:") as store:
            app = create_app(settings, engine_view=StoreBackedEngineView(store, source="live"), store=store)
            with TestClient(app) as client:
                token = app.state["services"].tokens.issue("viewer", ["pose:read"])[0]
                r = client.get("/api/v1/visualization/hls/index.m3u8", params={"token": token})
                assert r.status_code == expect, r.text
                if expect == 200:
                    assert r.text.startswith("#EXTM3U\n") and "#EXT-X-TARGETDURATION:1" in r.text
                    assert "#EXTINF" not in r.text
                else:
                    assert r.json()["reason"] == "the HLS encoder stopped: Unknown encoder libx264"
                    assert r.headers["retry-after"] == "2"
