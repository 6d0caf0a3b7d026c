"""Who is asking, for resolvers: the principal the edge middleware resolved (HTTP and WebSocket handshake) or
the one the ``connection_init`` payload carried (WebSocket), and the scope checks REST makes.

Errors carry ``extensions.code``: UNAUTHENTICATED (REST 401), FORBIDDEN (403), BAD_USER_INPUT (422),
NOT_FOUND (404), CONFLICT (409), UNAVAILABLE (503), so clients branch on the code, not the text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from graphql import GraphQLError
from litestar.exceptions import HTTPException
from strawberry.types import Info

from wdp.serve.errors import scope_requirement
from wdp.serve.security import Principal
from wdp.serve.services import Services

T = TypeVar("T")
_CODES = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    422: "BAD_USER_INPUT",
}


def error(message: str, code: str, **extra: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extra})


def services_of(info: Info) -> Services:
    return info.context["services"]  # type: ignore[no-any-return]


def require(info: Info, *scopes: str) -> Principal:
    """The caller, if it holds one of ``scopes`` (admin:all implies all)."""
    ctx = info.context
    principal: Principal | None = ctx.get("principal")
    if principal is None:
        raise error(ctx.get("auth_error") or "authentication required", "UNAUTHENTICATED")
    if scopes and not principal.allows_any(scopes):
        raise error(f"requires scope {scope_requirement(scopes)}", "FORBIDDEN")
    return principal


async def rest(call: Awaitable[T]) -> T:
    """Await a REST helper, turning its HTTP errors into GraphQL errors with the matching code."""
    try:
        return await call
    except HTTPException as exc:
        extra: dict[str, Any] = {"status": exc.status_code}
        if isinstance(exc.extra, list | dict):
            extra["detail"] = exc.extra
        raise error(exc.detail, _CODES.get(exc.status_code, "BAD_REQUEST"), **extra) from None


def check_range(start: float, end: float) -> None:
    import math

    if not (math.isfinite(start) and math.isfinite(end)):
        raise error("startTime and endTime must be finite numbers", "BAD_USER_INPUT")
    if end < start:
        raise error("endTime must not be before startTime", "BAD_USER_INPUT")


def one_of(value: str | None, allowed: Sequence[str], name: str) -> None:
    if value is not None and value not in allowed:
        raise error(f"{name} must be one of {', '.join(allowed)}", "BAD_USER_INPUT")
