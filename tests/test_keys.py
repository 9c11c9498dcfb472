"""Users' own provider keys (BYOK) end to end: the routes, the SSRF guard, and a canary key
that must reach the provider and nothing else (history, Redis, events, logs)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from temporalio.client import Client

from copilot.embedded import free_port
from tests.conftest import (
    Services,
    Stack,
    provider_requests,
    running_stack,
    scenario,
    sent_key,
)
from tests.fakes.provider import FakeProviderServer
from tests.sse import Frame, collect


def _user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


async def _chat(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, list[Frame]]:
    async with client.stream("POST", "/api/copilot/chat", json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        return resp.headers["x-run-id"], await collect(resp)


# --- routes --------------------------------------------------------------------------------------


async def test_put_get_list_delete_never_return_the_key(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    user, secret = _user(), f"sk-ant-{uuid.uuid4().hex}"
    put = await client.put("/api/copilot/keys/anthropic", json={"apiKey": secret, "userId": user})
    assert put.status_code == 200, put.text
    stored = put.json()
    assert stored["provider"] == "anthropic"
    assert stored["last4"] == secret[-4:]
    assert stored["baseUrl"] is None
    assert stored["createdAt"] == stored["updatedAt"]

    one = await client.get("/api/copilot/keys/anthropic", params={"userId": user})
    listed = await client.get("/api/copilot/keys", params={"userId": user})
    assert one.status_code == listed.status_code == 200
    assert [k["provider"] for k in listed.json()["keys"]] == ["anthropic"]
    for resp in (put, one, listed):
        assert secret not in resp.text
        assert secret[:-4] not in resp.text

    replaced = f"sk-ant-{uuid.uuid4().hex}"
    again = await client.put(
        "/api/copilot/keys/anthropic",
        json={"apiKey": replaced, "userId": user, "baseUrl": "https://1.1.1.1/"},
    )
    assert again.status_code == 200, again.text
    body = again.json()
    assert (body["last4"], body["baseUrl"]) == (replaced[-4:], "https://1.1.1.1")
    assert body["createdAt"] == stored["createdAt"]
    assert body["updatedAt"] >= stored["updatedAt"]

    # Encrypted at rest, under the server's key id, bound to its row.
    conn = await asyncpg.connect(stack.services.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT key_id, nonce, ciphertext FROM provider_keys WHERE user_id = $1", user
        )
    finally:
        await conn.close()
    assert row is not None
    key_bytes = bytes.fromhex(stack.env["ENCRYPTION_KEY"])
    assert row["key_id"] == hashlib.sha256(key_bytes).hexdigest()[:8]
    assert replaced.encode() not in bytes(row["ciphertext"])
    assert len(bytes(row["nonce"])) == 12

    # Another user sees nothing.
    other = await client.get("/api/copilot/keys/anthropic", params={"userId": _user()})
    assert other.status_code == 404
    assert other.json()["code"] == "key_not_found"

    deleted = await client.delete("/api/copilot/keys/anthropic", params={"userId": user})
    assert deleted.status_code == 200
    for resp in (
        await client.get("/api/copilot/keys/anthropic", params={"userId": user}),
        await client.delete("/api/copilot/keys/anthropic", params={"userId": user}),
    ):
        assert resp.status_code == 404
        assert resp.json()["code"] == "key_not_found"
    assert (await client.get("/api/copilot/keys", params={"userId": user})).json()["keys"] == []


async def test_bad_requests_get_400(client: httpx.AsyncClient) -> None:
    user = _user()
    unknown = await client.put("/api/copilot/keys/mistral", json={"apiKey": "k" * 20})
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "invalid_request"
    assert (await client.get("/api/copilot/keys/copilot-backend")).status_code == 400
    for body in ({}, {"apiKey": ""}, {"apiKey": "   "}, {"apiKey": 5}):
        resp = await client.put("/api/copilot/keys/openai", json={**body, "userId": user})
        assert resp.status_code == 400, body
        assert resp.json()["code"] == "invalid_request"


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/v1",
        "http://localhost:11434",
        "http://10.1.2.3",
        "https://192.168.0.10/v1",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8000",
        "http://[::ffff:127.0.0.1]",
        "http://0.0.0.0",
        "http://224.0.0.1",
    ],
)
async def test_private_base_urls_are_refused(client: httpx.AsyncClient, base_url: str) -> None:
    user = _user()
    resp = await client.put(
        "/api/copilot/keys/openai",
        json={"apiKey": "sk-test-0123456789", "baseUrl": base_url, "userId": user},
    )
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == "invalid_request"
    assert "ALLOW_PRIVATE_PROVIDER_URLS=true" in body["error"]
    assert body["details"][0]["field"] == "baseUrl"
    missing = await client.get("/api/copilot/keys/openai", params={"userId": user})
    assert missing.status_code == 404  # nothing was stored


@pytest.mark.parametrize(
    "base_url", ["ftp://1.1.1.1", "not a url", "http://user:pw@1.1.1.1", "http://:80"]
)
async def test_malformed_base_urls_are_refused(client: httpx.AsyncClient, base_url: str) -> None:
    resp = await client.put(
        "/api/copilot/keys/openai",
        json={"apiKey": "sk-test-0123456789", "baseUrl": base_url, "userId": _user()},
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "invalid_request"


async def test_the_users_key_comes_first_then_the_servers(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    user, secret = _user(), f"sk-own-{uuid.uuid4().hex}"
    put = await client.put("/api/copilot/keys/openai", json={"apiKey": secret, "userId": user})
    assert put.status_code == 200
    key = scenario(stack.provider, [{"text": "with yours"}, {"text": "with ours"}])
    _, frames = await _chat(client, {"message": key, "userId": user})
    assert frames[-1].data["data"]["status"] == "completed"
    await client.delete("/api/copilot/keys/openai", params={"userId": user})
    _, frames = await _chat(client, {"message": key, "userId": user})
    assert frames[-1].data["data"]["status"] == "completed"
    seen = [sent_key(r["headers"]) for r in await provider_requests(stack.provider, key)]
    assert seen == [secret, stack.env["OPENAI_API_KEY"]]


async def _sql(stack: Stack, query: str, *args: Any) -> None:
    conn = await asyncpg.connect(stack.services.database_url)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


async def test_a_row_moved_to_another_user_fails_the_run_clearly(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    owner, thief = _user(), _user()
    secret = f"sk-moved-{uuid.uuid4().hex}"
    put = await client.put("/api/copilot/keys/openai", json={"apiKey": secret, "userId": owner})
    assert put.status_code == 200
    await _sql(stack, "UPDATE provider_keys SET user_id = $1 WHERE user_id = $2", thief, owner)
    key = scenario(stack.provider, [{"text": "never sent"}])
    _, frames = await _chat(client, {"message": key, "userId": thief})
    assert [f.data["type"] for f in frames][-2:] == ["error", "done"]
    error = frames[-2].data["data"]
    assert "OpenAI: the stored openai key failed authentication" in error["message"]
    assert error["code"] == "provider_key_unreadable"
    assert frames[-1].data["data"]["status"] == "failed"
    assert secret not in json.dumps([f.data for f in frames])
    assert await provider_requests(stack.provider, key) == []  # nothing reached the provider


async def test_a_stored_base_url_is_checked_again_when_used(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """DNS can change after the URL was stored: the worker checks the address again."""
    user = _user()
    put = await client.put(
        "/api/copilot/keys/openai", json={"apiKey": "sk-rebind-0123456789", "userId": user}
    )
    assert put.status_code == 200
    await _sql(
        stack,
        "UPDATE provider_keys SET base_url = $1 WHERE user_id = $2",
        f"{stack.provider.url}/v1",
        user,
    )
    key = scenario(stack.provider, [{"text": "never sent"}])
    _, frames = await _chat(client, {"message": key, "userId": user})
    error = frames[-2].data["data"]
    assert error["code"] == "provider_url_refused"
    assert "loopback address" in error["message"]
    assert frames[-1].data["data"]["status"] == "failed"
    assert await provider_requests(stack.provider, key) == []


# --- the canary ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_stack(services: Services, fake_provider: FakeProviderServer) -> Iterator[Stack]:
    """Private provider URLs allowed (the fake listens on loopback); the server's own
    Anthropic URL leads nowhere, so only the user's base URL can reach the provider."""
    with running_stack(
        services,
        fake_provider,
        ALLOW_PRIVATE_PROVIDER_URLS="true",
        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{free_port()}",
    ) as running:
        yield running


