"""SSRF guard for webhook targets: only http(s) URLs whose host resolves to public addresses, unless the
address is inside an explicitly allowed network (e.g. ``127.0.0.1/32`` in tests, a LAN range for a local
Home Assistant).

Refused: loopback, private (RFC 1918, ULA), link-local (incl. 169.254.169.254 cloud metadata), shared/CGNAT,
multicast, unspecified, reserved/documentation ranges, IPv4-mapped IPv6 forms of those. If ANY address a host
resolves to is refused the URL is refused, and the request is then sent to the address that was checked
(``ResolvedTarget.url`` with the original Host header and TLS server name), so a DNS answer that changes
between check and connect (rebinding) cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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


class UrlGuard:
    def __init__(
        self, allowed_networks: Iterable[str | IPNetwork] = (), *, schemes: Iterable[str] = ("http", "https")
    ) -> None:
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
        """Static checks (scheme, host, no credentials in the URL); no DNS."""
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
        return parsed

    async def resolve(self, url: str) -> ResolvedTarget:
        """Check ``url`` and resolve its host; every address must pass. OSError (e.g. DNS failure) is left to
        the caller: it is a temporary delivery error, not a refusal."""
        parsed = self.parse(url)
        host = parsed.host
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        literal = _literal_ip(host)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = []
            for info in infos:
                ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                if ip not in addresses:
                    addresses.append(ip)
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
        """Static check for the API (at subscription create/update): scheme and, for a literal IP host, the
        address. Hostnames are checked again at every delivery, after resolving."""
        ip = _literal_ip(self.parse(url).host)
        if ip is not None:
            self.check_address(ip)
