"""Types shared by workflows, activities and the API.

Side-effect free and importable from inside the Temporal workflow sandbox: stdlib only.
Every workflow and activity takes one ``XxxInput`` and returns one ``XxxResult``; new fields
always get defaults so that running workflows survive a deploy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Event types on the wire (CONTRACT.md, "Events"): the events themselves are types in
# ``copilot.events.model`` (its tags are the truth; tests check these names against them).
# Kept for readers that test a JSON object's ``type``.
EV_START = "start"
EV_CHAT_ID = "chat_id"
EV_TITLE_UPDATED = "title_updated"
EV_CONTENT = "content"
EV_REASONING = "reasoning"
EV_TOOL_GENERATING = "tool_generating"
EV_TOOL_CALL = "tool_call"
EV_TOOL_STATUS = "tool_status"
EV_TOOL_RESULT = "tool_result"
EV_TOOL_ERROR = "tool_error"
EV_TURN_RESET = "turn_reset"
EV_SNAPSHOT = "snapshot"
EV_ERROR = "error"
EV_DONE = "done"
EV_SUBAGENT_START = "subagent_start"
EV_SUBAGENT_END = "subagent_end"
EV_STRUCTURED_RESULT = "structured_result"

# The server tool that searches a run's tool catalog (``copilot.tools.catalog``).
SEARCH_TOOL = "search_integration_tools"

# Run statuses, as stored and as reported by ``done``.
RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_FAILED = "failed"
RUN_ABORTED = "aborted"
RUN_TIMEOUT = "timeout"
FINAL_STATUSES = frozenset({RUN_COMPLETED, RUN_FAILED, RUN_ABORTED, RUN_TIMEOUT})


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens

    def to_wire(self) -> dict[str, int]:
        return {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens}


@dataclass
class ToolSpec:
    """A tool offered to the model: a host's client tool (from the request), a server tool, a
    catalog tool. The one spec type from the API through the workflow to the providers."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    requires_confirmation: bool = False

    def to_json(self) -> dict[str, Any]:
        """What a model reads of it (a catalog's stored form; a search result)."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }


@dataclass
class ToolCall:
    """One tool call, the same type everywhere: a provider's output, the workflow's state and
    its activities' inputs, a signal from an upstream reader, the store row (``ToolCallRow``
    maps to it).

    ``id``, ``name``, ``arguments`` are in every recorded history: they keep their names.
    The extras are set only where they mean something and default to "not set".
    """

    id: str  # ours: tc_<uuid>
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    # The provider's own id (some reuse ``call_0``; Ollama has none): stays inside the
    # provider code, never in history or events (see ``public``).
    provider_id: str | None = None
    # An upstream backend's call: its id there (to report the result) and its subagent.
    upstream_id: str = ""
    subagent: str | None = None

    def public(self) -> ToolCall:
        """This call without the provider's id, as it crosses into the workflow."""
        return ToolCall(self.id, self.name, self.arguments, None, self.upstream_id, self.subagent)


# One tool-call type: ``BackendToolCall`` (the upstream reader's signal) and ``ToolCallData``
# were merged into ToolCall; recorded payloads of either decode by field name.


@dataclass
class ToolOutcome:
    """How a tool call ended, as the model and the persisted message see it."""

    tool_call_id: str
    name: str
    status: str  # success | error | rejected | skipped | cancelled | background
    result: Any = None
    error: str | None = None
    duration_ms: int = 0


