"""The providers' raw stream reading (issue 17): what reading SSE ourselves must get right.

The OpenAI and Anthropic providers use the official SDKs for the request only and read the
body as raw SSE into plain dicts. Against the fake provider server: an error inside a 200
stream and keep-alive comments. Against an in-process transport under the real SDK client
(exact byte boundaries, which a socket cannot promise): every line, ``\\r\\n`` and multi-byte
character cut anywhere, comments, unknown fields and events, bytes after ``[DONE]``, and
frames of the wrong shape.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from copilot.providers.anthropic_provider import AnthropicProvider
from copilot.providers.base import (
    ConvMessage,
    Credentials,
    Delta,
    Provider,
    ProviderError,
    TurnOutput,
    TurnRequest,
)
from copilot.providers.openai_provider import OpenAIProvider
from tests.conftest import scenario
from tests.fakes.provider import FakeProviderServer

RAW = ("openai", "anthropic")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-test"}


def _provider(name: str) -> Provider:
    counter = itertools.count(1)

    def new_id() -> str:
        return f"tc_test{next(counter)}"

    if name == "openai":
        return OpenAIProvider(new_tool_id=new_id)
    return AnthropicProvider(new_tool_id=new_id)


async def _turn(
    provider: Provider, request: TurnRequest
) -> tuple[TurnOutput | ProviderError, list[Delta]]:
    deltas: list[Delta] = []

    async def emit(delta: Delta) -> None:
        deltas.append(delta)

    try:
        return await provider.stream_turn(request, emit), deltas
    except ProviderError as exc:
        return exc, deltas


def _request(name: str, base_url: str, text: str = "hi") -> TurnRequest:
    credentials = Credentials(api_key=f"sk-{name}-raw", base_url=base_url)
    messages = [ConvMessage("user", text)]
    return TurnRequest(model=MODELS[name], messages=messages, credentials=credentials)


# --- against the fake provider server ---------------------------------------------------------


async def _fake_turn(
    name: str, server: FakeProviderServer, turn: dict[str, Any]
) -> tuple[TurnOutput | ProviderError, list[Delta]]:
    key = scenario(server, [turn])
    base = f"{server.url}/v1" if name == "openai" else server.url
    return await _turn(_provider(name), _request(name, base, key))


async def test_openai_error_object_mid_stream_is_a_broken_stream(
    fake_provider: FakeProviderServer,
) -> None:
    turn = {"text": "one two three four", "chunk": 4, "error_after": 2,
            "message": "The server had an error while processing your request."}  # fmt: skip
    failure, deltas = await _fake_turn("openai", fake_provider, turn)
    assert isinstance(failure, ProviderError)
    # As the SDK's stream raised it (APIError), mapped as before: retryable, its message kept.
    assert failure.retryable
    assert failure.message == (
        "OpenAI sent a malformed or broken stream: "
        "The server had an error while processing your request."
    )
    assert [d.text for d in deltas] == ["one ", "two "]


@pytest.mark.parametrize(
    ("error_type", "status", "retryable"),
    [("overloaded_error", 529, True), ("rate_limit_error", 429, True),
     ("invalid_request_error", 400, False)],
)  # fmt: skip
async def test_anthropic_error_event_mid_stream_maps_its_type_to_a_status(
    error_type: str, status: int, retryable: bool, fake_provider: FakeProviderServer
) -> None:
    turn = {"text": "one two three", "chunk": 4, "error_after": 1, "error_type": error_type,
            "message": "Overloaded"}  # fmt: skip
    failure, deltas = await _fake_turn("anthropic", fake_provider, turn)
    assert isinstance(failure, ProviderError)
    assert (failure.status, failure.retryable) == (status, retryable)
    if status != 429:  # a 429's text is our own ("rate limiting requests")
        assert "Overloaded" in failure.message
    assert [d.text for d in deltas] == ["one "]


async def test_openai_keepalive_comments_are_skipped(fake_provider: FakeProviderServer) -> None:
    turn = {"text": "kept alive between tokens", "chunk": 5, "keepalive": True}
    output, deltas = await _fake_turn("openai", fake_provider, turn)
    assert isinstance(output, TurnOutput)
    assert output.content == "kept alive between tokens"
    assert "".join(d.text for d in deltas) == output.content


# --- exact byte boundaries: the real SDK client over an in-process transport ------------------

BASE = "http://provider.invalid"


def _oa(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
    choices = [] if delta is None else [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    ]  # fmt: skip
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
             "model": "gpt-4o-mini", "system_fingerprint": "fp_1", "choices": choices,
             **extra}  # fmt: skip
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


def _tool(index: int, **fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **fields}]}


OPENAI_BODY = "".join([
    ": connected\n\n",
    _oa({"role": "assistant", "content": "", "refusal": None}, obfuscation="Zx9"),
    _oa({"reasoning_content": "Thinking\u2026"}),
    _oa({"content": "H\u00e9llo \U0001f44b "}, future_field={"nested": [1, 2]}),
    ": keep-alive\n\n",
    _oa({"content": "world", "annotations": []}),
    _oa(_tool(0, id="call_a", type="function", function={"name": "echo", "arguments": '{"te'})),
    _oa(_tool(0, function={"arguments": 'xt": "\u00e9"}'})),
    _oa({}, "tool_calls"),
    _oa(None, usage={"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12,
                     "completion_tokens_details": {"reasoning_tokens": 2}}),
    "data: [DONE]\n\n",
    "data: {not json, and after [DONE]: never read\n\n",
])  # fmt: skip


def _an(kind: str, **data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data}, ensure_ascii=False)}\n\n"


def _block_delta(index: int, **delta: Any) -> str:
    return _an("content_block_delta", index=index, delta=delta)


ANTHROPIC_BODY = "".join([
    _an("message_start", message={"id": "msg_1", "type": "message", "role": "assistant",
        "content": [], "model": "claude-test", "stop_reason": None,
        "usage": {"input_tokens": 7, "cache_read_input_tokens": 3, "output_tokens": 1}}),
    _an("ping"),
    ": a comment\n\n",
    _an("content_block_start", index=0,
        content_block={"type": "thinking", "thinking": "", "signature": ""}),
    _block_delta(0, type="thinking_delta", thinking="Thinking\u2026"),
    _block_delta(0, type="signature_delta", signature="sig-1"),
    _an("content_block_stop", index=0),
    _an("content_block_start", index=1,
        content_block={"type": "text", "text": "", "citations": None}),
    _block_delta(1, type="text_delta", text="H\u00e9llo \U0001f44b "),
    _block_delta(1, type="citations_delta", citation={"type": "char_location"}),
    _an("some_future_event", payload={"a": 1}),
    _block_delta(1, type="text_delta", text="world"),
    _an("content_block_stop", index=1),
    _an("content_block_start", index=2,
        content_block={"type": "tool_use", "id": "toolu_1", "name": "echo", "input": {}}),
    _block_delta(2, type="input_json_delta", partial_json='{"te'),
    _block_delta(2, type="input_json_delta", partial_json='xt": "\u00e9"}'),
    _an("content_block_stop", index=2),
    _an("message_delta", delta={"stop_reason": "tool_use", "stop_sequence": None},
        usage={"output_tokens": 5}),
    _an("message_stop"),
])  # fmt: skip

BODIES = {"openai": OPENAI_BODY, "anthropic": ANTHROPIC_BODY}


def _client(name: str, chunks: list[bytes]) -> Any:
    async def frames() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                               content=frames())  # fmt: skip

    transport = httpx2.MockTransport(handler)
    if name == "openai":
        http = openai.DefaultAsyncHttpxClient(transport=transport)
        return openai.AsyncOpenAI(api_key="k", base_url=BASE, max_retries=0, http_client=http)
    http = anthropic.DefaultAsyncHttpxClient(transport=transport)
    return anthropic.AsyncAnthropic(api_key="k", base_url=BASE, max_retries=0, http_client=http)


async def _raw_turn(
    name: str, body: bytes, size: int
) -> tuple[TurnOutput | ProviderError, list[Delta]]:
    """One turn whose body arrives in ``size``-byte network chunks."""
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    provider = _provider(name)
    request = _request(name, BASE)
    # The provider's own client cache, seeded with a client on the in-process transport.
    provider._clients.for_request(request, lambda: _client(name, chunks))  # type: ignore[attr-defined]
    return await _turn(provider, request)


@pytest.mark.parametrize("name", RAW)
@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
async def test_every_byte_boundary_reads_the_same_turn(name: str, line_end: str) -> None:
    body = BODIES[name].replace("\n", line_end).encode()
    whole, whole_deltas = await _raw_turn(name, body, len(body))
    assert isinstance(whole, TurnOutput), whole
    assert whole.content == "H\u00e9llo \U0001f44b world"
    assert whole.reasoning == "Thinking\u2026"
    assert [(c.id, c.name, c.arguments) for c in whole.tool_calls] == [
        ("tc_test1", "echo", {"text": "\u00e9"})
    ]
    assert whole.stop_reason == "tool_use"
    assert (whole.usage.input_tokens, whole.usage.output_tokens) == (10 if name == "anthropic"
                                                                      else 7, 5)  # fmt: skip
    if name == "anthropic":
        assert whole.blocks == [{"type": "thinking", "thinking": "Thinking\u2026",
                                 "signature": "sig-1"}]  # fmt: skip
    assert [(d.kind, d.text, d.tool_name) for d in whole_deltas] == [
        ("reasoning", "Thinking\u2026", None),
        ("content", "H\u00e9llo \U0001f44b ", None),
        ("content", "world", None),
        ("tool_generating", "", "echo"),
    ]
    for size in (1, 2, 3, 7, 64):  # 1-3 bytes cut every "\r\n" and every multi-byte character
        assert await _raw_turn(name, body, size) == (whole, whole_deltas), size


BROKEN = [
    ("openai", "data: [1, 2]\n\n", "malformed"),
    ("openai", 'data: {"choices": 5}\n\n', "malformed"),
    ("openai", _oa(_tool(0, id="c", function={"name": "x"})).replace('"index": 0', '"index": "0"'),
     "malformed"),
    ("openai", _oa({"content": "cut "}) + 'data: {"choices": [{"delta": {"con', "cut mid-answer"),
    ("anthropic", 'event: content_block_delta\ndata: {"type": "content_block_delta"}\n\n',
     "malformed"),
    ("anthropic", 'event: message_start\ndata: {"type": "message_start"}\n\n', "malformed"),
    ("anthropic", "event: error\ndata: {not json\n\n", "failed with 500: {not json"),
    ("anthropic", ANTHROPIC_BODY.replace(_an("message_stop"), ""), "cut mid-answer"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body", "says"), BROKEN)
async def test_frames_of_the_wrong_shape_fail_retryably(name: str, body: str, says: str) -> None:
    failure, _ = await _raw_turn(name, body.encode(), 5)
    assert isinstance(failure, ProviderError)
    assert failure.retryable
    assert says in failure.message, failure.message
