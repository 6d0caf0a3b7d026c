"""Errors as JSON ``{status_code, error, reason, extra}``, and the one guard every route passes.

Validation failures (bad query/path parameters, bodies that do not match their Struct) are 422, not
Litestar's default 400. Anything unexpected is logged and answered with a generic 500 that leaks nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY, HTTP_500_INTERNAL_SERVER_ERROR

from wdp.serve.api_types import ErrorBody
from wdp.serve.security import ADMIN_ALL

log = logging.getLogger("wdp.serve")

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="wdp"'}


def error_response(
    status: int, reason: str, extra: Any = None, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    if not isinstance(extra, list | dict):
        extra = None
    try:
        name = HTTPStatus(status).phrase
    except ValueError:
        name = "Error"
    return Response(
        ErrorBody(status_code=status, error=name, reason=reason, extra=extra),
        status_code=status,
        headers=headers,
    )


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    if isinstance(exc, ValidationException):
        return error_response(HTTP_422_UNPROCESSABLE_ENTITY, exc.detail, _explain_non_finite(request, exc.extra))
    return error_response(exc.status_code, exc.detail, exc.extra, exc.headers)


def _is_non_finite(raw: str) -> bool:
    try:
        return not math.isfinite(float(raw))
    except ValueError:
        return False


def _explain_non_finite(request: Request[Any, Any, Any], extra: Any) -> Any:
    """A NaN or infinite query value fails its bounds with "Expected `float` >= 0.0"; say what is wrong."""
    if not isinstance(extra, list):
        return extra
    out = []
    for item in extra:
        if isinstance(item, dict) and item.get("source") == "query" and isinstance(item.get("key"), str):
            raw = request.query_params.get(item["key"])
            if isinstance(raw, str) and _is_non_finite(raw):
                item = {**item, "message": f"must be a finite number, not {raw!r}"}
        out.append(item)
    return out


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error")


def unprocessable(reason: str, **extra: Any) -> ValidationException:
    """A 422 for input that parsed but makes no sense (end before start, unknown zone in a rule, ...)."""
    return ValidationException(detail=reason, extra=[extra] if extra else None)


async def scope_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Every route is protected unless its opt says ``public``; ``scopes`` lists the scopes of which the
    caller needs one (admin:all implies all). 401 without valid credentials, 403 without the scope."""
    opt = handler.opt
    if opt.get("public") or connection.scope.get("method") == "OPTIONS":  # OPTIONS only lists methods
        return
    principal = connection.scope.get("wdp_principal")  # type: ignore[call-overload]
    if principal is None:
        reason = connection.scope.get("wdp_auth_error") or "authentication required"  # type: ignore[call-overload]
        raise NotAuthorizedException(detail=reason, headers=WWW_AUTHENTICATE)
    required = opt.get("scopes")
    if required and not principal.allows_any(required):
        raise PermissionDeniedException(detail=f"requires scope {scope_requirement(required)}")


def scope_requirement(scopes: Sequence[str]) -> str:
    """``pose:read or system:read (or admin:all)``; ``admin:all`` once when it is the one required."""
    named = [s for s in scopes if s != ADMIN_ALL]
    return f"{' or '.join(named)} (or {ADMIN_ALL})" if named else ADMIN_ALL
