"""Every SSE event of the contract (CONTRACT.md, "Events") as a type, and the one encoder.

Ground floor: msgspec and stdlib only, no I/O, so the workflow sandbox imports it too.
Each event is a msgspec Struct tagged on ``type`` (``Event`` is the discriminated union);
field names are snake_case here and camelCase on the wire. Emitters build these types; the
event log stores them as JSON; ``encode_frame`` turns one into an SSE frame.

Why msgspec Structs: ``content`` / ``reasoning`` / ``tool_generating`` are written once per
token, so building and encoding one must cost a microsecond or so (pydantic would cost ten
times that). ``omit_defaults``: an optional key (``subagent``, Sim's ``content`` copy, ...) is
absent from the wire unless set, exactly as clients see it today. So a default is only ever
given to a key that may be absent; a key that must always be there (even as ``null``) has
none.

Key order inside ``data:`` follows each event's field order, then ``seq`` and ``runId`` (which
the writer sets when it numbers an event; unnumbered events, as the workflow hands them to an
activity, carry neither). JSON readers do not care about order; it matches the frames written
before this module for the per-token events, byte for byte.

To add an event: define its Struct below with a ``tag``, add it to ``Event``, build it where it
happens, and paste ``events_table()`` into docs/api.md (tests/test_docs.py checks it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

# --- the events ---------------------------------------------------------------------------------


class BaseEvent(msgspec.Struct, tag_field="type", omit_defaults=True, rename="camel", kw_only=True):
    """What every event has once a writer numbered it."""

    # kw_only: these come after every event's own fields (see the module docstring).
    seq: int = 0
    run_id: str = ""


class _Data(msgspec.Struct, omit_defaults=True, rename="camel", kw_only=True):
    """A ``data`` sub-object."""


class StartData(_Data):
    response_id: str
    chat_id: str
    message_id: str
    model: str
    provider: str
    notice: str | None = None


class Start(BaseEvent, tag="start"):
    """The run started (always the first event)."""

    data: StartData


class ChatIdData(_Data):
    chat_id: str


class ChatId(BaseEvent, tag="chat_id"):
    """A new chat was created. Browsers read ``chatId``, Sim's server ``data.chatId``.

    Both come from ``chat_id``: ``data`` is derived, never passed."""

    chat_id: str
    data: ChatIdData | None = None

    def __post_init__(self) -> None:
        self.data = ChatIdData(chat_id=self.chat_id)


class TitleUpdated(BaseEvent, tag="title_updated"):
    """The chat's title (before ``done``)."""

    title: str


class Content(BaseEvent, tag="content"):
    """A delta of answer text. Inside an upstream subagent it carries ``subagent`` and is not
    part of the answer."""

    data: str
    turn: int
    # Sim's route: Sim's server reads the text here (it parses a string ``data`` as JSON).
    content: str | None = None
    subagent: str | None = None


class PhaseData(_Data):
    phase: str


class Reasoning(BaseEvent, tag="reasoning"):
    """A delta of reasoning text (``data``), or a thinking block's ``phase`` start/end."""

    phase: str | None = None
    # Text, or on Sim's route with a phase ``{phase}`` (Sim's server reads it there).
    data: str | PhaseData | None = None
    turn: int | None = None
    content: str | None = None  # Sim's route: the text again (see Content.content)
    subagent: str | None = None


class ToolGenerating(BaseEvent, tag="tool_generating"):
    """The model started writing a tool call's arguments."""

    tool_call_id: str | None
    tool_name: str | None
    turn: int | None = None
    subagent: str | None = None


class ToolCallInfo(_Data):
    id: str
    name: str
    arguments: dict[str, Any]
    executor: str  # server | client
    requires_confirmation: bool
    status: str
    # Sim's route, server tools: Sim records a partial call and leaves it to us.
    partial: bool = False


class ToolCallEvent(BaseEvent, tag="tool_call"):
    """A complete tool call, to run here or on the client."""

    tool_call_id: str
    tool_name: str
    data: ToolCallInfo
    subagent: str | None = None


class ToolStatus(BaseEvent, tag="tool_status"):
    """A tool call moved on: pending, awaiting_confirmation, accepted, rejected, executing,
    success, error, skipped, cancelled (background too)."""

    tool_call_id: str
    status: str
    subagent: str | None = None


class ToolResultData(_Data):
    id: str
    name: str | None
    success: bool
    result: Any


