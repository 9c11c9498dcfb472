"""ChatWorkflow: one run of the agent loop for one chat message.

LLM turn -> tool calls -> (confirmation | host's mark-complete) -> execution -> results fed
back -> next turn, until the model answers without tools, ``max_turns`` is reached, the run
is aborted, or its hard time limit passes.

Deterministic: only ``temporalio``, stdlib and shared types. The workflow owns the run's
sequence numbers between activities (each activity gets the first seq it may use and returns
the last it used), so seq never restarts whatever the event log's fate. Tokens never pass
through here: the streaming activity writes them to the log and returns the finished text.
Decisions and host results arrive as *updates* with validators, so the API can answer the
caller synchronously (404 / 409) and a waiting run costs no worker slot.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from copilot.events.model import (
        BaseEvent,
        ChatId,
        Done,
        DoneData,
        ErrorEvent,
        PendingCall,
        Start,
        StartData,
        TitleUpdated,
        TokenUsage,
        ToolCallSummary,
        to_wire,
    )
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
        PublishEventsInput,
        RunState,
        SaveAssistantMessageInput,
        SaveAssistantMessageResult,
        ToolOutcome,
        TurnRecord,
    )

from workflows.upstream import BackendSteps


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@workflow.defn
class ChatWorkflow(BackendSteps):
    # --- the loop -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ChatRunInput) -> ChatRunResult:
        self._input = input
        self._run_id = input.run_id
        timer = asyncio.create_task(self._deadline(input.run_timeout_s))
        partial_turn: int | None = None
        try:
            partial_turn = await self._loop(input)
            if self._background:
                await asyncio.gather(*self._background)
        finally:
            timer.cancel()
            for wait in self._background_waits:
                wait.cancel()
        if self._stop is not None:
            self._status = self._stop
            for tool in self._tools.values():
                if tool.outcome is None:
                    tool.outcome = ToolOutcome(tool.call.id, tool.call.name, "cancelled")
                    await self._emit([self._status_event(tool, "cancelled")])
        return await self._finish(input, partial_turn)

    async def _loop(self, input: ChatRunInput) -> int | None:
        """Run turns; returns the turn number whose text only the log holds (aborted mid-turn)."""
        prelude = self._prelude(input)
        # Sim's ask mode reads (its read-only tools); natively ask and chat offer none.
        offer_tools = input.mode != "chat" and (input.mode != "ask" or input.sim_protocol)
        if input.load_host_context and input.host_workflow_id:
            found = await self._load_host_context(input, input.host_workflow_id)
            if not found:
                self._fail(
                    f"The host app does not know workflow {input.host_workflow_id!r}: check "
                    "the workflowId (it must exist in the app at SIM_APP_URL for this user).",
                    "workflow_not_found",
                )
                await self._emit(prelude)
                return None
        while self._stop is None:
            if self._turn >= input.max_turns:
                self._fail(
                    f"The run stopped after {input.max_turns} model turns (MAX_TURNS) without "
                    "a final answer.",
                    "max_turns",
                )
                return None
            if input.runs_upstream_loop:
                return await self._backend_turn(input, prelude, offer_tools)
            self._turn += 1
            result = await self._llm_turn(input, prelude, offer_tools)
            prelude = []
            if result is None:
                return self._turn if self._stop is not None else None
            record = TurnRecord(
                content=result.content, tool_calls=result.tool_calls, blocks=result.blocks
            )
            self._turns.append(record)
            if not result.tool_calls:
                self._status = RUN_COMPLETED
                return None
            await self._run_tools(input, record)
        return None

    def _prelude(self, input: ChatRunInput) -> list[dict[str, Any]]:
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

    # --- the end ------------------------------------------------------------------------------

    def _tool_calls_summary(self) -> list[dict[str, Any]]:
        out = []
        for tool in self._tools.values():
            outcome = tool.outcome
            summary = ToolCallSummary(
                id=tool.call.id,
                name=tool.call.name,
                arguments=tool.call.arguments,
                executor=tool.executor,
                status=outcome.status if outcome else tool.status,
                result=outcome.result if outcome else None,
                error=outcome.error if outcome else None,
                duration_ms=outcome.duration_ms if outcome else 0,
            )
            out.append(to_wire(summary))
        return out

    async def _finish(self, input: ChatRunInput, partial_turn: int | None) -> ChatRunResult:
        self._show_status(self._status)
        title = None
        if input.new_chat and self._status == RUN_COMPLETED:
            title = _short(" ".join(input.title_hint.split()), 60) if input.title_hint else None
        # The end's events first: the seq ``done`` gets is known before persisting.
        events: list[BaseEvent] = []
        if title:
            events.append(TitleUpdated(title))
        if self._error is not None:
            events.append(ErrorEvent.of(self._error, self._error_code))
        usage = TokenUsage(
            input_tokens=self._usage.input_tokens, output_tokens=self._usage.output_tokens
        )
        done = DoneData(response_id=input.response_id, status=self._status, usage=usage)
        events.append(Done(done))
        final_seq = self._seq + len(events)
        saved = await self._short_io(
            "save_assistant_message",
            SaveAssistantMessageInput(
                run_id=input.run_id,
                chat_id=input.chat_id,
                content="".join(t.content for t in self._turns),
                status=self._status,
                usage=self._usage,
                error=self._error,
                error_code=self._error_code,
                turns=self._turns,
                partial_turn=partial_turn,
                title=title,
                tool_calls=self._tool_calls_summary(),
                last_seq=final_seq,
            ),
            patch="copilot-save-local",
            result_type=SaveAssistantMessageResult,
        )
        del saved
        async with self._emit_lock:
            published = await self._publish(
                PublishEventsInput(
                    run_id=input.run_id,
                    seq_start=self._seq + 1,
                    events=[to_wire(e) for e in events],
                    final=True,
                    writer_gen=self._next_gen(),
                )
            )
            self._seq = published.last_seq
        return ChatRunResult(
            status=self._status,
            usage=self._usage,
            turns=self._turn,
            last_seq=self._seq,
            error_code=self._error_code,
        )

    # --- messages from outside ------------------------------------------------------------------

    @workflow.update
    async def decide(self, decision: DecisionInput) -> DecisionResult:
        tool = self._tools[decision.tool_call_id]
        if tool.decision == decision.status:
            return DecisionResult(duplicate=True)
        tool.decision = decision.status
        tool.decision_message = decision.message
        return DecisionResult(duplicate=False)

    @decide.validator
    def _validate_decide(self, decision: DecisionInput) -> None:
        tool = self._tools.get(decision.tool_call_id)
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
        self._tools[done.id].host_result = done
        return True

    @complete_tool.validator
    def _validate_complete(self, done: MarkCompleteInput) -> None:
        tool = self._tools.get(done.id)
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
        self._host_streams -= 1
        if self._host_streams <= 0 and self._input is not None:
            grace = self._input.host_rejoin_grace_s
            self._background_waits.append(asyncio.create_task(self._detach_after(grace)))

    @workflow.signal
    async def host_attached(self, info: HostDetachedInput) -> None:
        self._host_streams += 1

    async def _detach_after(self, grace_s: int) -> None:
        await asyncio.sleep(grace_s)
        if self._host_streams <= 0:
            self._host_detached = True

    @workflow.update
    async def abort(self, request: AbortInput) -> AbortResult:
        self._request_stop(RUN_ABORTED)
        return AbortResult(status=RUN_ABORTED)

    @abort.validator
    def _validate_abort(self, request: AbortInput) -> None:
        if self._status != RUN_RUNNING or self._stop is not None:
            raise ApplicationError("the run has already finished", type="finished")

    @workflow.query
    def state(self) -> RunState:
        pending = [
            to_wire(
                PendingCall(
                    id=t.call.id,
                    name=t.call.name,
                    arguments=t.call.arguments,
                    waiting="decision" if t.waiting_decision else "host",
                )
            )
            for t in self._tools.values()
            if t.waiting_decision or t.waiting_host
        ]
        return RunState(
            run_id=self._run_id,
            status=self._status,
            turn=self._turn,
            last_seq=self._seq,
            content="".join(t.content for t in self._turns),
            usage=self._usage,
            error=self._error,
            tool_calls=self._tool_calls_summary(),
            pending=pending,
        )
