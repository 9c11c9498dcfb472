"""Runs against an upstream copilot backend (provider ``copilot-backend``), in the workflow.

The upstream owns the agent loop; one reader activity (``stream_backend_turn``) streams its
whole answer. Tool calls it asks for arrive here as ``backend_tool_call`` signals while the
reader keeps reading; each runs through the same steps as a local tool call (server tool,
client tool delegated or host-executed, confirmation), then ``report_backend_tool`` answers
the upstream's wait. A call is known by the upstream's id, so a repeat (a replayed upstream
stream after a retry) never runs or reports twice.

While the reader owns the run's log, our events queue in the outbox and the reader writes
them (``backend_outbox`` update, a long poll); see ``activities/upstream.py``. All of that
state is this step's own; ``ChatWorkflow`` only routes the signal and the update here.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from copilot.activity_defs import UpstreamActivityDefs
    from copilot.types import (
        RUN_COMPLETED,
        ChatRunInput,
        ClaimLogInput,
        OutboxBatch,
        OutboxPoll,
        ReportToolInput,
        ToolCall,
        ToolOutcome,
        TurnRecord,
    )

from workflows.calls import IO_RETRY, REPORT_RETRY
from workflows.events import EventWriter, call_event, outcome_event
from workflows.llm_turn import LlmTurn
from workflows.run_context import RunContext, ToolState
from workflows.tools import ToolSteps

OUTBOX_POLL_S = 30


def mark_complete_body(outcome: ToolOutcome) -> tuple[int, str | None, Any]:
    """Our outcome as the upstream's mark-complete (status, message, data), as Sim sends it."""
    if outcome.status == "success":
        return 200, "Tool completed", outcome.result
    if outcome.status == "background":
        return 202, "Tool execution moved to background", {"background": True}
    if outcome.status == "rejected":
        return (
            400,
            outcome.error or "The user rejected the tool call",
            {"skipped": True, "reason": "user_rejected"},
        )
    if outcome.status == "skipped":
        return 400, "No decision was made in time", {"skipped": True, "reason": "no_decision"}
    return 500, outcome.error or "Tool failed", None


class UpstreamTurn:
    def __init__(
        self, ctx: RunContext, events: EventWriter, llm: LlmTurn, tools: ToolSteps
    ) -> None:
        self._ctx = ctx
        self._events = events
        self._llm = llm
        self._tools = tools
        self._live = False  # a reader owns the log; our events go to the outbox
        self._outbox: list[dict[str, Any]] = []
        self._outbox_written = 0  # how many of them a reader wrote
        self._upstream_calls: dict[str, str] = {}  # upstream id -> ours
        self._tasks: list[asyncio.Task[None]] = []
        self._record = TurnRecord(content="")

    async def run(
        self, input: ChatRunInput, prelude: list[dict[str, Any]], offer_tools: bool
    ) -> int | None:
        """The whole upstream answer; returns the turn only the log holds (aborted), if any."""
        ctx = self._ctx
        ctx.turn += 1
        self._set_live(True)
        self._outbox_written = 0
        try:
            result = await self._llm.run(
                input,
                prelude,
                offer_tools,
                activity=UpstreamActivityDefs.stream_backend_turn,
                claim=self._claim,
                limit=timedelta(seconds=input.run_timeout_s),
                summary="upstream turn",
            )
        finally:
            self._set_live(False)
        if result is not None:
            self._outbox_written = result.outbox_written
        # Whatever no reader wrote goes out now, before anything a tool emits next (the lock
        # is free and taken without a pause, so nothing can slip in between).
        await self._events.emit(self._outbox[self._outbox_written :])
        # The upstream has stopped listening: nobody answers a tool still waiting.
        self._tools.waits_abandoned = True
        if self._tasks:
            await asyncio.gather(*self._tasks)
        record = self._record
        record.content = result.content if result is not None else ""
        record.outcomes = [
            ctx.tools[c.id].outcome or ToolOutcome(c.id, c.name, "cancelled")
            for c in record.tool_calls
        ]
        if result is None:
            return ctx.turn if ctx.stop is not None else None
        ctx.turns.append(record)
        if result.stop_reason in ("completed", "stop"):
            ctx.status = RUN_COMPLETED
        else:
            ctx.fail(
                f"the copilot backend ended its answer as {result.stop_reason}",
                "upstream_" + result.stop_reason,
            )
        return None

    def _set_live(self, live: bool) -> None:
        self._live = live
        self._events.outbox = self._outbox if live else None

    async def _tool(self, input: ChatRunInput, call: ToolCall) -> None:
        data = ToolCall(call.id, call.name, call.arguments)
        self._record.tool_calls.append(data)
        tool: ToolState = self._tools.new(input, data)
        known = call.name in input.server_tools or any(
            t.name == call.name for t in input.client_tools
        )
        if not known and not input.host_executed and not input.delegate_client_tools:
            # Sim's host, or a host app we delegate to, may know tools we don't; here
            # nobody would ever answer, so the upstream hears at once.
            tool.outcome = ToolOutcome(
                call.id, call.name, "error", error=f"unknown tool {call.name!r}"
            )
        tool.host_executed = tool.host_executed and tool.outcome is None
        tool.waiting_host = tool.waiting_host and tool.outcome is None
        await self._tools.record(input, [tool], patch="copilot-backend-record-local")
        await self._events.emit([call_event(tool, self._tools.sim_protocol())])
        if tool.outcome is None:
            await self._tools.run(input, tool)
        else:
            await self._events.emit([outcome_event(tool, tool.outcome)])
        outcome = tool.outcome
        if outcome is None or outcome.status == "cancelled" or self._ctx.stop is not None:
            return  # aborted: the reader is gone and the upstream's stream with it
        status, message, data_out = mark_complete_body(outcome)
        await workflow.execute_activity_method(
            UpstreamActivityDefs.report_backend_tool,
            ReportToolInput(
                run_id=input.run_id,
                upstream_id=call.upstream_id,
                name=call.name,
                status=status,
                message=message,
                data=data_out,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=REPORT_RETRY,
            summary=f"report {call.name} · {outcome.status}",
        )

    async def _claim(self) -> int:
        """After a failed or cancelled reader: fence it out; where to continue, and how much
        of the outbox it wrote."""
        claimed = await workflow.execute_activity_method(
            UpstreamActivityDefs.claim_backend_log,
            ClaimLogInput(run_id=self._ctx.run_id, writer_gen=self._events.next_gen()),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=IO_RETRY,
        )
        self._outbox_written = claimed.outbox_mark
        return claimed.last_seq

    # --- ChatWorkflow's backend_tool_call signal and backend_outbox update ----------------------

    def on_tool_call(self, call: ToolCall) -> None:
        input = self._ctx.input
        if input is None or not self._live or call.upstream_id in self._upstream_calls:
            return  # a repeat, or a reader that outlived its turn
        self._upstream_calls[call.upstream_id] = call.id
        self._tasks.append(asyncio.create_task(self._tool(input, call)))

    async def outbox(self, poll: OutboxPoll) -> OutboxBatch:
        if self._live and len(self._outbox) <= poll.after:
            # Timing out gives an empty batch: the reader polls again (bounded RPCs).
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: len(self._outbox) > poll.after or not self._live,
                    timeout=timedelta(seconds=OUTBOX_POLL_S),
                )
        events = [dict(e) for e in self._outbox[poll.after :]]
        return OutboxBatch(events=events, next=poll.after + len(events), closed=not self._live)
