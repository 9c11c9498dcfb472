"""End to end over HTTP: API process -> Temporal -> worker process -> fake provider -> Redis."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.conftest import Stack, provider_requests, scenario
from tests.sse import collect, iter_frames


async def _chat(client: httpx.AsyncClient, body: dict[str, object]) -> tuple[httpx.Response, list]:
    async with client.stream("POST", "/api/copilot/chat", json=body) as resp:
        if resp.status_code != 200:
            await resp.aread()
            return resp, []
        return resp, await collect(resp)


async def test_chat_streams_exact_text_with_gapless_seq_and_persists(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    chunks = ["Durable ", "streams ", "survive ", "every ", "crash."]
    key = scenario(stack.provider, [{"chunks": chunks}])
    resp, frames = await _chat(client, {"message": f"hello {key}"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-stream-token"]
    run_id = resp.headers["x-run-id"]

    assert [f.id for f in frames] == list(range(1, len(frames) + 1))
    assert all(f.data["seq"] == f.id and f.data["runId"] == run_id for f in frames)
    assert all(f.event == f.data["type"] for f in frames)
    types = [f.data["type"] for f in frames]
    assert types[0] == "start"
    assert types[1] == "chat_id"
    assert types[-1] == "done"
    content = [f.data["data"] for f in frames if f.data["type"] == "content"]
    assert content == chunks
    done = frames[-1].data["data"]
    assert done["status"] == "completed"
    assert done["usage"]["outputTokens"] == len(chunks)
    chat_id = frames[1].data["chatId"]
    assert frames[0].data["data"]["chatId"] == chat_id
    assert run_id.startswith("run_")
    assert chat_id not in run_id  # run ids are the server's own, never derived from caller ids

    conn = await asyncpg.connect(stack.services.database_url)
    try:
        rows = await conn.fetch(
            "SELECT role, content FROM messages WHERE chat_id = $1 ORDER BY created_at, role DESC",
            chat_id,
        )
        run = await conn.fetchrow("SELECT status, active FROM runs WHERE id = $1", run_id)
    finally:
        await conn.close()
    assert [(r["role"], r["content"]) for r in rows] == [
        ("user", f"hello {key}"),
        ("assistant", "".join(chunks)),
    ]
    assert run is not None
    assert (run["status"], run["active"]) == ("completed", False)

    chat = (await client.get(f"/api/copilot/chats/{chat_id}")).json()
    assert [m["content"] for m in chat["messages"]] == [f"hello {key}", "".join(chunks)]
    assert chat["activeRunId"] is None


async def test_second_message_sees_history_and_gets_next_run_id(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(stack.provider, [{"text": "first answer"}, {"text": "second answer"}])
    _, frames = await _chat(client, {"message": f"one {key}"})
    chat_id = frames[0].data["data"]["chatId"]
    resp, frames2 = await _chat(client, {"message": "two", "chatId": chat_id})
    assert resp.headers["x-run-id"].startswith("run_")
    assert resp.headers["x-run-id"] != frames[0].data["runId"]
    assert "chat_id" not in [f.data["type"] for f in frames2]  # not a new chat
    assert "".join(f.data["data"] for f in frames2 if f.data["type"] == "content") == (
        "second answer"
    )
    seen = await provider_requests(stack.provider, key)
    roles = [
        (m["role"], m["content"]) for m in seen[-1]["body"]["messages"] if m["role"] != "system"
    ]
    assert roles == [("user", f"one {key}"), ("assistant", "first answer"), ("user", "two")]
    assert seen[-1]["headers"]["authorization"] == "Bearer sk-test-openai"


async def test_rejoin_replays_after_last_event_id(client: httpx.AsyncClient, stack: Stack) -> None:
    key = scenario(stack.provider, [{"text": "replay me from the middle please", "chunk": 3}])
    resp, frames = await _chat(client, {"message": key})
    run_id = resp.headers["x-run-id"]
    token = resp.headers["x-stream-token"]
    cut = 4
    async with client.stream(
        "GET", f"/api/copilot/runs/{run_id}/events", headers={"Last-Event-ID": str(cut)}
    ) as again:
        tail = await collect(again)
    assert [f.id for f in tail] == [f.id for f in frames[cut:]]
    assert [f.data for f in tail] == [f.data for f in frames[cut:]]
    # A plain EventSource cannot send headers: the stream token in the query works instead.
    async with client.stream(
        "GET", f"/api/copilot/runs/{run_id}/events", params={"token": token, "after": 0}
    ) as by_token:
        assert by_token.status_code == 200
        assert [f.data for f in await collect(by_token)] == [f.data for f in frames]
    bad = await client.get(f"/api/copilot/runs/{run_id}/events", params={"token": token + "x"})
    assert bad.status_code == 401
    assert bad.json()["code"] == "unauthorized"

    snap = (await client.get(f"/api/copilot/runs/{run_id}")).json()
    assert snap["status"] == "completed"
    assert snap["content"] == "replay me from the middle please"
    assert snap["lastSeq"] == frames[-1].id


async def test_same_message_id_returns_the_first_run(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    key = scenario(stack.provider, [{"text": "only once"}])
    body = {"message": key, "chatId": f"c-{key}", "messageId": "m-1"}
    first, frames = await _chat(client, body)
    second, frames2 = await _chat(client, body)
    assert first.headers["x-run-id"] == second.headers["x-run-id"]
    assert [f.data for f in frames2] == [f.data for f in frames]
    seen = await provider_requests(stack.provider, key)
    assert len(seen) == 1


async def test_bad_input_gets_400_with_code(client: httpx.AsyncClient) -> None:
    for body in ({}, {"message": ""}, {"message": "x" * 100_001}, {"message": "hi", "mode": "x"},
                 {"message": "hi", "chatId": "bad id!"}):  # fmt: skip
        resp = await client.post("/api/copilot/chat", json=body)
        assert resp.status_code == 400, body
        payload = resp.json()
        assert payload["success"] is False
        assert payload["code"] == "invalid_request"
        assert payload["details"]
    unknown = await client.get("/api/copilot/runs/chat-nope-1")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "run_not_found"


async def test_health_reports_each_service(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["services"] == {"database": "up", "redis": "up", "temporal": "up"}
    assert body["status"] == "healthy"


async def test_many_open_rejoins_hold_no_database_connection(stack: Stack) -> None:
    """More open streams than the API's database pool (20): each must still be served."""
    hold = {"name": "hold", "inputSchema": {"type": "object"}, "requiresConfirmation": True}
    key = scenario(stack.provider, [{"tool_calls": [{"name": "hold", "arguments": {}}]}])
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60, limits=limits) as client:
        started = await client.post(
            "/api/v1/copilot/chat",
            json={"message": key, "tools": [hold], "autoExecuteTools": False, "wait": False},
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["runId"]
        first_seen = [asyncio.Event() for _ in range(45)]

        async def rejoin(seen: asyncio.Event) -> list[str]:
            types = []
            async with client.stream("GET", f"/api/copilot/runs/{run_id}/events") as resp:
                async for frame in iter_frames(resp):
                    seen.set()
                    types.append(frame.data["type"])
                    if frame.data["type"] == "done":
                        break
            return types

        streams = [asyncio.create_task(rejoin(seen)) for seen in first_seen]
        await asyncio.wait_for(asyncio.gather(*(seen.wait() for seen in first_seen)), 30)
        # All 45 are open at once, and the API still answers other requests.
        assert (await client.get(f"/api/copilot/runs/{run_id}")).status_code == 200
        assert (await client.post(f"/api/copilot/runs/{run_id}/abort")).status_code == 200
        ends = await asyncio.wait_for(asyncio.gather(*streams), 30)
    assert all(types[-1] == "done" for types in ends)


async def test_the_snapshot_of_a_long_run_folds_every_page_of_its_log(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    chunks = [f"c{i} " for i in range(1200)]  # more events than one page of the log
    key = scenario(stack.provider, [{"chunks": chunks}])
    resp, frames = await _chat(client, {"message": key})
    run_id = resp.headers["x-run-id"]
    snapshot = (await client.get(f"/api/copilot/runs/{run_id}")).json()
    assert snapshot["content"] == "".join(chunks)
    assert snapshot["lastSeq"] == frames[-1].id
