"""What one LLM turn writes to the event log, delta by delta.

- Reasoning is bracketed: ``reasoning {phase: "start"}`` before its first chunk and
  ``{phase: "end"}`` before whatever follows it (text, a tool call, the turn's end). Sim's
  browser opens a thinking block on ``start`` and keeps every later chunk in it until ``end``;
  without the end, the visible answer would vanish into the thinking block.
- On Sim's route a retried attempt does not ``turn_reset`` (Sim knows no such event, so it
  would show the turn twice): it continues after the text the earlier attempts showed. A
  provider that accepts an assistant prefill continues that text exactly; otherwise the new
  attempt's text is written from where it stops repeating what was shown. Either way the
  turn's content is exactly what was shown, and that is what gets persisted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from activities.writer import TurnWriter
from copilot.events.log import EventLog
from copilot.events.model import BaseEvent, Content, PhaseData, Reasoning, ToolGenerating
from copilot.providers.base import Delta
from copilot.types import EV_CONTENT, EV_REASONING


@dataclass
class Shown:
    """What earlier attempts of this turn put in front of the client."""

    text: str = ""
    reasoning_open: bool = False


# What a JSON value can start with (after whitespace): most deltas fail this cheap test.
_JSON_STARTS = frozenset('"{[-0123456789tfn')


def _json_like(text: str) -> bool:
    stripped = text.lstrip(" \t\n\r")
    if not stripped or stripped[0] not in _JSON_STARTS:
        return False
    try:
        json.loads(text, parse_constant=_reject)
    except ValueError:
        return False
    return True


def _reject(name: str) -> None:
    raise ValueError(name)  # NaN, Infinity: JSON.parse refuses them too


async def shown_so_far(log: EventLog, run_id: str, turn: int, seq_start: int) -> Shown:
    shown = Shown()
    parts: list[str] = []
    after = seq_start - 1
    while batch := await log.read_after(run_id, after):
        for entry in batch:
            event = entry.event
            if event.get("turn") != turn or "subagent" in event:
                continue
            if event.get("type") == EV_CONTENT:
                parts.append(str(event.get("data", "")))
            elif event.get("type") == EV_REASONING and "phase" in event:
                shown.reasoning_open = event["phase"] == "start"
        after = batch[-1].seq
    shown.text = "".join(parts)
    return shown


class TurnEvents:
    """Turns a provider's deltas into this turn's events (see the module docstring)."""

    def __init__(
        self,
        writer: TurnWriter,
        turn: int,
        shown: Shown | None = None,
        *,
        prefilled: bool = False,
        sim: bool = False,
        notice: str | None = None,
    ) -> None:
        self._writer = writer
        self._turn = turn
        self._sim = sim
        self._shown = shown or Shown()
        self._reasoning = self._shown.reasoning_open
        # Text the new attempt is expected to repeat, dropped while it does. With a prefill
        # the provider continues after the shown text minus its trailing whitespace (a
        # prefill may not end in whitespace), so only that whitespace may come again.
        text = self._shown.text
        self._repeat = text[len(text.rstrip()) :] if prefilled else text
        self._written: list[str] = []
        # A notice for the user, written as the answer's first text (part of what is shown
        # and persisted alike).
        self._notice = f"_{notice}_\n\n" if notice else ""
        self._held = ""  # Sim's route: text that would read as JSON alone (see _hold_json_like)

    @property
    def content(self) -> str:
        """The turn's whole text as clients saw it: earlier attempts' and this one's."""
        return self._shown.text + "".join(self._written)

    async def __call__(self, delta: Delta) -> None:
        turn = self._turn
        if delta.kind == "reasoning":
            events = self._flush_held() + ([] if self._reasoning else [self._phase("start")])
            self._reasoning = True
            events.append(self._reasoning_text(delta.text))
            self._writer.write_soon(events, text=self._written_text(events))
            return
        events = self._end_reasoning()
        if delta.kind == "content":
            text = self._notice + self._unseen(delta.text)
            self._notice = ""
            if self._sim:
                text = self._hold_json_like(text)
            if text:
                events.append(self._content(text))
                self._written.append(text)
        elif delta.kind == "tool_generating":
            events = self._flush_held() + events
            events.append(ToolGenerating(delta.tool_call_id, delta.tool_name, turn))
        # Not waiting for the append: the provider's next delta is read meanwhile, and the
        # deltas that pile up go out together (close() waits for all of them).
        self._writer.write_soon(events, text=self._written_text(events))

    async def close(self) -> None:
        """The turn's stream ended: what is held back, then close an open thinking block."""
        events = self._flush_held() + self._end_reasoning()
        await self._writer.write(events, text=self._written_text(events))

    # Sim parses a string ``data`` as JSON where it can ("42", "true", "null"); its server
    # side then reads the text from ``content``: only Sim's route carries that copy.
    def _content(self, text: str) -> Content:
        return Content(text, self._turn, text if self._sim else None)

    def _reasoning_text(self, text: str) -> Reasoning:
        return Reasoning(data=text, turn=self._turn, content=text if self._sim else None)

    @staticmethod
    def _written_text(events: list[BaseEvent]) -> str:
        return "".join(e.data for e in events if isinstance(e, Content))

    def _hold_json_like(self, text: str) -> str:
        """Sim's browser turns a delta that parses as JSON into a value (" 42" shows as "42",
        '"hi"' as hi, "null" not at all): such a delta waits to be joined with the next."""
        text = self._held + text
        if _json_like(text):
            self._held = text
            return ""
        self._held = ""
        return text

    def _flush_held(self) -> list[BaseEvent]:
        if not self._held:
            return []
        text, self._held = self._held, ""
        self._written.append(text)
        return [self._content(text)]

    def _end_reasoning(self) -> list[BaseEvent]:
        if not self._reasoning:
            return []
        self._reasoning = False
        return [self._phase("end")]

    def _phase(self, phase: str) -> Reasoning:
        # Sim's browser reads ``phase`` at the top level, its server side inside ``data``
        # (native clients read ``data`` of reasoning as text: only Sim's route has it).
        data = PhaseData(phase=phase) if self._sim else None
        return Reasoning(phase=phase, data=data, turn=self._turn)

    def _unseen(self, text: str) -> str:
        """The part of ``text`` not already shown."""
        repeat = self._repeat
        if not repeat:
            return text
        same = 0
        limit = min(len(text), len(repeat))
        while same < limit and text[same] == repeat[same]:
            same += 1
        if same == len(text):  # all of it repeats what was shown
            self._repeat = repeat[same:]
            return ""
        # Past the shown text, or the new attempt says something else: what was shown stays
        # (it cannot be taken back), the rest is written after it.
        self._repeat = ""
        return text[same:]
