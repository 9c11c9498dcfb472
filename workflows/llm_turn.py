"""One streaming model turn (or, for an upstream backend, its whole answer).

Deterministic (only ``temporalio``, stdlib and shared types). Tokens never pass through the
workflow: the streaming activity writes them to the run's log and returns the finished
text, the tool calls and the last seq it wrote. It holds the event writer's lock while it
owns the log; an abort or the deadline cancels it (``RunContext.request_stop``), and a
failed or cancelled writer is fenced out before anything else writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from copilot.activity_defs import LlmActivityDefs
    from copilot.types import ChatRunInput, StreamTurnInput, StreamTurnResult

from workflows.calls import LLM_RETRY
from workflows.events import EventWriter
from workflows.run_context import RunContext

# ``stream_llm_turn`` or ``stream_backend_turn``: same input, same result.
StreamActivity = Callable[[Any, StreamTurnInput], Awaitable[StreamTurnResult]]


class LlmTurn:
    def __init__(self, ctx: RunContext, events: EventWriter) -> None:
        self._ctx = ctx
        self._events = events

    async def run(
        self,
        input: ChatRunInput,
        prelude: list[dict[str, Any]],
        offer_tools: bool,
        *,
        activity: StreamActivity = LlmActivityDefs.stream_llm_turn,
        claim: Callable[[], Awaitable[int]] | None = None,
        limit: timedelta = timedelta(minutes=10),
        summary: str = "LLM turn",
    ) -> StreamTurnResult | None:
        """The finished turn, or None when it failed (the run failed) or was stopped.

        ``claim``: how to fence out the failed writer and learn its last seq (default: the
        run's own log; an upstream reader also reports how much of the outbox it wrote).
        """
        ctx = self._ctx
        claim = claim or self._events.claim_log
        async with self._events.lock:
            ctx.llm = workflow.start_activity_method(
                activity,
                StreamTurnInput(
                    sim_protocol=input.sim_protocol,
                    tool_catalog=input.tool_catalog,
                    tool_catalog_size=input.tool_catalog_size,
                    loaded_tools=list(ctx.loaded),
                    run_credential=input.run_credential,
                    notice=input.notice if ctx.turn == 1 and input.sim_protocol else None,
                    run_id=input.run_id,
                    chat_id=input.chat_id,
                    tenant_id=input.tenant_id,
                    user_id=input.user_id,
                    model=input.model,
                    provider=input.provider,
                    turn=ctx.turn,
                    seq_start=ctx.seq + 1,
                    prelude=prelude,
                    mode=input.mode,
                    client_tools=input.client_tools,
                    offer_tools=offer_tools,
                    prior_turns=ctx.turns,
                    host_workflow_id=input.host_workflow_id,
                    writer_gen=self._events.next_gen(),
                    user_message_id=input.user_message_id,
                ),
                start_to_close_timeout=limit,
                heartbeat_timeout=timedelta(seconds=5),
                retry_policy=LLM_RETRY,
                summary=f"{summary} {ctx.turn} · {input.model}",
            )
            try:
                result: StreamTurnResult = await ctx.llm
            except asyncio.CancelledError:
                if ctx.stop is None:
                    raise  # not ours: the workflow itself is being cancelled
                ctx.seq = max(ctx.seq, await claim())
                return None
            except ActivityError as err:
                ctx.seq = max(ctx.seq, await claim())
                if ctx.stop is None:
                    cause = err.cause
                    if isinstance(cause, ApplicationError):
                        ctx.fail(cause.message, cause.type or "provider_error")
                    else:
                        ctx.fail("the model call did not complete", "provider_error")
                return None
            finally:
                ctx.llm = None
            ctx.seq = result.last_seq
        ctx.usage.add(result.usage)
        return result
