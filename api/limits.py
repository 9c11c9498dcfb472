"""Request body size limit (413 too_large), enforced while the body streams in, whether it
declares its length or comes chunked.

Some routes have their own limit (Sim's payloads and tool results are large). A route may also
have an *overflow handler*: told about a body that was refused (with its first bytes), so it
can act on it; mark-complete uses it to fail the reported tool at once instead of leaving the
run waiting for a result that will never fit.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("copilot.api")

PREFIX_BYTES = 64 * 1024

# (the request's scope, the body's first bytes, the limit) -> None
OverflowHandler = Callable[[Scope, bytes, int], Awaitable[None]]


@dataclass(frozen=True)
class RouteLimit:
    max_bytes: int
    setting: str
    on_overflow: OverflowHandler | None = None


def _too_large(limit: int, setting: str) -> bytes:
    return json.dumps(
        {
            "success": False,
            "error": f"request body larger than {limit} bytes ({setting})",
            "code": "too_large",
        }
    ).encode()


class BodyLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int, routes: dict[str, RouteLimit] | None = None
    ) -> None:
        self.app = app
        self.default = RouteLimit(max_bytes, "MAX_BODY_BYTES")
        self.routes = routes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        rule = self.routes.get(scope["path"], self.default)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > rule.max_bytes:
            prefix = await _read_prefix(receive) if rule.on_overflow else b""
            await self._reject(scope, send, rule, prefix)
            return
        seen = 0
        head = bytearray()
        too_large = False  # the body passed the limit before any response started
        started = False

        async def limited() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                seen += len(chunk)
                if len(head) < PREFIX_BYTES:
                    head.extend(chunk[: PREFIX_BYTES - len(head)])
                if seen > rule.max_bytes:
                    too_large = not started
                    raise _BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            # A chunked body (no Content-Length) is cut while the app reads it, and the app
            # may answer that itself (FastAPI turns any error while reading into 400 "error
            # parsing the body"): that answer is dropped, ours is sent instead.
            nonlocal started
            if too_large:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited, guarded)
        if too_large:
            await self._reject(scope, send, rule, bytes(head))

    async def _reject(self, scope: Scope, send: Send, rule: RouteLimit, prefix: bytes) -> None:
        if rule.on_overflow is not None:
            try:
                await rule.on_overflow(scope, prefix, rule.max_bytes)
            except Exception:  # the 413 still goes out; the handler's failure is logged
                log.exception("overflow handler for %s failed", scope["path"])
        body = _too_large(rule.max_bytes, rule.setting)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _read_prefix(receive: Receive) -> bytes:
    head = bytearray()
    while len(head) < PREFIX_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            break
        head.extend(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return bytes(head[:PREFIX_BYTES])


class _BodyTooLarge(Exception):
    pass
