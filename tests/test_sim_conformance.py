"""This server as Sim's copilot backend, judged by Sim's own code: each test drives it with
``tests/sim_client.py`` (a model of Sim at commit 190f12fd77: its payload, its server side, its
browser) and checks what Sim's server side records and what Sim's browser shows.

CONTRACT.md, "Sim-compatible routes": where the contract and Sim's code disagree, Sim's code
wins. ``item N`` names the numbered Sim-compatibility work each test checks; the others keep
what already worked working. Real processes, Temporal, PostgreSQL and Redis; the fake provider.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Services, Stack, provider_requests, running_stack, scenario
from tests.fakes.provider import FakeProviderServer
from tests.sim_browser import rec
from tests.sim_client import SimClient, SimTurn, image_attachment, integration_catalog
from tests.sim_server import ToolResult

ADMIN = "admin-sim-conformance-5c0e8b3f2a71d946"
TOKEN_CANARY = "ya29.canary-oauth-7f3e1a"
CREDENTIALS = {
    "oauth": {"google-email": {"accessToken": TOKEN_CANARY, "accountId": "acc-1", "name": "me"}},
    "apiKeys": ["OPENAI_API_KEY"],
    "metadata": {"connectedOAuth": [{"provider": "google-email", "name": "me"}],
                 "configuredApiKeys": ["OPENAI_API_KEY"]},
}  # fmt: skip
SMALL_REGISTRY = integration_catalog(12)  # a Sim whose registry needs no deferral
FINAL = ("completed", "failed", "aborted", "timeout")


@dataclass
class Sim:
    stack: Stack
    service_key: str  # the COPILOT_API_KEY of the Sim installation

    def client(self, **options: Any) -> SimClient:
        options.setdefault("catalog", SMALL_REGISTRY)
        options.setdefault("credentials", CREDENTIALS)
        return SimClient(self.stack.api_url, self.service_key, **options)

    def scenario(self, turns: list[dict[str, object]]) -> str:
        return scenario(self.stack.provider, turns)

    async def requests(self, key: str) -> list[dict[str, Any]]:
        return await provider_requests(self.stack.provider, key)

    def api(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"x-api-key": key or self.service_key}
        return httpx.AsyncClient(base_url=self.stack.api_url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def sim(services: Services, fake_provider: FakeProviderServer) -> Iterator[Sim]:
    with running_stack(services, fake_provider, COPILOT_API_KEY=ADMIN) as stack:
        resp = httpx.post(
            f"{stack.api_url}/api/validate-key/generate",
            json={"tenantName": "sim-conformance"},
            headers={"x-api-key": ADMIN},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        yield Sim(stack, resp.json()["apiKey"])


def new_chat() -> str:
    return f"sim-chat-{uuid.uuid4().hex[:12]}"  # Sim mints its chat ids


def offered(request: dict[str, Any]) -> list[str]:
    """The tool names a provider request offered the model (Anthropic or OpenAI format)."""
    tools = request["body"].get("tools") or []
    return [str(t.get("name") or rec(t.get("function")).get("name")) for t in tools]


def tool_messages(request: dict[str, Any]) -> list[str]:
    """What the model was shown of each tool result, as text."""
    out = []
    for msg in request["body"].get("messages", []):
        if msg.get("role") == "tool":
            out.append(json.dumps(msg.get("content")))
        elif isinstance(msg.get("content"), list):
            results = [b for b in msg["content"] if b.get("type") == "tool_result"]
            out += [json.dumps(b.get("content")) for b in results]
    return out


def ended(turn: SimTurn) -> bool:
    """Sim read the run to ``done`` and its browser's stream completed."""
    return bool(turn.of_type("done")) and turn.server.complete and turn.browser.complete


# --- item 1 ------------------------------------------------------------------------------------


