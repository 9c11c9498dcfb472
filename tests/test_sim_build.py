"""A build-mode conversation, as a self-hosted Sim has it with this server: the model reads the
workflow, looks up a block, edits the workflow and reports what it did, each of Sim's own tools
executed once by Sim's side (``tests/sim_client.py``, a model of Sim at 190f12fd77) and reported
once with mark-complete. And which of Sim's tools the other modes are offered.

Real processes, Temporal, PostgreSQL and Redis; the fake provider plays the model.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import pytest

from copilot.sim import SIM_TOOLS, prompt_for_mode
from copilot.sim.tools import sim_tool
from tests.conftest import Services, Stack, provider_requests, running_stack, scenario
from tests.fakes.provider import FakeProviderServer
from tests.sim_browser import SimBrowser, js_or, normalize, rec
from tests.sim_client import SimClient, SimTurn, integration_catalog

ADMIN = "admin-sim-build-9d41c7e05b2a6f38"
WORKFLOW_ID = "wf-build-7"
SUMMARY = (
    "Done: I added a Slack block, 'Notify Slack', after 'Summarise'. It posts the agent's "
    "answer to #deploys. Connect your Slack account in the block before running it."
)
PREAMBLE = "Let me look at the workflow first. "

# What Sim's executors return at 190f12fd77, in small: get_user_workflow's output
# (workflow-tools/queries.ts: userWorkflow is the state as indented JSON text), one block's
# metadata (get-blocks-metadata-tool.ts) and edit_workflow's result (edit-workflow/index.ts:
# success and the resulting workflowState, which Sim's browser shows as a proposed diff).
_BEFORE: dict[str, Any] = {
    "blocks": {
        "start": {"id": "start", "type": "start_trigger", "name": "Start",
                  "subBlocks": {"inputFormat": {"value": [{"name": "topic", "type": "string"}]}}},
        "agent1": {"id": "agent1", "type": "agent", "name": "Summarise",
                   "subBlocks": {"model": {"value": "gpt-4o"},
                                 "messages": {"value": [{"role": "user",
                                                         "content": "<start.topic>"}]}}},
    },
    "edges": [{"source": "start", "target": "agent1", "sourceHandle": "source"}],
    "loops": {},
    "parallels": {},
}  # fmt: skip
USER_WORKFLOW = {
    "workflowId": WORKFLOW_ID,
    "workflowName": "Daily digest",
    "workspaceId": "ws-1",
    "userWorkflow": json.dumps(_BEFORE, indent=2),
}
BLOCK_METADATA = {
    "metadata": {
        "slack": {
            "blockType": "slack",
            "name": "Slack",
            "description": "Send, read and manage Slack messages.",
            "authType": "OAuth",
            "requiredCredentials": {"type": "oauth", "service": "slack",
                                    "description": "OAuth authentication required for Slack"},
            "inputs": {
                "required": [{"name": "operation", "type": "string",
                              "description": "Operation to perform",
                              "options": ["send", "read", "update", "delete"]}],
                "optional": [{"name": "channel", "type": "string", "description": "Channel"},
                             {"name": "text", "type": "string", "description": "Message"}],
            },
            "operations": {"send": {"name": "slack_message", "description": "Send a message",
                                    "inputs": {"required": ["channel", "text"]},
                                    "outputs": {"ts": "string", "channel": "string"}}},
        }
    }
}  # fmt: skip
_AFTER = copy.deepcopy(_BEFORE)
_AFTER["blocks"]["slack-3f9a"] = {
    "id": "slack-3f9a", "type": "slack", "name": "Notify Slack",
    "position": {"x": 900, "y": 100},
    "subBlocks": {"operation": {"value": "send"}, "channel": {"value": "#deploys"},
                  "text": {"value": "<agent1.content>"}},
}  # fmt: skip
_AFTER["edges"].append({"source": "agent1", "target": "slack-3f9a", "sourceHandle": "source"})
EDIT_RESULT = {"success": True, "workflowState": _AFTER}

ARGS: dict[str, dict[str, Any]] = {
    "get_user_workflow": {"workflowId": WORKFLOW_ID},
    "get_blocks_metadata": {"blockIds": ["slack"]},
    "edit_workflow": {
        "workflowId": WORKFLOW_ID,
        "operations": [
            {"operation_type": "add", "block_id": "notify-slack",
             "params": {"type": "slack", "name": "Notify Slack",
                        "inputs": {"operation": "send", "channel": "#deploys",
                                   "text": "<agent1.content>"}}},
            {"operation_type": "edit", "block_id": "agent1",
             "params": {"connections": {"source": "notify-slack"}}},
        ],
    },
}  # fmt: skip
OUTPUTS = {
    "get_user_workflow": USER_WORKFLOW,
    "get_blocks_metadata": BLOCK_METADATA,
    "edit_workflow": EDIT_RESULT,
}
ORDER = ["get_user_workflow", "get_blocks_metadata", "edit_workflow"]
EDIT_TOOLS = frozenset(t.name for t in SIM_TOOLS if t.access == "edit")


@dataclass
class Sim:
    stack: Stack
    service_key: str  # the COPILOT_API_KEY of the Sim installation

    def client(self, **options: Any) -> SimClient:
        """Sim with a small registry (12 integration tools) and the chat's workflow open."""
        options.setdefault("catalog", integration_catalog(12))
        return SimClient(self.stack.api_url, self.service_key, workflow_id=WORKFLOW_ID, **options)

    def api(self) -> httpx.AsyncClient:
        headers = {"x-api-key": self.service_key}
        return httpx.AsyncClient(base_url=self.stack.api_url, headers=headers, timeout=60)

    async def requests(self, key: str) -> list[dict[str, Any]]:
        return await provider_requests(self.stack.provider, key)


