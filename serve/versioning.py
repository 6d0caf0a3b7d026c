"""API versions: which version a request addresses, and the headers a response carries for it.

The version comes from the path (``/api/v1/...``, ``/ws/v1/...``) as in the seed; for unversioned paths an
``API-Version`` header or ``Accept: ...; version=v1`` parameter may name one. Every versioned response
carries ``API-Version``; a deprecated version adds ``Deprecation`` (RFC 9745, ``@<epoch seconds>``),
``Sunset`` (RFC 8594, HTTP-date) and ``Link: <guide>; rel="deprecation"``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from wdp.serve.settings import ApiVersionInfo, VersioningSettings


def _parse_when(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def version_headers(name: str, info: ApiVersionInfo) -> list[tuple[bytes, bytes]]:
    headers = [(b"api-version", name.encode())]
    if info.status == "deprecated" or info.deprecated_at:
        when = _parse_when(info.deprecated_at) if info.deprecated_at else None
        headers.append((b"deprecation", f"@{int(when.timestamp())}".encode() if when else b"@0"))
        if info.sunset_at:
            headers.append((b"sunset", format_datetime(_parse_when(info.sunset_at), usegmt=True).encode()))
        if info.migration_guide:
            headers.append((b"link", f'<{info.migration_guide}>; rel="deprecation"'.encode()))
    return headers


class Versioning:
    """Precomputed header lists per version, so a response pays one dict lookup."""

    def __init__(self, settings: VersioningSettings) -> None:
        for info in settings.versions.values():  # fail at startup, not per request
            for when in (info.deprecated_at, info.sunset_at):
                if when:
                    _parse_when(when)
        self._headers = {name: version_headers(name, info) for name, info in settings.versions.items()}

    def version_of(self, path: str, headers: dict[str, str] | None = None) -> str | None:
        parts = path.split("/", 3)
        if len(parts) > 2 and parts[1] in ("api", "ws") and parts[2] in self._headers:
            return parts[2]
        if headers:
            named = headers.get("api-version")
            if named is None:
                accept = headers.get("accept", "")
                if "version=" in accept:
                    named = accept.split("version=", 1)[1].split(";", 1)[0].split(",", 1)[0].strip()
            if named in self._headers:
                return named
        return None

    def headers_for(self, version: str | None) -> list[tuple[bytes, bytes]]:
        return self._headers.get(version, []) if version else []

    @property
    def versions(self) -> list[str]:
        return list(self._headers)
