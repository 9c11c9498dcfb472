"""The documented client rule, as code: fold a run's events into what the user sees.

- ``content`` deltas append to their turn's text (those inside an upstream subagent, marked
  ``subagent``, are shown apart and are not part of the answer);
- ``turn_reset {turn}`` drops that turn's partial text (a retried provider call restarts it);
- ``snapshot`` replaces everything with its ``data`` (content, toolCalls, status);
- ``tool_call`` / ``tool_status`` / ``tool_result`` / ``tool_error`` move a tool call along;
- ``done`` ends the run with its status.
Used by the snapshot route and by tests that check "client text == persisted text".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from copilot.events.model import (
    Content,
    Done,
    Event,
    Snapshot,
    SnapshotEvent,
    ToolCallEvent,
    ToolError,
    ToolResult,
    ToolStatus,
    TurnReset,
    from_wire,
)

WAITING_STATUSES = ("awaiting_confirmation",)


@dataclass
class Folded:
    turns: dict[int, list[str]] = field(default_factory=dict)
    base: str = ""  # text carried by a snapshot
    status: str = "running"
    last_seq: int = 0
    tool_calls: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def content(self) -> str:
        return self.base + "".join("".join(self.turns[t]) for t in sorted(self.turns))

    @property
    def pending(self) -> list[dict[str, Any]]:
        return [c for c in self.tool_calls.values() if c.get("status") in WAITING_STATUSES]

    def to_snapshot(self) -> Snapshot:
        return Snapshot(
            status=self.status,
            content=self.content,
            tool_calls=list(self.tool_calls.values()),
            pending=self.pending,
            last_seq=self.last_seq,
        )


def fold_events(events: Iterable[Event | Mapping[str, Any]], into: Folded | None = None) -> Folded:
    """Fold typed events, or JSON objects as the log holds them (a type this server does not
    know, or a malformed object, counts for its seq only)."""
    state = into or Folded()
    for raw in events:
        if isinstance(raw, Mapping):
            state.last_seq = max(state.last_seq, int(raw.get("seq", 0)))
            event = from_wire(raw)
        else:
            state.last_seq = max(state.last_seq, raw.seq)
            event = raw
        _apply(state, event)
    return state


def _apply(state: Folded, event: object) -> None:
    if isinstance(event, Content):
        if event.subagent is None:
            state.turns.setdefault(event.turn, []).append(event.data)
    elif isinstance(event, TurnReset):
        state.turns.pop(event.turn, None)
    elif isinstance(event, SnapshotEvent):
        data = event.data
        state.turns.clear()
        state.base = data.content
        state.status = data.status
        state.tool_calls = {str(c["id"]): dict(c) for c in data.tool_calls}
    elif isinstance(event, ToolCallEvent):
        state.tool_calls[event.data.id] = msgspec.to_builtins(event.data)
    elif isinstance(event, ToolStatus):
        state.tool_calls.setdefault(event.tool_call_id, {})["status"] = event.status
    elif isinstance(event, ToolResult):
        call = state.tool_calls.setdefault(event.tool_call_id, {})
        call.update(status="success", result=event.result)
    elif isinstance(event, ToolError):
        call = state.tool_calls.setdefault(event.tool_call_id, {})
        call.update(status="error", error=event.data.error)
    elif isinstance(event, Done):
        state.status = event.data.status