@pytest.fixture(scope="module")
def sim(services: Services, fake_provider: FakeProviderServer) -> Iterator[Sim]:
    with running_stack(services, fake_provider, COPILOT_API_KEY=ADMIN) as stack:
        resp = httpx.post(
            f"{stack.api_url}/api/validate-key/generate",
            json={"tenantName": "sim-build"},
            headers={"x-api-key": ADMIN},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        yield Sim(stack, resp.json()["apiKey"])


@pytest.fixture
def browser_events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every event handed to Sim's browser while it read: ``SimBrowser`` keeps only its state,
    and does not model the diff store ``edit_workflow``'s ``workflowState`` goes to."""
    seen: list[dict[str, Any]] = []
    apply = SimBrowser.apply

    def recording(self: SimBrowser, raw: dict[str, Any]) -> None:
        if not self.closed.is_set():
            seen.append(raw)
        apply(self, raw)

    monkeypatch.setattr(SimBrowser, "apply", recording)
    return seen


def new_chat() -> str:
    return f"sim-chat-{uuid.uuid4().hex[:12]}"


def offered(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each tool a provider request offered, by name, with its input schema (either wire)."""
    out = {}
    for tool in request["body"].get("tools") or []:
        function = rec(tool.get("function"))
        name = tool.get("name") or function.get("name")
        out[str(name)] = tool.get("input_schema") or function.get("parameters") or {}
    return out


def system_prompt(request: dict[str, Any]) -> str:
    """The system prompt of a provider request (Anthropic's ``system`` or OpenAI's first
    message)."""
    body = request["body"]
    system = body.get("system")
    if isinstance(system, list):
        return "".join(str(b.get("text", "")) for b in system)
    if isinstance(system, str):
        return system
    first = (body.get("messages") or [{}])[0]
    return str(first.get("content")) if first.get("role") == "system" else ""


def tool_results(request: dict[str, Any]) -> list[Any]:
    """The tool results a provider request shows the model, oldest first, each as JSON when
    it reads as JSON."""
    texts: list[str] = []
    for msg in request["body"].get("messages", []):
        if msg.get("role") == "tool":
            texts.append(str(msg.get("content")))
        elif isinstance(msg.get("content"), list):
            for block in msg["content"]:
                if block.get("type") != "tool_result":
                    continue
                content = block.get("content")
                if isinstance(content, list):
                    content = "".join(str(b.get("text", "")) for b in content)
                texts.append(str(content))
    out = []
    for text in texts:
        try:
            out.append(json.loads(text))
        except ValueError:
            out.append(text)
    return out


def proposed_workflow_state(event: dict[str, Any]) -> Any:
    """What Sim's browser hands to its diff store for an ``edit_workflow`` tool_result
    (client-sse/handlers.ts reads the result, then ``data.result``, ``data.data``, ``data``)."""
    ev = normalize(event)
    d = rec(ev.get("data"))
    payload = rec(js_or(ev.get("result"), d.get("result"), d.get("data"), ev.get("data")))
    return payload.get("workflowState")


def ended(turn: SimTurn) -> bool:
    return bool(turn.of_type("done")) and turn.server.complete and turn.browser.complete


async def test_build_mode_reads_looks_up_edits_and_reports(
    sim: Sim, browser_events: list[dict[str, Any]]
) -> None:
    """The issue's "done when": in build mode the model reads the workflow, looks up a block,
    edits the workflow and says so; Sim runs each of its tools once and reports each once."""
    key = scenario(sim.stack.provider, [
        {"text": PREAMBLE, "tool_calls": [{"name": ORDER[0], "arguments": ARGS[ORDER[0]]}]},
        {"tool_calls": [{"name": ORDER[1], "arguments": ARGS[ORDER[1]]}]},
        {"tool_calls": [{"name": ORDER[2], "arguments": ARGS[ORDER[2]]}]},
        {"text": SUMMARY, "chunk": 7},
    ])  # fmt: skip
    executors = {name: (lambda _params, out=out: out) for name, out in OUTPUTS.items()}
    chat = new_chat()
    async with sim.client(executors=executors) as client:
        turn = await client.send(f"Post the summary to Slack #deploys. {key}", chat_id=chat)
        executed = list(client.executed)
        async with sim.api() as api:
            resp = await api.get(f"/api/copilot/chats/{chat}", params={"userId": client.user_id})
    assert turn.payload["mode"] == "agent"
    assert turn.http_status == 200, turn.server.failure
    assert ended(turn), (turn.server.errors, turn.server.failure)
    assert resp.status_code == 200, resp.text
    saved = resp.json()

    # Sim's side ran each tool once, with the model's arguments unchanged, which are valid
    # against the catalog's schema, and reported each once; we took every report.
    assert executed == [(name, ARGS[name]) for name in ORDER]
    problems = []
    for name, params in executed:
        tool = sim_tool(name)
        assert tool is not None
        errors = jsonschema.Draft202012Validator(tool.input_schema).iter_errors(params)
        problems += [f"{name}: Sim ran it with invalid arguments: {e.message}" for e in errors]
    for name in ORDER:
        marks = turn.marks_for(name)
        if len(marks) != 1:
            problems.append(f"{name}: Sim posted mark-complete {len(marks)} times")
            continue
        [mark] = marks
        if (mark.status, mark.data) != (200, OUTPUTS[name]):
            problems.append(f"{name}: Sim reported {mark.status} {mark.data!r}")
        if mark.http_status is None or not 200 <= mark.http_status < 300:
            problems.append(f"{name}: mark-complete answered {mark.http_status}: {mark.answer}")
    assert len(turn.marks) == len(ORDER), [(m.name, m.status) for m in turn.marks]
    assert not problems, "\n".join(problems)

    # The model: the agent prompt and the catalog's schemas up front, then each result in the
    # turn after its call.
    requests = await sim.requests(key)
    assert len(requests) == len(ORDER) + 1
    first = requests[0]
    assert system_prompt(first) == prompt_for_mode("agent")[0]
    tools = offered(first)
    for name in ORDER:
        tool = sim_tool(name)
        assert tool is not None
        assert tools.get(name) == tool.input_schema, f"{name} offered as {tools.get(name)}"
    assert "search_integration_tools" in tools
    for i, name in enumerate(ORDER, start=1):
        seen = tool_results(requests[i])
        assert len(seen) == i, f"turn {i + 1} shows {len(seen)} tool results"
        assert seen[-1] == OUTPUTS[name], f"turn {i + 1} shows {name}'s result as {seen[-1]!r}"

    # Sim's browser: the answer, each tool done, and the edit's workflow state proposed.
    assert turn.visible_text == PREAMBLE + SUMMARY
    assert turn.server.content == PREAMBLE + SUMMARY
    calls = {c.name: c for c in turn.server.tool_calls.values()}
    assert sorted(calls) == sorted(ORDER)
    for name, call in calls.items():
        assert call.status == "success", f"Sim's server side holds {name} as {call.status}"
        assert turn.browser.tools.get(call.id) == "success", (
            f"Sim's browser shows {name} as {turn.browser.tools.get(call.id)}"
        )
    edit_id = calls["edit_workflow"].id
    edit_results = [
        e for e in browser_events
        if e.get("type") == "tool_result" and normalize(e).get("toolCallId") == edit_id
    ]  # fmt: skip
    assert len(edit_results) == 1, f"the browser got {len(edit_results)} edit results"
    assert proposed_workflow_state(edit_results[0]) == _AFTER

    # What is kept is what the browser shows.
    [message] = [m for m in saved["messages"] if m["role"] == "assistant"]
    assert message["content"] == turn.visible_text
    kept = {t["id"]: t for t in message["toolCalls"] or []}
    shown = {i: turn.browser.tool_names[i] for i in turn.browser.tools}
    assert {i: t["name"] for i, t in kept.items()} == shown
    in_order = [("text", b["text"]) if b["type"] == "text" else ("tool", b["id"])
                for b in message["blocks"] if b["type"] in ("text", "tool_use")]  # fmt: skip
    on_screen = [("text", b["content"]) if b["type"] == "text" else ("tool", b["id"])
                 for b in turn.browser.blocks if b["type"] in ("text", "tool_call")]  # fmt: skip
    assert in_order == on_screen
    for tool_id, t in kept.items():
        assert (t["status"], turn.browser.tools[tool_id]) == ("success", "success"), t
        assert t["arguments"] == ARGS[t["name"]]
        assert t["result"] == OUTPUTS[t["name"]]


@pytest.mark.parametrize("mode", ["ask", "plan"])
async def test_ask_and_plan_modes_are_offered_no_edit_tool(sim: Sim, mode: str) -> None:
    """Ask and plan modes read (plan also proposes); neither may change anything in Sim."""
    key = scenario(sim.stack.provider, [{"text": "The workflow has two blocks."}])
    async with sim.client() as client:
        turn = await client.send(f"What does it do? {key}", chat_id=new_chat(), mode=mode)
    assert ended(turn), (turn.server.errors, turn.server.failure)
    assert turn.visible_text == "The workflow has two blocks."
    [request] = await sim.requests(key)
    assert system_prompt(request) == prompt_for_mode(mode)[0]
    tools = offered(request)
    assert "get_user_workflow" in tools
    assert "edit_workflow" not in tools
    assert not (set(tools) & EDIT_TOOLS) - {"knowledge_base"}, sorted(set(tools) & EDIT_TOOLS)
    if "knowledge_base" in tools:  # its reading operations only
        operations = tools["knowledge_base"]["properties"]["operation"]["enum"]
        assert not {"create", "create_tag", "update_tag", "delete_tag"} & set(operations)
    assert not turn.marks
