"""ChatWorkflow: one run of the agent loop for one chat message.

LLM turn -> tool calls -> (confirmation | host's mark-complete) -> execution -> results fed
back -> next turn, until the model answers without tools, ``max_turns`` is reached, the run
is aborted, or its hard time limit passes.

Deterministic: only ``temporalio``, stdlib and shared types. The class composes the run's
steps around one ``RunContext`` (the run's state) and holds what Temporal requires on the
workflow class itself: ``run`` and the handlers for messages from outside. Decisions and
host results arrive as *updates* with validators, so the API can answer the caller
synchronously (404 / 409) and a waiting run costs no worker slot.

    run_context.py  the run's state (RunContext, ToolState)
    events.py       event builders; EventWriter (seq, writer generations, the outbox)
    llm_turn.py     one streaming model turn        host_context.py  the host's workflow
    tools.py        tool calls: confirm, host, execute, background
    upstream.py     an upstream backend's whole answer, its tool calls and outbox
    finish.py       persist the message, write the last events
    calls.py        retry policies, the short local writes
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from copilot.events.model import PendingCall, to_wire
    from copilot.types import (
        RUN_ABORTED,
        RUN_COMPLETED,
        RUN_RUNNING,
        AbortInput,
        AbortResult,
        ChatRunInput,
        ChatRunResult,
        DecisionInput,
        DecisionResult,
        HostDetachedInput,
        MarkCompleteInput,
        OutboxBatch,
        OutboxPoll,
        RunState,
        ToolCall,
        ToolOutcome,
        TurnRecord,
    )

from workflows.events import EventWriter, prelude, status_event
from workflows.finish import finish
from workflows.host_context import load_host_context
from workflows.llm_turn import LlmTurn
from workflows.run_context import RunContext
from workflows.tools import ToolSteps
from workflows.upstream import UpstreamTurn


@workflow.defn
class ChatWorkflow:
    def __init__(self) -> None:
        self._ctx = RunContext()
        self._events = EventWriter(self._ctx)
        self._llm = LlmTurn(self._ctx, self._events)
        self._tools = ToolSteps(self._ctx, self._events)
        self._upstream = UpstreamTurn(self._ctx, self._events, self._llm, self._tools)

    # --- the loop -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ChatRunInput) -> ChatRunResult:
        ctx = self._ctx
        ctx.input = input
        ctx.run_id = input.run_id
        timer = asyncio.create_task(ctx.deadline(input.run_timeout_s))
        partial_turn: int | None = None
        try:
            partial_turn = await self._loop(input)
            if ctx.background:
                await asyncio.gather(*ctx.background)
        finally:
            timer.cancel()
            for wait in ctx.background_waits:
                wait.cancel()
        if ctx.stop is not None:
            ctx.status = ctx.stop
            for tool in ctx.tools.values():
                if tool.outcome is None:
                    tool.outcome = ToolOutcome(tool.call.id, tool.call.name, "cancelled")
                    await self._events.emit([status_event(tool, "cancelled")])
        return await finish(ctx, self._events, input, partial_turn)

    async def _loop(self, input: ChatRunInput) -> int | None:
        """Run turns; returns the turn number whose text only the log holds (aborted mid-turn)."""
        ctx = self._ctx
        first = prelude(input)
        # Sim's ask mode reads (its read-only tools); natively ask and chat offer none.
        offer_tools = input.mode != "chat" and (input.mode != "ask" or input.sim_protocol)
        if input.load_host_context and input.host_workflow_id:
            found = await load_host_context(input, input.host_workflow_id)
            if not found:
                ctx.fail(
                    f"The host app does not know workflow {input.host_workflow_id!r}: check "
                    "the workflowId (it must exist in the app at SIM_APP_URL for this user).",
                    "workflow_not_found",
                )
                await self._events.emit(first)
                return None
        while ctx.stop is None:
            if ctx.turn >= input.max_turns:
                ctx.fail(
                    f"The run stopped after {input.max_turns} model turns (MAX_TURNS) without "
                    "a final answer.",
                    "max_turns",
                )
                return None
            if input.runs_upstream_loop:
                return await self._upstream.run(input, first, offer_tools)
            ctx.turn += 1
            result = await self._llm.run(input, first, offer_tools)
            first = []
            if result is None:
                return ctx.turn if ctx.stop is not None else None
            record = TurnRecord(
                content=result.content, tool_calls=result.tool_calls, blocks=result.blocks
            )
            ctx.turns.append(record)
            if not result.tool_calls:
                ctx.status = RUN_COMPLETED
                return None
            await self._tools.run_all(input, record)
        return None

    # --- messages from outside ------------------------------------------------------------------

    @workflow.update
    async def decide(self, decision: DecisionInput) -> DecisionResult:
        tool = self._ctx.tools[decision.tool_call_id]
        if tool.decision == decision.status:
            return DecisionResult(duplicate=True)
        tool.decision = decision.status
        tool.decision_message = decision.message
        return DecisionResult(duplicate=False)

    @decide.validator
    def _validate_decide(self, decision: DecisionInput) -> None:
        tool = self._ctx.tools.get(decision.tool_call_id)
        if tool is None or not tool.requires_confirmation:
            raise ApplicationError("no such tool call awaits a decision", type="not_found")
        if decision.status not in ("accepted", "rejected", "background"):
            raise ApplicationError(
                "status must be accepted, rejected or background", type="invalid_request"
            )
        if tool.decision is not None and tool.decision != decision.status:
            raise ApplicationError(f"already {tool.decision}", type="already_decided")
        if tool.decision is None and not tool.waiting_decision:
            raise ApplicationError(f"the wait has ended ({tool.status})", type="already_decided")

    @workflow.update
    async def complete_tool(self, done: MarkCompleteInput) -> bool:
        self._ctx.tools[done.id].host_result = done
        return True

    @complete_tool.validator
    def _validate_complete(self, done: MarkCompleteInput) -> None:
        tool = self._ctx.tools.get(done.id)
        if tool is None or not tool.host_executed:
            raise ApplicationError("no such host-executed tool call", type="not_found")
        if not tool.waiting_host or tool.host_result is not None:
            raise ApplicationError(f"tool call is not waiting ({tool.status})", type="not_waiting")

    @workflow.signal
    async def host_detached(self, info: HostDetachedInput) -> None:
        """A Sim stream of this run closed before ``done``. Sim itself never rejoins, so once
        no stream is open for the grace period nobody is left to report the host's tool
        results: their waits end then, not at CLIENT_TOOL_TIMEOUT. (An upstream caller that
        resubmits the same message within the grace reattaches; see ``host_attached``.)"""
        ctx = self._ctx
        ctx.host_streams -= 1
        if ctx.host_streams <= 0 and ctx.input is not None:
            grace = ctx.input.host_rejoin_grace_s
            ctx.background_waits.append(asyncio.create_task(self._detach_after(grace)))

    @workflow.signal
    async def host_attached(self, info: HostDetachedInput) -> None:
        self._ctx.host_streams += 1

    async def _detach_after(self, grace_s: int) -> None:
        await asyncio.sleep(grace_s)
        if self._ctx.host_streams <= 0:
            self._ctx.host_detached = True

    @workflow.signal
    def backend_tool_call(self, call: ToolCall) -> None:
        self._upstream.on_tool_call(call)

    @workflow.update
    async def backend_outbox(self, poll: OutboxPoll) -> OutboxBatch:
        return await self._upstream.outbox(poll)

    @workflow.update
    async def abort(self, request: AbortInput) -> AbortResult:
        self._ctx.request_stop(RUN_ABORTED)
        return AbortResult(status=RUN_ABORTED)

    @abort.validator
    def _validate_abort(self, request: AbortInput) -> None:
        if self._ctx.status != RUN_RUNNING or self._ctx.stop is not None:
            raise ApplicationError("the run has already finished", type="finished")

    @workflow.query
    def state(self) -> RunState:
        ctx = self._ctx
        pending = [
            to_wire(
                PendingCall(
                    id=t.call.id,
                    name=t.call.name,
                    arguments=t.call.arguments,
                    waiting="decision" if t.waiting_decision else "host",
                )
            )
            for t in ctx.tools.values()
            if t.waiting_decision or t.waiting_host
        ]
        return RunState(
            run_id=ctx.run_id,
            status=ctx.status,
            turn=ctx.turn,
            last_seq=ctx.seq,
            content=ctx.content(),
            usage=ctx.usage,
            error=ctx.error,
            tool_calls=ctx.tool_calls_summary(),
            pending=pending,
        )
