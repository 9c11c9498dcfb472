"""How a server tool's failures end is explicit: a bug is reported once, a transient failure
(``ToolUnavailable``) is retried; the worker counts outcomes on WORKER_METRICS_PORT."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from copilot.embedded import free_port
from tests.conftest import Services, Stack, provider_requests, running_stack, scenario
from tests.fakes.provider import FakeProviderServer
from tests.fakes.tools import runs_of
from tests.live import LiveRun


@pytest.fixture(scope="module")
def tool_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tools") / "tools.log"


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def tools_stack(
    services: Services, fake_provider: FakeProviderServer, tool_log: Path, metrics_port: int
) -> Iterator[Stack]:
    with running_stack(services, fake_provider, EXTRA_TOOL_MODULES="tests.fakes.tools",
                       FAKE_TOOL_LOG=str(tool_log),
                       WORKER_METRICS_PORT=str(metrics_port)) as running:  # fmt: skip
        yield running


async def _run_tool(stack: Stack, tool: str, mark: str) -> tuple[LiveRun, str]:
    key = scenario(stack.provider, [
        {"tool_calls": [{"name": tool, "arguments": {"ms": 0, "mark": mark}}]},
        {"text": "done"},
    ])  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        live = await LiveRun.start(http, {"message": key, "autoExecuteTools": True})
        await live.finished()
        await live.close()
    return live, key


async def test_a_crashing_tool_is_reported_once_not_retried(
    tools_stack: Stack, tool_log: Path
) -> None:
    mark = uuid.uuid4().hex[:8]
    live, key = await _run_tool(tools_stack, "crashing", mark)
    error = next(f.data for f in live.frames if f.data["type"] == "tool_error")
    assert "crashed (TypeError" in error["data"]["error"]
    assert runs_of(tool_log, mark) == (1, 0)  # once: retrying a bug repeats it
    told = str((await provider_requests(tools_stack.provider, key))[-1]["body"])
    assert "crashed" in told
    assert live.frames[-1].data["data"]["status"] == "completed"


async def test_an_unavailable_tool_is_retried_and_the_worker_counts_outcomes(
    tools_stack: Stack, tool_log: Path, metrics_port: int
) -> None:
    mark = uuid.uuid4().hex[:8]
    live, _ = await _run_tool(tools_stack, "flaky", mark)
    result = next(f.data for f in live.frames if f.data["type"] == "tool_result")
    assert result["result"] == {"attempt": 2}
    assert runs_of(tool_log, mark) == (2, 1)
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert 'copilot_worker_tool_calls_total{executor="server",status="retried"}' in text
    assert 'copilot_worker_tool_calls_total{executor="server",status="success"}' in text
    assert "copilot_worker_provider_time_to_first_token_seconds_count" in text


async def test_a_server_tool_declared_requires_confirmation_waits_for_the_user(
    tools_stack: Stack, tool_log: Path
) -> None:
    mark = uuid.uuid4().hex[:8]
    key = scenario(tools_stack.provider, [
        {"tool_calls": [{"name": "guarded", "arguments": {"ms": 0, "mark": mark}}]},
        {"text": "done"},
    ])  # fmt: skip
    async with httpx.AsyncClient(base_url=tools_stack.api_url, timeout=60) as http:
        live = await LiveRun.start(http, {"message": key})
        call = (await live.event("tool_call")).data["data"]
        assert call["executor"] == "server"
        assert call["requiresConfirmation"] is True
        await live.event("tool_status", status="awaiting_confirmation")
        assert runs_of(tool_log, mark) == (0, 0)  # nothing runs before the decision
        decided = await http.post(
            "/api/copilot/confirm", json={"toolCallId": call["id"], "status": "accepted"}
        )
        assert decided.status_code == 200, decided.text
        await live.finished()
        await live.close()
    assert runs_of(tool_log, mark) == (1, 1)
    # The same tool in a run that auto-executes goes ahead without asking.
    auto_mark = uuid.uuid4().hex[:8]
    live, _ = await _run_tool(tools_stack, "guarded", auto_mark)
    statuses = [f.data.get("status") for f in live.frames if f.data["type"] == "tool_status"]
    assert "awaiting_confirmation" not in statuses
    assert runs_of(tool_log, auto_mark) == (1, 1)
