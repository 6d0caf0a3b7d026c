"""/api/v1/visualization: the server-rendered skeleton stream (snapshot, MJPEG, HLS) and its status; and the
dashboard page at /.

Browsers cannot put an Authorization header on ``<img src>`` or a video element's requests, so the stream
routes also take a JWT as ``?token=`` (API keys only in headers: exchange a key for a token first). They are
exempt from the request-rate tiers (a player fetches a segment a second) but still need pose:read; the HLS
playlist carries the token into its segment URLs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Request, Response, get
from litestar.controller import Controller
from litestar.di import NamedDependency
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
)
from litestar.params import PathParameter
from litestar.response import File, Stream

from wdp.serve.dashboard.visual import HlsFailed, LatestJpeg, Visualization
from wdp.serve.edge import principal_of
from wdp.serve.errors import WWW_AUTHENTICATE
from wdp.serve.security import API_KEY_PREFIX, POSE_READ, SYSTEM_READ, AuthError, Principal
from wdp.serve.services import ServicesDep

STATIC_DIR = Path(__file__).resolve().parent / "static"
STREAM_OPT = {"public": True, "no_rate_limit": True}  # authenticated in the handler (query token)
BOUNDARY = "wdpframe"
# The page loads only its own modules and styles, talks only to this origin (REST and WebSocket).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'"
)

VisualizationDep = NamedDependency[Visualization]
SegmentName = Annotated[str, PathParameter(max_length=64, description="A segment name from the playlist")]


class StreamState(msgspec.Struct, kw_only=True):
    available: bool
    reason: str = ""


class MjpegStatus(msgspec.Struct, kw_only=True):
    available: bool
    clients: int
    max_clients: int


class HlsStatus(msgspec.Struct, kw_only=True):
    available: bool
    reason: str
    running: bool
    starts: int
    frames_written: int
    last_error: str


class RtmpStatus(msgspec.Struct, kw_only=True):
    configured: bool
    available: bool
    reason: str
    state: str  # off | unavailable | starting | pushing | retrying | stopped
    url: str | None  # without the stream key
    attempts: int
    frames_written: int
    last_error: str


class VisualizationStatus(msgspec.Struct, kw_only=True):
    width: int
    height: int
    fps: float
    source: str | None
    mjpeg: MjpegStatus
    hls: HlsStatus
    rtmp: RtmpStatus
    frames_rendered: int


def stream_principal(request: Request[Any, Any, Any], services: ServicesDep) -> Principal:
    """The caller of a stream route: header credentials (resolved by the edge middleware) or ``?token=``."""
    principal = principal_of(request.scope)
    if principal is None:
        token = request.query_params.get("token")
        if token:
            if token.startswith(API_KEY_PREFIX):
                raise NotAuthorizedException(
                    detail="API keys are accepted only in the X-API-Key header; exchange the key for a token "
                    "(POST /api/v1/auth/token) to use ?token=",
                    headers=WWW_AUTHENTICATE,
                )
            try:
                principal = services.tokens.verify(token)
            except AuthError as exc:
                services.metrics.auth_failures.labels("jwt").inc()
                raise NotAuthorizedException(detail=exc.reason, headers=WWW_AUTHENTICATE) from exc
    if principal is None:
        reason = request.scope.get("wdp_auth_error") or "authentication required"  # type: ignore[call-overload]
        raise NotAuthorizedException(detail=reason, headers=WWW_AUTHENTICATE)
    if not principal.allows(POSE_READ):
        raise PermissionDeniedException(detail="requires scope pose:read (or admin:all)")
    return principal


def _unavailable(reason: str, retry_after: int | None = None) -> ServiceUnavailableException:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return ServiceUnavailableException(detail=reason, headers=headers)


class VisualizationController(Controller):
    path = "/api/v1/visualization"
    tags = ["visualization"]

    @get(
        "/status",
        operation_id="getVisualizationStatus",
        opt={"scopes": (SYSTEM_READ, POSE_READ)},
        summary="Which visualization outputs are available (ffmpeg present), running, and why not",
    )
    async def status(self, services: ServicesDep, visualization: VisualizationDep) -> VisualizationStatus:
        return msgspec.convert(visualization.status(services.engine.current_frame()), VisualizationStatus)

    @get(
        "/snapshot.jpg",
        operation_id="getVisualizationSnapshot",
        opt=STREAM_OPT,
        media_type="image/jpeg",
        raises=[NotAuthorizedException, PermissionDeniedException],
        summary="The current frame rendered as one JPEG (auth: header or ?token=)",
    )
    async def snapshot(
        self, request: Request[Any, Any, Any], services: ServicesDep, visualization: VisualizationDep
    ) -> Response[bytes]:
        stream_principal(request, services)
        jpeg = await visualization.ticker.render_now()
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    # Not in the OpenAPI document: an endless multipart stream has no response schema to check against.
    @get(
        "/mjpeg",
        operation_id="getVisualizationMjpeg",
        opt=STREAM_OPT,
        include_in_schema=False,
        summary="Rendered skeleton frames as multipart/x-mixed-replace JPEGs (auth: header or ?token=)",
    )
    async def mjpeg(
        self, request: Request[Any, Any, Any], services: ServicesDep, visualization: VisualizationDep
    ) -> Stream:
        stream_principal(request, services)
        if visualization.mjpeg_clients >= visualization.settings.max_mjpeg_clients:
            raise _unavailable("too many MJPEG clients", retry_after=5)
        ticker = visualization.ticker

        async def parts() -> AsyncIterator[bytes]:
            consumer = LatestJpeg()
            visualization.mjpeg_clients += 1
            ticker.add(consumer)
            try:
                while True:
                    jpeg = await consumer.next()
                    yield (
                        (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n").encode()
                        + jpeg
                        + b"\r\n"
                    )
            finally:
                ticker.discard(consumer)
                visualization.mjpeg_clients -= 1

        return Stream(
            parts(),
            media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @get(
        "/hls/index.m3u8",
        operation_id="getVisualizationHlsPlaylist",
        opt=STREAM_OPT,
        media_type="application/vnd.apple.mpegurl",
        raises=[NotAuthorizedException, PermissionDeniedException, ServiceUnavailableException],
        summary="HLS live playlist (H.264); 503 with the reason when ffmpeg is missing (auth: header or ?token=)",
    )
    async def hls_playlist(
        self, request: Request[Any, Any, Any], services: ServicesDep, visualization: VisualizationDep
    ) -> Response[str]:
        stream_principal(request, services)
        hls = visualization.hls
        ok, reason = hls.available()
        if not ok:
            raise _unavailable(reason)
        try:
            text = await hls.playlist()
        except HlsFailed as exc:
            raise _unavailable(str(exc), retry_after=2) from exc
        token = request.query_params.get("token")
        if token:  # segment URLs are relative: carry the query credentials into them
            suffix = "?token=" + quote(token, safe="")
            text = "\n".join(line + suffix if line.startswith("seg_") else line for line in text.split("\n"))
        return Response(text, media_type="application/vnd.apple.mpegurl", headers={"Cache-Control": "no-store"})

    @get(
        "/hls/{name:str}",
        operation_id="getVisualizationHlsSegment",
        opt=STREAM_OPT,
        media_type="video/mp2t",
        summary="One HLS segment (MPEG-TS) named by the playlist",
        raises=[NotAuthorizedException, PermissionDeniedException, NotFoundException],
    )
    async def hls_segment(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        visualization: VisualizationDep,
        name: SegmentName,
    ) -> File:
        stream_principal(request, services)
        path = visualization.hls.segment_path(name)
        if path is None:
            raise NotFoundException(f"no segment {name!r}")
        return File(
            path=path,
            media_type="video/mp2t",
            content_disposition_type="inline",
            headers={"Cache-Control": "max-age=60"},
        )


class DashboardPageController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", opt=STREAM_OPT, media_type="text/html", sync_to_thread=False)
    def index(self) -> File:
        return File(
            path=STATIC_DIR / "index.html",
            media_type="text/html",
            content_disposition_type="inline",
            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
        )
