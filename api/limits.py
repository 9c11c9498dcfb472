"""Request body size limit (413 too_large), enforced while the body streams in, whether it
declares its length or comes chunked."""

from __future__ import annotations

import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large(limit: int) -> bytes:
    return json.dumps(
        {
            "success": False,
            "error": f"request body larger than {limit} bytes (MAX_BODY_BYTES)",
            "code": "too_large",
        }
    ).encode()


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        too_large = False  # the body passed the limit before any response started
        started = False

        async def limited() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
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
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = _too_large(self.max_bytes)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
