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
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from copilot import search
    from copilot.types import (
        EV_CHAT_ID,
        EV_DONE,
        EV_ERROR,
        EV_START,
        EV_TITLE_UPDATED,
        EV_TOOL_CALL,
        EV_TOOL_ERROR,
        EV_TOOL_RESULT,
        EV_TOOL_STATUS,
        RUN_ABORTED,
        RUN_COMPLETED,
        RUN_FAILED,
        RUN_RUNNING,
        RUN_TIMEOUT,
        AbortInput,
        AbortResult,
        ChatRunInput,
        ChatRunResult,
        ClaimLogInput,
        DecisionInput,
        DecisionResult,
        ExecuteToolInput,
        MarkCompleteInput,
        PublishEventsInput,
        PublishEventsResult,
        RecordToolCallsInput,
        RunState,
        SaveAssistantMessageInput,
        SaveAssistantMessageResult,
        StreamTurnInput,
        StreamTurnResult,
        ToolCallData,
        ToolOutcome,
        TurnRecord,
        Usage,
    )

LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
)
IO_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,  # storage and the event log must eventually take the write
)
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=["tool_failed"],
)


@dataclass
class _Tool:
    call: ToolCallData
    executor: str  # server | client
    host_executed: bool
    requires_confirmation: bool
    status: str = "pending"
    decision: str | None = None
    decision_message: str | None = None
    waiting_decision: bool = False
    waiting_host: bool = False
    host_result: MarkCompleteInput | None = None
    outcome: ToolOutcome | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@workflow.defn
