"""The three providers against the fake provider server, speaking their real wire formats.

Direct tests call the provider classes (through the official SDKs) for what a chat cannot
show cheaply: parallel tool calls, history conversion, error mapping. End-to-end tests go
through HTTP, Temporal and the worker: text, reasoning, retried 429s and cut streams, 401s.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from copilot.conversation import blocks_to_conversation, turns_to_blocks
from copilot.events.fold import fold_events
from copilot.providers.anthropic_provider import AnthropicProvider
from copilot.providers.base import (
    MISSING_RESULT,
    ConvMessage,
    Credentials,
    Delta,
    ProviderError,
    ToolCall,
    ToolSpec,
    TurnOutput,
    TurnRequest,
    pair_tool_results,
)
from copilot.providers.ollama_provider import OllamaProvider
from copilot.providers.openai_provider import OpenAIProvider
from copilot.types import ToolOutcome, TurnRecord
from tests.conftest import Stack, provider_requests, scenario, sent_key
from tests.fakes.provider import FakeProviderServer
from tests.sse import Frame, collect

NAMES = ("openai", "anthropic", "ollama")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-test", "ollama": "ollama:llama-test"}
LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "ollama": "Ollama"}
SIGNED = {"type": "thinking", "thinking": "earlier thought", "signature": "sig-earlier"}
ECHO_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}}
ECHO = ToolSpec("echo", "Echo the text back", ECHO_SCHEMA)


# --- direct: the provider classes against the fake server ---------------------------------------


def _provider(name: str) -> Any:
    counter = itertools.count(1)

    def new_id() -> str:
        return f"tc_test{next(counter)}"

    if name == "openai":
        return OpenAIProvider(new_tool_id=new_id)
    if name == "anthropic":
        return AnthropicProvider(new_tool_id=new_id)
    return OllamaProvider(new_tool_id=new_id)


def _request(
    name: str, server: FakeProviderServer, messages: list[ConvMessage], **extra: Any
) -> TurnRequest:
    base = f"{server.url}/v1" if name == "openai" else server.url
    model = MODELS[name].removeprefix("ollama:")
    return TurnRequest(model=model, messages=messages, timeout_s=10,
                       credentials=Credentials(api_key=f"sk-{name}-direct", base_url=base),
                       **extra)  # fmt: skip


async def _stream(
    name: str, server: FakeProviderServer, messages: list[ConvMessage], **extra: Any
) -> tuple[TurnOutput, list[Delta]]:
    deltas: list[Delta] = []

    async def emit(delta: Delta) -> None:
        deltas.append(delta)

    output = await _provider(name).stream_turn(_request(name, server, messages, **extra), emit)
    return output, deltas


@pytest.mark.parametrize("name", NAMES)
async def test_direct_text_reasoning_and_usage(
    name: str, fake_provider: FakeProviderServer
) -> None:
    chunks = ["Streams ", "arrive ", "exactly."]
    key = scenario(fake_provider, [{"reasoning": "Let me think it over.", "chunks": chunks}])
    output, deltas = await _stream(name, fake_provider, [ConvMessage("user", f"hi {key}")],
                                   system="be brief")  # fmt: skip
    assert [d.text for d in deltas if d.kind == "content"] == chunks
    assert "".join(d.text for d in deltas if d.kind == "reasoning") == "Let me think it over."
    assert output.content == "".join(chunks)
    assert output.reasoning == "Let me think it over."
    assert output.stop_reason == "stop"
    assert (output.usage.input_tokens, output.usage.output_tokens) == (10, len(chunks))
    if name == "anthropic":  # the thinking block comes back signed, for replay
        assert output.blocks == [
            {"type": "thinking", "thinking": "Let me think it over.", "signature": "sig-21"}
        ]
    else:
        assert output.blocks == []
    seen = await provider_requests(fake_provider, key)
    assert sent_key(seen[0]["headers"]) == f"sk-{name}-direct"
    if name == "anthropic":
        assert seen[0]["body"]["system"] == "be brief"


@pytest.mark.parametrize("name", NAMES)
async def test_direct_parallel_tool_calls_get_our_ids(
    name: str, fake_provider: FakeProviderServer
) -> None:
    calls = [
        {"name": "echo", "arguments": {"text": "one", "nested": {"n": [1, 2]}}},
        {"name": "get_current_time", "arguments": {}},
        {"name": "echo", "arguments": {"text": 'three \u00e9\u00e8 "quoted"'}},
    ]
    key = scenario(fake_provider, [{"text": "Calling tools.", "tool_calls": calls}])
    output, deltas = await _stream(name, fake_provider, [ConvMessage("user", key)], tools=[ECHO])
    assert [(c.name, c.arguments) for c in output.tool_calls] == [
        (c["name"], c["arguments"]) for c in calls
    ]
    ids = [c.id for c in output.tool_calls]
    assert ids == ["tc_test1", "tc_test2", "tc_test3"]  # minted by us, in order
    assert all(c.provider_id != c.id for c in output.tool_calls)
    generating = [d for d in deltas if d.kind == "tool_generating"]
    assert [(d.tool_call_id, d.tool_name, d.tool_index) for d in generating] == [
        (c.id, c.name, i) for i, c in enumerate(output.tool_calls)
    ]
    assert output.content == "Calling tools."
    assert output.stop_reason == "tool_use"
    tools = (await provider_requests(fake_provider, key))[0]["body"]["tools"]
    names = [t.get("name") or t["function"]["name"] for t in tools]
    assert names == ["echo"]


def _history(key: str, blocks: list[dict[str, Any]]) -> list[ConvMessage]:
    """A finished exchange with parallel calls, as persisted blocks, then a follow-up."""
    turn = TurnRecord(
        content="Checking both.",
        tool_calls=[ToolCall("tc_a", "echo", {"text": "a"}),
                    ToolCall("tc_b", "get_current_time", {})],
        outcomes=[ToolOutcome("tc_a", "echo", "success", result={"echo": "a"}),
                  ToolOutcome("tc_b", "get_current_time", "error", error="clock broke")],
        blocks=blocks,
    )  # fmt: skip
    turns = [turn, TurnRecord(content="Done: a, and the clock failed.")]
    return [
        ConvMessage("user", f"first {key}"),
        *blocks_to_conversation("assistant", turns_to_blocks(turns), ""),
        ConvMessage("user", "and now?"),
    ]


async def test_history_converts_faithfully_for_each_provider(
    fake_provider: FakeProviderServer,
) -> None:
    key = scenario(fake_provider, [{"text": "ok"}])
    history = _history(key, [SIGNED])
    for name in NAMES:
        await _stream(name, fake_provider, history, system="sys")
    openai_body, anthropic_body, ollama_body = (
        r["body"] for r in await provider_requests(fake_provider, key)
    )
    args_a = json.dumps({"text": "a"})
    assert openai_body["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": f"first {key}"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [
            {"id": "tc_a", "type": "function", "function": {"name": "echo", "arguments": args_a}},
            {"id": "tc_b", "type": "function",
             "function": {"name": "get_current_time", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "tc_a", "content": '{"echo": "a"}'},
        {"role": "tool", "tool_call_id": "tc_b", "content": "Error: clock broke"},
        {"role": "assistant", "content": "Done: a, and the clock failed."},
        {"role": "user", "content": "and now?"},
    ]  # fmt: skip
    assert anthropic_body["system"] == "sys"
    assert anthropic_body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": f"first {key}"}]},
        {"role": "assistant", "content": [
            SIGNED,
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "tc_a", "name": "echo", "input": {"text": "a"}},
            {"type": "tool_use", "id": "tc_b", "name": "get_current_time", "input": {}},
        ]},
        {"role": "user", "content": [  # parallel results share one user turn
            {"type": "tool_result", "tool_use_id": "tc_a", "content": '{"echo": "a"}'},
            {"type": "tool_result", "tool_use_id": "tc_b", "content": "Error: clock broke",
             "is_error": True},
        ]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Done: a, and the clock failed."}]},
        {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
    ]  # fmt: skip
    assert ollama_body["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": f"first {key}"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [
            {"function": {"name": "echo", "arguments": {"text": "a"}}},
            {"function": {"name": "get_current_time", "arguments": {}}},
        ]},
        {"role": "tool", "content": '{"echo": "a"}', "tool_name": "echo"},
        {"role": "tool", "content": "Error: clock broke", "tool_name": "get_current_time"},
        {"role": "assistant", "content": "Done: a, and the clock failed."},
        {"role": "user", "content": "and now?"},
    ]  # fmt: skip


@pytest.mark.parametrize("first", NAMES)
async def test_one_providers_turn_replays_through_every_provider(
    first: str, fake_provider: FakeProviderServer
) -> None:
    """A chat switches model between messages: each provider reads the others' history."""
    calls = [{"name": "echo", "arguments": {"text": "x"}}, {"name": "echo", "arguments": {}}]
    key = scenario(fake_provider, [{"reasoning": "hmm", "text": "Both.", "tool_calls": calls},
                                   {"text": "next"}])  # fmt: skip
    output, _ = await _stream(first, fake_provider, [ConvMessage("user", key)], tools=[ECHO])
    record = TurnRecord(
        content=output.content,
        tool_calls=[ToolCall(c.id, c.name, c.arguments) for c in output.tool_calls],
        outcomes=[ToolOutcome(c.id, c.name, "success", result="ok") for c in output.tool_calls],
        blocks=output.blocks,
    )
    history = [
        ConvMessage("user", key),
        *blocks_to_conversation("assistant", turns_to_blocks([record]), ""),
    ]
    for name in NAMES:
        out, _ = await _stream(name, fake_provider, history, tools=[ECHO])
        assert out.content == "next"
    bodies = [r["body"] for r in (await provider_requests(fake_provider, key))[1:]]
    ids = [c.id for c in output.tool_calls]
    openai_msgs, anthropic_msgs, ollama_msgs = (b["messages"] for b in bodies)
    assert [c["id"] for c in openai_msgs[1]["tool_calls"]] == ids
    assert [m["tool_call_id"] for m in openai_msgs[2:]] == ids
    assistant = anthropic_msgs[1]["content"]
    kinds = [b["type"] for b in assistant]
    # Anthropic's own thinking is replayed with its signature; nobody else's is.
    expected = ["thinking"] if first == "anthropic" else []
    assert kinds == [*expected, "text", "tool_use", "tool_use"]
    assert [b["id"] for b in assistant if b["type"] == "tool_use"] == ids
    assert [b["tool_use_id"] for b in anthropic_msgs[2]["content"]] == ids
    assert [m["role"] for m in ollama_msgs] == ["user", "assistant", "tool", "tool"]


