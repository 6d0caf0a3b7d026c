"""The one middleware on every route: resolve credentials, apply the rate limit, add version and rate-limit
headers, record request metrics.

Why one middleware rather than four: each Litestar middleware layer wraps ``send`` again and costs a few
microseconds per request; the pieces stay separate functions/classes (security, ratelimit, versioning,
metrics) and this only sequences them.

Credentials are *resolved* here and *enforced* by ``errors.scope_guard``: a request with a bad token reaches
the guard with no principal and the reason, which yields the 401. Resolving first lets the rate limiter key
authenticated callers by identity and everyone else by address.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from wdp.serve.ratelimit import RateDecision
from wdp.serve.security import API_KEY_PREFIX, AuthError, Principal, split_api_key
from wdp.serve.services import Services
from wdp.serve.stream.protocol import BEARER_SUBPROTOCOL


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _query_param(scope: Scope, name: str) -> str | None:
    raw = scope.get("query_string", b"")
    if not raw:
        return None
    from urllib.parse import parse_qs

    values = parse_qs(raw.decode("latin-1")).get(name)
    return values[0] if values else None


def bearer_subprotocol_token(scope: Scope) -> str | None:
    """The token of ``Sec-WebSocket-Protocol: bearer, <token>`` (browsers cannot set headers on a WebSocket)."""
    offered = scope.get("subprotocols") or ()
    for i, name in enumerate(offered[:-1]):
        if name == BEARER_SUBPROTOCOL:
            return str(offered[i + 1])
    return None


async def verify_credentials(
    services: Services,
    *,
    token: str | None = None,
    api_key: str | None = None,
    before_argon2: Callable[[], Awaitable[None]] | None = None,
) -> Principal:
    """The principal of a JWT or an API key, checked against the current users and keys (revocation);
    AuthError (counted in the auth failure metric) when they do not hold."""
    try:
        if token is not None:
            principal = services.tokens.verify(token)
        elif api_key is not None:
            cached = services.api_keys.cached(api_key)
            if cached is None:
                if before_argon2 is not None:
                    await before_argon2()
                cached = await anyio.to_thread.run_sync(services.api_keys.verify, api_key)
            principal = cached
        else:
            raise AuthError("authentication required")
        return services.credentials.check(principal)
    except AuthError:
        services.metrics.auth_failures.labels("api_key" if api_key is not None else "jwt").inc()
        raise


class EdgeMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(self, services: Services) -> None:
        self.s = services
        self._limits = services.settings.rate_limit

    def client_address(self, scope: Scope) -> str:
        return self.s.limiter.client_address(scope)

    async def authenticate(self, scope: Scope) -> tuple[Principal | None, str | None]:
        """The caller's principal, or None and why not (None, None: no credentials presented). An API key
        that needs argon2 first is a sign-in: refused (429) while its key id or the address is locked out by
        failed attempts, and a wrong one counts as a failure (anonymous traffic never locks it out)."""
        token: str | None = None
        api_key: str | None = None
        authorization = _header(scope, b"authorization")
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return None, "unsupported authorization scheme (use: Bearer <token>)"
            token = value.strip()
        else:
            api_key = _header(scope, b"x-api-key")
            if api_key is None and scope["type"] == ScopeType.WEBSOCKET:
                candidate = bearer_subprotocol_token(scope) or _query_param(scope, "token")
                if candidate is not None:
                    if candidate.startswith(API_KEY_PREFIX):
                        api_key = candidate
                    else:
                        token = candidate

        throttle = self.s.limiter.sign_in
        key_id = split_api_key(api_key) if api_key is not None else None
        account = "key:" + key_id[0] if key_id else None
        attempt = throttle.keys(self.client_address(scope), account)
        verified_key = False

        async def before_argon2() -> None:
            # argon2 is deliberately slow: a locked-out key id or address does not get to pay for it
            nonlocal verified_key
            wait = throttle.retry_after(attempt) if self._limits.enabled else 0
            if wait:
                self.s.metrics.rate_limited.labels("sign_in").inc()
                if scope["type"] != ScopeType.HTTP:
                    raise AuthError(f"too many failed sign-ins; retry in {wait} s")
                headers = {"Retry-After": str(wait)}
                for k, v in self.s.versioning.headers_for(self.s.versioning.version_of(scope["path"])):
                    headers[k.decode()] = v.decode()
                raise TooManyRequestsException(detail="too many failed sign-ins; retry later", headers=headers)
            verified_key = True

        if token is None and api_key is None:
            return None, None
        try:
            principal = await verify_credentials(self.s, token=token, api_key=api_key, before_argon2=before_argon2)
        except AuthError as exc:
            if verified_key:
                throttle.failed(attempt)
            return None, exc.reason
        if verified_key:
            throttle.succeeded(account)
        return principal, None

    def _refuse(self, scope: Scope, decision: RateDecision, tier: str) -> None:
        self.s.metrics.rate_limited.labels(tier).inc()
        headers = decision.headers()
        for key, value in self.s.versioning.headers_for(self.s.versioning.version_of(scope["path"])):
            headers[key.decode()] = value.decode()
        raise TooManyRequestsException(detail=f"rate limit of the {tier!r} tier exceeded", headers=headers)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        limits = self._limits
        opt = scope["route_handler"].opt
        principal, error = await self.authenticate(scope)
        scope["wdp_principal"] = principal  # type: ignore[typeddict-unknown-key]
        scope["wdp_auth_error"] = error  # type: ignore[typeddict-unknown-key]

        if scope["type"] == ScopeType.WEBSOCKET:
            # Connection attempts count against the streaming tier; the handler closes with 4029.
            if limits.enabled:
                key = principal.rate_key if principal else "ip:" + self.client_address(scope)
                scope["wdp_rate"] = self.s.limiter.hit(limits.stream_tier, key)  # type: ignore[typeddict-unknown-key]
            await next_app(scope, receive, send)
            return

        extra = list(self.s.versioning.headers_for(self.s.versioning.version_of(scope["path"])))
        method = scope["method"]
        route = scope.get("path_template") or scope["path"]
        # sign-in has its own budget (failed attempts, SignInThrottle), so a flood cannot lock it out
        if limits.enabled and not opt.get("no_rate_limit") and not opt.get("sign_in"):
            if principal is not None:
                tier, key = principal.tier, principal.rate_key
            else:
                tier, key = limits.anonymous_tier, "ip:" + self.client_address(scope)
            decision = self.s.limiter.hit(tier, key)
            if not decision.allowed:
                self.s.metrics.observe_request(method, route, 429, time.perf_counter() - started)
                self._refuse(scope, decision, tier)
            extra += [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]

        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]  # type: ignore[typeddict-item]
            await send(message)

        try:
            await next_app(scope, receive, send_with_headers)
        finally:
            self.s.metrics.observe_request(method, route, status, time.perf_counter() - started)


def principal_of(scope: Any) -> Principal | None:
    return scope.get("wdp_principal")
