"""SSRF guard for the base URLs users give with their provider keys.

A user-supplied base URL makes the worker send HTTP requests where the user says; without a
check, a user could reach the server's own network (cloud metadata at 169.254.169.254, an
admin port on loopback, databases on a private range). The host is resolved and every address
it resolves to must be public. The check runs when the URL is stored and again when it is used,
so a DNS record changed after storing does not slip through (a rebinding race between the
check and the connection remains; a proxy that pins addresses would be the next step).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from copilot.errors import InvalidRequest

ALLOW_HINT = (
    "A server operator can allow private addresses (e.g. a self-hosted Ollama) with "
    "ALLOW_PRIVATE_PROVIDER_URLS=true."
)
RESOLVE_TIMEOUT_S = 5.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(InvalidRequest):
    """The URL is malformed or points at an address users may not reach."""


class UnresolvableUrl(InvalidRequest):
    """The URL's host does not resolve (now); nothing is known about where it points."""


def _blocked_kind(ip: Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, hit in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("non-public", not ip.is_global),
    ):
        if hit:
            return kind
    return None


def parse_base_url(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL, or ``UnsafeUrl`` saying what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("baseUrl is not a valid URL", details=[{"field": "baseUrl"}]) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(
            "baseUrl must be an http:// or https:// URL with a host",
            details=[{"field": "baseUrl"}],
        )
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl(
            "baseUrl must not carry credentials; put the key in apiKey",
            details=[{"field": "baseUrl"}],
        )
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_base_url(url: str, *, allow_private: bool, require_resolvable: bool = True) -> None:
    """Refuse a user-supplied provider URL that is malformed or reaches a non-public address.

    ``require_resolvable=False`` (at use time): a host that does not resolve now is let through,
    the provider call then fails as unreachable, which a retry may cure.
    """
    host, port = parse_base_url(url)
    if allow_private:
        return
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except (OSError, TimeoutError):
        if not require_resolvable:
            return
        raise UnresolvableUrl(
            f"baseUrl host {host!r} does not resolve; check the URL",
            details=[{"field": "baseUrl"}],
        ) from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        kind = _blocked_kind(ip)
        if kind is not None:
            raise UnsafeUrl(
                f"baseUrl host {host!r} resolves to {ip}, a {kind} address; provider URLs "
                f"must be public. {ALLOW_HINT}",
                details=[{"field": "baseUrl", "msg": f"{kind} address"}],
            )
