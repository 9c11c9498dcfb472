"""The steps a ``ChatWorkflow`` run is made of: model turns, tools, events.

Split from ``workflows/chat.py`` so each file stays readable; deterministic like it (only
``temporalio``, stdlib and shared types). ``RunSteps`` holds a run's state and the steps that
local providers and upstream backends share; ``ChatWorkflow`` adds the loop, the end and the
handlers for messages from outside.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from copilot import search
    from copilot.events.model import (
        AnyEvent,
        BaseEvent,
        ToolCallEvent,
        ToolCallInfo,
        ToolError,
        ToolErrorData,
        ToolResult,
        ToolStatus,
        to_wire,
    )
    from copilot.types import (
        RUN_FAILED,
        RUN_RUNNING,
        RUN_TIMEOUT,
        SEARCH_TOOL,
        ChatRunInput,
        ClaimLogInput,
        ExecuteToolInput,
        LoadHostContextInput,
        LoadHostContextResult,
        MarkCompleteInput,
        PublishEventsInput,
        PublishEventsResult,
        RecordToolCallsInput,
        SearchCatalogInput,
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
MAX_LOADED_TOOLS = 48  # catalog tools offered at once, after searches
# A tool that must not run twice gets one attempt: after a crash its outcome is unknown.
TOOL_ONCE = RetryPolicy(maximum_attempts=1)


@dataclass
class ToolState:
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


class RunSteps:
    def __init__(self) -> None:
        self._status = RUN_RUNNING
        self._seq = 0
        self._turn = 0
        self._turns: list[TurnRecord] = []
        self._usage = Usage()
        self._error: str | None = None
        self._error_code: str | None = None
        self._run_id = ""
        self._tools: dict[str, ToolState] = {}
        self._stop: str | None = None  # RUN_ABORTED | RUN_TIMEOUT once the run must stop
        self._llm: Any = None  # the in-flight LLM activity handle, to cancel on abort
        self._emit_lock = asyncio.Lock()
        self._input: ChatRunInput | None = None
        self._background: list[asyncio.Task[None]] = []
        self._gen = 0  # writer generations: each event-writing activity gets the next one
        # Upstream backends (workflows/upstream.py): while a reader owns the log, events queue
        # here and the reader writes them; ``_abandon_waits`` ends tool waits nobody answers.
        self._backend_live = False
        self._outbox: list[dict[str, Any]] = []
        self._abandon_waits = False
        self._host_detached = False  # Sim's route: no stream open for the rejoin grace
        self._host_streams = 1  # Sim streams open on this run (the one that started it)
        self._background_waits: list[asyncio.Task[None]] = []
        # Catalog tools a search found, offered by name from the next turn (oldest first).
        self._loaded: list[str] = []

    async def _llm_turn(
        self,
        input: ChatRunInput,
        prelude: list[dict[str, Any]],
        offer_tools: bool,
        *,
        activity: str = "stream_llm_turn",
        limit: timedelta = timedelta(minutes=10),
        summary: str = "LLM turn",
    ) -> StreamTurnResult | None:
        async with self._emit_lock:
            self._llm = workflow.start_activity(
                activity,
                StreamTurnInput(
                    sim_protocol=input.sim_protocol,
                    tool_catalog=input.tool_catalog,
                    tool_catalog_size=input.tool_catalog_size,
                    loaded_tools=list(self._loaded),
                    run_credential=input.run_credential,
                    notice=input.notice if self._turn == 1 and input.sim_protocol else None,
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
                    user_message_id=input.user_message_id,
                ),
                result_type=StreamTurnResult,
                start_to_close_timeout=limit,
                heartbeat_timeout=timedelta(seconds=5),
                retry_policy=LLM_RETRY,
                summary=f"{summary} {self._turn} · {input.model}",
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

    async def _load_host_context(self, input: ChatRunInput, workflow_id: str) -> bool:
        """The host workflow's current state, added to the user message before the first turn
        (a durable step: a retried turn reads the same context from PostgreSQL)."""
        try:
            loaded: LoadHostContextResult = await workflow.execute_activity(
                "load_host_context",
                LoadHostContextInput(
                    run_id=input.run_id,
                    user_id=input.user_id,
                    chat_id=input.chat_id,
                    host_workflow_id=workflow_id,
                ),
                result_type=LoadHostContextResult,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=TOOL_RETRY,
                summary=f"load host workflow {workflow_id}",
            )
        except ActivityError as err:
            # The host failed (not "unknown workflow"): go on without; the model may still
            # read the workflow with a tool.
            workflow.logger.warning("host context for %s not loaded: %s", workflow_id, err)
            return True
        return loaded.found

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
        tools = [self._new_tool(input, call) for call in record.tool_calls]
        await self._short_io(
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
            patch="copilot-record-tools-local",
        )
        await self._emit([self._call_event(t) for t in tools])
        await asyncio.gather(*(self._run_tool(input, t) for t in tools))
        record.outcomes = [t.outcome for t in tools if t.outcome is not None]

    def _new_tool(self, input: ChatRunInput, call: ToolCallData) -> ToolState:
        client = {t.name: t for t in input.client_tools}
        searches = bool(input.tool_catalog) and call.name == SEARCH_TOOL
        is_server = (call.name in input.server_tools or searches) and call.name not in client
        host_executed = not is_server and (input.host_executed or not input.delegate_client_tools)
        spec = client.get(call.name)
        needs = (call.name in input.confirm_always and not input.sim_protocol) or (
            not input.auto_execute
            and not input.host_executed
            and spec is not None
            and spec.requires_confirmation
        )  # Sim confirms on its side and never calls our confirm: no wait on its route
        tool = ToolState(
            call=call,
            executor="server" if is_server else "client",
            host_executed=host_executed,
            requires_confirmation=needs,
        )
        # A host may answer as soon as it sees tool_call: accept its result from then on.
        tool.waiting_host = host_executed and not needs
        self._tools[call.id] = tool
        return tool

    def _waits_over(self) -> bool:
        return self._stop is not None or self._abandon_waits

    async def _run_tool(self, input: ChatRunInput, tool: ToolState) -> None:
        call = tool.call
        if tool.requires_confirmation:
            tool.waiting_decision = True
            await self._set_status(tool, "awaiting_confirmation")
            try:
                await workflow.wait_condition(
                    lambda: tool.decision is not None or self._waits_over(),
                    timeout=timedelta(seconds=input.confirmation_timeout_s),
                )
            except TimeoutError:
                tool.waiting_decision = False
                tool.outcome = ToolOutcome(call.id, call.name, "skipped")
                await self._set_status(tool, "skipped")
                return
            tool.waiting_decision = False
            if self._stop is not None or tool.decision is None:
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
            await self._emit([self._outcome_event(tool, tool.outcome)])

    async def _run_background(self, input: ChatRunInput, tool: ToolState) -> None:
        shadow = ToolState(
            call=tool.call,
            executor=tool.executor,
            host_executed=False,
            requires_confirmation=False,
            decision=tool.decision,
        )
        await self._execute(input, shadow)
        if shadow.outcome is not None:
            await self._emit([self._outcome_event(shadow, shadow.outcome)])

    async def _execute(self, input: ChatRunInput, tool: ToolState) -> None:
        call = tool.call
        await self._set_status(tool, "executing")
        started = workflow.now()
        activity = "execute_server_tool" if tool.executor == "server" else "delegate_client_tool"
        # Delegated calls carry their id as an idempotency key, so the host dedupes a retry.
        once = tool.executor == "server" and call.name in input.non_idempotent_tools
        beat = input.tool_heartbeat_timeout_s
        arg: Any = ExecuteToolInput(
            run_id=input.run_id,
            chat_id=input.chat_id,
            tenant_id=input.tenant_id,
            user_id=input.user_id,
            tool_call_id=call.id,
            name=call.name,
            arguments=call.arguments,
            host_workflow_id=input.host_workflow_id,
        )
        catalog = input.tool_catalog if call.name == SEARCH_TOOL else None
        searching = tool.executor == "server" and catalog is not None
        if catalog is not None and searching:
            activity = "search_tool_catalog"
            arg = SearchCatalogInput(
                run_id=input.run_id,
                tool_call_id=call.id,
                catalog=catalog,
                arguments=call.arguments,
            )
        try:
            outcome: ToolOutcome = await workflow.execute_activity(
                activity,
                arg,
                result_type=ToolOutcome,
                start_to_close_timeout=timedelta(seconds=input.client_tool_timeout_s),
                # A crashed worker's tool is noticed in seconds, not at the start-to-close.
                heartbeat_timeout=timedelta(seconds=beat) if beat else None,
                retry_policy=TOOL_ONCE if once else TOOL_RETRY,
                summary=f"tool {call.name}"
                + (" · accepted by user" if tool.decision == "accepted" else ""),
            )
        except ActivityError as err:
            if self._stop is not None:
                return
            if isinstance(err.cause, ApplicationError):
                message = err.cause.message
            elif once and isinstance(err.cause, ActivityTimeout):
                message = (
                    f"{call.name} was interrupted (the worker running it stopped) and was not "
                    "run again because it is not idempotent: it may or may not have taken effect"
                )
            else:
                message = str(err)
            elapsed = int((workflow.now() - started).total_seconds() * 1000)
            outcome = ToolOutcome(call.id, call.name, "error", error=message, duration_ms=elapsed)
        if searching and outcome.status == "success":
            self._load_found(outcome.result)
        tool.outcome = outcome

    def _load_found(self, result: Any) -> None:
        """Offer what a catalog search found from the next turn on (bounded: oldest go)."""
        found = result.get("tools", []) if isinstance(result, dict) else []
        for entry in found:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str):
                if name in self._loaded:
                    self._loaded.remove(name)
                self._loaded.append(name)
        del self._loaded[:-MAX_LOADED_TOOLS]

    async def _wait_for_host(self, input: ChatRunInput, tool: ToolState) -> None:
        call = tool.call
        started = workflow.now()
        try:
            await workflow.wait_condition(
                lambda: tool.host_result is not None or self._waits_over() or self._host_detached,
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
            if self._host_detached and self._stop is None and not self._abandon_waits:
                message = f"the host closed its stream before reporting {call.name}"
                tool.outcome = ToolOutcome(call.id, call.name, "error", error=message)
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

    def _call_event(self, tool: ToolState) -> ToolCallEvent:
        call = tool.call
        # Sim's code runs every complete tool_call itself ("Tool not found" for ours, then our
        # real result dropped as a duplicate); one marked partial it records and leaves to the
        # backend, whose tool_result then completes it.
        partial = tool.executor == "server" and self._input is not None and self._input.sim_protocol
        data = ToolCallInfo(
            id=call.id,
            name=call.name,
            arguments=call.arguments,
            executor=tool.executor,
            requires_confirmation=tool.requires_confirmation,
            status="pending",
            partial=partial,
        )
        return ToolCallEvent(call.id, call.name, data)

    def _status_event(self, tool: ToolState, status: str) -> ToolStatus:
        tool.status = status
        return ToolStatus(tool.call.id, status)

    async def _set_status(self, tool: ToolState, status: str) -> None:
        await self._emit([self._status_event(tool, status)])
        if status == "awaiting_confirmation" or (
            status in ("accepted", "rejected", "skipped")
            and not any(t.waiting_decision for t in self._tools.values())
        ):
            self._show_status(
                "awaiting_confirmation" if status == "awaiting_confirmation" else RUN_RUNNING
            )

    def _show_status(self, status: str) -> None:
        """Keep CopilotStatus current for operators (runs started before this existed: no-op)."""
        if (
            self._input is not None
            and self._input.search_attributes
            and workflow.patched("copilot-status-search-attribute")
        ):
            workflow.upsert_search_attributes([search.STATUS.value_set(status)])

    def _outcome_event(self, tool: ToolState, outcome: ToolOutcome) -> BaseEvent:
        tool.status = outcome.status
        call = tool.call
        if outcome.status in ("success", "background"):
            return ToolResult(call.id, call.name, True, outcome.result, outcome.duration_ms)
        if outcome.status == "error":
            data = ToolErrorData(id=call.id, name=call.name, error=outcome.error)
            return ToolError(call.id, call.name, data, outcome.duration_ms)
        return self._status_event(tool, outcome.status)

    async def _emit(self, events: Sequence[AnyEvent]) -> None:
        if not events:
            return
        # Activities take JSON objects (recorded histories hold them): convert at the boundary.
        wire = [to_wire(e) for e in events]
        if self._backend_live:
            self._outbox.extend(wire)  # the upstream reader writes them (backend.py)
            return
        async with self._emit_lock:
            published = await self._publish(
                PublishEventsInput(
                    run_id=self._run_id,
                    seq_start=self._seq + 1,
                    events=wire,
                    writer_gen=self._next_gen(),
                )
            )
            self._seq = published.last_seq

    async def _publish(self, input: PublishEventsInput) -> PublishEventsResult:
        """Write the workflow's own events (tool statuses, results, ``done``)."""
        result: PublishEventsResult = await self._short_io(
            "publish_events", input, patch="copilot-publish-local", result_type=PublishEventsResult
        )
        return result

    async def _short_io(
        self, activity: str, arg: Any, *, patch: str, result_type: type | None = None
    ) -> Any:
        """One short idempotent write (Redis append, PostgreSQL upsert) as a local activity.

        It needs no trip through the task queue and no workflow task of its own (each cost
        ~15 ms; a tool step made five such hops, the end of a run two). Re-run after a worker
        crash before its workflow task completed, it writes the same thing again, which these
        writes skip (the log skips seqs it holds; the rows are upserts). Runs started before
        the change (``patch``) replay with the activity they recorded.
        """
        run = (
            workflow.execute_local_activity
            if workflow.patched(patch)
            else workflow.execute_activity
        )
        return await run(
            activity,
            arg,
            result_type=result_type,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=IO_RETRY,
        )

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
