"""The durable agent loop end to end: tools, confirmations, mark-complete, abort, double-texting.

Real API and worker processes, real Temporal, the fake provider server scripting tool calls.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from copilot.embedded import free_port
from tests.conftest import Services, Stack, provider_requests, running_stack, scenario
from tests.fakes.host import FakeHostApp
from tests.fakes.provider import FakeProviderServer
from tests.live import LiveRun


def _tool_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request["body"]["messages"] if m["role"] == "tool"]


CONFIRM_TOOL = {
    "name": "deploy_workflow",
    "description": "Deploy the workflow",
    "inputSchema": {"type": "object", "properties": {"env": {"type": "string"}}},
    "requiresConfirmation": True,
}
HOST_TOOL = {"name": "get_blocks", "description": "List blocks", "input_schema": {"type": "object"}}


async def test_server_tool_result_goes_back_to_the_model(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(
        stack.provider,
        [{"tool_calls": [{"name": "echo", "arguments": {"text": "ping"}}]}, {"text": "got pong"}],
    )
    live = await LiveRun.start(client, {"message": key})
    frames = await live.finished()
    types = live.types()
    assert types.index("tool_generating") < types.index("tool_call") < types.index("tool_result")
    call = (await live.event("tool_call")).data
    assert call["data"]["name"] == "echo"
    assert call["data"]["executor"] == "server"
    assert call["data"]["id"].startswith("tc_")
    assert call["data"]["arguments"] == {"text": "ping"}
    result = (await live.event("tool_result")).data
    assert result["success"] is True
    assert result["result"] == {"echo": "ping"}
    assert result["toolCallId"] == call["data"]["id"]
    assert live.content() == "got pong"
    assert frames[-1].data["data"]["status"] == "completed"
    assert [f.id for f in frames] == list(range(1, len(frames) + 1))

    seen = await provider_requests(stack.provider, key)
    assert len(seen) == 2
    tool_msgs = _tool_messages(seen[1])
    assert tool_msgs == [{"role": "tool", "tool_call_id": call["data"]["id"],
                          "content": json.dumps({"echo": "ping"})}]  # fmt: skip

    chat_id = frames[0].data["data"]["chatId"]
    chat = (await client.get(f"/api/copilot/chats/{chat_id}")).json()
    assistant = chat["messages"][-1]
    assert assistant["content"] == "got pong"
    assert assistant["toolCalls"][0]["status"] == "success"
    assert assistant["toolCalls"][0]["result"] == {"echo": "ping"}
    assert [b["type"] for b in assistant["blocks"]] == ["tool_use", "tool_result", "text"]
    assert chat["title"] == key


async def test_parallel_tool_calls_and_invalid_arguments(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(
        stack.provider,
        [
            {
                "tool_calls": [
                    {"name": "get_current_time", "arguments": {"timezone": "Europe/Paris"}},
                    {"name": "echo", "arguments": {"wrong": 1}},
                ]
            },
            {"text": "both done"},
        ],
    )
    live = await LiveRun.start(client, {"message": key})
    await live.finished()
    results = [f.data for f in live.frames if f.data["type"] in ("tool_result", "tool_error")]
    by_name = {r["toolName"]: r for r in results}
    assert by_name["get_current_time"]["result"]["timezone"] == "Europe/Paris"
    assert by_name["echo"]["type"] == "tool_error"
    assert "invalid arguments" in by_name["echo"]["data"]["error"]
    seen = await provider_requests(stack.provider, key)
    tool_msgs = _tool_messages(seen[1])
    assert len(tool_msgs) == 2
    assert any(m["content"].startswith("Error: invalid arguments") for m in tool_msgs)
    assert live.frames[-1].data["data"]["status"] == "completed"


async def test_host_executed_tool_via_mark_complete(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(
        stack.provider,
        [{"tool_calls": [{"name": "get_blocks", "arguments": {"kind": "all"}}]}, {"text": "ok"}],
    )
    live = await LiveRun.start(client, {"message": key, "tools": [HOST_TOOL]})
    call = (await live.event("tool_call")).data["data"]
    assert call["executor"] == "client"
    unknown = await client.post(
        "/api/tools/mark-complete", json={"id": "tc_nope", "name": "x", "status": 200}
    )
    assert unknown.status_code == 404
    done = await client.post(
        "/api/tools/mark-complete",
        json={"id": call["id"], "name": "get_blocks", "status": 200, "data": {"blocks": [1, 2]}},
    )
    assert done.status_code == 200, done.text
    await live.finished()
    again = await client.post(
        "/api/tools/mark-complete", json={"id": call["id"], "name": "get_blocks", "status": 200}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "not_waiting"
    result = (await live.event("tool_result")).data
    assert result["result"] == {"blocks": [1, 2]}
    seen = await provider_requests(stack.provider, key)
    assert _tool_messages(seen[1])[0]["content"] == json.dumps({"blocks": [1, 2]})
    # A result of Sim's size is accepted (kept by reference); this call no longer waits.
    large = await client.post(
        "/api/tools/mark-complete",
        json={"id": call["id"], "name": "x", "status": 200, "data": "x" * 300_000},
    )
    assert large.status_code == 409
    assert large.json()["code"] == "not_waiting"


async def test_confirmation_accept_duplicate_and_late_decisions(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(
        stack.provider,
        [{"tool_calls": [{"name": "deploy_workflow", "arguments": {"env": "prod"}}]},
         {"text": "deployed"}],
    )  # fmt: skip
    live = await LiveRun.start(client, {"message": key, "tools": [CONFIRM_TOOL]})
    await live.event("tool_status", status="awaiting_confirmation")
    call = (await live.event("tool_call")).data["data"]
    assert call["requiresConfirmation"] is True
    other_user = await client.post(
        "/api/copilot/confirm",
        json={"toolCallId": call["id"], "status": "accepted", "userId": "someone-else"},
    )
    assert other_user.status_code == 404
    ok = await client.post(
        "/api/copilot/confirm", json={"toolCallId": call["id"], "status": "accepted"}
    )
    assert ok.status_code == 200, ok.text
    assert "duplicate" not in ok.json()
    dup = await client.post(
        "/api/copilot/confirm", json={"toolCallId": call["id"], "status": "accepted"}
    )
    assert dup.json()["duplicate"] is True
    changed = await client.post(
        "/api/copilot/confirm", json={"toolCallId": call["id"], "status": "rejected"}
    )
    assert changed.status_code == 409
    assert changed.json()["code"] == "already_decided"
    await live.event("tool_status", status="accepted")
    # no SIM_APP_URL on this stack: the accepted client tool is executed by the host
    done = await client.post(
        "/api/tools/mark-complete",
        json={"id": call["id"], "name": "deploy_workflow", "status": 200, "message": "shipped"},
    )
    assert done.status_code == 200
    await live.finished()
    assert live.content() == "deployed"
    late = await client.post(
        "/api/copilot/confirm", json={"toolCallId": call["id"], "status": "rejected"}
    )
    assert late.status_code == 409


async def test_rejection_tells_the_model(client: httpx.AsyncClient, stack: Stack) -> None:
    key = scenario(
        stack.provider,
        [{"tool_calls": [{"name": "deploy_workflow", "arguments": {}}]}, {"text": "understood"}],
    )
    live = await LiveRun.start(client, {"message": key, "tools": [CONFIRM_TOOL]})
    call = (await live.event("tool_call")).data["data"]
    await live.event("tool_status", status="awaiting_confirmation")
    resp = await client.post(
        "/api/copilot/confirm",
        json={"toolCallId": call["id"], "status": "rejected", "message": "not on a Friday"},
    )
    assert resp.status_code == 200
    await live.finished()
    assert "rejected" in [
        f.data.get("status") for f in live.frames if f.data["type"] == "tool_status"
    ]
    seen = await provider_requests(stack.provider, key)
    told = _tool_messages(seen[1])[0]["content"]
    assert "rejected" in told
    assert "not on a Friday" in told


async def test_abort_mid_stream_persists_the_partial_answer(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(stack.provider, [{"chunks": [f"w{i} " for i in range(200)], "delay_ms": 50}])
    live = await LiveRun.start(client, {"message": key})
    await live.wait_for(lambda f: f.data.get("type") == "content" and f.data["data"] == "w3 ")
    resp = await client.post(f"/api/copilot/runs/{live.run_id}/abort")
    assert resp.status_code == 200, resp.text
    frames = await live.finished()
    assert frames[-1].data["data"]["status"] == "aborted"
    streamed = live.content()
    assert streamed.startswith("w0 w1 w2 w3 ")
    assert len(streamed) < len("".join(f"w{i} " for i in range(200)))
    chat_id = frames[0].data["data"]["chatId"]
    chat = (await client.get(f"/api/copilot/chats/{chat_id}")).json()
    assistant = chat["messages"][-1]
    assert assistant["status"] == "aborted"
    assert assistant["content"] == streamed
    again = await client.post(f"/api/copilot/runs/{live.run_id}/abort")
    assert again.status_code == 409


async def test_abort_while_awaiting_confirmation_cancels_the_tool(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(stack.provider, [{"tool_calls": [{"name": "deploy_workflow", "arguments": {}}]}])
    live = await LiveRun.start(client, {"message": key, "tools": [CONFIRM_TOOL]})
    await live.event("tool_status", status="awaiting_confirmation")
    assert (await client.post(f"/api/copilot/runs/{live.run_id}/abort")).status_code == 200
    frames = await live.finished()
    await live.event("tool_status", status="cancelled")
    assert frames[-1].data["data"]["status"] == "aborted"
    runs = (await client.get("/api/copilot/runs", params={"status": "aborted"})).json()["runs"]
    assert live.run_id in [r["runId"] for r in runs]


async def test_double_texting_reject_and_interrupt(client: httpx.AsyncClient, stack: Stack) -> None:
    key = scenario(
        stack.provider,
        [{"chunks": [f"s{i} " for i in range(400)], "delay_ms": 25}, {"text": "second answer"}],
    )
    chat_id = f"dbl-{key}"
    first = await LiveRun.start(client, {"message": key, "chatId": chat_id})
    await first.event("content")
    rejected = await client.post("/api/copilot/chat", json={"message": "again", "chatId": chat_id})
    assert rejected.status_code == 409
    assert rejected.json()["code"] == "run_active"
    assert rejected.json()["runId"] == first.run_id
    second = await LiveRun.start(
        client, {"message": f"again {key}", "chatId": chat_id, "onActiveRun": "interrupt"}
    )
    assert second.status_code == 200, second.body
    await first.finished()
    assert first.frames[-1].data["data"]["status"] == "aborted"
    await second.finished()
    assert second.content() == "second answer"
    assert second.run_id.startswith("run_")
    assert second.run_id != first.run_id


# --- a stack with host app delegation, server-side confirmation and short limits -------------


@pytest.fixture(scope="module")
def host_app() -> Iterator[FakeHostApp]:
    host = FakeHostApp(free_port())
    host.start()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def strict_stack(
    services: Services, fake_provider: FakeProviderServer, host_app: FakeHostApp
) -> Iterator[Stack]:
    with running_stack(
        services,
        fake_provider,
        SIM_APP_URL=host_app.url,
        SIM_APP_API_KEY="host-secret",
        TOOLS_REQUIRING_CONFIRMATION="get_current_time",
        CONFIRMATION_TIMEOUT="2",
        MAX_TURNS="2",
    ) as running:
        yield running


@pytest.fixture
async def strict(strict_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=strict_stack.api_url, timeout=60) as c:
        yield c


async def test_delegated_client_tool_goes_to_the_host_app(
    strict: httpx.AsyncClient, strict_stack: Stack, host_app: FakeHostApp
) -> None:
    key = scenario(
        strict_stack.provider,
        [{"tool_calls": [{"name": "get_blocks", "arguments": {"n": 1}}]}, {"text": "thanks"}],
    )
    live = await LiveRun.start(
        strict, {"message": key, "tools": [HOST_TOOL], "workflowId": "wf-1", "userId": "u-7"}
    )
    await live.finished()
    call = (await live.event("tool_call")).data["data"]
    received = host_app.calls_for(call["id"])
    assert len(received) == 1
    assert received[0]["headers"]["x-api-key"] == "host-secret"
    # A retried delegation (after a worker crash) repeats it: the host can dedupe.
    assert received[0]["headers"]["idempotency-key"] == call["id"]
    assert received[0]["body"] == {
        "toolCallId": call["id"], "toolName": "get_blocks", "arguments": {"n": 1},
        "userId": "u-7", "workflowId": "wf-1", "chatId": live.frames[0].data["data"]["chatId"],
    }  # fmt: skip
    assert (await live.event("tool_result")).data["result"] == {"done": {"n": 1}}


async def test_settings_listed_tool_waits_and_times_out_as_skipped(
    strict: httpx.AsyncClient, strict_stack: Stack
) -> None:
    key = scenario(
        strict_stack.provider,
        [{"tool_calls": [{"name": "get_current_time", "arguments": {}}]}, {"text": "no time"}],
    )
    # autoExecuteTools does not bypass a tool the server's settings mark as needing confirmation
    live = await LiveRun.start(strict, {"message": key, "autoExecuteTools": True})
    await live.event("tool_status", status="awaiting_confirmation")
    await live.event("tool_status", status="skipped", timeout=30)
    await live.finished()
    seen = await provider_requests(strict_stack.provider, key)
    assert "did not decide in time" in _tool_messages(seen[1])[0]["content"]
    call = (await live.event("tool_call")).data["data"]
    late = await strict.post(
        "/api/copilot/confirm", json={"toolCallId": call["id"], "status": "accepted"}
    )
    assert late.status_code == 409


async def test_max_turns_ends_the_run_with_a_clear_error(
    strict: httpx.AsyncClient, strict_stack: Stack
) -> None:
    key = scenario(
        strict_stack.provider, [{"tool_calls": [{"name": "echo", "arguments": {"text": "x"}}]}]
    )
    live = await LiveRun.start(strict, {"message": key})
    frames = await live.finished()
    error = (await live.event("error")).data["data"]
    assert error["code"] == "max_turns"
    assert "MAX_TURNS" in error["message"]
    assert frames[-1].data["data"]["status"] == "failed"
    assert len(await provider_requests(strict_stack.provider, key)) == 2


async def test_a_host_workflow_is_loaded_as_context_before_the_first_turn(
    strict: httpx.AsyncClient, strict_stack: Stack, host_app: FakeHostApp
) -> None:
    key = scenario(strict_stack.provider, [{"text": "It routes leads."}])
    resp = await strict.post("/api/v1/copilot/chat", json={
        "message": f"what does it do? {key}", "userId": "u-9", "workflowId": "wf-ctx"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["content"] == "It routes leads."
    seen = await provider_requests(strict_stack.provider, key)
    user = next(m for m in reversed(seen[0]["body"]["messages"]) if m["role"] == "user")
    assert user["content"].startswith('<context kind="current_workflow" label="wf-ctx">')
    assert '"name": "Lead router"' in user["content"]
    assert user["content"].endswith(f"what does it do? {key}")
    loads = [c for c in host_app.calls if c["body"]["toolName"] == "get_user_workflow"
             and c["body"]["arguments"] == {"workflowId": "wf-ctx"}]  # fmt: skip
    assert len(loads) == 1
    assert loads[0]["headers"]["idempotency-key"] == f"ctx_{resp.json()['runId']}"


async def test_a_workflow_the_host_does_not_know_is_404_workflow_not_found(
    strict: httpx.AsyncClient, strict_stack: Stack
) -> None:
    key = scenario(strict_stack.provider, [{"text": "never asked"}])
    resp = await strict.post("/api/v1/copilot/chat", json={
        "message": key, "userId": "u-9", "workflowId": "missing-42"})  # fmt: skip
    assert resp.status_code == 404, resp.text
    assert resp.json()["code"] == "workflow_not_found"
    assert "missing-42" in resp.json()["error"]
    assert await provider_requests(strict_stack.provider, key) == []  # no model call made


async def test_on_sims_route_a_tool_the_settings_confirm_does_not_wait(
    strict: httpx.AsyncClient, strict_stack: Stack
) -> None:
    """TOOLS_REQUIRING_CONFIRMATION names get_current_time on this stack; Sim confirms on its
    side and never calls our confirm, so on its route the tool runs at once."""
    key = scenario(strict_stack.provider, [
        {"tool_calls": [{"name": "get_current_time", "arguments": {}}]}, {"text": "it is now"},
    ])  # fmt: skip
    live = await LiveRun.start(strict, {"message": key, "userId": "u-9", "model": "gpt-4o"},
                               path="/api/chat-completion-streaming")  # fmt: skip
    await live.finished()
    assert "awaiting_confirmation" not in [f.data.get("status") for f in live.frames]
    assert (await live.event("tool_result")).data["toolName"] == "get_current_time"
    assert live.content() == "it is now"