async def test_build_mode_payload_defers_the_registry_behind_a_search(sim: Sim) -> None:
    """item 1: Sim's default build payload (1,505 deferred tools, an image) runs to done; the
    model is offered a search tool, not 1,505 tools, and then the tool it found."""
    key = sim.scenario([
        {"tool_calls": [{"name": "search_integration_tools",
                         "arguments": {"query": "send an email with gmail", "limit": 5}}]},
        {"tool_calls": [{"name": "gmail_send",
                         "arguments": {"resource_id": "bob@example.com", "content": "Hi Bob"}}]},
        {"text": "Sent the email to Bob."},
    ])  # fmt: skip
    sent = {"id": "msg-1", "labelIds": ["SENT"]}
    async with sim.client(catalog=integration_catalog(1505),
                          executors={"gmail_send": lambda _args: sent}) as client:  # fmt: skip
        turn = await client.send(f"Email Bob hello. {key}", chat_id=new_chat(),
                                 attachments=[image_attachment()])  # fmt: skip
    tools = turn.payload["integrationTools"]
    assert len(tools) == 1505
    assert all(t["defer_loading"] is True for t in tools)
    assert len(json.dumps(tools)) > 1_000_000
    assert turn.payload_bytes > 1_200_000
    assert turn.http_status == 200, (
        f"Sim's build payload ({turn.payload_bytes} bytes) was refused: {turn.server.failure}"
    )
    assert ended(turn), turn.server.errors
    requests = await sim.requests(key)
    first = offered(requests[0])
    assert "search_integration_tools" in first, f"first turn offered no search tool: {first[:8]}"
    assert len(first) < 100, f"the first turn offered {len(first)} tools"
    assert "gmail_send" in offered(requests[1]), "the found tool was not offered after the search"
    [mark] = turn.marks_for("gmail_send")
    assert (mark.status, mark.data, mark.http_status) == (200, sent, 200), mark.answer
    assert turn.visible_text == "Sent the email to Bob."


# --- item 2 ------------------------------------------------------------------------------------


async def test_reasoning_goes_to_the_thinking_block_and_the_answer_stays_visible(
    sim: Sim,
) -> None:
    """item 2: reasoning, then text."""
    reasoning, text = "They want a plan; list the blocks first.", "Here is the plan: three blocks."
    key = sim.scenario([{"reasoning": reasoning, "text": text}])
    async with sim.client() as client:
        turn = await client.send(f"Plan it. {key}", chat_id=new_chat())
    assert ended(turn)
    assert turn.server.content == text
    problems = []
    if turn.visible_text != text:
        problems.append(
            f"Sim's browser shows {turn.visible_text!r} as the answer: without reasoning "
            "phase 'end' it keeps the text in the thinking block"
        )
    if turn.thinking_text != reasoning:
        problems.append(f"Sim's browser thinking block holds {turn.thinking_text!r}")
    if turn.server.thinking_blocks != [reasoning]:
        problems.append(
            f"Sim's server side recorded thinking blocks {turn.server.thinking_blocks!r}: it "
            "opens and closes one on data.phase 'start'/'end' (not a top-level phase) and reads "
            "each chunk from data.content, data.data or a top-level content (not a string data)"
        )
    assert not problems, "\n".join(problems)


# --- item 3 ------------------------------------------------------------------------------------


async def test_server_tools_are_left_to_the_server(sim: Sim) -> None:
    """item 3: Sim neither runs our built-in ``echo`` nor reports it; both of Sim's sides end
    with our result."""
    key = sim.scenario([{"tool_calls": [{"name": "echo", "arguments": {"text": "ping"}}]},
                        {"text": "It echoed ping."}])  # fmt: skip
    async with sim.client() as client:
        turn = await client.send(f"Echo ping. {key}", chat_id=new_chat())
    assert ended(turn)
    [call] = [c for c in turn.server.tool_calls.values() if c.name == "echo"]
    problems = []
    for mark in turn.marks_for("echo"):
        problems.append(f"Sim tried to run echo itself and posted mark-complete {mark.status} "
                        f"{mark.message!r} (we answered {mark.http_status})")  # fmt: skip
    if call.error:
        problems.append(f"Sim's server side holds the error {call.error!r}")
    if call.status != "success" or call.result is None or call.result.output != {"echo": "ping"}:
        problems.append(f"Sim's server side ended with {call.status}, {call.result}")
    if turn.browser.tools.get(call.id) != "success":
        problems.append(f"Sim's browser shows the tool as {turn.browser.tools.get(call.id)}")
    assert not problems, "\n".join(problems)
    assert turn.visible_text == "It echoed ping."


# --- item 4 ------------------------------------------------------------------------------------