class ToolResult(BaseEvent, tag="tool_result"):
    """A tool call succeeded.

    Clients read the result at the top level (ours, the browser) and inside ``data`` (Sim's
    server): both are on the wire, from one field. ``data`` is derived; never pass it."""

    tool_call_id: str
    tool_name: str | None
    success: bool
    result: Any
    duration_ms: int
    subagent: str | None = None
    data: ToolResultData | None = None

    def __post_init__(self) -> None:
        self.data = ToolResultData(
            id=self.tool_call_id, name=self.tool_name, success=self.success, result=self.result
        )


class ToolErrorData(_Data):
    id: str
    name: str | None
    error: str | None


class ToolError(BaseEvent, tag="tool_error"):
    """A tool call failed."""

    tool_call_id: str
    tool_name: str | None
    data: ToolErrorData
    duration_ms: int | None = None
    subagent: str | None = None


class SubagentStart(BaseEvent, tag="subagent_start"):
    """An upstream backend's subagent started (its events carry ``subagent``)."""

    subagent: str


class SubagentEnd(BaseEvent, tag="subagent_end"):
    """An upstream backend's subagent ended."""

    subagent: str


class StructuredResult(BaseEvent, tag="structured_result"):
    """An upstream backend's structured result (``{resultType, summary, data, success}``)."""

    data: Any
    subagent: str | None = None


class TurnReset(BaseEvent, tag="turn_reset"):
    """A provider call was retried after a failure: drop that turn's partial text."""

    turn: int
    attempt: int


class ToolCallSummary(msgspec.Struct, rename="camel", kw_only=True):
    """A tool call and how it ended, as a run's end persists it and the workflow reports it
    (``toolCalls`` of a snapshot of a finished run)."""

    id: str
    name: str
    arguments: dict[str, Any]
    executor: str
    status: str
    result: Any = None
    error: str | None = None
    duration_ms: int = 0


class PendingCall(msgspec.Struct, kw_only=True):
    """A tool call the run waits on (``pending`` of a snapshot from the workflow)."""

    id: str
    name: str
    arguments: dict[str, Any]
    waiting: str  # decision | host


class Snapshot(msgspec.Struct, rename="camel", kw_only=True):
    """A run's state: what a client shows (every key always present). The one snapshot type:
    folded from the log, read from PostgreSQL or the workflow, written by a writer that
    re-seeds a lost log."""

    status: str = "running"
    content: str = ""
    tool_calls: list[dict[str, Any]] = msgspec.field(default_factory=list)
    pending: list[dict[str, Any]] = msgspec.field(default_factory=list)
    last_seq: int = 0


class SnapshotEvent(BaseEvent, tag="snapshot"):
    """Replaces the client's state (sent when the log lost the events asked for)."""

    data: Snapshot


class ErrorData(_Data):
    message: str
    code: str | None
    retryable: bool
    status: int | None = None  # an HTTP status, when the run was refused before it started


class ErrorEvent(BaseEvent, tag="error"):
    """The run failed (``done`` follows). ``error`` is where Sim's browser reads the text."""

    error: str
    data: ErrorData

    @classmethod
    def of(
        cls, message: str, code: str | None, *, retryable: bool = False, status: int | None = None
    ) -> ErrorEvent:
        return cls(
            error=message,
            data=ErrorData(message=message, code=code, retryable=retryable, status=status),
        )


class TokenUsage(_Data):
    input_tokens: int
    output_tokens: int


class DoneData(_Data, kw_only=True):
    response_id: str | None = None
    status: str  # completed | failed | aborted | timeout
    usage: TokenUsage | None = None


class Done(BaseEvent, tag="done"):
    """The run ended (always the last event)."""

    data: DoneData


Event = (
    Start
    | ChatId
    | TitleUpdated
    | Content
    | Reasoning
    | ToolGenerating
    | ToolCallEvent
    | ToolStatus
    | ToolResult
    | ToolError
    | SubagentStart
    | SubagentEnd
    | StructuredResult
    | TurnReset
    | SnapshotEvent
    | ErrorEvent
    | Done
)
EVENT_TYPES: tuple[type[BaseEvent], ...] = Event.__args__
# An event as the log and the workflow's activity payloads hold it: a plain JSON object.
WireEvent = dict[str, Any]
# What a writer takes: typed events, and JSON objects handed over by the workflow.
AnyEvent = BaseEvent | Mapping[str, Any]


def event_type(event: BaseEvent | type[BaseEvent]) -> str:
    """The ``type`` an event (or event class) has on the wire."""
    tag = event.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


# --- wire conversions ---------------------------------------------------------------------------

