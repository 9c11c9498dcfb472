"""The terminal client: ``copilot chat``, ``copilot runs``, ``copilot keys``.

Talks to a running server over its public API only. ``copilot chat`` streams the answer as it
arrives, shows tool calls, asks y/n at confirmations, and resumes by itself (Last-Event-ID)
after a dropped connection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import httpx

from copilot.providers.sse import SseDecoder

DEFAULT_URL = "http://127.0.0.1:3001"
RETRY_DELAY_S = 0.5
MAX_RECONNECTS = 20


class ClientError(Exception):
    pass


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

    def check(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            try:
                body = resp.json()
                message = f"{body.get('error')} ({body.get('code')})"
            except ValueError:
                message = resp.text[:200]
            raise ClientError(f"{resp.status_code}: {message}")
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
                raise ClientError(f"cannot reach the server: {exc}") from None
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


def cmd_chat(args: argparse.Namespace) -> int:
    api = _api(args)
    body: dict[str, Any] = {"message": args.message}
    for field, value in (("model", args.model), ("chatId", args.chat), ("userId", args.user)):
        if value:
            body[field] = value
    if args.json:
        body["timeout"] = int(args.timeout * 1000)
        resp = api.http.post("/api/v1/copilot/chat", json=body, timeout=args.timeout + 10)
        sys.stdout.write(json.dumps(resp.json(), indent=2) + "\n")
        return 0 if resp.status_code == 200 and resp.json().get("success") else 1
    session = ChatSession(api, out=sys.stdout, err=sys.stderr, ask=_ask, auto=args.yes)
    return session.run(body)


def _ask(question: str) -> str:
    """Prompt on stderr, so stdout carries only the answer (pipe-friendly)."""
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline()


def cmd_runs(args: argparse.Namespace) -> int:
    api = _api(args)
    if args.action == "list":
        params = api.params()
        if args.chat:
            params["chatId"] = args.chat
        runs = api.check(api.http.get("/api/copilot/runs", params=params))["runs"]
        for run in runs:
            sys.stdout.write(
                f"{run['runId']}  {run['status']:<10} {run['model']:<20} {run['createdAt']}\n"
            )
        return 0
    if not args.run_id:
        raise ClientError("runs show needs a run id")
    snap = api.check(api.http.get(f"/api/copilot/runs/{args.run_id}", params=api.params()))
    snap.pop("streamToken", None)
    sys.stdout.write(json.dumps(snap, indent=2) + "\n")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    api = _api(args)
    if args.action == "list":
        keys = api.check(api.http.get("/api/copilot/keys", params=api.params()))
        for key in keys.get("keys", []):
            sys.stdout.write(f"{key['provider']:<12} …{key['last4']}  {key.get('updatedAt')}\n")
        return 0
    if not args.provider:
        raise ClientError(f"keys {args.action} needs a provider")
    if args.action == "set":
        secret = args.value or os.environ.get("COPILOT_PROVIDER_KEY") or input("API key: ")
        body: dict[str, Any] = {"apiKey": secret}
        if args.base_url:
            body["baseUrl"] = args.base_url
        if api.user:
            body["userId"] = api.user
        api.check(api.http.put(f"/api/copilot/keys/{args.provider}", json=body))
        sys.stdout.write(f"stored the {args.provider} key\n")
        return 0
    api.check(api.http.delete(f"/api/copilot/keys/{args.provider}", params=api.params()))
    sys.stdout.write(f"deleted the {args.provider} key\n")
    return 0


def _api(args: argparse.Namespace) -> Api:
    return Api(args.url, args.key, args.user)


def add_client_commands(sub: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--url",
            default=os.environ.get("COPILOT_URL", DEFAULT_URL),
            help=f"server URL (default COPILOT_URL or {DEFAULT_URL})",
        )
        p.add_argument(
            "--key",
            default=os.environ.get("COPILOT_KEY"),
            help="API key sent as x-api-key (default COPILOT_KEY)",
        )
        p.add_argument(
            "--user",
            default=os.environ.get("COPILOT_USER"),
            help="userId to act for (admin and service keys)",
        )

    chat = sub.add_parser(
        "chat",
        help="chat with a running server from the terminal",
        description="Stream an answer; confirm tools at the prompt.",
    )
    chat.add_argument("message", help="the message to send")
    chat.add_argument("--chat", help="continue this chat id")
    chat.add_argument("--model", help="model, e.g. gpt-4o-mini, claude-sonnet-4, ollama:llama3")
    chat.add_argument("--json", action="store_true", help="headless: print the JSON result")
    chat.add_argument("--timeout", type=float, default=300, help="headless wait in seconds")
    chat.add_argument("--yes", action="store_true", help="accept every tool confirmation")
    common(chat)
    chat.set_defaults(func=cmd_chat)

    runs = sub.add_parser("runs", help="list runs or show one", description="Inspect runs.")
    runs.add_argument("action", choices=["list", "show"])
    runs.add_argument("run_id", nargs="?", help="run id (for show)")
    runs.add_argument("--chat", help="only this chat's runs (for list)")
    common(runs)
    runs.set_defaults(func=cmd_runs)

    keys = sub.add_parser(
        "keys",
        help="your provider API keys (stored encrypted)",
        description="Store, list or delete your own provider keys.",
    )
    keys.add_argument("action", choices=["set", "list", "delete"])
    keys.add_argument("provider", nargs="?", help="anthropic, openai or ollama")
    keys.add_argument("--value", help="the key (default: COPILOT_PROVIDER_KEY or a prompt)")
    keys.add_argument("--base-url", help="custom provider base URL")
    common(keys)
    keys.set_defaults(func=cmd_keys)