async def test_after_stop_the_next_message_on_the_chat_runs(sim: Sim) -> None:
    """item 4: Sim's Stop ends only the browser's stream; its route reads on and never calls
    our abort, and its next message carries no onActiveRun."""
    chat = new_chat()
    key = sim.scenario([{"chunks": [f"word{i} " for i in range(30)], "delay_ms": 150},
                        {"text": "Second answer."}])  # fmt: skip
    async with sim.client() as client:
        first = await client.send(f"Write slowly. {key}", chat_id=chat,
                                  stop_when=lambda e: e.get("type") == "content")  # fmt: skip
        assert first.browser.aborted
        assert first.visible_text.startswith("word0")
        assert first.upstream is not None
        assert not first.upstream.done()
        second = await client.send("Something else, then.", chat_id=chat)
        assert "onActiveRun" not in second.payload
        assert second.http_status == 200, (
            f"Sim's next message after Stop got {second.http_status}: {second.server.failure}"
        )
        assert ended(second)
        assert second.visible_text == "Second answer."
        await first.finished(timeout=30)  # the stopped run's stream ends too


async def test_a_host_that_hangs_up_ends_its_tools_wait_promptly(sim: Sim) -> None:
    """item 4: Sim's side goes away while a tool it should run is pending (its orchestration
    timeout, a restart): the run ends within seconds, not at CLIENT_TOOL_TIMEOUT."""
    key = sim.scenario([{"tool_calls": [{"name": "slack_message", "arguments": {"content": "hi"}}]},
                        {"text": "Posted."}])  # fmt: skip

    def at_the_tool(event: dict[str, Any]) -> bool:
        return event.get("type") == "tool_call" and rec(event.get("data")).get("name") == (
            "slack_message"
        )

    async with sim.client() as client:
        turn = await client.send(f"Say hi on Slack. {key}", chat_id=new_chat(),
                                 close_upstream_when=at_the_tool)  # fmt: skip
        assert turn.upstream_closed
        assert turn.run_id
        status, deadline = "running", asyncio.get_running_loop().time() + 10
        async with sim.api() as api:
            while status not in FINAL and asyncio.get_running_loop().time() < deadline:
                run = await api.get(f"/api/copilot/runs/{turn.run_id}",
                                    params={"userId": client.user_id})  # fmt: skip
                status = run.json()["status"]
                await asyncio.sleep(0.2)  # polling the run's status
    assert status in FINAL, f"10 s after Sim hung up, the run still waits for its tool ({status})"


# --- item 5 ------------------------------------------------------------------------------------


async def test_a_retried_turn_shows_what_is_persisted(sim: Sim) -> None:
    """item 5: the provider's stream is cut and the turn retried; Sim ignores turn_reset.
    On the OpenAI wire (gpt-4o, one of Sim's models) a retry starts the answer over, as the
    fake does. (The fake cannot stand for a provider that continues an assistant prefill: it
    would repeat the text where a real model continues it.)"""
    text = "The workflow has three blocks: a trigger, an agent and a response."
    key = sim.scenario([{"text": text, "chunk": 6, "cut_after": 4}, {"text": text, "chunk": 6}])
    chat = new_chat()
    async with sim.client() as client:
        turn = await client.send(f"Describe it. {key}", chat_id=chat, model="gpt-4o")
        async with sim.api() as api:
            saved = (await api.get(f"/api/copilot/chats/{chat}",
                                   params={"userId": client.user_id})).json()  # fmt: skip
    assert ended(turn)
    assert len(await sim.requests(key)) == 2  # the cut attempt and its retry
    persisted = saved["messages"][-1]
    assert persisted["role"] == "assistant"
    assert turn.visible_text == persisted["content"], (
        f"Sim's browser shows {turn.visible_text!r}; the chat keeps {persisted['content']!r}"
    )
    assert turn.server.content == persisted["content"]
    assert persisted["content"] == text


# --- item 6 ------------------------------------------------------------------------------------