@pytest.fixture
async def open_client(open_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=open_stack.api_url, timeout=60) as c:
        yield c


async def _redis_dump(url: str) -> bytes:
    redis = Redis.from_url(url)
    out: list[bytes] = []
    try:
        async for name in redis.scan_iter(count=500):
            out.append(name)
            kind = (await redis.type(name)).decode()
            if kind == "string":
                out.append(await redis.get(name) or b"")
            elif kind == "stream":
                for _id, fields in await redis.xrange(name):
                    out.extend(b"%s=%s" % (k, v) for k, v in fields.items())
            elif kind == "hash":
                out.extend(b"%s=%s" % kv for kv in (await redis.hgetall(name)).items())
            elif kind == "list":
                out.extend(await redis.lrange(name, 0, -1))
            elif kind == "set":
                out.extend(await redis.smembers(name))
            elif kind == "zset":
                out.extend(await redis.zrange(name, 0, -1))
    finally:
        await redis.aclose()
    return b"\n".join(out)


async def test_canary_key_reaches_the_provider_and_nothing_else(
    open_client: httpx.AsyncClient, open_stack: Stack
) -> None:
    user, canary = _user(), f"sk-canary-{uuid.uuid4().hex}"
    put = await open_client.put(
        "/api/copilot/keys/anthropic",
        json={"apiKey": canary, "baseUrl": open_stack.provider.url, "userId": user},
    )
    assert put.status_code == 200, put.text
    key = scenario(
        open_stack.provider,
        [
            {
                "reasoning": "use the tool",
                "tool_calls": [{"name": "echo", "arguments": {"text": "x"}}],
            },
            {"text": "echoed, done"},
            # A provider that echoes the key in an error: the text is scrubbed before it
            # travels on (history, events, logs).
            {"error": 400, "message": f"model not allowed for key {canary}"},
        ],
    )
    runs: list[str] = []
    frames: list[Frame] = []
    run_id, first = await _chat(
        open_client, {"message": key, "userId": user, "model": "claude-canary"}
    )
    runs.append(run_id)
    frames += first
    assert first[-1].data["data"]["status"] == "completed", [f.data for f in first]
    chat_id = first[0].data["data"]["chatId"]
    run_id, second = await _chat(
        open_client,
        {"message": "again", "chatId": chat_id, "userId": user, "model": "claude-canary"},
    )
    runs.append(run_id)
    frames += second
    assert second[-1].data["data"]["status"] == "failed"
    assert "[redacted]" in second[-2].data["data"]["message"]

    seen = await provider_requests(open_stack.provider, key)
    assert len(seen) == 3
    assert all(sent_key(r["headers"]) == canary for r in seen)  # the user's key, and URL

    needle = canary.encode()
    # Events as the client saw them.
    assert needle not in json.dumps([f.data for f in frames]).encode()
    # Temporal: the workflow histories, as JSON and as the raw protobuf (payloads unencoded).
    temporal = await Client.connect(open_stack.services.temporal_address)
    for rid in runs:
        history = await temporal.get_workflow_handle(rid).fetch_history()
        assert history.events
        assert needle not in history.to_json().encode()
        assert needle not in b"".join(e.SerializeToString() for e in history.events)
    # Redis: every key and value (event logs, run state, rate limits).
    dump = await _redis_dump(open_stack.services.redis_url)
    assert f"{runs[0]}".encode() in dump  # the run's event log is there to search
    assert needle not in dump
    # The API's and the worker's logs.
    logs = b"".join(p.read_bytes() for p in open_stack.log_dir.iterdir() if p.is_file())
    assert b"worker polling task queue" in logs  # the logs are there to search
    assert needle not in logs
    assert canary[10:30].encode() not in logs  # nor a fragment of it


