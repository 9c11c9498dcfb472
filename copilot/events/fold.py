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

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from copilot.types import (
    EV_CONTENT,
    EV_DONE,
    EV_SNAPSHOT,
    EV_TOOL_CALL,
    EV_TOOL_ERROR,
    EV_TOOL_RESULT,
    EV_TOOL_STATUS,
    EV_TURN_RESET,
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

    def to_snapshot(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "content": self.content,
            "toolCalls": list(self.tool_calls.values()),
            "pending": self.pending,
            "lastSeq": self.last_seq,
        }


def fold_events(events: Iterable[dict[str, Any]], into: Folded | None = None) -> Folded:
    state = into or Folded()
    for event in events:
        kind = event.get("type")
        state.last_seq = max(state.last_seq, int(event.get("seq", 0)))
        if kind == EV_CONTENT and "subagent" in event:
            continue
        if kind == EV_CONTENT:
            state.turns.setdefault(int(event.get("turn", 1)), []).append(str(event["data"]))
        elif kind == EV_TURN_RESET:
            state.turns.pop(int(event["turn"]), None)
        elif kind == EV_SNAPSHOT:
            data = event.get("data", {})
            state.turns.clear()
            state.base = str(data.get("content", ""))
            state.status = str(data.get("status", state.status))
            state.tool_calls = {str(c["id"]): dict(c) for c in data.get("toolCalls", [])}
        elif kind == EV_TOOL_CALL:
            call = dict(event.get("data", {}))
            state.tool_calls[str(call.get("id"))] = call
        elif kind in (EV_TOOL_STATUS, EV_TOOL_RESULT, EV_TOOL_ERROR):
            call = state.tool_calls.setdefault(str(event.get("toolCallId")), {})
            if kind == EV_TOOL_STATUS:
                call["status"] = event.get("status")
            elif kind == EV_TOOL_RESULT:
                call.update(status="success", result=event.get("result"))
            else:
                call.update(status="error", error=event.get("data", {}).get("error"))
        elif kind == EV_DONE:
            state.status = str(event.get("data", {}).get("status", "completed"))
    return state