async def test_a_large_tool_result_is_accepted_and_bounded(sim: Sim) -> None:
    """item 6: a 600 KB result is taken and the model sees a bounded view; one past the hard
    limit fails its tool at once."""
    inbox = {"messages": [{"id": f"m{i}", "snippet": "lorem ipsum " * 20} for i in range(2400)]}
    key = sim.scenario([{"tool_calls": [{"name": "gmail_read", "arguments": {"content": "all"}}]},
                        {"text": "Your inbox is full."}])  # fmt: skip
    async with sim.client(executors={"gmail_read": lambda _args: inbox},
                          orchestration_timeout=30) as client:  # fmt: skip
        turn = await client.send(f"Read my inbox. {key}", chat_id=new_chat())
    [mark] = turn.marks_for("gmail_read")
    assert mark.body_bytes > 590_000
    assert mark.http_status in (200, 202), (
        f"mark-complete of {mark.body_bytes} bytes answered {mark.http_status}: {mark.answer}"
    )
    assert ended(turn)
    assert turn.visible_text == "Your inbox is full."
    [seen] = tool_messages((await sim.requests(key))[1])
    assert len(seen) < 100_000, f"the model was shown {len(seen)} bytes of the result"
    assert "truncat" in seen.lower(), seen[:300]

    huge = {"blob": "z" * 20_000_000}
    key = sim.scenario([{"tool_calls": [{"name": "gmail_read", "arguments": {"content": "x"}}]},
                        {"text": "That was too big."}])  # fmt: skip
    async with sim.client(executors={"gmail_read": lambda _args: huge},
                          orchestration_timeout=30) as client:  # fmt: skip
        turn = await client.send(f"Read everything. {key}", chat_id=new_chat())
    [mark] = turn.marks_for("gmail_read")
    [call] = turn.server.tool_calls.values()
    assert any(e.get("toolCallId") == call.id for e in turn.of_type("tool_error")), (
        f"no tool_error for a {mark.body_bytes}-byte result (answered {mark.http_status})"
    )
    assert ended(turn)
    assert call.status == "error"


# --- item 8 ------------------------------------------------------------------------------------


async def test_error_and_chat_id_events_in_sims_shapes(sim: Sim) -> None:
    """item 8: ``error`` carries a top-level ``error`` (Sim's browser shows it); ``chat_id``
    carries ``data.chatId`` (Sim's server side) and a top-level ``chatId`` (its browser)."""
    key = sim.scenario([{"error": 401, "message": "bad key"}])
    chat = new_chat()
    async with sim.client() as client:
        turn = await client.send(f"Hello. {key}", chat_id=chat)
    assert turn.server.errors
    assert turn.browser.complete
    problems = []
    if not turn.of_type("chat_id"):
        problems.append("no chat_id event for a chat new to this server")
    if turn.server.chat_id != chat:
        problems.append(f"Sim's server side read chatId {turn.server.chat_id!r} (data.chatId)")
    if turn.browser.chat_id != chat:
        problems.append(f"Sim's browser read chatId {turn.browser.chat_id!r} (top-level chatId)")
    if not (isinstance(turn.browser.error, str) and turn.browser.error):
        problems.append(f"Sim's browser shows no error text: top-level error is "
                        f"{turn.browser.error!r}")  # fmt: skip
    assert not problems, "\n".join(problems)


# --- what already works, kept working ----------------------------------------------------------


async def test_exact_text_and_the_conversation_carries_on(sim: Sim) -> None:
    first_text, second_text = "Hello from the durable copilot.", "Still here, same chat."
    key = sim.scenario([{"text": first_text, "chunk": 4}, {"text": second_text, "chunk": 4}])
    chat = new_chat()
    async with sim.client() as client:
        first = await client.send(f"Hi there. {key}", chat_id=chat)
        second = await client.send("Are you still there?", chat_id=chat)
    assert (first.http_status, second.http_status) == (200, 200)
    assert ended(first)
    assert ended(second)
    assert (first.visible_text, first.server.content) == (first_text, first_text)
    assert (second.visible_text, second.server.content) == (second_text, second_text)
    # Sim keeps each responseId as its chat's conversationId but never sends it back: the
    # next message names only the chat, and that carries the conversation.
    assert first.server.conversation_id
    assert second.server.conversation_id
    assert second.payload["chatId"] == chat
    assert "conversationId" not in second.payload
    history = json.dumps((await sim.requests(key))[1]["body"]["messages"])
    assert "Hi there." in history
    assert first_text in history


