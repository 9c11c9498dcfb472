"""Runs against an upstream copilot backend (provider ``copilot-backend``), in the workflow.

The upstream owns the agent loop; one reader activity (``stream_backend_turn``) streams its
whole answer. Tool calls it asks for arrive here as ``backend_tool_call`` signals while the
reader keeps reading; each runs through the same steps as a local tool call (server tool,
client tool delegated or host-executed, confirmation), then ``report_backend_tool`` answers
the upstream's wait. A call is known by the upstream's id, so a repeat (a replayed upstream
stream after a retry) never runs or reports twice.

While the reader owns the run's log, our events queue in the outbox and the reader writes
them (``backend_outbox`` update, a long poll); see ``activities/upstream.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from copilot.types import (
        RUN_COMPLETED,
        BackendToolCall,
        ChatRunInput,
        ClaimBackendLogResult,
        ClaimLogInput,
        OutboxBatch,
        OutboxPoll,
        RecordToolCallsInput,
        ReportToolInput,
        ToolCallData,
        ToolOutcome,
        TurnRecord,
    )

from workflows.steps import IO_RETRY, RunSteps, ToolState

REPORT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=8,
    non_retryable_error_types=["report_refused"],
)
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


class BackendSteps(RunSteps):
    def __init__(self) -> None:
        super().__init__()
        self._upstream_calls: dict[str, str] = {}  # upstream id -> ours
        self._backend_tasks: list[asyncio.Task[None]] = []
        self._backend_record = TurnRecord(content="")
        self._outbox_written = 0

    async def _backend_turn(
        self, input: ChatRunInput, prelude: list[dict[str, Any]], offer_tools: bool
    ) -> int | None:
        """The whole upstream answer; returns the turn only the log holds (aborted), if any."""
        self._turn += 1
        self._backend_live = True
        self._outbox_written = 0
        try:
            result = await self._llm_turn(
                input,
                prelude,
                offer_tools,
                activity="stream_backend_turn",
                limit=timedelta(seconds=input.run_timeout_s),
                summary="upstream turn",
            )
        finally:
            self._backend_live = False
        if result is not None:
            self._outbox_written = result.outbox_written
        # Whatever no reader wrote goes out now, before anything a tool emits next (the lock
        # is free and taken without a pause, so nothing can slip in between).
        await self._emit(self._outbox[self._outbox_written :])
        # The upstream has stopped listening: nobody answers a tool still waiting.
        self._abandon_waits = True
        if self._backend_tasks:
            await asyncio.gather(*self._backend_tasks)
        record = self._backend_record
        record.content = result.content if result is not None else ""
        record.outcomes = [
            self._tools[c.id].outcome or ToolOutcome(c.id, c.name, "cancelled")
            for c in record.tool_calls
        ]
        if result is None:
            return self._turn if self._stop is not None else None
        self._turns.append(record)
        if result.stop_reason in ("completed", "stop"):
            self._status = RUN_COMPLETED
        else:
            self._fail(
                f"the copilot backend ended its answer as {result.stop_reason}",
                "upstream_" + result.stop_reason,
            )
        return None

    async def _backend_tool(self, input: ChatRunInput, call: BackendToolCall) -> None:
        data = ToolCallData(call.id, call.name, call.arguments)
        self._backend_record.tool_calls.append(data)
        tool: ToolState = self._new_tool(input, data)
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
        # One call site for the run's short writes (a local activity; see RunSteps._short_io).
        await self._short_io(
            "record_tool_calls",
            RecordToolCallsInput(
                run_id=input.run_id,
                chat_id=input.chat_id,
                tenant_id=input.tenant_id,
                user_id=input.user_id,
                calls=[data],
                executors=[tool.executor],
                host_executed=[tool.host_executed],
            ),
            patch="copilot-backend-record-local",
        )
        await self._emit([self._call_event(tool)])
        if tool.outcome is None:
            await self._run_tool(input, tool)
        else:
            await self._emit([self._outcome_event(tool, tool.outcome)])
        outcome = tool.outcome
        if outcome is None or outcome.status == "cancelled" or self._stop is not None:
            return  # aborted: the reader is gone and the upstream's stream with it
        status, message, data_out = mark_complete_body(outcome)
        await workflow.execute_activity(
            "report_backend_tool",
            ReportToolInput(
                run_id=input.run_id,
                upstream_id=call.upstream_id,
                name=call.name,
                status=status,
                message=message,
                data=data_out,
            ),
            result_type=str,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=REPORT_RETRY,
            summary=f"report {call.name} · {outcome.status}",
        )

    async def _last_seq(self) -> int:
        if not self._backend_live:
            return await super()._last_seq()
        claimed: ClaimBackendLogResult = await workflow.execute_activity(
            "claim_backend_log",
            ClaimLogInput(run_id=self._run_id, writer_gen=self._next_gen()),
            result_type=ClaimBackendLogResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=IO_RETRY,
        )
        self._outbox_written = claimed.outbox_mark
        return claimed.last_seq

    @workflow.signal
    def backend_tool_call(self, call: BackendToolCall) -> None:
        if (
            self._input is None
            or not self._backend_live
            or call.upstream_id in self._upstream_calls
        ):
            return  # a repeat, or a reader that outlived its turn
        self._upstream_calls[call.upstream_id] = call.id
        self._backend_tasks.append(asyncio.create_task(self._backend_tool(self._input, call)))

    @workflow.update
    async def backend_outbox(self, poll: OutboxPoll) -> OutboxBatch:
        if self._backend_live and len(self._outbox) <= poll.after:
            # Timing out gives an empty batch: the reader polls again (bounded RPCs).
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: len(self._outbox) > poll.after or not self._backend_live,
                    timeout=timedelta(seconds=OUTBOX_POLL_S),
                )
        events = [dict(e) for e in self._outbox[poll.after :]]
        return OutboxBatch(
            events=events, next=poll.after + len(events), closed=not self._backend_live
        )
