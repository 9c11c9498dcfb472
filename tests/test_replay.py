"""Determinism: replay workflow histories with the current ChatWorkflow code.

``tests/histories/*.json`` are histories recorded from earlier versions of the workflow (a
text answer, a server tool, a confirmation, an abort): a change that makes the workflow
non-deterministic for runs already in flight fails here. Fresh histories of this run's
scenarios are replayed too. Record new ones with ``RECORD_HISTORIES=1``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from tests.conftest import Stack, scenario
from tests.live import LiveRun
from worker import workflow_runner
from workflows.chat import ChatWorkflow

HISTORIES = Path(__file__).parent / "histories"


def _replayer() -> Replayer:
    """Replays under the full default sandbox: every workflow line is checked, whatever
    production passes through for speed."""
    return Replayer(workflows=[ChatWorkflow], workflow_runner=workflow_runner(strict=True))


async def _each(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history


async def test_recorded_histories_replay() -> None:
    files = sorted(HISTORIES.glob("*.json"))
    assert files, "no recorded histories to replay"
    histories = [WorkflowHistory.from_json(path.stem, path.read_text()) for path in files]
    results = await _replayer().replay_workflows(_each(histories), raise_on_replay_failure=False)
    failures = {run_id: str(err) for run_id, err in results.replay_failures.items()}
    assert not failures


async def test_recorded_histories_replay_under_every_production_runner() -> None:
    """What production may run (step modules passed through, or UNSANDBOXED_WORKFLOWS) replays
    the same histories: the strict test runs check determinism, these check the runners."""
    files = sorted(HISTORIES.glob("*.json"))
    histories = [WorkflowHistory.from_json(path.stem, path.read_text()) for path in files]
    for runner in (workflow_runner(), workflow_runner(unsandboxed=True)):
        replayer = Replayer(workflows=[ChatWorkflow], workflow_runner=runner)
        results = await replayer.replay_workflows(_each(histories), raise_on_replay_failure=False)
        assert {k: str(v) for k, v in results.replay_failures.items()} == {}, type(runner)
    assert type(workflow_runner(strict=True, unsandboxed=True)) is type(workflow_runner())


async def test_fresh_runs_replay(client: httpx.AsyncClient, stack: Stack) -> None:
    runs: dict[str, str] = {}
    key = scenario(stack.provider, [{"text": "plain answer"}])
    live = await LiveRun.start(client, {"message": key})
    await live.finished()
    runs["text"] = live.run_id

    key = scenario(stack.provider, [
        {"tool_calls": [{"name": "echo", "arguments": {"text": "a"}},
                        {"name": "get_current_time", "arguments": {}}]},
        {"text": "tools done"},
    ])  # fmt: skip
    live = await LiveRun.start(client, {"message": key})
    await live.finished()
    runs["tools"] = live.run_id

    key = scenario(stack.provider, [
        {"tool_calls": [{"name": "deploy", "arguments": {}}]}, {"text": "after decision"},
    ])  # fmt: skip
    tool = {"name": "deploy", "inputSchema": {"type": "object"}, "requiresConfirmation": True}
    live = await LiveRun.start(client, {"message": key, "tools": [tool]})
    call = (await live.event("tool_status", status="awaiting_confirmation")).data["toolCallId"]
    resp = await client.post(
        "/api/copilot/confirm", json={"toolCallId": call, "status": "rejected"}
    )
    assert resp.status_code == 200
    await live.finished()
    runs["confirm"] = live.run_id

    key = scenario(stack.provider, [{"chunks": ["x "] * 100, "delay_ms": 30}])
    live = await LiveRun.start(client, {"message": key})
    await live.event("content")
    assert (await client.post(f"/api/copilot/runs/{live.run_id}/abort")).status_code == 200
    await live.finished()
    runs["abort"] = live.run_id

    # Sim's route: a host-executed tool reported by mark-complete (an update), a hang-up (a
    # signal) and a server tool shown as partial; every local-activity patch taken.
    key = scenario(stack.provider, [
        {"tool_calls": [{"name": "get_user_workflow", "arguments": {"workflowId": "wf"}},
                        {"name": "echo", "arguments": {"text": "b"}}]},
        {"text": "host tool done"},
    ])  # fmt: skip
    sim = await LiveRun.start(client, {"message": key, "mode": "agent", "model": "gpt-4o"},
                              path="/api/chat-completion-streaming")  # fmt: skip
    call = (await sim.event("tool_call", toolName="get_user_workflow")).data["data"]["id"]
    done = await client.post("/api/tools/mark-complete",
                             json={"id": call, "name": "get_user_workflow", "status": 200,
                                   "data": {"blocks": 2}})  # fmt: skip
    assert done.status_code == 200, done.text
    await sim.finished()
    runs["sim"] = sim.run_id

    temporal = await Client.connect(stack.services.temporal_address)
    histories = [await temporal.get_workflow_handle(rid).fetch_history() for rid in runs.values()]
    results = await _replayer().replay_workflows(_each(histories), raise_on_replay_failure=False)
    assert not results.replay_failures
    if os.environ.get("RECORD_HISTORIES"):
        # Kept beside the older recordings (made before the patches): both branches of every
        # patch stay replayed until the patch is retired (README, "Changing the workflow").
        for name, history in zip(runs, histories, strict=True):
            (HISTORIES / f"{name}-patched.json").write_text(history.to_json())
