"""Sim's route gives the model the copilot's instructions and Sim's own tools for the mode
(copilot/sim), and maps Sim's model ids to provider models."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from copilot.sim import prompt_for_mode, tools_for_mode
from tests.conftest import Stack, provider_requests, scenario
from tests.sse import collect


async def _sim(stack: Stack, body: dict[str, Any]) -> list[dict[str, Any]]:
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=60) as c,
        c.stream("POST", "/api/chat-completion-streaming", json=body) as resp,
    ):
        assert resp.status_code == 200, await resp.aread()
        return [f.data for f in await collect(resp)]


def _offered(request: dict[str, Any]) -> set[str]:
    tools = request["body"].get("tools", [])
    return {t.get("name") or t["function"]["name"] for t in tools}


@pytest.mark.parametrize("mode", ["ask", "plan", "agent"])
async def test_each_modes_prompt_and_tools_reach_the_provider(stack: Stack, mode: str) -> None:
    key = scenario(stack.provider, [{"text": "ok"}])
    events = await _sim(stack, {"message": key, "mode": mode, "model": "gpt-4o"})
    assert events[-1]["data"]["status"] == "completed"
    sent = (await provider_requests(stack.provider, key))[0]
    system = sent["body"]["messages"][0]
    assert system["role"] == "system"
    assert system["content"] == prompt_for_mode(mode)[0]
    offered = _offered(sent)
    assert {t.name for t in tools_for_mode(mode)} <= offered
    assert ("edit_workflow" in offered) == (mode == "agent")
    assert "get_user_workflow" in offered  # every mode reads the workflow


async def test_sim_model_ids_map_to_provider_models_or_default_with_a_notice(
    stack: Stack,
) -> None:
    key = scenario(stack.provider, [{"text": "from claude"}])
    events = await _sim(stack, {"message": key, "model": "claude-4.6-opus", "mode": "ask"})
    assert events[0]["data"]["provider"] == "anthropic"
    sent = (await provider_requests(stack.provider, key))[0]
    assert sent["body"]["model"] == "claude-opus-4-6"

    key = scenario(stack.provider, [{"text": "from the default"}])
    events = await _sim(stack, {"message": key, "model": "gemini-3-pro", "mode": "ask"})
    notice = events[0]["data"]["notice"]
    assert "gemini-3-pro" in notice
    sent = (await provider_requests(stack.provider, key))[0]
    assert sent["body"]["model"] == "gpt-4o-mini"  # the stack's DEFAULT_MODEL
    shown = "".join(e["data"] for e in events if e["type"] == "content")
    assert shown == f"_{notice}_\n\nfrom the default"
