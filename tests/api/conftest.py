"""Fixtures of the API tests live in api_support (a uniquely named module the tests also import helpers
from; two modules named conftest would collide on sys.path)."""

from __future__ import annotations

from api_support import anyio_backend, api, store  # noqa: F401