async def test_sim_runs_an_integration_tool_once_and_reports_it_once(sim: Sim) -> None:
    key = sim.scenario([
        {"text": "Posting. ", "tool_calls": [{"name": "slack_message",
                                             "arguments": {"content": "Deploy done"}}]},
        {"text": "Posted to the channel."},
    ])  # fmt: skip
    posted: dict[str, Any] = {"ok": True, "ts": "1700000000.000100"}
    async with sim.client(executors={"slack_message": lambda _args: posted}) as client:
        turn = await client.send(f"Tell Slack. {key}", chat_id=new_chat())
        assert client.executed == [("slack_message", {"content": "Deploy done"})]
    assert ended(turn)
    assert turn.visible_text == "Posting. Posted to the channel."
    [mark] = turn.marks
    assert (mark.name, mark.status, mark.data, mark.http_status) == (
        "slack_message", 200, posted, 200,
    )  # fmt: skip
    [call] = turn.server.tool_calls.values()
    assert call.status == "success"
    assert turn.browser.tools[call.id] == "success"
    requests = json.dumps(await sim.requests(key))
    assert posted["ts"] in requests  # the model saw Sim's result
    assert TOKEN_CANARY not in requests  # nor the user's credentials, anywhere


async def test_a_tool_the_user_skips_is_reported_and_the_run_goes_on(sim: Sim) -> None:
    key = sim.scenario([{"tool_calls": [{"name": "gmail_send", "arguments": {"content": "x"}}]},
                        {"text": "Understood, not sending."}])  # fmt: skip
    ran: list[str] = []
    async with sim.client(executors={"gmail_send": lambda _args: ran.append("x")},
                          decide=lambda _name, _args: "rejected") as client:  # fmt: skip
        turn = await client.send(f"Email them. {key}", chat_id=new_chat())
    assert ran == []
    [mark] = turn.marks
    assert (mark.status, rec(mark.data).get("skipped"), mark.http_status) == (400, True, 200)
    [call] = turn.server.tool_calls.values()
    assert call.status == "rejected"
    assert turn.browser.tools[call.id] == "rejected"
    assert ended(turn)
    assert turn.visible_text == "Understood, not sending."
    assert len(await sim.requests(key)) == 2  # the model was told and answered


async def test_ask_mode_sends_no_tools_and_gets_the_answer(sim: Sim) -> None:
    """Sim's ask mode sends neither its registry nor credentials; none of its integration tools
    reaches the model (which tools of its own the server offers in ask mode is its choice)."""
    key = sim.scenario([{"text": "Blocks run in order.", "chunk": 5}])
    async with sim.client() as client:
        turn = await client.send(f"How do blocks run? {key}", chat_id=new_chat(), mode="ask")
        registry = client.registry
    assert turn.payload["mode"] == "ask"
    assert "integrationTools" not in turn.payload
    assert "credentials" not in turn.payload
    assert ended(turn)
    assert turn.visible_text == "Blocks run in order."
    assert not set(offered((await sim.requests(key))[0])) & registry
    assert not turn.marks


async def test_a_provider_error_ends_the_turn_cleanly(sim: Sim) -> None:
    key = sim.scenario([{"error": 401, "message": "bad key"}])
    async with sim.client() as client:
        turn = await client.send(f"Hello. {key}", chat_id=new_chat())
        async with sim.api() as api:
            run = (await api.get(f"/api/copilot/runs/{turn.run_id}",
                                 params={"userId": client.user_id})).json()  # fmt: skip
    assert turn.http_status == 200
    assert turn.server.failure is None
    assert turn.server.errors
    assert "API key" in turn.server.errors[0]
    assert turn.server.complete
    assert turn.browser.complete
    assert not turn.marks
    assert run["status"] == "failed"


async def test_a_tool_fake_that_fails_is_reported_as_sim_reports_it(sim: Sim) -> None:
    key = sim.scenario([{"tool_calls": [{"name": "slack_message", "arguments": {"content": "x"}}]},
                        {"text": "Slack is down."}])  # fmt: skip
    failing = {"slack_message": lambda _args: ToolResult(False, error="channel_not_found")}
    async with sim.client(executors=failing) as client:
        turn = await client.send(f"Post it. {key}", chat_id=new_chat())
    [mark] = turn.marks
    assert (mark.status, mark.message, mark.http_status) == (500, "channel_not_found", 200)
    assert ended(turn)
    assert turn.visible_text == "Slack is down."
    [call] = turn.server.tool_calls.values()
    assert turn.browser.tools[call.id] == "error"
