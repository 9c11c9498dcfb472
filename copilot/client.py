"""The terminal client's engine, behind ``copilot chat``, ``copilot runs`` and ``copilot keys``.

Talks to a running server over its public API only. ``ChatSession`` streams the answer as it
arrives, shows tool calls, asks y/n at confirmations, and resumes by itself (Last-Event-ID)
after a dropped connection. The commands themselves live in ``copilot.cli.client``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, TextIO

import httpx

from copilot.providers.sse import SseDecoder

DEFAULT_URL = "http://127.0.0.1:3001"
RETRY_DELAY_S = 0.5
MAX_RECONNECTS = 20


# What to do about the errors a terminal user can fix, by the contract's error code.
_HINTS = {
    "unauthorized": "pass --key (or set COPILOT_KEY) with an API key this server accepts",
    "user_mismatch": "a user's key acts for that user only: drop --user (or COPILOT_USER)",
}


class ClientError(Exception):
    """The server refused a request or could not be reached; the message says what to do."""


def _frames(resp: httpx.Response) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """The stream's events with their ids. Lines end at CR and LF only, as SSE says: httpx's
    ``iter_lines`` (``str.splitlines``) also ends them at U+2028, U+2029 and U+0085, which a
    model's or a tool's text may hold."""
    decoder = SseDecoder()
    for chunk in resp.iter_bytes():
        for message in decoder.feed(chunk):
            frame_id = int(message.id) if message.id and message.id.isdigit() else None
            yield frame_id, json.loads(message.data)


class Api:
    def __init__(self, url: str, key: str | None, user: str | None, timeout: float = 60) -> None:
        headers = {"x-api-key": key} if key else {}
        self.user = user
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def params(self) -> dict[str, str]:
        return {"userId": self.user} if self.user else {}

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()

    def unreachable(self, exc: httpx.HTTPError) -> ClientError:
        return ClientError(
            f"cannot reach the server at {self.http.base_url} ({exc}). Is it running? Start one "
            "with `copilot dev`, or point --url (or COPILOT_URL) at it."
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; its JSON answer, or a ``ClientError`` that says what went wrong."""
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from None
        return self.check(resp)

    def check(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            hint = None
            try:
                body = resp.json()
                message = f"{body.get('error')} ({body.get('code')})"
                hint = _HINTS.get(body.get("code"))
            except ValueError:
                message = resp.text[:200]
            raise ClientError(f"{resp.status_code}: {message}" + (f"; {hint}" if hint else ""))
        return resp.json()


class ChatSession:
    def __init__(self, api: Api, *, out: TextIO, err: TextIO, ask: Any, auto: bool) -> None:
        self.api = api
        self.out = out
        self.err = err
        self.ask = ask
        self.auto = auto
        self.last_seq = 0
        self.calls: dict[str, dict[str, Any]] = {}
        self.status = "running"
        self.turn_text: dict[int, str] = {}

    def run(self, body: dict[str, Any]) -> int:
        run_id: str | None = None
        try:
            with self.api.http.stream("POST", "/api/copilot/chat", json=body) as resp:
                if resp.status_code != 200:
                    resp.read()
                    self.api.check(resp)
                run_id = resp.headers["x-run-id"]
                self.err.write(f"[run {run_id} · chat {resp.headers.get('x-chat-id')}]\n")
                if self._consume(resp):
                    return self._exit_code()
        except httpx.HTTPError as exc:
            if run_id is None:
                raise self.api.unreachable(exc) from None
            self.err.write(f"\n[connection lost ({exc.__class__.__name__}); resuming]\n")
        reconnects = 0
        while reconnects < MAX_RECONNECTS:
            try:
                with self.api.http.stream(
                    "GET",
                    f"/api/copilot/runs/{run_id}/events",
                    headers={"Last-Event-ID": str(self.last_seq)},
                    params=self.api.params(),
                ) as resp:
                    if resp.status_code != 200:
                        resp.read()
                        self.api.check(resp)
                    if self._consume(resp):
                        return self._exit_code()
            except httpx.HTTPError as exc:
                reconnects += 1
                self.err.write(f"\n[connection lost ({exc.__class__.__name__}); resuming]\n")
                time.sleep(RETRY_DELAY_S)  # a reconnect delay, as browsers' EventSource has
        raise ClientError("gave up after too many reconnects")

    def _consume(self, resp: httpx.Response) -> bool:
        """Print frames; True once ``done`` arrived. A cut connection raises httpx errors."""
        for frame_id, event in _frames(resp):
            if frame_id is not None:
                if frame_id <= self.last_seq:
                    continue
                self.last_seq = frame_id
            if self._handle(event):
                return True
        return False

    def _handle(self, event: dict[str, Any]) -> bool:
        kind = event.get("type")
        if kind == "content":
            self.out.write(event["data"])
            self.out.flush()
        elif kind == "turn_reset":
            self.err.write("\n[the model call was retried; its answer restarts]\n")
        elif kind == "snapshot":
            self.err.write("\n[resynchronised]\n")
            self.out.write(event["data"].get("content", ""))
        elif kind == "tool_call":
            call = event["data"]
            self.calls[call["id"]] = call
            args = json.dumps(call.get("arguments", {}))
            self.err.write(f"\n[tool {call['name']} {args}]\n")
        elif kind == "tool_status" and event.get("status") == "awaiting_confirmation":
            self._confirm(event["toolCallId"])
        elif kind == "tool_result":
            self.err.write(f"[tool {event.get('toolName')} → {json.dumps(event.get('result'))}]\n")
        elif kind == "tool_error":
            self.err.write(f"[tool {event.get('toolName')} failed: {event['data'].get('error')}]\n")
        elif kind == "error":
            self.err.write(f"\n[error: {event['data'].get('message')}]\n")
        elif kind == "done":
            self.status = event["data"]["status"]
            self.out.write("\n")
            return True
        return False

    def _confirm(self, call_id: str) -> None:
        call = self.calls.get(call_id, {"name": "?", "arguments": {}})
        question = f"Run tool {call['name']} with {json.dumps(call.get('arguments', {}))}? [y/N] "
        accepted = self.auto or self.ask(question).strip().lower() in ("y", "yes")
        body = {"toolCallId": call_id, "status": "accepted" if accepted else "rejected"}
        if self.api.user:
            body["userId"] = self.api.user
        self.api.check(self.api.http.post("/api/copilot/confirm", json=body))

    def _exit_code(self) -> int:
        return 0 if self.status == "completed" else 1
