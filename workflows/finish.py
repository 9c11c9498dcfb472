"""The end of a run: persist the assistant message, then write the run's last events.

Deterministic (only ``temporalio``, stdlib and shared types). ``done`` is the log's last
event; its seq is known before persisting, so the stored message names it (a client that
reads the chat later knows where the log ended).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from copilot.activity_defs import ChatActivityDefs
    from copilot.events.model import (
        BaseEvent,
        Done,
        DoneData,
        ErrorEvent,
        TitleUpdated,
        TokenUsage,
        to_wire,
    )
    from copilot.types import (
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
    # The end's events first: the seq ``done`` gets is known before persisting.
    events: list[BaseEvent] = []
    if title:
        events.append(TitleUpdated(title))
    if ctx.error is not None:
        events.append(ErrorEvent.of(ctx.error, ctx.error_code))
    usage = TokenUsage(input_tokens=ctx.usage.input_tokens, output_tokens=ctx.usage.output_tokens)
    events.append(Done(DoneData(response_id=input.response_id, status=ctx.status, usage=usage)))
    final_seq = ctx.seq + len(events)
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
            forget_credential=input.run_credential,
        ),
        patch="copilot-save-local",
    )
    async with events_out.lock:
        published = await events_out.publish(
            PublishEventsInput(
                run_id=input.run_id,
                seq_start=ctx.seq + 1,
                events=[to_wire(e) for e in events],
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
