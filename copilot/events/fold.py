"""The documented client rule, as code: fold a run's events into what the user sees.

- ``content`` deltas append to their turn's text;
- ``turn_reset {turn}`` drops that turn's partial text (a retried provider call restarts it);
- ``snapshot`` replaces everything with its ``data``;
- ``done`` ends the run with its status.
Used by the snapshot route and by tests that check "client text == persisted text".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from copilot.types import EV_CONTENT, EV_DONE, EV_SNAPSHOT, EV_TURN_RESET


@dataclass
class Folded:
    turns: dict[int, list[str]] = field(default_factory=dict)
    base: str = ""  # text carried by a snapshot
    status: str = "running"
    last_seq: int = 0

    @property
    def content(self) -> str:
        return self.base + "".join("".join(self.turns[t]) for t in sorted(self.turns))


def fold_events(events: Iterable[dict[str, Any]], into: Folded | None = None) -> Folded:
    state = into or Folded()
    for event in events:
        kind = event.get("type")
        state.last_seq = max(state.last_seq, int(event.get("seq", 0)))
        if kind == EV_CONTENT:
            state.turns.setdefault(int(event.get("turn", 1)), []).append(str(event["data"]))
        elif kind == EV_TURN_RESET:
            state.turns.pop(int(event["turn"]), None)
        elif kind == EV_SNAPSHOT:
            data = event.get("data", {})
            state.turns.clear()
            state.base = str(data.get("content", ""))
            state.status = str(data.get("status", state.status))
        elif kind == EV_DONE:
            state.status = str(event.get("data", {}).get("status", "completed"))
    return state