class ChatWorkflow:
    def __init__(self) -> None:
        self._status = RUN_RUNNING
        self._seq = 0
        self._turn = 0
        self._turns: list[TurnRecord] = []
        self._usage = Usage()
        self._error: str | None = None
        self._error_code: str | None = None
        self._run_id = ""
        self._tools: dict[str, _Tool] = {}
        self._stop: str | None = None  # RUN_ABORTED | RUN_TIMEOUT once the run must stop
        self._llm: Any = None  # the in-flight LLM activity handle, to cancel on abort
        self._emit_lock = asyncio.Lock()
        self._input: ChatRunInput | None = None
        self._background: list[asyncio.Task[None]] = []
        self._gen = 0  # writer generations: each event-writing activity gets the next one

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
        offer_tools = input.mode not in ("ask", "chat")
        while self._stop is None:
            if self._turn >= input.max_turns:
                self._fail(
                    f"The run stopped after {input.max_turns} model turns (MAX_TURNS) without "
                    "a final answer.",
                    "max_turns",
                )
                return None
            self._turn += 1
            result = await self._llm_turn(input, prelude, offer_tools)
            prelude = []
            if result is None:
                return self._turn if self._stop is not None else None
            record = TurnRecord(content=result.content, tool_calls=result.tool_calls,
                                blocks=result.blocks)  # fmt: skip
            self._turns.append(record)
            if not result.tool_calls:
                self._status = RUN_COMPLETED
                return None
            await self._run_tools(input, record)
        return None

    def _prelude(self, input: ChatRunInput) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = [
            {
                "type": EV_START,
                "data": {
                    "responseId": input.response_id,
                    "chatId": input.chat_id,
                    "messageId": input.user_message_id,
                    "model": input.model,
                    "provider": input.provider,
                },
            }
        ]
        if input.new_chat:
            events.append({"type": EV_CHAT_ID, "chatId": input.chat_id})
        return events

    async def _llm_turn(
        self, input: ChatRunInput, prelude: list[dict[str, Any]], offer_tools: bool
    ) -> StreamTurnResult | None:
        async with self._emit_lock:
            self._llm = workflow.start_activity(
                "stream_llm_turn",
                StreamTurnInput(
                    run_id=input.run_id,
                    chat_id=input.chat_id,
                    tenant_id=input.tenant_id,
                    user_id=input.user_id,
                    model=input.model,
                    provider=input.provider,
                    turn=self._turn,
                    seq_start=self._seq + 1,
                    prelude=prelude,
                    mode=input.mode,
                    client_tools=input.client_tools,
                    offer_tools=offer_tools,
                    prior_turns=self._turns,
                    host_workflow_id=input.host_workflow_id,
                    writer_gen=self._next_gen(),
                ),
                result_type=StreamTurnResult,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=5),
                retry_policy=LLM_RETRY,
                summary=f"LLM turn {self._turn} · {input.model}",
            )
            try:
                result: StreamTurnResult = await self._llm
            except asyncio.CancelledError:
                if self._stop is None:
                    raise  # not ours: the workflow itself is being cancelled
                self._seq = max(self._seq, await self._last_seq())
                return None
            except ActivityError as err:
                self._seq = max(self._seq, await self._last_seq())
                if self._stop is None:
                    cause = err.cause
                    if isinstance(cause, ApplicationError):
                        self._fail(cause.message, cause.type or "provider_error")
                    else:
                        self._fail("the model call did not complete", "provider_error")
                return None
            finally:
                self._llm = None
            self._seq = result.last_seq
        self._usage.add(result.usage)
        return result

    def _fail(self, message: str, code: str) -> None:
        self._status = RUN_FAILED
        self._error = message
        self._error_code = code

    async def _deadline(self, seconds: int) -> None:
        await asyncio.sleep(seconds)
        self._request_stop(RUN_TIMEOUT)

    def _request_stop(self, status: str) -> None:
        if self._stop is None:
            self._stop = status
            if self._llm is not None:
                self._llm.cancel()

    # --- tools --------------------------------------------------------------------------------

    async def _run_tools(self, input: ChatRunInput, record: TurnRecord) -> None:
        client = {t.name: t for t in input.client_tools}
        server = set(input.server_tools)
        tools: list[_Tool] = []
        for call in record.tool_calls:
            is_server = call.name in server and call.name not in client
            host_executed = not is_server and (
                input.host_executed or not input.delegate_client_tools
            )
            spec = client.get(call.name)
            needs = call.name in input.confirm_always or (
                not input.auto_execute
                and not input.host_executed
                and spec is not None
                and spec.requires_confirmation
            )
            tool = _Tool(call=call, executor="server" if is_server else "client",
                         host_executed=host_executed, requires_confirmation=needs)  # fmt: skip
            # A host may answer as soon as it sees tool_call: accept its result from then on.
            tool.waiting_host = host_executed and not needs
            self._tools[call.id] = tool
            tools.append(tool)
        await workflow.execute_activity(
            "record_tool_calls",
            RecordToolCallsInput(
                run_id=input.run_id,
                chat_id=input.chat_id,
                tenant_id=input.tenant_id,
                user_id=input.user_id,
                calls=record.tool_calls,
                executors=[t.executor for t in tools],
                host_executed=[t.host_executed for t in tools],
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=IO_RETRY,
        )
        await self._emit([self._call_event(t) for t in tools])
        await asyncio.gather(*(self._run_tool(input, t) for t in tools))
        record.outcomes = [t.outcome for t in tools if t.outcome is not None]

    async def _run_tool(self, input: ChatRunInput, tool: _Tool) -> None:
        call = tool.call
        if tool.requires_confirmation:
            tool.waiting_decision = True
            await self._set_status(tool, "awaiting_confirmation")
            try:
                await workflow.wait_condition(
                    lambda: tool.decision is not None or self._stop is not None,
                    timeout=timedelta(seconds=input.confirmation_timeout_s),
                )
            except TimeoutError:
                tool.waiting_decision = False
                tool.outcome = ToolOutcome(call.id, call.name, "skipped")
                await self._set_status(tool, "skipped")
                return
            tool.waiting_decision = False
            if self._stop is not None:
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
                    self._background.append(asyncio.create_task(self._run_background(input, tool)))
                return
        if tool.host_executed:
            await self._wait_for_host(input, tool)
        else:
            await self._execute(input, tool)
        if tool.outcome is not None:
            await self._emit([self._outcome_event(tool)])

    async def _run_background(self, input: ChatRunInput, tool: _Tool) -> None:
        shadow = _Tool(call=tool.call, executor=tool.executor, host_executed=False,
                       requires_confirmation=False, decision=tool.decision)  # fmt: skip
        await self._execute(input, shadow)
        if shadow.outcome is not None:
            await self._emit([self._outcome_event(shadow)])

    async def _execute(self, input: ChatRunInput, tool: _Tool) -> None:
        call = tool.call
        await self._set_status(tool, "executing")
        started = workflow.now()
        activity = "execute_server_tool" if tool.executor == "server" else "delegate_client_tool"
        try:
            outcome: ToolOutcome = await workflow.execute_activity(
                activity,
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
                result_type=ToolOutcome,
                start_to_close_timeout=timedelta(seconds=input.client_tool_timeout_s),
                retry_policy=TOOL_RETRY,
                summary=f"tool {call.name}"
                + (" · accepted by user" if tool.decision == "accepted" else ""),
            )
        except ActivityError as err:
            if self._stop is not None:
                return
            message = err.cause.message if isinstance(err.cause, ApplicationError) else str(err)
            elapsed = int((workflow.now() - started).total_seconds() * 1000)
            outcome = ToolOutcome(call.id, call.name, "error", error=message, duration_ms=elapsed)
        tool.outcome = outcome

    async def _wait_for_host(self, input: ChatRunInput, tool: _Tool) -> None:
        call = tool.call
        started = workflow.now()
        try:
            await workflow.wait_condition(
                lambda: tool.host_result is not None or self._stop is not None,
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

    # --- events -------------------------------------------------------------------------------

    def _call_event(self, tool: _Tool) -> dict[str, Any]:
        return {
            "type": EV_TOOL_CALL,
            "toolCallId": tool.call.id,
            "toolName": tool.call.name,
            "data": {
                "id": tool.call.id,
                "name": tool.call.name,
                "arguments": tool.call.arguments,
                "executor": tool.executor,
                "requiresConfirmation": tool.requires_confirmation,
                "status": "pending",
            },
        }

    def _status_event(self, tool: _Tool, status: str) -> dict[str, Any]:
        tool.status = status
        return {"type": EV_TOOL_STATUS, "toolCallId": tool.call.id, "status": status}

    async def _set_status(self, tool: _Tool, status: str) -> None:
        await self._emit([self._status_event(tool, status)])
        if status == "awaiting_confirmation" or (
            status in ("accepted", "rejected", "skipped")
            and not any(t.waiting_decision for t in self._tools.values())
        ):
            self._show_status("awaiting_confirmation" if status == "awaiting_confirmation"
                              else RUN_RUNNING)  # fmt: skip

    def _show_status(self, status: str) -> None:
        """Keep CopilotStatus current for operators (runs started before this existed: no-op)."""
        if (
            self._input is not None
            and self._input.search_attributes
            and workflow.patched("copilot-status-search-attribute")
        ):
            workflow.upsert_search_attributes([search.STATUS.value_set(status)])

    def _outcome_event(self, tool: _Tool) -> dict[str, Any]:
        outcome = tool.outcome
        assert outcome is not None
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
        return self._status_event(tool, outcome.status)

    async def _emit(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        async with self._emit_lock:
            published = await workflow.execute_activity(
                "publish_events",
                PublishEventsInput(
                    run_id=self._run_id,
                    seq_start=self._seq + 1,
                    events=events,
                    writer_gen=self._next_gen(),
                ),
                result_type=PublishEventsResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=IO_RETRY,
            )
            self._seq = published.last_seq

    def _next_gen(self) -> int:
        self._gen += 1
        return self._gen

    async def _last_seq(self) -> int:
        """Fence out the writer that just failed or was cancelled; continue after its last."""
        last: int = await workflow.execute_activity(
            "claim_event_log",
            ClaimLogInput(run_id=self._run_id, writer_gen=self._next_gen()),
            result_type=int,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=IO_RETRY,
        )
        return last

    # --- the end ------------------------------------------------------------------------------

    def _tool_calls_summary(self) -> list[dict[str, Any]]:
        out = []
        for tool in self._tools.values():
            outcome = tool.outcome
            out.append(
                {
                    "id": tool.call.id,
                    "name": tool.call.name,
                    "arguments": tool.call.arguments,
                    "executor": tool.executor,
                    "status": outcome.status if outcome else tool.status,
                    "result": outcome.result if outcome else None,
                    "error": outcome.error if outcome else None,
                    "durationMs": outcome.duration_ms if outcome else 0,
                }
            )
        return out

    async def _finish(self, input: ChatRunInput, partial_turn: int | None) -> ChatRunResult:
        self._show_status(self._status)
        title = None
        if input.new_chat and self._status == RUN_COMPLETED:
            title = _short(" ".join(input.title_hint.split()), 60) if input.title_hint else None
        # title_updated?, error?, done: the seq ``done`` will get, known before persisting.
        final_seq = self._seq + 1 + int(title is not None) + int(self._error is not None)
        saved = await workflow.execute_activity(
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
            result_type=SaveAssistantMessageResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=IO_RETRY,
        )
        del saved
        events: list[dict[str, Any]] = []
        if title:
            events.append({"type": EV_TITLE_UPDATED, "title": title})
        if self._error is not None:
            events.append(
                {
                    "type": EV_ERROR,
                    "data": {"message": self._error, "code": self._error_code, "retryable": False},
                }
            )
        events.append(
            {
                "type": EV_DONE,
                "data": {
                    "responseId": input.response_id,
                    "status": self._status,
                    "usage": self._usage.to_wire(),
                },
            }
        )
        async with self._emit_lock:
            published = await workflow.execute_activity(
                "publish_events",
                PublishEventsInput(
                    run_id=input.run_id,
                    seq_start=self._seq + 1,
                    events=events,
                    final=True,
                    writer_gen=self._next_gen(),
                ),
                start_to_close_timeout=timedelta(seconds=30),
                result_type=PublishEventsResult,
                retry_policy=IO_RETRY,
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
            raise ApplicationError("status must be accepted, rejected or background",
                                   type="invalid_request")  # fmt: skip
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
            {
                "id": t.call.id,
                "name": t.call.name,
                "arguments": t.call.arguments,
                "waiting": "decision" if t.waiting_decision else "host",
            }
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
