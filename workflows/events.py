"""The workflow's own events: how they are built, and the one writer that puts them in the log.

Deterministic (only ``temporalio``, stdlib and shared types). The workflow owns the run's
sequence numbers between activities: each event-writing activity gets the first seq it may
use and the next *writer generation* (so the log can fence out an older writer), and
returns the last seq it used. ``lock`` serialises writers: a streaming turn holds it while
its activity owns the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from copilot.activity_defs import EventActivityDefs
    from copilot.events.model import (
        AnyEvent,
        BaseEvent,
        ChatId,
        Start,
        StartData,
        ToolCallEvent,
        ToolCallInfo,
        ToolError,
        ToolErrorData,
        ToolResult,
        ToolStatus,
        to_wire,
    )
    from copilot.types import (
        ChatRunInput,
        ClaimLogInput,
        PublishEventsInput,
        PublishEventsResult,
        ToolOutcome,
    )

from workflows.calls import IO_RETRY, short_io
from workflows.run_context import RunContext, ToolState


class EventWriter:
    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self.lock = asyncio.Lock()
        self._gen = 0  # writer generations: each event-writing activity gets the next one
        # While an upstream reader owns the log (workflows/upstream.py), events queue here
        # and the reader writes them.
        self.outbox: list[dict[str, Any]] | None = None

    def next_gen(self) -> int:
        self._gen += 1
        return self._gen

    async def emit(self, events: Sequence[AnyEvent]) -> None:
        if not events:
            return
        # Activities take JSON objects (recorded histories hold them): convert at the boundary.
        wire = [to_wire(e) for e in events]
        if self.outbox is not None:
            self.outbox.extend(wire)  # the upstream reader writes them
            return
        async with self.lock:
            published = await self.publish(
                PublishEventsInput(
                    run_id=self._ctx.run_id,
                    seq_start=self._ctx.seq + 1,
                    events=wire,
                    writer_gen=self.next_gen(),
                )
            )
            self._ctx.seq = published.last_seq

    async def publish(self, input: PublishEventsInput) -> PublishEventsResult:
        """Write the workflow's own events (tool statuses, results, ``done``)."""
        return await short_io(
            EventActivityDefs.publish_events, input, patch="copilot-publish-local"
        )

    async def claim_log(self) -> int:
        """Fence out the writer that just failed or was cancelled; continue after its last."""
        return await workflow.execute_activity_method(
            EventActivityDefs.claim_event_log,
            ClaimLogInput(run_id=self._ctx.run_id, writer_gen=self.next_gen()),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=IO_RETRY,
        )


# --- builders --------------------------------------------------------------------------------


def prelude(input: ChatRunInput) -> list[dict[str, Any]]:
    start = StartData(
        response_id=input.response_id,
        chat_id=input.chat_id,
        message_id=input.user_message_id,
        model=input.model,
        provider=input.provider,
        notice=input.notice or None,
    )
    events: list[BaseEvent] = [Start(start)]
    if input.new_chat:
        events.append(ChatId(input.chat_id))
    # The prelude travels in StreamTurnInput (recorded histories): as JSON objects.
    return [to_wire(e) for e in events]


def call_event(tool: ToolState, sim_protocol: bool) -> ToolCallEvent:
    call = tool.call
    # Sim's code runs every complete tool_call itself ("Tool not found" for ours, then our
    # real result dropped as a duplicate); one marked partial it records and leaves to the
    # backend, whose tool_result then completes it.
    data = ToolCallInfo(
        id=call.id,
        name=call.name,
        arguments=call.arguments,
        executor=tool.executor,
        requires_confirmation=tool.requires_confirmation,
        status="pending",
        partial=tool.executor == "server" and sim_protocol,
    )
    return ToolCallEvent(call.id, call.name, data)


def status_event(tool: ToolState, status: str) -> ToolStatus:
    tool.status = status
    return ToolStatus(tool.call.id, status)


def outcome_event(tool: ToolState, outcome: ToolOutcome) -> BaseEvent:
    tool.status = outcome.status
    call = tool.call
    if outcome.status in ("success", "background"):
        return ToolResult(call.id, call.name, True, outcome.result, outcome.duration_ms)
    if outcome.status == "error":
        data = ToolErrorData(id=call.id, name=call.name, error=outcome.error)
        return ToolError(call.id, call.name, data, outcome.duration_ms)
    return status_event(tool, outcome.status)
