"""A fake LLM provider *server* speaking the real streaming wire formats.

The code under test talks to it through the official SDKs, by base URL: OpenAI chat
completions (SSE), Anthropic Messages (SSE) and Ollama ``/api/chat`` (NDJSON).

Scripting: a test registers a *scenario* under a unique key with ``POST /_scenarios``; any
request whose conversation mentions the key pops the scenario's next turn. Requests without a
key get an echo of the last user message. Turns:

    {"text": "...", "chunk": 4}                         text split into deltas
    {"chunks": ["a", "b"]}                              explicit deltas
    {"reasoning": "...", "text": "..."}                 thinking, then text
    {"tool_calls": [{"name": "echo", "arguments": {...}}], "text": "..."}
                                                        several calls: parallel tool calls
    {"error": 429, "retry_after": 1, "message": "..."}  an HTTP error instead of a stream
    {"cut_after": 3, "text": "..."}                     stream dies after 3 deltas, no final frame
    {"malformed_after": 2, "text": "..."}               a non-JSON frame after 2 deltas
    {"error_after": 2, "error_type": "...", "message": "...", "text": "..."}
                                                        the server fails after 2 deltas, on
                                                        the 200 (OpenAI: a data frame holding
                                                        an ``error`` object; Anthropic: an
                                                        ``event: error``; not Ollama)
    {"keepalive": true, "text": "..."}                  OpenAI: a ``: keep-alive`` comment
                                                        line before every delta (as proxies
                                                        and OpenAI-compatible servers send)
    {"redirect": "http://127.0.0.1:PORT", "status": 307}
                                                        a redirect to that origin + this path
    {"raw_unicode": true, "text": "..."}                JSON with non-ASCII text unescaped
                                                        (U+2028 etc. raw on the wire)
    "first_delay_ms" / "delay_ms" on any turn           time to first token / between tokens

Per format: OpenAI sends reasoning as ``reasoning_content`` and each call's arguments in two
fragments; Anthropic sends thinking (with a ``signature_delta``), text and ``tool_use`` blocks
(input as three ``input_json_delta`` pieces), ``message_delta`` with stop reason and usage, then
``message_stop``; Ollama sends ``message.thinking`` / ``message.content`` chunks, each tool call
complete in its own chunk, then ``done: true`` with token counts. Errors use each provider's
JSON error shape (``retry-after`` header when given); ``cut_after`` ends the stream without the
final frame (``[DONE]`` / ``message_stop`` / ``done: true``).

``GET /_requests?key=K`` lists what the server received for K (path, headers, body).
Run standalone (benchmarks): ``python -m tests.fakes.provider --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


class Scenarios:
    def __init__(self) -> None:
        self.turns: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.requests: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.lock = threading.Lock()

    def find_key(self, texts: list[str]) -> str | None:
        with self.lock:
            keys = list(self.turns) + list(self.requests)
        for key in keys:
            if any(key in t for t in texts):
                return key
        return None

    def next_turn(self, key: str | None, last_user: str) -> dict[str, Any]:
        if key is not None:
            with self.lock:
                queue = self.turns.get(key)
                if queue:
                    return queue.pop(0) if len(queue) > 1 else dict(queue[0])
        return {"text": f"Echo: {last_user}", "chunk": 6}


SCENARIOS = Scenarios()


def _chunks(turn: dict[str, Any]) -> list[str]:
    if "chunks" in turn:
        return [str(c) for c in turn["chunks"]]
    text = str(turn.get("text", ""))
    size = int(turn.get("chunk", 5))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _texts(messages: list[Any]) -> list[str]:
    out = []
    for msg in messages:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(
                str(b.get("text", b.get("content", ""))) for b in content if isinstance(b, dict)
            )
    return out


def _last_user(messages: list[Any]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            texts = _texts([msg])
            return texts[-1] if texts else ""
    return ""


async def _pace(turn: dict[str, Any], index: int) -> None:
    delay = turn.get("first_delay_ms", 0) if index == 0 else turn.get("delay_ms", 0)
    if delay:
        await asyncio.sleep(delay / 1000)  # the fake's scripted token timing


def _redirect(turn: dict[str, Any], request: Request) -> Response:
    location = str(turn["redirect"]).rstrip("/") + request.url.path
    return Response(status_code=int(turn.get("status", 307)), headers={"location": location})


def _refusal(turn: dict[str, Any], kind: str, request: Request) -> Response | None:
    """The response that replaces the stream: a scripted error or redirect, else None."""
    if "error" in turn:
        return _error(turn, kind)
    if "redirect" in turn:
        return _redirect(turn, request)
    return None


def _error(turn: dict[str, Any], kind: str) -> Response:
    status = int(turn["error"])
    message = str(turn.get("message", f"fake error {status}"))
    headers = {}
    if "retry_after" in turn:
        headers["retry-after"] = str(turn["retry_after"])
    if kind == "anthropic":
        etype = {400: "invalid_request_error", 401: "authentication_error",
                 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                 529: "overloaded_error"}.get(status, "api_error")  # fmt: skip
        body: dict[str, Any] = {"type": "error", "error": {"type": etype, "message": message}}
    elif kind == "ollama":
        body = {"error": message}
    else:
        body = {"error": {"message": message, "type": "fake_error", "code": str(status)}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _record(request: Request, kind: str) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    body = await request.json()
    messages = list(body.get("messages", []))
    if kind == "anthropic" and isinstance(body.get("system"), str):
        messages = [{"role": "system", "content": body["system"]}, *messages]
    key = SCENARIOS.find_key(_texts(messages))
    if key is not None:
        with SCENARIOS.lock:
            SCENARIOS.requests[key].append(
                {
                    "path": request.url.path,
                    "query": dict(request.query_params),
                    "headers": dict(request.headers),
                    "body": body,
                }
            )
    turn = SCENARIOS.next_turn(key, _last_user(messages))
    return body, turn, key


# --- OpenAI -----------------------------------------------------------------------------------


def _oa(
    model: str,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    raw: bool = False,
    **extra: Any,
) -> str:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    chunk.update(extra)
    return f"data: {json.dumps(chunk, ensure_ascii=not raw)}\n\n"


async def openai_chat(request: Request) -> Response:
    body, turn, _ = await _record(request, "openai")
    if (refusal := _refusal(turn, "openai", request)) is not None:
        return refusal
    model = str(body.get("model", "fake"))

    async def stream() -> AsyncIterator[str]:
        yield _oa(model, {"role": "assistant", "content": ""})
        index = 0
        if turn.get("reasoning"):
            await _pace(turn, index)
            index += 1
            yield _oa(model, {"reasoning_content": turn["reasoning"]})
        chunks = _chunks(turn)
        for i, piece in enumerate(chunks):
            if "cut_after" in turn and i >= int(turn["cut_after"]):
                return
            if "malformed_after" in turn and i >= int(turn["malformed_after"]):
                yield "data: {not json\n\n"
                return
            if "error_after" in turn and i >= int(turn["error_after"]):
                message = str(turn.get("message", "fake stream error"))
                error = {"message": message, "type": turn.get("error_type", "server_error")}
                yield f"data: {json.dumps({'error': error})}\n\n"
                return
            await _pace(turn, index)
            index += 1
            if turn.get("keepalive"):
                yield ": keep-alive\n\n"
            yield _oa(model, {"content": piece}, raw=bool(turn.get("raw_unicode")))
        for n, call in enumerate(turn.get("tool_calls", [])):
            args = json.dumps(call.get("arguments", {}))
            half = len(args) // 2
            head = {"name": call["name"], "arguments": args[:half]}
            first = {"index": n, "id": f"call_{n}", "type": "function", "function": head}
            yield _oa(model, {"tool_calls": [first]})
            yield _oa(model, {"tool_calls": [{"index": n, "function": {"arguments": args[half:]}}]})
        finish = "tool_calls" if turn.get("tool_calls") else "stop"
        yield _oa(model, {}, finish)
        usage = {"prompt_tokens": 10, "completion_tokens": max(1, len(chunks)), "total_tokens": 0}
        if (body.get("stream_options") or {}).get("include_usage"):
            yield _oa(model, None, usage=usage)
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


# --- Anthropic --------------------------------------------------------------------------------


def _an(event: str, data: dict[str, Any], raw: bool = False) -> str:
    return f"event: {event}\ndata: {json.dumps({'type': event, **data}, ensure_ascii=not raw)}\n\n"


def _halves(text: str) -> list[str]:
    half = max(1, len(text) // 2)
    return [p for p in (text[:half], text[half:]) if p]


def _thirds(text: str) -> list[str]:
    step = max(1, -(-len(text) // 3))
    return [text[i : i + step] for i in range(0, len(text), step)] or [""]


async def anthropic_messages(request: Request) -> Response:
    body, turn, _ = await _record(request, "anthropic")
    if (refusal := _refusal(turn, "anthropic", request)) is not None:
        return refusal
    model = str(body.get("model", "fake"))

    async def stream() -> AsyncIterator[str]:
        message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 10, "output_tokens": 1}}  # fmt: skip
        yield _an("message_start", {"message": message})
        yield 'event: ping\ndata: {"type": "ping"}\n\n'
        block = 0
        index = 0
        if turn.get("reasoning"):
            start = {"type": "thinking", "thinking": "", "signature": ""}
            yield _an("content_block_start", {"index": block, "content_block": start})
            for piece in _halves(str(turn["reasoning"])):
                await _pace(turn, index)
                index += 1
                delta = {"type": "thinking_delta", "thinking": piece}
                yield _an("content_block_delta", {"index": block, "delta": delta})
            signature = {"type": "signature_delta", "signature": f"sig-{len(turn['reasoning'])}"}
            yield _an("content_block_delta", {"index": block, "delta": signature})
            yield _an("content_block_stop", {"index": block})
            block += 1
        chunks = _chunks(turn)
        if chunks:
            start = {"type": "text", "text": ""}
            yield _an("content_block_start", {"index": block, "content_block": start})
            for i, piece in enumerate(chunks):
                if "cut_after" in turn and i >= int(turn["cut_after"]):
                    return
                if "malformed_after" in turn and i >= int(turn["malformed_after"]):
                    yield "event: content_block_delta\ndata: {not json\n\n"
                    return
                if "error_after" in turn and i >= int(turn["error_after"]):
                    error = {"type": str(turn.get("error_type", "overloaded_error")),
                             "message": str(turn.get("message", "Overloaded"))}  # fmt: skip
                    yield _an("error", {"error": error})
                    return
                await _pace(turn, index)
                index += 1
                delta = {"type": "text_delta", "text": piece}
                raw = bool(turn.get("raw_unicode"))
                yield _an("content_block_delta", {"index": block, "delta": delta}, raw)
            yield _an("content_block_stop", {"index": block})
            block += 1
        for n, call in enumerate(turn.get("tool_calls", [])):
            start = {"type": "tool_use", "id": f"toolu_fake_{n}", "name": call["name"],
                     "input": {}}  # fmt: skip
            yield _an("content_block_start", {"index": block, "content_block": start})
            for piece in _thirds(json.dumps(call.get("arguments", {}))):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield _an("content_block_delta", {"index": block, "delta": delta})
            yield _an("content_block_stop", {"index": block})
            block += 1
        stop = "tool_use" if turn.get("tool_calls") else "end_turn"
        usage = {"output_tokens": max(1, len(chunks))}
        yield _an("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                    "usage": usage})  # fmt: skip
        yield _an("message_stop", {})

    return StreamingResponse(stream(), media_type="text/event-stream")


# --- Ollama -----------------------------------------------------------------------------------


def _ol(model: str, message: dict[str, Any], raw: bool = False, **extra: Any) -> str:
    chunk = {"model": model, "created_at": "2025-01-01T00:00:00Z",
             "message": {"role": "assistant", "content": "", **message}, "done": False}  # fmt: skip
    chunk.update(extra)
    return json.dumps(chunk, ensure_ascii=not raw) + "\n"


async def ollama_chat(request: Request) -> Response:
    body, turn, _ = await _record(request, "ollama")
    if (refusal := _refusal(turn, "ollama", request)) is not None:
        return refusal
    model = str(body.get("model", "fake"))

    async def stream() -> AsyncIterator[str]:
        index = 0
        for piece in _halves(str(turn.get("reasoning", ""))):
            await _pace(turn, index)
            index += 1
            yield _ol(model, {"thinking": piece})
        chunks = _chunks(turn)
        for i, piece in enumerate(chunks):
            if "cut_after" in turn and i >= int(turn["cut_after"]):
                return
            if "malformed_after" in turn and i >= int(turn["malformed_after"]):
                yield "{not json\n"
                return
            await _pace(turn, index)
            index += 1
            yield _ol(model, {"content": piece}, raw=bool(turn.get("raw_unicode")))
        # Ollama parses tool calls out of the model's output and sends each when complete.
        for call in turn.get("tool_calls", []):
            function = {"name": call["name"], "arguments": call.get("arguments", {})}
            yield _ol(model, {"tool_calls": [{"function": function}]})
        yield _ol(model, {}, done=True, done_reason="stop", prompt_eval_count=10,
                  eval_count=max(1, len(chunks)), total_duration=1000)  # fmt: skip

    return StreamingResponse(stream(), media_type="application/x-ndjson")


# --- control ----------------------------------------------------------------------------------


async def add_scenario(request: Request) -> Response:
    body = await request.json()
    with SCENARIOS.lock:
        SCENARIOS.turns[str(body["key"])] = list(body["turns"])
        SCENARIOS.requests.setdefault(str(body["key"]), [])
    return JSONResponse({"ok": True})


async def list_requests(request: Request) -> Response:
    key = request.query_params.get("key", "")
    with SCENARIOS.lock:
        return JSONResponse({"requests": list(SCENARIOS.requests.get(key, []))})


def make_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/chat/completions", openai_chat, methods=["POST"]),
            # Azure OpenAI: the model is the deployment in the path, ?api-version=, api-key.
            Route(
                "/openai/deployments/{deployment}/chat/completions", openai_chat, methods=["POST"]
            ),
            Route("/v1/messages", anthropic_messages, methods=["POST"]),
            Route("/api/chat", ollama_chat, methods=["POST"]),
            Route("/_scenarios", add_scenario, methods=["POST"]),
            Route("/_requests", list_requests, methods=["GET"]),
        ]
    )


class FakeProviderServer:
    """Runs the fake in a background thread of the test process (its own event loop)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.hits: list[str] = []  # "METHOD /path" of every request this server got, any route
        app = make_app()

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.hits.append(f"{scope['method']} {scope['path']}")
            await app(scope, receive, send)

        config = uvicorn.Config(counted, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="off")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake provider did not start")
            time.sleep(0.01)  # waiting for uvicorn's started flag in another thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake LLM provider server (tests, benchmarks)")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvicorn.run(make_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
