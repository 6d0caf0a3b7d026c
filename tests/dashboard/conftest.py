"""Fixtures of the dashboard tests live in dashboard_support (a uniquely named module the tests also import
helpers from; two modules named conftest would collide on sys.path)."""

from __future__ import annotations

from dashboard_support import anyio_backend, engine_server  # noqa: F401
