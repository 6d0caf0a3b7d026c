"""SSRF guard for webhook targets: only http(s) URLs whose host resolves to public addresses, unless the
address is inside an explicitly allowed network (e.g. ``127.0.0.1/32`` in tests, a LAN range for a local
Home Assistant).

Refused: loopback, private (RFC 1918, ULA), link-local (incl. 169.254.169.254 cloud metadata), shared/CGNAT,
multicast, unspecified, reserved/documentation ranges, IPv4-mapped IPv6 forms of those. If ANY address a host
resolves to is refused the URL is refused, and the request is then sent to the address that was checked
(``ResolvedTarget.url`` with the original Host header and TLS server name), so a DNS answer that changes
between check and connect (rebinding) cannot redirect it. Also refused without DNS: credentials in the URL,
URLs over ``MAX_URL_CHARS`` or with whitespace/control characters, IPv4 written in any form other than a
dotted quad (``0177.0.0.1``, ``0x7f.1``, ``2130706433``: resolvers read them as 127.0.0.1) and ``localhost``
names (RFC 6761: always loopback).

The API calls ``check_target`` when a subscription is created or changed: the static checks, then the host
resolved with a short timeout. A host that resolves to a refused address is refused; a host that does not
resolve in time (or not at all) is accepted, because DNS may be slow or the name registered later, and every
delivery checks again (``resolve``), since DNS answers can change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]  # (host, port) -> addresses; OSError if none

MAX_URL_CHARS = 2048
CREATE_RESOLVE_TIMEOUT_S = 1.0
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_log = logging.getLogger(__name__)


class UrlRefusedError(ValueError):
    """The URL is not allowed as a webhook target (scheme, host, or address range)."""


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    url: httpx.URL  # the original URL with its host replaced by the checked IP address
    host_header: str  # what the Host header must say (original host[:port])
    server_name: str | None  # TLS SNI / certificate name for https, None for http
    address: IPAddress


def _blocked_reason(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _blocked_reason(ip.ipv4_mapped)
    for attr in (
        "is_loopback",
        "is_link_local",
        "is_multicast",
        "is_unspecified",
        "is_private",
        "is_reserved",
    ):
        if getattr(ip, attr):
            return attr.removeprefix("is_").replace("_", "-")
    if not ip.is_global:
        return "non-global"
    return None


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _numeric_ipv4(host: str) -> bool:
    """True for the forms C resolvers take as an IPv4 address (``inet_aton``: octal, hex, fewer parts)."""
    try:
        socket.inet_aton(host.rstrip("."))
    except (OSError, ValueError):
        return False
    return True


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


async def _getaddrinfo(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


class UrlGuard:
    def __init__(
        self,
        allowed_networks: Iterable[str | IPNetwork] = (),
        *,
        schemes: Iterable[str] = ("http", "https"),
        resolver: Resolver = _getaddrinfo,
    ) -> None:
        self.resolver = resolver
        self.allowed_networks: tuple[IPNetwork, ...] = tuple(
            n if isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) else ipaddress.ip_network(n, strict=False)
            for n in allowed_networks
        )
        self.schemes = frozenset(schemes)

    def check_address(self, ip: IPAddress) -> None:
        """Raise UrlRefusedError unless ``ip`` is public or inside an allowed network."""
        if any(ip in net for net in self.allowed_networks):
            return
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if mapped is not None and any(mapped in net for net in self.allowed_networks):
            return
        reason = _blocked_reason(ip)
        if reason is not None:
            raise UrlRefusedError(f"address {ip} is {reason} and not in the allowed networks")

    def parse(self, url: str) -> httpx.URL:
        """Static checks (scheme, host, no credentials in the URL, length, characters); no DNS."""
        if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
            raise UrlRefusedError(f"URL must be a string of at most {MAX_URL_CHARS} characters")
        if any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in url):
            raise UrlRefusedError("URL contains whitespace or control characters")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise UrlRefusedError(f"invalid URL: {exc}") from None
        if parsed.scheme not in self.schemes:
            raise UrlRefusedError(f"scheme {parsed.scheme!r} not allowed")
        if not parsed.host:
            raise UrlRefusedError("URL has no host")
        if parsed.userinfo:
            raise UrlRefusedError("credentials in the URL are not allowed (use headers)")
        if _literal_ip(parsed.host) is None and _numeric_ipv4(parsed.host):
            raise UrlRefusedError(f"host {parsed.host!r} is a numeric address not written as a dotted quad")
        return parsed

    def _check_static_host(self, host: str) -> bool:
        """Check a literal IP or a localhost name; True when that settled the host (no DNS needed)."""
        literal = _literal_ip(host)
        if literal is not None:
            self.check_address(literal)
            return True
        if _is_localhost(host):
            for ip in _LOOPBACK:
                try:
                    self.check_address(ip)
                    return True
                except UrlRefusedError:
                    continue
            raise UrlRefusedError(f"host {host!r} is loopback and not in the allowed networks")
        return False

    async def resolve(self, url: str) -> ResolvedTarget:
        """Check ``url`` and resolve its host; every address must pass. OSError (e.g. DNS failure) is left to
        the caller: it is a temporary delivery error, not a refusal."""
        parsed = self.parse(url)
        host = parsed.host
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if _is_localhost(host):
            self._check_static_host(host)
        literal = _literal_ip(host)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            addresses = await self.resolver(host, port)
            if not addresses:
                raise OSError(f"{host} resolved to no address")
        for ip in addresses:
            self.check_address(ip)
        address = addresses[0]
        host_header = parsed.netloc.decode("ascii")
        return ResolvedTarget(
            url=parsed.copy_with(host=str(address)),
            host_header=host_header,
            server_name=host if parsed.scheme == "https" else None,
            address=address,
        )

    def check_url(self, url: str) -> None:
        """Static check (no DNS): scheme, form, and for a literal IP or localhost host, the address."""
        self._check_static_host(self.parse(url).host)

    async def check_target(self, url: str, *, resolve_timeout_s: float = CREATE_RESOLVE_TIMEOUT_S) -> None:
        """The check for a subscription's URL when it is created or changed: ``check_url``, then the host's
        addresses if it resolves within ``resolve_timeout_s``. Raises UrlRefusedError; a slow or failing DNS
        lookup is not a refusal (the delivery checks again)."""
        parsed = self.parse(url)
        if self._check_static_host(parsed.host):
            return
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            async with asyncio.timeout(resolve_timeout_s):
                addresses = await self.resolver(parsed.host, port)
        except (TimeoutError, OSError) as exc:
            _log.info("webhook target %r not resolved at creation (%s); checked again at delivery", parsed.host, exc)
            return
        for ip in addresses:
            self.check_address(ip)
