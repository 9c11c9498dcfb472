"""Tool calls in the workflow: confirmation, the host's mark-complete, execution, background.

Deterministic (only ``temporalio``, stdlib and shared types). A call's path: ``new`` decides
who runs it (a server tool here, a client tool delegated to the host app over HTTP or
executed by the host itself, which reports with mark-complete) and whether it waits for the
user's decision; ``run`` takes it through the wait(s) to its outcome, emitting its statuses.
Decisions and host results arrive as updates on ``ChatWorkflow``, which set them on the
call's ``ToolState``; the waits here are conditions on those fields.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from copilot.activity_defs import ToolActivityDefs
    from copilot.types import (
        RUN_RUNNING,
        SEARCH_TOOL,
        ChatRunInput,
        ExecuteToolInput,
        RecordToolCallsInput,
        SearchCatalogInput,
        ToolCall,
        ToolOutcome,
        TurnRecord,
    )

from workflows.calls import TOOL_ONCE, TOOL_RETRY, short_io
from workflows.events import EventWriter, call_event, outcome_event, status_event
from workflows.run_context import RunContext, ToolState

MAX_LOADED_TOOLS = 48  # catalog tools offered at once, after searches


class ToolSteps:
    def __init__(self, ctx: RunContext, events: EventWriter) -> None:
        self._ctx = ctx
        self._events = events
        # Nobody will answer a wait any more (an upstream that stopped listening).
        self.waits_abandoned = False

    def sim_protocol(self) -> bool:
        return self._ctx.input is not None and self._ctx.input.sim_protocol

    async def run_all(self, input: ChatRunInput, record: TurnRecord) -> None:
        """The tool calls of one model turn, concurrently; their outcomes onto ``record``."""
        tools = [self.new(input, call) for call in record.tool_calls]
        await self.record(input, tools, patch="copilot-record-tools-local")
        await self._events.emit([call_event(t, self.sim_protocol()) for t in tools])
        await asyncio.gather(*(self.run(input, t) for t in tools))
        record.outcomes = [t.outcome for t in tools if t.outcome is not None]

    async def record(self, input: ChatRunInput, tools: list[ToolState], *, patch: str) -> None:
        """The calls' rows in PostgreSQL, before anything runs (a local activity; ``patch``
        names the change that made it one, per call site, for runs started before)."""
        await short_io(
            ToolActivityDefs.record_tool_calls,
            RecordToolCallsInput(
                run_id=input.run_id,
                chat_id=input.chat_id,
                tenant_id=input.tenant_id,
                user_id=input.user_id,
                calls=[t.call for t in tools],
                executors=[t.executor for t in tools],
                host_executed=[t.host_executed for t in tools],
            ),
            patch=patch,
        )

    def new(self, input: ChatRunInput, call: ToolCall) -> ToolState:
        client = {t.name: t for t in input.client_tools}
        searches = bool(input.tool_catalog) and call.name == SEARCH_TOOL
        is_server = (call.name in input.server_tools or searches) and call.name not in client
        host_executed = not is_server and (input.host_executed or not input.delegate_client_tools)
        spec = client.get(call.name)
        # Sim confirms on its side and never calls our confirm: no wait on its route.
        asks = (spec is not None and spec.requires_confirmation) or (
            is_server and call.name in input.confirm_server_tools
        )
        needs = (call.name in input.confirm_always and not input.sim_protocol) or (
            asks and not input.auto_execute and not input.host_executed
        )
        tool = ToolState(
            call=call,
            executor="server" if is_server else "client",
            host_executed=host_executed,
            requires_confirmation=needs,
        )
        # A host may answer as soon as it sees tool_call: accept its result from then on.
        tool.waiting_host = host_executed and not needs
        self._ctx.tools[call.id] = tool
        return tool

    def _waits_over(self) -> bool:
        return self._ctx.stop is not None or self.waits_abandoned

    async def run(self, input: ChatRunInput, tool: ToolState) -> None:
        ctx = self._ctx
        call = tool.call
        if tool.requires_confirmation:
            tool.waiting_decision = True
            await self._set_status(tool, "awaiting_confirmation")
            try:
                await workflow.wait_condition(
                    lambda: tool.decision is not None or self._waits_over(),
                    timeout=timedelta(seconds=input.confirmation_timeout_s),
                )
            except TimeoutError:
                tool.waiting_decision = False
                tool.outcome = ToolOutcome(call.id, call.name, "skipped")
                await self._set_status(tool, "skipped")
                return
            tool.waiting_decision = False
            if ctx.stop is not None or tool.decision is None:
                return
            if tool.decision == "rejected":
                tool.outcome = ToolOutcome(
                    call.id, call.name, "rejected", error=tool.decision_message
                )
                await self._set_status(tool, "rejected")
                return
            tool.waiting_host = tool.host_executed and tool.decision == "accepted"
            await self._set_status(tool, "accepted")
            if tool.decision == "background":
                # Not awaited (as in Sim): the model goes on; a server tool still runs, and its
                # result is reported before the run ends.
                tool.outcome = ToolOutcome(call.id, call.name, "background")
                if not tool.host_executed:
                    ctx.background.append(asyncio.create_task(self._run_background(input, tool)))
                return
        if tool.host_executed:
            await self._wait_for_host(input, tool)
        else:
            await self._execute(input, tool)
        if tool.outcome is not None:
            await self._events.emit([outcome_event(tool, tool.outcome)])

    async def _run_background(self, input: ChatRunInput, tool: ToolState) -> None:
        shadow = ToolState(
            call=tool.call,
            executor=tool.executor,
            host_executed=False,
            requires_confirmation=False,
            decision=tool.decision,
        )
        await self._execute(input, shadow)
        if shadow.outcome is not None:
            await self._events.emit([outcome_event(shadow, shadow.outcome)])

    async def _execute(self, input: ChatRunInput, tool: ToolState) -> None:
        call = tool.call
        await self._set_status(tool, "executing")
        started = workflow.now()
        # Delegated calls carry their id as an idempotency key, so the host dedupes a retry.
        once = tool.executor == "server" and call.name in input.non_idempotent_tools
        beat = input.tool_heartbeat_timeout_s
        catalog = input.tool_catalog if call.name == SEARCH_TOOL else None
        searching = tool.executor == "server" and catalog is not None
        timeout = timedelta(seconds=input.client_tool_timeout_s)
        # A crashed worker's tool is noticed in seconds, not at the start-to-close.
        heartbeat = timedelta(seconds=beat) if beat else None
        retry = TOOL_ONCE if once else TOOL_RETRY
        summary = f"tool {call.name}" + (
            " · accepted by user" if tool.decision == "accepted" else ""
        )
        try:
            if catalog is not None and searching:
                outcome = await workflow.execute_activity_method(
                    ToolActivityDefs.search_tool_catalog,
                    SearchCatalogInput(
                        run_id=input.run_id,
                        tool_call_id=call.id,
                        catalog=catalog,
                        arguments=call.arguments,
                    ),
                    start_to_close_timeout=timeout,
                    heartbeat_timeout=heartbeat,
                    retry_policy=retry,
                    summary=summary,
                )
            else:
                outcome = await workflow.execute_activity_method(
                    ToolActivityDefs.execute_server_tool
                    if tool.executor == "server"
                    else ToolActivityDefs.delegate_client_tool,
                    ExecuteToolInput(
                        run_id=input.run_id,
                        chat_id=input.chat_id,
                        tenant_id=input.tenant_id,
                        user_id=input.user_id,
                        tool_call_id=call.id,
                        name=call.name,
                        arguments=call.arguments,
                        host_workflow_id=input.host_workflow_id,
                    ),
                    start_to_close_timeout=timeout,
                    heartbeat_timeout=heartbeat,
                    retry_policy=retry,
                    summary=summary,
                )
        except ActivityError as err:
            if self._ctx.stop is not None:
                return
            if isinstance(err.cause, ApplicationError):
                message = err.cause.message
            elif once and isinstance(err.cause, ActivityTimeout):
                message = (
                    f"{call.name} was interrupted (the worker running it stopped) and was not "
                    "run again because it is not idempotent: it may or may not have taken effect"
                )
            else:
                message = str(err)
            elapsed = int((workflow.now() - started).total_seconds() * 1000)
            outcome = ToolOutcome(call.id, call.name, "error", error=message, duration_ms=elapsed)
        if searching and outcome.status == "success":
            self._load_found(outcome.result)
        tool.outcome = outcome

    def _load_found(self, result: Any) -> None:
        """Offer what a catalog search found from the next turn on (bounded: oldest go)."""
        loaded = self._ctx.loaded
        found = result.get("tools", []) if isinstance(result, dict) else []
        for entry in found:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str):
                if name in loaded:
                    loaded.remove(name)
                loaded.append(name)
        del loaded[:-MAX_LOADED_TOOLS]

    async def _wait_for_host(self, input: ChatRunInput, tool: ToolState) -> None:
        ctx = self._ctx
        call = tool.call
        started = workflow.now()
        try:
            await workflow.wait_condition(
                lambda: tool.host_result is not None or self._waits_over() or ctx.host_detached,
                timeout=timedelta(seconds=input.client_tool_timeout_s),
            )
        except TimeoutError:
            tool.waiting_host = False
            limit = input.client_tool_timeout_s
            message = f"the host did not complete {call.name} within {limit}s"
            tool.outcome = ToolOutcome(call.id, call.name, "error", error=message)
            return
        tool.waiting_host = False
        done = tool.host_result
        if done is None:
            if ctx.host_detached and ctx.stop is None and not self.waits_abandoned:
                message = f"the host closed its stream before reporting {call.name}"
                tool.outcome = ToolOutcome(call.id, call.name, "error", error=message)
            return
        elapsed = int((workflow.now() - started).total_seconds() * 1000)
        if 200 <= done.status < 300:
            status = "background" if done.status == 202 else "success"
            result = done.data if done.data is not None else (done.message or "done")
            tool.outcome = ToolOutcome(
                call.id, call.name, status, result=result, duration_ms=elapsed
            )
        elif done.status == 400 and isinstance(done.data, dict) and done.data.get("skipped"):
            tool.outcome = ToolOutcome(
                call.id, call.name, "rejected", error=done.message, duration_ms=elapsed
            )
        else:
            default = (
                "the tool timed out on the host"
                if done.status == 408
                else f"the host answered {done.status}"
            )
            tool.outcome = ToolOutcome(
                call.id, call.name, "error", error=done.message or default, duration_ms=elapsed
            )

    async def _set_status(self, tool: ToolState, status: str) -> None:
        await self._events.emit([status_event(tool, status)])
        if status == "awaiting_confirmation" or (
            status in ("accepted", "rejected", "skipped")
            and not any(t.waiting_decision for t in self._ctx.tools.values())
        ):
            self._ctx.show_status(
                "awaiting_confirmation" if status == "awaiting_confirmation" else RUN_RUNNING
            )
