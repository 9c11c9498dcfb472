"""Development mode answers loopback host names only (DNS rebinding).

Without ``COPILOT_API_KEY`` the server has no auth and listens on loopback only, but a web page
the developer opens can still reach it: the page's own host name, re-pointed at 127.0.0.1
after it loaded (DNS rebinding), makes the browser send the page's requests here as
same-origin ones, answers readable. Those requests name the page's host in ``Host``; a
loopback name cannot be re-pointed that way, so any other is refused (421, before any route).
A secured server (admin key set) is protected by its keys instead and answers any name.
"""

from __future__ import annotations

import ipaddress

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from copilot.errors import HostNotAllowed


def is_loopback_host(value: str) -> bool:
    """``localhost``, ``127.x.x.x`` or ``[::1]``, with or without a port (a ``Host`` value)."""
    host = value.strip().lower()
    if host.startswith("["):
        name, sep, port = host[1:].partition("]")
        if not sep or (port and not (port[0] == ":" and port[1:].isdigit())):
            return False
        try:
            return ipaddress.IPv6Address(name).is_loopback
        except ValueError:
            return False
    name, sep, port = host.partition(":")
    if sep and not port.isdigit():
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.IPv4Address(name).is_loopback
    except ValueError:
        return False


class LoopbackHostsOnly:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((v for k, v in scope["headers"] if k == b"host"), None)
            # No Host at all: not a browser (they always send it), so not a rebinding page.
            if host is not None and not is_loopback_host(host.decode("latin-1")):
                error = HostNotAllowed(
                    f"this development server (no COPILOT_API_KEY) answers loopback host names "
                    f"only (localhost, 127.x.x.x, [::1]), not {host.decode('latin-1')[:100]!r}: "
                    "a page on another name reaching it is how DNS rebinding attacks work. "
                    "Open it as http://127.0.0.1:<port>, or set COPILOT_API_KEY."
                )
                response = JSONResponse(error.body(), status_code=error.status)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
