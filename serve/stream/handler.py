"""``/ws/v1/stream``: authenticate, then run a receive loop and the client's sender side by side.

Close codes: 4001 authentication failed or credentials revoked while connected, 4003 missing stream:subscribe
scope, 4029 connection rate limit, 1013 server full, 1008 client too slow or flooding, 1001 server shutdown.
Credentials (JWT or API key), preferred first: an ``{"type": "auth", "token": ...}`` first message, an
``Authorization: Bearer`` or ``X-API-Key`` header, ``Sec-WebSocket-Protocol: bearer, <token>``, and
(discouraged: URLs are logged) ``?token=``. See ``protocol`` for the details.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.controller import Controller

from wdp.serve.edge import verify_credentials
from wdp.serve.security import API_KEY_PREFIX, STREAM_SUBSCRIBE, AuthError, Principal
from wdp.serve.services import ServicesDep
from wdp.serve.stream import protocol as p
from wdp.serve.stream.hub import StreamClient

CLOSE_AUTH_FAILED = p.CLOSE_AUTH_FAILED
CLOSE_FORBIDDEN = p.CLOSE_FORBIDDEN
CLOSE_RATE_LIMITED = p.CLOSE_RATE_LIMITED


async def _close(socket: WebSocket[Any, Any, Any], code: int, reason: str) -> None:
    # A stalled peer may never complete the close handshake; do not hang on it.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(socket.close(code=code, reason=reason[:120]), timeout=2.0)


async def _auth_message(socket: WebSocket[Any, Any, Any], services: ServicesDep) -> Principal:
    """The principal of the connection's first message, ``{"type": "auth", "token": ...}``, which must come
    within ``stream.auth_timeout_s``; AuthError otherwise."""
    timeout = services.settings.stream.auth_timeout_s
    try:
        message = await asyncio.wait_for(socket.receive(), timeout=timeout)
    except TimeoutError:
        raise AuthError(f"authentication required: no auth message within {timeout:g} s") from None
    if message["type"] == "websocket.disconnect":
        raise AuthError("disconnected before authenticating")
    data = message.get("text")
    if data is None:
        data = message.get("bytes") or b""
    if len(data) > services.settings.stream.max_message_bytes:
        raise AuthError("authentication required: auth message too large")
    try:
        auth = p.AUTH.decode(data)
    except (msgspec.DecodeError, RecursionError):
        raise AuthError('authentication required: send {"type": "auth", "token": "<token>"} first') from None
    if auth.token.startswith(API_KEY_PREFIX):
        return await verify_credentials(services, api_key=auth.token)
    return await verify_credentials(services, token=auth.token)


async def _receive_loop(socket: WebSocket[Any, Any, Any], client: StreamClient, services: ServicesDep) -> None:
    hub = services.hub
    limit = services.settings.stream.max_message_bytes
    errors = services.metrics.ws_messages.labels("in", "invalid")
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        if len(data) > limit:
            errors.inc()
            client.control(p.Error(reason=f"message larger than {limit} bytes"))
            continue
        try:
            inbound = p.INBOUND.decode(data)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            errors.inc()
            client.control(p.Error(reason=f"invalid message: {exc}"))
            continue
        except RecursionError:  # msgspec recurses per nesting level (skipping an unknown field's value too)
            errors.inc()
            client.control(p.Error(reason="invalid message: nested too deeply"))
            continue
        hub.handle(client, inbound)


class StreamController(Controller):
    path = "/ws/v1"
    tags = ["stream"]
    # authentication happens inside the handler: a refused socket must be accepted to carry a 4001 close code
    opt = {"public": True}

    @websocket("/stream", name="stream")
    async def stream(self, socket: WebSocket[Any, Any, Any], services: ServicesDep) -> None:
        # A browser drops a connection whose answer does not pick the subprotocol it offered, so "bearer" is
        # picked even when the token is refused: the client must see the 4001.
        offered = socket.scope.get("subprotocols") or ()
        await socket.accept(subprotocols=p.BEARER_SUBPROTOCOL if p.BEARER_SUBPROTOCOL in offered else None)
        principal: Principal | None = socket.scope.get("wdp_principal")  # type: ignore[call-overload]
        error: str | None = socket.scope.get("wdp_auth_error")  # type: ignore[call-overload]
        rate = socket.scope.get("wdp_rate")  # type: ignore[call-overload]
        if principal is None and error is None and (rate is None or rate.allowed):
            try:  # no credentials in the handshake: they come in the first message
                principal = await _auth_message(socket, services)
            except AuthError as exc:
                error = exc.reason
        if principal is None:
            services.metrics.ws_disconnects.labels("auth").inc()
            await _close(socket, CLOSE_AUTH_FAILED, error or "authentication required")
            return
        if not principal.allows(STREAM_SUBSCRIBE):
            services.metrics.ws_disconnects.labels("forbidden").inc()
            await _close(socket, CLOSE_FORBIDDEN, "requires scope stream:subscribe")
            return
        if rate is not None and not rate.allowed:
            services.metrics.ws_disconnects.labels("rate_limited").inc()
            await _close(socket, CLOSE_RATE_LIMITED, f"connection rate limit exceeded; retry in {rate.retry_after_s} s")
            return
        hub = services.hub
        if hub.full:
            services.metrics.ws_disconnects.labels("full").inc()
            await _close(socket, 1013, "server is at its client limit")
            return

        async def send_text(text: str) -> None:
            await socket.send({"type": "websocket.send", "text": text, "bytes": None})

        client = hub.connect(principal, send_text)
        settings = services.settings.stream
        client.control(
            p.Welcome(
                client_id=client.id,
                server_time=time.time(),
                subject=principal.subject,
                topics=list(p.TOPICS),
                queue_size=settings.queue_size,
                max_fps=settings.max_fps,
            )
        )
        receiver = asyncio.create_task(_receive_loop(socket, client, services))
        sender = asyncio.create_task(client.run_sender())
        kicked = asyncio.create_task(client.kicked.wait())
        reason = "closed"
        try:
            done, _ = await asyncio.wait({receiver, sender, kicked}, return_when=asyncio.FIRST_COMPLETED)
            if kicked in done or sender in done and client.kicked.is_set():
                codes = {1008: "slow", CLOSE_AUTH_FAILED: "revoked", CLOSE_FORBIDDEN: "revoked"}
                reason = codes.get(client.close_code, "server")
            for task in done:
                if task is not kicked and not task.cancelled() and task.exception() is not None:
                    reason = "error"
        finally:
            for task in (receiver, sender, kicked):
                task.cancel()
            for task in (receiver, sender, kicked):
                with contextlib.suppress(BaseException):
                    await task
            hub.disconnect(client, reason)
        if client.kicked.is_set():
            await _close(socket, client.close_code, client.close_reason)
        elif reason == "error":
            await _close(socket, 1011, "internal error")
