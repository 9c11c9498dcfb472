"""The workflow's own events: how they are built, and the one writer that puts them in the log.

Deterministic (only ``temporalio``, stdlib and shared types). The workflow owns the run's
sequence numbers between activities: each event-writing activity gets the first seq it may
use and the next *writer generation* (so the log can fence out an older writer), and
returns the last seq it used. ``lock`` serialises writers: a streaming turn holds it while
its activity owns the log.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from copilot.activity_defs import EventActivityDefs
    from copilot.types import (
        EV_CHAT_ID,
        EV_START,
        EV_TOOL_CALL,
        EV_TOOL_ERROR,
        EV_TOOL_RESULT,
        EV_TOOL_STATUS,
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

    async def emit(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        if self.outbox is not None:
            self.outbox.extend(events)  # the upstream reader writes them
            return
        async with self.lock:
            published = await self.publish(
                PublishEventsInput(
                    run_id=self._ctx.run_id,
                    seq_start=self._ctx.seq + 1,
                    events=events,
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
    events: list[dict[str, Any]] = [
        {
            "type": EV_START,
            "data": {
                "responseId": input.response_id,
                "chatId": input.chat_id,
                "messageId": input.user_message_id,
                "model": input.model,
                "provider": input.provider,
                **({"notice": input.notice} if input.notice else {}),
            },
        }
    ]
    if input.new_chat:
        # Browsers read chatId; Sim's server side reads data.chatId.
        events.append(
            {"type": EV_CHAT_ID, "chatId": input.chat_id, "data": {"chatId": input.chat_id}}
        )
    return events


def call_event(tool: ToolState, sim_protocol: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": tool.call.id,
        "name": tool.call.name,
        "arguments": tool.call.arguments,
        "executor": tool.executor,
        "requiresConfirmation": tool.requires_confirmation,
        "status": "pending",
    }
    if tool.executor == "server" and sim_protocol:
        # Sim's code runs every complete tool_call itself ("Tool not found" for ours, then
        # our real result dropped as a duplicate); one marked partial it records and
        # leaves to the backend, whose tool_result then completes it.
        data["partial"] = True
    return {
        "type": EV_TOOL_CALL,
        "toolCallId": tool.call.id,
        "toolName": tool.call.name,
        "data": data,
    }


def status_event(tool: ToolState, status: str) -> dict[str, Any]:
    tool.status = status
    return {"type": EV_TOOL_STATUS, "toolCallId": tool.call.id, "status": status}


def outcome_event(tool: ToolState, outcome: ToolOutcome) -> dict[str, Any]:
    tool.status = outcome.status
    call = tool.call
    if outcome.status in ("success", "background"):
        return {
            "type": EV_TOOL_RESULT,
            "toolCallId": call.id,
            "toolName": call.name,
            "success": True,
            "result": outcome.result,
            "durationMs": outcome.duration_ms,
            "data": {
                "id": call.id,
                "name": call.name,
                "success": True,
                "result": outcome.result,
            },
        }
    if outcome.status == "error":
        return {
            "type": EV_TOOL_ERROR,
            "toolCallId": call.id,
            "toolName": call.name,
            "durationMs": outcome.duration_ms,
            "data": {"id": call.id, "name": call.name, "error": outcome.error},
        }
    return status_event(tool, outcome.status)