_ENCODER = msgspec.json.Encoder()


def to_wire(event: msgspec.Struct | Mapping[str, Any]) -> WireEvent:
    """The event (or a part of one) as a JSON object: what crosses into activities and sits
    in the log."""
    if isinstance(event, msgspec.Struct):
        wire: WireEvent = msgspec.to_builtins(event)
        return wire
    return dict(event)


def from_wire(event: Mapping[str, Any]) -> BaseEvent | None:
    """The typed event for a JSON object; None for a type this server does not know, or a
    malformed one (an old log, a partial test fixture): readers skip it."""
    try:
        typed: BaseEvent = msgspec.convert(event, Event, strict=False)
    except msgspec.ValidationError:
        return None
    return typed


def event_json(event: BaseEvent | Mapping[str, Any]) -> str:
    """Compact JSON, non-ASCII left as is (what the log stores and ``data:`` carries)."""
    try:
        return _ENCODER.encode(event).decode()
    except (TypeError, OverflowError, msgspec.EncodeError):
        # Not msgspec-encodable (an exotic value in a tool result): the stdlib is slower
        # but takes whatever it took before.
        return json.dumps(to_wire(event), separators=(",", ":"), ensure_ascii=False)


def event_seq(event: BaseEvent | Mapping[str, Any]) -> int:
    return event.seq if isinstance(event, BaseEvent) else int(event["seq"])


# JSON leaves these raw (non-ASCII stays as is) and SSE does not end a line on them, but
# Python's ``str.splitlines``, httpx's ``iter_lines`` and other readers do: a model or a tool
# writing one could forge ``id:`` / ``event:`` / ``data:`` lines. They can only occur inside
# JSON strings, where the escaped form is the same text.
_UNICODE_LINE_BREAKS = (("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("\x85", "\\u0085"))


def _escape_line_breaks(data: str) -> str:
    if data.isascii():  # O(1) in CPython: the common case costs nothing more
        return data
    for raw, escaped in _UNICODE_LINE_BREAKS:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def encode_frame(event: BaseEvent | Mapping[str, Any]) -> str:
    """One SSE frame for an event that carries ``seq`` (typed, or a JSON object from the log).

    Its only line breaks are the frame's own ``\\n``: any reader splits it the same way.
    """
    if isinstance(event, BaseEvent):
        seq, kind = event.seq, event_type(event)
    else:
        seq, kind = event["seq"], event["type"]
    data = _escape_line_breaks(event_json(event))
    return f"id: {seq}\nevent: {kind}\ndata: {data}\n\n"


def numbered(events: Iterable[BaseEvent | Mapping[str, Any]], first: int, run_id: str) -> list[Any]:
    """The events with seqs ``first, first + 1, ...`` and the run's id (typed ones in place:
    an emitter hands each event over once)."""
    out: list[Any] = []
    seq = first
    for event in events:
        if isinstance(event, BaseEvent):
            event.seq, event.run_id = seq, run_id
            out.append(event)
        else:
            out.append({**event, "seq": seq, "runId": run_id})
        seq += 1
    return out


# --- docs ---------------------------------------------------------------------------------------


def events_table() -> str:
    """docs/api.md's events table, from the types (tests/test_docs.py keeps the two equal)."""
    rows = ["| type | keys (`?`: only when set) | what |", "|---|---|---|"]
    for cls in EVENT_TYPES:
        doc = " ".join((cls.__doc__ or "").split("\n\n")[0].split()).replace("``", "`")
        rows.append(f"| `{event_type(cls)}` | {_keys(cls)} | {doc} |")
    return "\n".join(rows)


def _keys(cls: type[msgspec.Struct]) -> str:
    parts = []
    omits = cls.__struct_config__.omit_defaults
    for f in msgspec.structs.fields(cls):
        if f.name in ("seq", "run_id"):
            continue
        optional = f.default is not msgspec.NODEFAULT or f.default_factory is not msgspec.NODEFAULT
        derived = "__post_init__" in cls.__dict__ and f.name == "data"
        name = f.encode_name + ("?" if omits and optional and not derived else "")
        kinds = getattr(f.type, "__args__", (f.type,))
        nested = [t for t in kinds if isinstance(t, type) and issubclass(t, msgspec.Struct)]
        if nested:
            text = "text or " if str in kinds else ""
            name += ": " + text + "{" + _keys(nested[0]).replace("`", "") + "}"
        parts.append(name)
    return "`" + ", ".join(parts) + "`" if parts else ""