@dataclass
class TurnRecord:
    """One finished LLM turn of the current run, with its tools' outcomes."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    outcomes: list[ToolOutcome] = field(default_factory=list)
    # Provider-specific blocks to replay (e.g. Anthropic thinking with its signature).
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ChatRunInput:
    """What ``ChatWorkflow`` needs: ids and routing, never message history nor secrets."""

    run_id: str
    chat_id: str
    tenant_id: str
    user_id: str
    model: str
    provider: str
    mode: str = "agent"
    new_chat: bool = False
    response_id: str = ""
    user_message_id: str = ""
    run_timeout_s: int = 1800
    client_tools: list[ToolSpec] = field(default_factory=list)
    # Sim's protocol: client tools are executed by the host, which answers with mark-complete.
    host_executed: bool = False
    # SIM_APP_URL is set: client tools are delegated to the host app over HTTP.
    delegate_client_tools: bool = False
    auto_execute: bool = False
    server_tools: list[str] = field(default_factory=list)
    confirm_always: list[str] = field(default_factory=list)
    max_turns: int = 25
    confirmation_timeout_s: int = 600
    client_tool_timeout_s: int = 600
    host_workflow_id: str | None = None
    title_hint: str | None = None
    # The Copilot* search attributes exist on this cluster: keep CopilotStatus current.
    search_attributes: bool = False
    # Server tools that must not run twice: one interrupted by a crash is not retried.
    non_idempotent_tools: list[str] = field(default_factory=list)
    # Server tools declared ``requires_confirmation``: they wait for the user's decision,
    # unless the run auto-executes (and never on Sim's route, which never calls our confirm).
    confirm_server_tools: list[str] = field(default_factory=list)
    # A tool activity silent this long is lost with its worker (0: runs started before it).
    tool_heartbeat_timeout_s: int = 0
    # Sim's route: events follow Sim's own client code (server tools as already handled, a
    # retried turn continues after the text already shown instead of ``turn_reset``).
    sim_protocol: bool = False
    # Sim's route: how long a run waits for a closed stream to be reopened (the same message
    # resubmitted) before its waits for the host's tool results end.
    host_rejoin_grace_s: int = 15
    # The request brought its own provider config (its key is in run_credentials, never here).
    run_credential: bool = False
    # Shown to the user with the answer (e.g. an unserved model id or provider config).
    notice: str | None = None
    # Native routes with SIM_APP_URL: load the host workflow's state before the first turn.
    load_host_context: bool = False
    # Tools kept by reference (``copilot.tools.catalog``): the catalog's key and size.
    tool_catalog: str | None = None
    tool_catalog_size: int = 0
    # The provider runs the agent loop itself (an upstream copilot backend): the workflow reads
    # one upstream answer instead of running turns. Set from the provider's capabilities; None
    # in runs started before this field, which decided by their provider's name.
    upstream_loop: bool | None = None

    @property
    def runs_upstream_loop(self) -> bool:
        if self.upstream_loop is None:
            return self.provider == "copilot-backend"  # runs started before upstream_loop
        return self.upstream_loop


@dataclass
class HostDetachedInput:
    reason: str = "the host closed its stream"


@dataclass
class ChatRunResult:
    status: str
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    last_seq: int = 0
    error_code: str | None = None


@dataclass
class RunState:
    """What the ``state`` query answers: enough for a snapshot of finished turns."""

    run_id: str
    status: str
    turn: int
    last_seq: int
    content: str
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StreamTurnInput:
    run_id: str
    chat_id: str
    tenant_id: str
    user_id: str
    model: str
    provider: str
    turn: int
    seq_start: int
    # Events to write before the first delta (e.g. ``start`` on turn 1), so that a run's first
    # frames cost no extra activity round trip.
    prelude: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "agent"
    client_tools: list[ToolSpec] = field(default_factory=list)
    offer_tools: bool = True
    prior_turns: list[TurnRecord] = field(default_factory=list)
    host_workflow_id: str | None = None
    writer_gen: int = 0
    # Upstream backends: the host's workflow and the run's user message id (Sim's messageId:
    # an upstream that is idempotent on it resumes its first run when this turn is retried).
    user_message_id: str = ""
    # Sim's route: a retried attempt continues after the text already shown (no turn_reset).
    sim_protocol: bool = False
    tool_catalog: str | None = None
    tool_catalog_size: int = 0
    run_credential: bool = False
    # Said to the user ahead of the answer (turn 1; Sim's route shows it as text).
    notice: str | None = None
    # Catalog tools a search found: offered (schemas loaded from the catalog) this turn.
    loaded_tools: list[str] = field(default_factory=list)


@dataclass
class StreamTurnResult:
    content: str
    last_seq: int
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "stop"
    attempt: int = 1
    tool_calls: list[ToolCall] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    # Upstream backends: how many of the workflow's outbox events this attempt wrote.
    outbox_written: int = 0


@dataclass
class OutboxPoll:
    """Update from an upstream-backend reader: events the workflow produced after ``after``."""

    after: int


@dataclass
class OutboxBatch:
    events: list[dict[str, Any]]
    next: int
    closed: bool = False


@dataclass
class ClaimBackendLogResult:
    last_seq: int
    outbox_mark: int


@dataclass
class ReportToolInput:
    """Report one tool's outcome to the upstream backend (its mark-complete)."""

    run_id: str
    upstream_id: str
    name: str
    status: int
    message: str | None = None
    data: Any = None


@dataclass
class PublishEventsInput:
    run_id: str
    seq_start: int
    events: list[dict[str, Any]]
    # The run is over: start the log's retention clock.
    final: bool = False
    writer_gen: int = 0


@dataclass
class ClaimLogInput:
    run_id: str
    writer_gen: int


@dataclass
class PublishEventsResult:
    last_seq: int


@dataclass
class SaveAssistantMessageInput:
    run_id: str
    chat_id: str
    content: str
    status: str
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    error_code: str | None = None
    turns: list[TurnRecord] = field(default_factory=list)
    # An aborted turn whose partial text only the event log holds.
    partial_turn: int | None = None
    # Set the chat's title (first answer of a new chat).
    title: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    last_seq: int | None = None
    # The run borrowed a provider config (run_credentials): delete it now. True for runs
    # started before this field, which may have one.
    forget_credential: bool = True


@dataclass
class SaveAssistantMessageResult:
    message_id: str
    content: str = ""  # what was persisted (with an aborted turn's partial text)


@dataclass
class ExecuteToolInput:
    run_id: str
    chat_id: str
    tenant_id: str
    user_id: str
    tool_call_id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    host_workflow_id: str | None = None


@dataclass
class LoadHostContextInput:
    run_id: str
    user_id: str
    chat_id: str
    host_workflow_id: str


@dataclass
class LoadHostContextResult:
    found: bool
    size: int = 0  # characters of context added to the user message


@dataclass
class SearchCatalogInput:
    run_id: str
    tool_call_id: str
    catalog: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordToolCallsInput:
    run_id: str
    chat_id: str
    tenant_id: str
    user_id: str
    calls: list[ToolCall]
    executors: list[str]
    host_executed: list[bool]


@dataclass
class DecisionInput:
    tool_call_id: str
    status: str  # accepted | rejected | background
    message: str | None = None


@dataclass
class DecisionResult:
    duplicate: bool = False


@dataclass
class MarkCompleteInput:
    id: str
    name: str
    status: int
    message: str | None = None
    data: Any = None


@dataclass
class AbortInput:
    reason: str = "aborted by the user"


@dataclass
class AbortResult:
    status: str
