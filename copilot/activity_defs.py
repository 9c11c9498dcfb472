"""Every activity's signature, declared once: the names, inputs and results the workflow calls.

Ground floor: ``temporalio.activity``, stdlib and ``copilot.types`` only, so the workflow
sandbox imports it cheaply and ``workflows/`` never reaches up into ``activities/`` (which
pull in SQLAlchemy, httpx, the provider SDKs). Why declarations rather than importing the
activity classes under ``imports_passed_through`` (the SDK's other way to call by
reference): the workflow would then depend on the top floors, and a change deep in an
activity's imports could change what the sandbox loads.

The classes in ``activities/`` subclass these and override each method with its own
``@activity.defn`` (same name), so ``mypy --strict`` checks that implementation and
declaration agree; ``tests/test_activity_defs.py`` checks that the worker registers exactly
these names. The workflow calls ``workflow.execute_activity_method(Decl.method, ...)``, which
takes the activity's name and result type from here, so mypy checks its input and result.

Names are pinned (``name=``): they are in every recorded history and must never change. A
few results are not dataclasses (``claim_event_log -> int``, ``record_tool_calls -> None``,
``report_backend_tool -> str``) because recorded runs hold those results as they are: an
``int`` in a history does not decode into a dataclass on replay.
"""

from __future__ import annotations

from temporalio import activity

from copilot.types import (
    ClaimBackendLogResult,
    ClaimLogInput,
    ExecuteToolInput,
    LoadHostContextInput,
    LoadHostContextResult,
    PublishEventsInput,
    PublishEventsResult,
    RecordToolCallsInput,
    ReportToolInput,
    SaveAssistantMessageInput,
    SaveAssistantMessageResult,
    SearchCatalogInput,
    StreamTurnInput,
    StreamTurnResult,
    ToolOutcome,
)


def _declared() -> NotImplementedError:
    return NotImplementedError("a declaration: the worker runs the class in activities/")


class LlmActivityDefs:
    @activity.defn(name="stream_llm_turn")
    async def stream_llm_turn(self, input: StreamTurnInput) -> StreamTurnResult:
        """One model turn: deltas to the run's event log, the finished turn back."""
        raise _declared()


class ChatActivityDefs:
    @activity.defn(name="save_assistant_message")
    async def save_assistant_message(
        self, input: SaveAssistantMessageInput
    ) -> SaveAssistantMessageResult:
        """Upsert the run's assistant message and close the run's row."""
        raise _declared()


class EventActivityDefs:
    @activity.defn(name="publish_events")
    async def publish_events(self, input: PublishEventsInput) -> PublishEventsResult:
        """Append the workflow's own events to the run's log."""
        raise _declared()

    @activity.defn(name="claim_event_log")
    async def claim_event_log(self, input: ClaimLogInput) -> int:
        """Fence out the last writer; the last seq it wrote."""
        raise _declared()


class ToolActivityDefs:
    @activity.defn(name="execute_server_tool")
    async def execute_server_tool(self, input: ExecuteToolInput) -> ToolOutcome:
        raise _declared()

    @activity.defn(name="delegate_client_tool")
    async def delegate_client_tool(self, input: ExecuteToolInput) -> ToolOutcome:
        raise _declared()

    @activity.defn(name="load_host_context")
    async def load_host_context(self, input: LoadHostContextInput) -> LoadHostContextResult:
        raise _declared()

    @activity.defn(name="search_tool_catalog")
    async def search_tool_catalog(self, input: SearchCatalogInput) -> ToolOutcome:
        raise _declared()

    @activity.defn(name="record_tool_calls")
    async def record_tool_calls(self, input: RecordToolCallsInput) -> None:
        raise _declared()


class UpstreamActivityDefs:
    @activity.defn(name="stream_backend_turn")
    async def stream_backend_turn(self, input: StreamTurnInput) -> StreamTurnResult:
        """Read the upstream backend's whole answer (it runs the agent loop)."""
        raise _declared()

    @activity.defn(name="claim_backend_log")
    async def claim_backend_log(self, input: ClaimLogInput) -> ClaimBackendLogResult:
        raise _declared()

    @activity.defn(name="report_backend_tool")
    async def report_backend_tool(self, input: ReportToolInput) -> str:
        """``reported`` | ``already`` | ``unknown``."""
        raise _declared()


# What the worker must register: every declaration above, by name.
DECLARED = (
    LlmActivityDefs,
    ChatActivityDefs,
    EventActivityDefs,
    ToolActivityDefs,
    UpstreamActivityDefs,
)
