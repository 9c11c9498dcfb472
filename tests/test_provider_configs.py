"""Sim's ``provider`` object: a provider config with its own key, used for that run only.

The key is a secret: encrypted at rest for the run, read only inside the LLM activity, gone
when the run ends, and never in workflow input, history, events or logs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from tests.conftest import (
    Services,
    Stack,
    provider_requests,
    running_stack,
    scenario,
    sent_key,
)
from tests.fakes.provider import FakeProviderServer
from tests.sse import collect

CANARY = "azure-canary-key-7f31c9"


@pytest.fixture(scope="module")
def open_stack(services: Services, fake_provider: FakeProviderServer) -> Iterator[Stack]:
    # The provider config's endpoint is the fake on loopback: allowed here, refused by default.
    with running_stack(services, fake_provider, ALLOW_PRIVATE_PROVIDER_URLS="true") as running:
        yield running


async def _sim(stack: Stack, body: dict[str, object]) -> tuple[str, list[dict[str, object]]]:
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=60) as c,
        c.stream("POST", "/api/chat-completion-streaming", json=body) as resp,
    ):
        assert resp.status_code == 200, await resp.aread()
        return resp.headers["x-run-id"], [f.data for f in await collect(resp)]


async def test_an_azure_openai_config_is_honoured_and_its_key_kept_out_of_everything(
    open_stack: Stack,
) -> None:
    key = scenario(open_stack.provider, [{"text": "from azure"}])
    config = {"provider": "azure-openai", "model": "my-deployment", "apiKey": CANARY,
              "apiVersion": "2024-10-21", "endpoint": open_stack.provider.url}  # fmt: skip
    run_id, events = await _sim(open_stack, {"message": key, "provider": config})
    assert events[-1]["data"]["status"] == "completed"
    sent = (await provider_requests(open_stack.provider, key))[0]
    assert sent["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert sent["query"]["api-version"] == "2024-10-21"
    assert sent["headers"]["api-key"] == CANARY
    # Nowhere else: events, Temporal history, logs, and the row is gone with the run.
    assert all(CANARY not in str(e) for e in events)
    temporal = await Client.connect(open_stack.services.temporal_address)
    history = await temporal.get_workflow_handle(run_id).fetch_history()
    assert CANARY not in history.to_json()
    logs = "".join(p.read_text(errors="replace") for p in open_stack.log_dir.glob("*.log"))
    assert CANARY not in logs
    conn = await asyncpg.connect(open_stack.services.database_url)
    try:
        left = await conn.fetchval("SELECT count(*) FROM run_credentials WHERE run_id = $1", run_id)
    finally:
        await conn.close()
    assert left == 0


async def test_an_unsupported_config_gets_the_servers_provider_and_a_visible_notice(
    open_stack: Stack,
) -> None:
    key = scenario(open_stack.provider, [{"text": "answered anyway"}])
    config = {"provider": "vertex", "model": "gemini-3-pro", "apiKey": "vertex-key",
              "vertexProject": "p", "vertexLocation": "l"}  # fmt: skip
    _, events = await _sim(open_stack, {"message": key, "provider": config})
    notice = events[0]["data"]["notice"]  # type: ignore[index]
    assert "vertex" in notice
    shown = "".join(str(e["data"]) for e in events if e["type"] == "content")
    assert shown.startswith(f"_{notice}_")  # Sim shows it: it is the answer's first text
    assert shown.endswith("answered anyway")


async def test_a_config_endpoint_the_guard_refuses_is_an_error_sim_shows(stack: Stack) -> None:
    # The default stack forbids private and loopback provider URLs. Sim shows nothing of a
    # non-2xx answer, so its route says it in the stream, where Sim shows it.
    config = {"provider": "azure-openai", "model": "d", "apiKey": "k",
              "endpoint": stack.provider.url}  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as c:
        resp = await c.post("/api/chat-completion-streaming",
                            json={"message": "hi", "provider": config})  # fmt: skip
    assert resp.status_code == 200
    assert resp.headers["x-copilot-error"] == "invalid_request"
    events = [json.loads(line[6:]) for line in resp.text.split("\n") if line[:6] == "data: "]
    assert [e["type"] for e in events] == ["error", "done"]
    assert "provider.endpoint" in events[0]["error"]
    assert events[0]["data"]["code"] == "invalid_request"
    assert events[1]["data"]["status"] == "failed"


async def test_sims_own_key_in_a_provider_config_is_never_sent_to_the_provider(
    open_stack: Stack,
) -> None:
    """Sim fills an openai/anthropic config's apiKey with its COPILOT_API_KEY: our service key.
    It must not reach a provider; the server's own key answers."""
    key = scenario(open_stack.provider, [{"text": "with the server's key"}])
    service_key = "sk-copilot-looks-like-ours-123"
    config = {"provider": "openai", "model": "gpt-4o", "apiKey": service_key}
    async with (
        httpx.AsyncClient(base_url=open_stack.api_url, timeout=60) as c,
        c.stream("POST", "/api/chat-completion-streaming", headers={"x-api-key": service_key},
                 json={"message": key, "provider": config}) as resp,
    ):  # fmt: skip
        assert resp.status_code == 200
        await collect(resp)
    sent = (await provider_requests(open_stack.provider, key))[0]
    assert sent_key(sent["headers"]) == "sk-test-openai"  # the stack's OPENAI_API_KEY
    assert service_key not in json.dumps(sent)
