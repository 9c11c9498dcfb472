"""Types shared by workflows, activities and the API.

Side-effect free and importable from inside the Temporal workflow sandbox: stdlib only.
Every workflow and activity takes one ``XxxInput`` and returns one ``XxxResult``; new fields
always get defaults so that running workflows survive a deploy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Event types on the wire (CONTRACT.md, "Events").
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


@dataclass
class StreamTurnResult:
    content: str
    last_seq: int
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "stop"
    attempt: int = 1


@dataclass
class PublishEventsInput:
    run_id: str
    seq_start: int
    events: list[dict[str, Any]]
    # The run is over: start the log's retention clock.
    final: bool = False


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


@dataclass
class SaveAssistantMessageResult:
    message_id: str