# --- redirects ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[FakeProviderServer]:
    """Another loopback port, where the user's provider redirects: it must never be reached."""
    server = FakeProviderServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("provider", "model", "path", "status"),
    [
        ("openai", "gpt-4o-mini", "/v1", 307),
        ("anthropic", "claude-redirect", "", 308),
        ("ollama", "ollama:llama3", "", 303),
    ],
)
async def test_a_provider_redirect_is_not_followed(
    open_client: httpx.AsyncClient,
    open_stack: Stack,
    elsewhere: FakeProviderServer,
    provider: str,
    model: str,
    path: str,
    status: int,
) -> None:
    """The guard checked the base URL, not where it redirects (metadata, a loopback port)."""
    user = _user()
    put = await open_client.put(
        f"/api/copilot/keys/{provider}",
        json={"apiKey": "sk-redirect-0123456789", "baseUrl": open_stack.provider.url + path,
              "userId": user},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    # Followed, the redirect (307/308 re-send the POST) would get a normal answer there.
    key = scenario(
        open_stack.provider, [{"redirect": elsewhere.url, "status": status}, {"text": "followed"}]
    )
    _, frames = await _chat(open_client, {"message": key, "userId": user, "model": model})
    assert [f.data["type"] for f in frames][-2:] == ["error", "done"], [f.data for f in frames]
    error = frames[-2].data["data"]
    assert error["code"] == "provider_redirect"
    assert f"redirect ({status})" in error["message"]
    assert error["retryable"] is False
    assert frames[-1].data["data"]["status"] == "failed"
    assert len(await provider_requests(open_stack.provider, key)) == 1  # one call, not retried
    assert elsewhere.hits == []
