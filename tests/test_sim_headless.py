"""The Sim-compatible routes driven exactly as Sim drives them, and the headless API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Services, Stack, provider_requests, running_stack, scenario
from tests.fakes.provider import FakeProviderServer
from tests.sse import collect


async def sim_reader(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Sim's parser: only `data:` lines, JSON, dispatched on `type`; ignores id:/event:."""
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        lines = buffer.split("\n")
        buffer = lines.pop()
        for line in lines:
            if line.startswith("data: "):
                yield json.loads(line[6:])


SIM_PAYLOAD = {
    "workflowId": "wf-123",
    "userId": "sim-user-1",
    "model": "gpt-4o",
    "mode": "agent",
    "version": "1.0.2",
    "context": [{"type": "workflow", "content": "{}"}],
    "credentials": {"oauth": {"google": {"accessToken": "secret-oauth-token"}}},
    "commands": [],
    "fileAttachments": [],
    "conversationId": "conv-abc",
    "someFutureField": {"ignored": True},
    "provider": {"provider": "azure-openai", "apiKey": "azure-secret", "model": "gpt-4o"},
}


async def test_sim_drives_a_chat_with_a_host_executed_tool(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(
        stack.provider,
        [{"tool_calls": [{"name": "get_user_workflow", "arguments": {"id": "wf-123"}}]},
         {"text": "Your workflow has 3 blocks."}],
    )  # fmt: skip
    payload = {
        **SIM_PAYLOAD,
        "message": f"what is in my workflow {key}",
        "chatId": f"sim-chat-{key}",
        "messageId": "msg-1",
        "integrationTools": [
            {
                "name": "get_user_workflow",
                "description": "Get the workflow",
                "input_schema": {"type": "object"},
            }
        ],
    }
    seen_types: list[str] = []
    content = ""
    async with client.stream("POST", "/api/chat-completion-streaming", json=payload) as resp:
        assert resp.status_code == 200
        async for event in sim_reader(resp):
            seen_types.append(event["type"])
            if event["type"] == "content":
                content += event["data"]
            elif event["type"] == "tool_call":
                call = event["data"]
                assert call["executor"] == "client"
                assert call["requiresConfirmation"] is False  # Sim confirms on its side
                # Sim executes the tool itself, then reports it
                done = await client.post(
                    "/api/tools/mark-complete",
                    json={"id": call["id"], "name": call["name"], "status": 200,
                          "message": "ok", "data": {"blocks": 3}},
                )  # fmt: skip
                assert done.status_code == 200, done.text
            elif event["type"] == "start":
                assert event["data"]["responseId"] == "conv-abc"
            elif event["type"] == "done":
                break
    assert content == "Your workflow has 3 blocks."
    assert seen_types[0] == "start"
    assert seen_types[-1] == "done"
    assert "title_updated" in seen_types
    requests = await provider_requests(stack.provider, key)
    dumped = json.dumps(requests)
    assert "secret-oauth-token" not in dumped
    assert "azure-secret" not in dumped


async def test_sim_payload_with_wrong_types_gets_400_details(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/chat-completion-streaming",
        json={"message": "hi", "userId": "u", "integrationTools": "nope", "mode": 3},
    )
    assert resp.status_code == 400
    fields = {d["field"] for d in resp.json()["details"]}
    assert {"integrationTools", "mode"} <= fields


async def test_context_usage_and_stats(client: httpx.AsyncClient, stack: Stack) -> None:
    key = scenario(stack.provider, [{"text": "short"}])
    resp = await client.post("/api/v1/copilot/chat", json={"message": key, "model": "claude-x"})
    # claude models go to the Anthropic fake; any provider works for usage accounting
    chat_id = resp.json()["chatId"]
    usage = (await client.post("/api/get-context-usage", json={"chatId": chat_id})).json()
    assert usage["contextWindow"] == 200_000
    assert usage["tokensUsed"] >= 0
    missing = await client.post("/api/get-context-usage", json={"chatId": "nope"})
    assert missing.status_code == 404
    stats = (await client.get("/api/stats")).json()
    assert stats["totalRequests"] >= 1
    assert stats["totalMessages"] >= 2


async def test_headless_success_with_server_tool(client: httpx.AsyncClient, stack: Stack) -> None:
    key = scenario(
        stack.provider,
        [{"tool_calls": [{"name": "echo", "arguments": {"text": "hi"}}]}, {"text": "echoed"}],
    )
    resp = await client.post("/api/v1/copilot/chat", json={"message": key, "userId": "h1"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True
    assert body["content"] == "echoed"
    assert body["toolCalls"][0]["name"] == "echo"
    assert body["toolCalls"][0]["params"] == {"text": "hi"}
    assert body["toolCalls"][0]["result"] == {"echo": "hi"}
    assert body["toolCalls"][0]["status"] == "success"
    assert body["runId"].startswith("run_")
    assert body["chatId"] not in body["runId"]  # never derived from the caller's ids
    polled = await client.get(f"/api/v1/copilot/runs/{body['runId']}", params={"userId": "h1"})
    assert polled.json()["content"] == "echoed"


async def test_headless_failure_body(client: httpx.AsyncClient, stack: Stack) -> None:
    key = scenario(stack.provider, [{"error": 401, "message": "bad key"}])
    resp = await client.post("/api/v1/copilot/chat", json={"message": key})
    assert resp.status_code == 502
    body = resp.json()
    assert body["success"] is False
    assert body["code"] == "provider_error"
    assert "rejected the API key" in body["error"]
    assert body["runId"]


async def test_headless_no_wait_and_timeout(client: httpx.AsyncClient, stack: Stack) -> None:
    key = scenario(stack.provider, [{"chunks": ["a"] * 30, "delay_ms": 100}])
    resp = await client.post("/api/v1/copilot/chat", json={"message": key, "timeout": 300})
    assert resp.status_code == 504
    run_id = resp.json()["runId"]
    assert resp.json()["code"] == "timeout"
    key2 = scenario(stack.provider, [{"text": "later"}])
    started = await client.post("/api/v1/copilot/chat", json={"message": key2, "wait": False})
    assert started.status_code == 202
    # the timed-out run went on; follow its events to the end, then poll the result
    for rid in (run_id, started.json()["runId"]):
        async with client.stream("GET", f"/api/copilot/runs/{rid}/events") as events:
            assert (await collect(events))[-1].data["type"] == "done"
        polled = (await client.get(f"/api/v1/copilot/runs/{rid}")).json()
        assert polled["success"] is True
        assert polled["status"] == "completed"


async def test_body_size_limit(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/copilot/chat", content=b'{"message": "' + b"x" * (1024 * 1024 + 10) + b'"}',
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert resp.status_code == 413
    assert resp.json()["code"] == "too_large"


@pytest.mark.parametrize("path", ["/api/copilot/chat", "/api/v1/copilot/chat"])
async def test_an_oversized_chunked_body_gets_413_too(client: httpx.AsyncClient, path: str) -> None:
    """No Content-Length: the limit is found while the body streams in, mid-parse."""

    async def chunked() -> AsyncIterator[bytes]:
        yield b'{"message": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}'

    resp = await client.post(path, content=chunked(), headers={"content-type": "application/json"})
    assert "content-length" not in resp.request.headers
    assert resp.request.headers["transfer-encoding"] == "chunked"
    assert resp.status_code == 413, resp.text
    assert resp.json() == {
        "success": False,
        "error": "request body larger than 1048576 bytes (MAX_BODY_BYTES)",
        "code": "too_large",
    }


@pytest.fixture(scope="module")
def headless_off(services: Services, fake_provider: FakeProviderServer) -> Iterator[Stack]:
    with running_stack(services, fake_provider, ENABLE_HEADLESS_API="false") as running:
        yield running


async def test_headless_can_be_turned_off(headless_off: Stack) -> None:
    async with httpx.AsyncClient(base_url=headless_off.api_url) as c:
        resp = await c.post("/api/v1/copilot/chat", json={"message": "hi"})
        # The poll says so before it looks the run up (503, not 404).
        poll = await c.get("/api/v1/copilot/runs/run_unknown")
    assert resp.status_code == 503
    assert resp.json()["code"] == "unavailable"
    assert (poll.status_code, poll.json()["code"]) == (503, "unavailable")


async def test_nul_characters_and_an_unconfigured_backend_get_400(
    client: httpx.AsyncClient,
) -> None:
    for body in ({"message": "a\u0000b"}, {"message": "hi", "messageId": "m\u0000"}):
        resp = await client.post("/api/v1/copilot/chat", json={**body, "wait": False})
        assert resp.status_code == 400, resp.text
        assert resp.json()["code"] == "invalid_request"
    listed = await client.get("/api/copilot/runs", params={"chatId": "c\u0000"})
    assert listed.status_code == 400
    resp = await client.post("/api/v1/copilot/chat", json={"message": "hi", "model": "backend:x"})
    assert resp.status_code == 400
    assert "COPILOT_BACKEND_URL" in resp.json()["error"]
