"""Sim's server side for one message (simstudioai/sim at 190f12fd77), modelled from a reading
of Sim's code, none of it copied; ``tests/sim_client.py`` feeds it the events it reads.

- ``SimServerSide.handle`` is one turn of ``lib/copilot/orchestrator/stream-core.ts``'s loop:
  normalise, forward to the browser unless a repeated tool event, then dispatch (repeats too),
  subagent-scoped events set aside;
- the handlers are ``orchestrator/sse-handlers/handlers.ts``'s, with the options of Sim's chat
  route (``interactive: true, autoExecuteTools: true``): what ``SimServer`` records (content,
  thinking blocks opened and closed by ``phase``, tool calls, errors, ``conversationId`` from
  ``responseId``, ``chatId`` from ``data.chatId``), and which tool calls Sim executes itself:
  not a partial one, a subagent or respond tool, or one whose result it has seen; integration
  and interrupt tools only after the user's decision;
- execution is ``sse-handlers/tool-execution.ts`` (executeToolAndReport) and
  ``tool-executor/index.ts`` (executeToolServerSide: a name Sim does not know fails with "tool
  not found"), each tool replaced by a fake; the outcome is reported with ``post`` (Sim's
  markToolComplete) and a ``tool_result`` / ``tool_error`` of Sim's own to the browser.

Simplified, on purpose: the user's decision is read at once (``decisions``: the browser's
Allow / Skip or auto-allow) instead of polled, and none takes Sim's timeout path at once; the
run tools Sim's browser executes itself (``run_workflow`` and kin) run like any other; the
messages Sim posts with mark-complete are paraphrased.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.sim_browser import UNSET, Seen, event_data, js_or, js_str, normalize, rec, truthy

Executor = Callable[[dict[str, Any]], Any]  # output, a ToolResult, or raises; may be async

# Tool names Sim treats specially (orchestrator/config.ts, tool-executor/index.ts).
SERVER_TOOLS = frozenset(
    """get_blocks_and_tools get_blocks_metadata get_block_options get_block_config
    get_trigger_blocks edit_workflow get_workflow_console search_documentation search_online
    set_environment_variables get_credentials make_api_request knowledge_base""".split()  # noqa: SIM905
)
WORKFLOW_TOOLS = frozenset(
    """get_user_workflow get_workflow_from_name list_user_workflows list_user_workspaces
    list_folders create_workflow create_folder rename_workflow move_workflow move_folder
    get_workflow_data get_block_outputs get_block_upstream_references run_workflow
    run_workflow_until_block run_from_block run_block get_deployed_workflow_state
    generate_api_key get_platform_actions set_global_workflow_variables deploy_api deploy_chat
    deploy_mcp redeploy check_deployment_status list_workspace_mcp_servers
    create_workspace_mcp_server oauth_get_auth_link""".split()  # noqa: SIM905
)
INTERRUPT_TOOLS = frozenset(
    """set_global_workflow_variables run_workflow run_workflow_until_block run_from_block
    run_block manage_mcp_tool manage_custom_tool deploy_mcp deploy_chat deploy_api
    create_workspace_mcp_server set_environment_variables make_api_request
    oauth_request_access navigate_ui knowledge_base generate_api_key""".split()  # noqa: SIM905
)
SUBAGENT_TOOLS = frozenset(
    """debug edit build plan test deploy auth research knowledge custom_tool tour info
    workflow evaluate superagent discovery""".split()  # noqa: SIM905
)
RESPOND_TOOLS = frozenset(f"{n}_respond" for n in SUBAGENT_TOOLS - {"evaluate"})
# What Sim posts when it does not execute a tool: (status, message, data, its own state).
_UNDECIDED = {
    "rejected": (400, "rejected by the user", {"skipped": True, "reason": "user_rejected"}),
    "background": (202, "moved to the background", {"background": True}),
    None: (408, "approval timed out", {"skipped": True, "reason": "timeout"}),
}


@dataclass
class ToolResult:  # tool-executor's ToolCallResult
    success: bool
    output: Any = UNSET
    error: str | None = None


@dataclass
class SimToolCall:  # orchestrator/types.ts ToolCallState
    id: str
    name: str
    status: str = "pending"  # pending executing success error skipped rejected
    params: dict[str, Any] | None = None
    result: ToolResult | None = None
    error: str | None = None
    ended: bool = False


@dataclass
class SimServer:
    """What Sim's server side records (stream-core.ts's StreamingContext and result)."""

    content: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: dict[str, SimToolCall] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    failure: str | None = None  # the orchestrator's own error (a non-2xx answer, a dead stream)
    conversation_id: str | None = None
    chat_id: str | None = None
    complete: bool = False
    thinking: dict[str, Any] | None = None  # a thinking block opened by phase "start"
    subagent_parent: str | None = None
    subagent_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def thinking_blocks(self) -> list[str]:
        return [js_str(b["content"]) for b in self.blocks if b["type"] == "thinking"]


def defined(event: dict[str, Any]) -> dict[str, Any]:
    """What JSON.stringify keeps of an object holding undefined values."""
    out = {k: v for k, v in event.items() if v is not UNSET}
    if isinstance(out.get("data"), dict):
        out["data"] = defined(out["data"])
    return out


class SimServerSide:
    """Sim's orchestrator handling one message's events."""

    def __init__(
        self,
        *,
        seen: Seen,
        registry: frozenset[str],
        executors: Mapping[str, Executor],
        executed: list[tuple[str, dict[str, Any]]],
        decisions: Mapping[str, str | None],
        forward: Callable[[dict[str, Any]], None],
        post: Callable[[SimToolCall, int, str, Any], None],
    ) -> None:
        self.seen, self.registry, self.executors, self.executed = (
            seen,
            registry,
            executors,
            executed,
        )
        self.decisions, self.forward, self.post = decisions, forward, post
        self.record = SimServer()

    async def handle(self, raw: dict[str, Any]) -> None:
        """One event through stream-core.ts's loop."""
        srv, ev = self.record, normalize(raw)
        if not self.seen.skip(ev):
            self.forward(ev)
        kind, data = ev.get("type"), ev.get("data")
        d = rec(data)
        if kind == "subagent_start":
            srv.subagent_parent = d.get("tool_call_id") or srv.subagent_parent
        elif kind == "subagent_end":
            srv.subagent_parent = None
        elif ev.get("subagent") and srv.subagent_parent:
            srv.subagent_events.append(ev)
        elif kind == "tool_call":
            await self._tool_call(ev)
        elif kind in ("tool_result", "tool_error"):
            self._tool_outcome(ev)
        elif kind == "tool_generating":
            e = rec(event_data(ev))
            tool_id = js_or(ev.get("toolCallId"), e.get("toolCallId"), e.get("id"))
            name = js_or(ev.get("toolName"), e.get("toolName"), e.get("name"))
            if truthy(tool_id) and truthy(name) and tool_id not in srv.tool_calls:
                srv.tool_calls[tool_id] = SimToolCall(tool_id, name)
        elif kind == "reasoning":
            self._reasoning(ev, d)
        elif kind == "content":
            chunk = data if isinstance(data, str) else js_or(d.get("content"), d.get("data"),
                                                             ev.get("content"))  # fmt: skip
            if truthy(chunk):
                srv.content += js_str(chunk)
                srv.blocks.append({"type": "text", "content": chunk})
        elif kind in ("start", "done"):
            srv.conversation_id = d.get("responseId") or srv.conversation_id
            srv.complete = srv.complete or kind == "done"
        elif kind == "error":
            if truthy(message := js_or(d.get("message"), d.get("error"), ev.get("error"))):
                srv.errors.append(js_str(message))
            srv.complete = True
        elif kind == "chat_id":
            srv.chat_id = d.get("chatId")  # data.chatId, not the top-level chatId

    def _reasoning(self, ev: dict[str, Any], d: dict[str, Any]) -> None:
        """The phase is read from ``data`` only, a chunk from ``data.data``, ``data.content``
        or the top-level ``content`` (a string ``data`` gives none)."""
        srv = self.record
        phase = js_or(d.get("phase"), rec(d.get("data")).get("phase"))
        if phase == "start":
            srv.thinking = {"type": "thinking", "content": ""}
        elif phase == "end":
            if srv.thinking is not None:
                srv.blocks.append(srv.thinking)
            srv.thinking = None
        else:
            chunk = js_or(d.get("data"), d.get("content"), ev.get("content"))
            if truthy(chunk) and srv.thinking is not None:
                srv.thinking["content"] += js_str(chunk)

    def _tool_outcome(self, ev: dict[str, Any]) -> None:
        d = rec(event_data(ev))
        call = self.record.tool_calls.get(js_or(ev.get("toolCallId"), d.get("id")) or "")
        if call is None:
            return
        call.ended = True
        if ev.get("type") == "tool_error":
            call.status, call.error = "error", js_or(d.get("error"), "tool execution failed")
            return
        res = rec(d.get("result"))
        flag = d["success"] if d.get("success") is not None else res.get("success")
        has_result = "result" in d or "data" in d
        has_error = truthy(d.get("error")) or truthy(res.get("error"))
        explicit = "success" in d or "success" in res
        ok = truthy(flag) if explicit else has_result and not has_error
        call.status = "success" if ok else "error"
        if has_result:
            call.result = ToolResult(ok, js_or(d.get("result"), d.get("data")))
        if has_error:
            call.error = js_or(d.get("error"), res.get("error"))

    async def _tool_call(self, ev: dict[str, Any]) -> None:
        srv, d = self.record, rec(event_data(ev))
        tool_id = js_or(d.get("id"), ev.get("toolCallId"))
        name = js_or(d.get("name"), ev.get("toolName"))
        if not truthy(tool_id) or not truthy(name):
            return
        args = js_or(d.get("arguments"), d.get("input"), rec(ev.get("data")).get("input"))
        args = args if isinstance(args, dict) else None
        call = srv.tool_calls.get(tool_id)
        if call is not None and (call.ended or call.status not in ("pending", "executing")):
            call.params = call.params or args
            return
        if call is None:
            call = srv.tool_calls[tool_id] = SimToolCall(tool_id, name, params=args)
            srv.blocks.append({"type": "tool_call", "id": tool_id})
        call.params = call.params or args
        if d.get("partial") is True or tool_id in self.seen.results or name in SUBAGENT_TOOLS:
            return  # the backend is still streaming it, has run it, or runs it
        if name in RESPOND_TOOLS:
            call.status, call.ended = "success", True
            call.result = ToolResult(True, "respond tool: the copilot backend handles it")
            return
        integration = name not in SERVER_TOOLS | WORKFLOW_TOOLS and name in self.registry
        if name in INTERRUPT_TOOLS or integration:  # interactive: the user decides first
            decision = self.decisions.get(tool_id)
            if decision not in ("accepted", "success"):
                key = "rejected" if decision == "error" else decision
                status, message, data = _UNDECIDED.get(key, _UNDECIDED[None])
                call.status = "skipped" if key == "background" else "rejected"
                call.ended = True
                self.post(call, status, message, data)
                self.seen.mark_result(tool_id)
                return
        await self._execute_and_report(call)

    async def _execute_and_report(self, call: SimToolCall) -> None:
        if call.status == "executing" or call.id in self.seen.results:
            return
        call.status = "executing"
        try:
            result = await self._execute(call)
        except Exception as exc:
            call.status, call.error, call.ended = "error", str(exc), True
            self.seen.mark_result(call.id)
            self.post(call, 500, call.error, UNSET)
            failed = {"id": call.id, "name": call.name, "error": call.error}
            self.forward({"type": "tool_error", "toolCallId": call.id, "data": failed})
            return
        call.status, call.ended = ("success" if result.success else "error"), True
        call.result, call.error = result, result.error
        self.seen.mark_result(call.id)
        message = result.error or ("completed" if result.success else "failed")
        self.post(call, 200 if result.success else 500, message, result.output)
        outcome = {"id": call.id, "name": call.name, "success": result.success,
                   "result": result.output}  # fmt: skip
        self.forward(defined({"type": "tool_result", "toolCallId": call.id,
                               "toolName": call.name, "success": result.success,
                               "result": result.output, "data": outcome}))  # fmt: skip

    async def _execute(self, call: SimToolCall) -> ToolResult:
        if call.name not in SERVER_TOOLS | WORKFLOW_TOOLS and call.name not in self.registry:
            return ToolResult(False, error=f"Tool not found: {call.name}")
        fake = self.executors.get(call.name)
        if fake is None:
            return ToolResult(False, error=f"no fake executor for {call.name}")
        params = dict(call.params or {})
        self.executed.append((call.name, params))
        out = fake(params)
        if inspect.isawaitable(out):
            out = await out
        return out if isinstance(out, ToolResult) else ToolResult(True, out)
