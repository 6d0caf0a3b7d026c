"""``JsonBodyRequest``: the app's request class. Every JSON request body passes through its ``json()``, so the
checks that hold for all body endpoints live here once:

- the body must be declared JSON (``application/json`` or ``application/*+json``), else 415: a ``text/plain``
  or form body is not silently read as JSON;
- nesting deeper than ``MAX_JSON_DEPTH`` is a 400. msgspec decodes recursively and raises RecursionError
  near Python's recursion limit (``[[[[...]]]]`` 100k deep in a 1 MiB body); that error is caught at the
  decoder and nothing deeper than the limit reaches conversion, storage or re-encoding.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException, HTTPException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.types import Empty

MAX_JSON_DEPTH = 64  # the deepest body the API takes is 4 levels (a template's zone polygons)


def is_json_media_type(media_type: str) -> bool:
    media_type = media_type.strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` (decoded JSON) nests lists/objects more than ``limit`` levels; iterative, so any
    depth the decoder produced is checked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def too_deep() -> ClientException:
    return ClientException(detail=f"JSON body nested too deeply (at most {MAX_JSON_DEPTH} levels)")


class JsonBodyRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        if self._json is not Empty or self._connection_state.json is not Empty:  # decoded (and checked) once
            return await super().json()
        body = await self.body()
        if body:
            media_type = self.content_type[0]
            if not is_json_media_type(media_type):
                raise HTTPException(
                    status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                    detail=f"request body must be application/json, not {media_type or 'undeclared'!r}",
                )
        try:
            value = await super().json()
        except RecursionError:
            raise too_deep() from None
        # only a body with more brackets than the limit can nest deeper than it: skip the walk otherwise
        if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and json_depth_exceeds(value, MAX_JSON_DEPTH):
            raise too_deep()
        return value