async def test_anthropic_extended_thinking_is_requested_with_its_own_budget(
    fake_provider: FakeProviderServer,
) -> None:
    key = scenario(fake_provider, [{"reasoning": "deep", "text": "ok"}])
    provider = AnthropicProvider(new_tool_id=lambda: "tc_x", thinking_budget=2000)

    async def emit(_delta: Delta) -> None:
        pass

    request = _request("anthropic", fake_provider, [ConvMessage("user", key)], max_tokens=1000)
    output = await provider.stream_turn(request, emit)
    assert output.blocks[0]["signature"]
    body = (await provider_requests(fake_provider, key))[0]["body"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert body["max_tokens"] == 3000  # the answer keeps its budget on top of thinking


def test_unanswered_tool_calls_get_a_result_and_orphans_are_dropped() -> None:
    call = ToolCall("tc_1", "echo", {})
    history = [
        ConvMessage("user", "hi"),
        ConvMessage("assistant", "", tool_calls=[call, ToolCall("tc_2", "echo", {})]),
        ConvMessage("tool", "done", tool_call_id="tc_2", tool_name="echo"),
        ConvMessage("tool", "stray", tool_call_id="tc_9", tool_name="echo"),
        ConvMessage("user", "again"),
    ]
    paired = pair_tool_results(history)
    assert [(m.role, m.tool_call_id, m.content) for m in paired] == [
        ("user", None, "hi"),
        ("assistant", None, ""),
        ("tool", "tc_2", "done"),
        ("tool", "tc_1", MISSING_RESULT),
        ("user", None, "again"),
    ]


ERRORS: list[tuple[dict[str, Any], Callable[[ProviderError, str], bool]]] = [
    ({"error": 401, "message": "bad key"},
     lambda e, label: not e.retryable and e.status == 401
     and e.message.startswith(f"{label} rejected the API key for this user")),
    ({"error": 429, "retry_after": 3},
     lambda e, label: e.retryable and e.status == 429 and e.code == "provider_rate_limited"),
    ({"error": 500, "message": "upstream down"},
     lambda e, label: e.retryable and "upstream down" in e.message),
    ({"error": 400, "message": "bad schema"},
     lambda e, label: not e.retryable and "bad schema" in e.message),
    ({"text": "cut short here", "chunk": 3, "cut_after": 2},
     lambda e, label: e.retryable and "cut mid-answer" in e.message),
    ({"text": "broken frames", "chunk": 3, "malformed_after": 1},
     lambda e, label: e.retryable and "malformed" in e.message),
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("turn", "check"), ERRORS)
async def test_direct_failures_become_provider_errors(
    name: str,
    turn: dict[str, Any],
    check: Callable[[ProviderError, str], bool],
    fake_provider: FakeProviderServer,
) -> None:
    key = scenario(fake_provider, [turn])
    with pytest.raises(ProviderError) as caught:
        await _stream(name, fake_provider, [ConvMessage("user", key)])
    assert check(caught.value, LABELS[name]), caught.value.message
    if name != "ollama" and turn.get("retry_after"):  # the ollama SDK drops response headers
        assert caught.value.retry_after_s == 3


@pytest.mark.parametrize("name", NAMES)
async def test_a_key_echoed_in_an_error_is_redacted(
    name: str, fake_provider: FakeProviderServer
) -> None:
    message = f"key sk-{name}-direct is not valid for this model"
    key = scenario(fake_provider, [{"error": 400, "message": message}])
    with pytest.raises(ProviderError) as caught:
        await _stream(name, fake_provider, [ConvMessage("user", key)])
    assert f"sk-{name}-direct" not in str(caught.value)
    assert "key [redacted] is not valid" in caught.value.message


async def test_unreachable_provider_is_retryable() -> None:
    closed = f"http://127.0.0.1:{_closed_port()}"
    for name in NAMES:
        base = f"{closed}/v1" if name == "openai" else closed
        request = TurnRequest(model="m", messages=[ConvMessage("user", "hi")], timeout_s=5,
                              credentials=Credentials(api_key="k", base_url=base))  # fmt: skip

        async def emit(_delta: Delta) -> None:
            pass

        with pytest.raises(ProviderError) as caught:
            await _provider(name).stream_turn(request, emit)
        assert caught.value.retryable, name
        assert "could not be reached" in caught.value.message


def _closed_port() -> int:
    from copilot.embedded import free_port

    return free_port()  # nothing listens there


# --- end to end: HTTP -> API -> Temporal -> worker -> fake provider -> Redis -> SSE -------------


async def _chat(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, list[Frame]]:
    async with client.stream("POST", "/api/copilot/chat", json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        return resp.headers["x-run-id"], await collect(resp)


async def _persisted(client: httpx.AsyncClient, frames: list[Frame]) -> str:
    chat_id = frames[0].data["data"]["chatId"]
    chat = (await client.get(f"/api/copilot/chats/{chat_id}")).json()
    return str(chat["messages"][-1]["content"])


def _types(frames: list[Frame]) -> list[str]:
    return [f.data["type"] for f in frames]


@pytest.mark.parametrize("name", NAMES)
async def test_chat_streams_text_and_reasoning(
    name: str, client: httpx.AsyncClient, stack: Stack
) -> None:
    chunks = ["Every ", "provider ", "streams ", "exactly."]
    key = scenario(stack.provider, [{"reasoning": "First, think.", "chunks": chunks}])
    _, frames = await _chat(client, {"message": f"go {key}", "model": MODELS[name]})
    assert frames[0].data["data"]["provider"] == name
    assert [f.data["data"] for f in frames if f.data["type"] == "content"] == chunks
    thought = [f.data["data"] for f in frames if f.data["type"] == "reasoning" and "data" in f.data]
    assert "".join(thought) == "First, think."
    done = frames[-1].data["data"]
    assert done["status"] == "completed"
    assert done["usage"] == {"inputTokens": 10, "outputTokens": len(chunks)}
    assert await _persisted(client, frames) == "".join(chunks)


@pytest.mark.parametrize("name", NAMES)
async def test_rate_limit_is_retried_into_one_consistent_answer(
    name: str, client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(stack.provider, [{"error": 429, "retry_after": 0}, {"text": "after the wait"}])
    _, frames = await _chat(client, {"message": key, "model": MODELS[name]})
    assert frames[-1].data["data"]["status"] == "completed"
    folded = fold_events(f.data for f in frames)
    assert folded.content == "after the wait" == await _persisted(client, frames)
    assert len(await provider_requests(stack.provider, key)) == 2


@pytest.mark.parametrize("name", NAMES)
async def test_cut_stream_is_retried_and_reset(
    name: str, client: httpx.AsyncClient, stack: Stack
) -> None:
    text = "a stream that breaks and then recovers"
    key = scenario(stack.provider, [{"text": text, "chunk": 4, "cut_after": 3},
                                    {"text": text, "chunk": 4}])  # fmt: skip
    _, frames = await _chat(client, {"message": key, "model": MODELS[name]})
    types = _types(frames)
    assert "turn_reset" in types
    assert types.index("turn_reset") > types.index("content")  # partial text came first
    assert frames[-1].data["data"]["status"] == "completed"
    folded = fold_events(f.data for f in frames)
    assert folded.content == text == await _persisted(client, frames)


@pytest.mark.parametrize("name", NAMES)
async def test_rejected_key_fails_the_run_naming_the_provider(
    name: str, client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(stack.provider, [{"error": 401, "message": "invalid x-api-key"}])
    _, frames = await _chat(client, {"message": key, "model": MODELS[name]})
    types = _types(frames)
    assert types[-2:] == ["error", "done"]
    error = frames[-2].data["data"]
    assert f"{LABELS[name]} rejected the API key for this user" in error["message"]
    assert error["retryable"] is False
    assert frames[-1].data["data"]["status"] == "failed"
    assert len(await provider_requests(stack.provider, key)) == 1  # never retried
