"""The end of a run: persist the assistant message, then write the run's last events.

Deterministic (only ``temporalio``, stdlib and shared types). ``done`` is the log's last
event; its seq is known before persisting, so the stored message names it (a client that
reads the chat later knows where the log ended).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from copilot.activity_defs import ChatActivityDefs
    from copilot.types import (
        EV_DONE,
        EV_ERROR,
        EV_TITLE_UPDATED,
        RUN_COMPLETED,
        ChatRunInput,
        ChatRunResult,
        PublishEventsInput,
        SaveAssistantMessageInput,
    )

from workflows.calls import short_io
from workflows.events import EventWriter
from workflows.run_context import RunContext


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


async def finish(
    ctx: RunContext, events_out: EventWriter, input: ChatRunInput, partial_turn: int | None
) -> ChatRunResult:
    ctx.show_status(ctx.status)
    title = None
    if input.new_chat and ctx.status == RUN_COMPLETED:
        title = _short(" ".join(input.title_hint.split()), 60) if input.title_hint else None
    # title_updated?, error?, done: the seq ``done`` will get, known before persisting.
    final_seq = ctx.seq + 1 + int(title is not None) + int(ctx.error is not None)
    await short_io(
        ChatActivityDefs.save_assistant_message,
        SaveAssistantMessageInput(
            run_id=input.run_id,
            chat_id=input.chat_id,
            content=ctx.content(),
            status=ctx.status,
            usage=ctx.usage,
            error=ctx.error,
            error_code=ctx.error_code,
            turns=ctx.turns,
            partial_turn=partial_turn,
            title=title,
            tool_calls=ctx.tool_calls_summary(),
            last_seq=final_seq,
        ),
        patch="copilot-save-local",
    )
    events: list[dict[str, Any]] = []
    if title:
        events.append({"type": EV_TITLE_UPDATED, "title": title})
    if ctx.error is not None:
        events.append(
            {
                "type": EV_ERROR,
                "error": ctx.error,  # where Sim's browser reads the text it shows
                "data": {"message": ctx.error, "code": ctx.error_code, "retryable": False},
            }
        )
    events.append(
        {
            "type": EV_DONE,
            "data": {
                "responseId": input.response_id,
                "status": ctx.status,
                "usage": ctx.usage.to_wire(),
            },
        }
    )
    async with events_out.lock:
        published = await events_out.publish(
            PublishEventsInput(
                run_id=input.run_id,
                seq_start=ctx.seq + 1,
                events=events,
                final=True,
                writer_gen=events_out.next_gen(),
            )
        )
        ctx.seq = published.last_seq
    return ChatRunResult(
        status=ctx.status,
        usage=ctx.usage,
        turns=ctx.turn,
        last_seq=ctx.seq,
        error_code=ctx.error_code,
    )
