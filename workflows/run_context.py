"""The state of one ``ChatWorkflow`` run, as one object its steps share.

Deterministic (only ``temporalio``, stdlib and shared types). ``RunContext`` is what every
step reads and changes: the run's status, seq, turns, usage, tools and stop request; the
steps themselves (``events``, ``llm_turn``, ``tools``, ``upstream``, ``finish``) are small
collaborators that ``ChatWorkflow`` builds around one ``RunContext``. State that only one
step needs (the upstream reader's outbox, the writer generations) lives in that step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from copilot import search
    from copilot.events.model import ToolCallSummary, to_wire
    from copilot.types import (
        RUN_FAILED,
        RUN_RUNNING,
        RUN_TIMEOUT,
        ChatRunInput,
        MarkCompleteInput,
        ToolCall,
        ToolOutcome,
        TurnRecord,
        Usage,
    )


@dataclass
class ToolState:
    call: ToolCall
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


@dataclass
class RunContext:
    """Everything a run knows. Not ``copilot.types.RunState``: that is the ``state`` query's
    answer, built from this."""

    # Set when ``run`` starts; handlers may run before it (signals in the first activation).
    input: ChatRunInput | None = None
    run_id: str = ""
    status: str = RUN_RUNNING
    seq: int = 0  # the last seq the run's log holds (as far as the workflow knows)
    turn: int = 0
    turns: list[TurnRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    error_code: str | None = None
    tools: dict[str, ToolState] = field(default_factory=dict)
    stop: str | None = None  # RUN_ABORTED | RUN_TIMEOUT once the run must stop
    llm: Any = None  # the in-flight model activity's handle, to cancel on abort
    # Tool runs the model does not wait for (decision "background"): awaited before the end.
    background: list[asyncio.Task[None]] = field(default_factory=list)
    background_waits: list[asyncio.Task[None]] = field(default_factory=list)
    host_detached: bool = False  # Sim's route: no stream open for the rejoin grace
    host_streams: int = 1  # Sim streams open on this run (the one that started it)
    # Catalog tools a search found, offered by name from the next turn (oldest first).
    loaded: list[str] = field(default_factory=list)

    def fail(self, message: str, code: str) -> None:
        self.status = RUN_FAILED
        self.error = message
        self.error_code = code

    def request_stop(self, status: str) -> None:
        if self.stop is None:
            self.stop = status
            if self.llm is not None:
                self.llm.cancel()

    async def deadline(self, seconds: int) -> None:
        await asyncio.sleep(seconds)
        self.request_stop(RUN_TIMEOUT)

    def show_status(self, status: str) -> None:
        """Keep CopilotStatus current for operators (runs started before this existed: no-op)."""
        if (
            self.input is not None
            and self.input.search_attributes
            and workflow.patched("copilot-status-search-attribute")
        ):
            workflow.upsert_search_attributes([search.STATUS.value_set(status)])

    def content(self) -> str:
        return "".join(t.content for t in self.turns)

    def tool_calls_summary(self) -> list[dict[str, Any]]:
        out = []
        for tool in self.tools.values():
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
