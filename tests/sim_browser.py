"""Sim's event utilities and Sim's browser (simstudioai/sim at 190f12fd77), modelled from a
reading of Sim's code, none of it copied; ``tests/sim_client.py`` drives both.

- ``normalize`` and ``Seen`` model ``lib/copilot/orchestrator/sse-utils.ts``, which Sim's server
  side and its browser both apply to every event: tool fields lifted to the top level, a string
  ``data`` that parses as JSON replaced by the parsed value, and the process-wide sets of tool
  calls and results already seen (repeats are dropped).
- ``SimBrowser`` models the copilot panel: ``lib/copilot/client-sse/subagent-handlers.ts``
  (applySseEvent), ``client-sse/handlers.ts`` and ``client-sse/content-blocks.ts`` (text and
  thinking blocks, ``<thinking>`` tags, tool states by id, ``error``, ``chat_id``, ``done``) and
  Stop from ``stores/panel/copilot/store.ts`` (abortMessage). Not modelled: the
  ``<design_workflow>`` and todo tags, and events scoped to a subagent (recorded by neither).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

UNSET: Any = type("Undefined", (), {"__repr__": lambda _: "undefined"})()  # JS undefined
DEDUPE_LIMIT = 1000  # Sim's STREAM_BUFFER_MAX_DEDUP_ENTRIES
_THINKING_TAG = re.compile(r"</?thinking[^>]*>|&lt;/?thinking[^&]*&gt;", re.IGNORECASE)


# --- JavaScript semantics the handlers rely on ---------------------------------------------


def truthy(v: Any) -> bool:
    if v is None or v is False or v is UNSET:
        return False
    if isinstance(v, int | float):
        return v == v and v != 0  # NaN and 0 are falsy
    return v != "" if isinstance(v, str) else True  # [] and {} are truthy in JS


def js_or(*values: Any) -> Any:
    return next((v for v in values if truthy(v)), values[-1])


def rec(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def js_str(v: Any) -> str:
    """What ``"" + v`` gives in JS."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        return ",".join("" if x is None else js_str(x) for x in v)
    return "[object Object]" if isinstance(v, dict) else str(v)


def js_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(name)  # NaN / Infinity are not JSON to JSON.parse

    return json.loads(text, parse_constant=refuse)


def _parse(v: Any) -> Any:  # sse-utils.ts parseEventData
    if not truthy(v):
        return None
    if not isinstance(v, str):
        return v
    try:
        return js_json(v)
    except ValueError:
        return None


def event_data(ev: Mapping[str, Any]) -> Any:  # sse-utils.ts getEventData
    top = _parse(ev.get("data"))
    if not truthy(top):
        return None
    if isinstance(top, dict) and any(
        k in top for k in ("id", "toolCallId", "name", "success", "result", "arguments")
    ):
        return top
    return js_or(_parse(rec(top).get("data")), top)


def normalize(ev: dict[str, Any]) -> dict[str, Any]:
    """sse-utils.ts normalizeSseEvent: tool fields lifted to the top; a string ``data`` that
    parses as JSON is replaced by the parsed value (a text delta ``"42"`` becomes 42)."""
    data = event_data(ev)
    if not truthy(data):
        return ev
    d = rec(data)
    out = dict(ev)
    out["data"] = data if isinstance(ev.get("data"), str) else ev.get("data")
    out["toolCallId"] = js_or(ev.get("toolCallId"), d.get("id"), d.get("toolCallId"))
    out["toolName"] = js_or(ev.get("toolName"), d.get("name"), d.get("toolName"))
    out["success"] = ev["success"] if ev.get("success") is not None else d.get("success")
    out["result"] = ev["result"] if ev.get("result") is not None else d.get("result")
    return {k: v for k, v in out.items() if v is not None}  # JSON.stringify drops undefined


class Seen:
    """sse-utils.ts: the process-wide, bounded sets of tool calls and results already seen."""

    def __init__(self) -> None:
        self.calls: dict[str, None] = {}
        self.results: dict[str, None] = {}

    @staticmethod
    def _add(seen: dict[str, None], tool_id: str) -> None:
        if len(seen) >= DEDUPE_LIMIT:
            del seen[next(iter(seen))]
        seen[tool_id] = None

    def mark_result(self, tool_id: str) -> None:
        self._add(self.results, tool_id)

    def skip(self, ev: dict[str, Any]) -> bool:
        """shouldSkipToolCallEvent || shouldSkipToolResultEvent."""
        data = rec(event_data(ev))
        tool_id = js_or(ev.get("toolCallId"), data.get("id"), data.get("toolCallId"))
        if not truthy(tool_id):
            return False
        if ev.get("type") == "tool_call":
            if data.get("partial") is True:
                return False
            if tool_id in self.results or tool_id in self.calls:
                return True
            self._add(self.calls, tool_id)
        elif ev.get("type") == "tool_result":
            if tool_id in self.results:
                return True
            self.mark_result(tool_id)
        return False


class SimBrowser:
    """Sim's browser (client-sse/handlers.ts, content-blocks.ts): blocks, tool states by id."""

    def __init__(self, seen: Seen, auto_allowed: frozenset[str], decide: Callable[..., Any]):
        self.seen, self.auto_allowed, self.decide = seen, auto_allowed, decide
        self.blocks: list[dict[str, Any]] = []
        self.text_block: dict[str, Any] | None = None
        self.thinking_block: dict[str, Any] | None = None
        self.in_thinking = False
        self.pending = ""
        self.tools: dict[str, str] = {}  # id -> ClientToolCallState
        self.tool_names: dict[str, str] = {}
        self.decisions: dict[str, str | None] = {}  # the user's Allow / Skip, per tool call
        self.error: Any = None
        self.chat_id: Any = None
        self.title: Any = None
        self.complete = False  # streamComplete: done or error seen
        self.aborted = False  # Stop
        self.closed = asyncio.Event()  # the browser reads no more

    @property
    def visible_text(self) -> str:
        return "".join(b["content"] for b in self.blocks if b["type"] == "text")

    @property
    def thinking_text(self) -> str:
        return "".join(b["content"] for b in self.blocks if b["type"] == "thinking")

    def _text(self, text: str) -> None:  # appendTextBlock
        if not text:
            return
        if self.text_block is not None and self.blocks and self.blocks[-1] is self.text_block:
            self.text_block["content"] += text
            return
        self.text_block = {"type": "text", "content": text}
        self.blocks.append(self.text_block)

    def _thinking(self, text: str, *, begin: bool = False) -> None:
        cleaned = _THINKING_TAG.sub("", text)  # appendThinkingContent / beginThinkingBlock
        if (cleaned or begin) and self.thinking_block is None:
            self.thinking_block = {"type": "thinking", "content": ""}
            self.blocks.append(self.thinking_block)
        if self.thinking_block is not None:
            self.thinking_block["content"] += cleaned
        if cleaned or begin:
            self.in_thinking, self.text_block = True, None

    def _end_thinking(self) -> None:  # finalizeThinkingBlock
        self.in_thinking, self.thinking_block, self.text_block = False, None, None

    def _content(self, chunk: Any) -> None:
        self.pending += js_str(chunk)
        while self.pending:
            if self.in_thinking:
                end = self.pending.find("</thinking>")
                if end >= 0:
                    self._thinking(self.pending[:end])
                    self._end_thinking()
                    self.pending = self.pending[end + len("</thinking>") :]
                    continue
                cut = self.pending.rfind("<")
                keep = cut >= 0 and "</thinking>".startswith(self.pending[cut:])
                self._thinking(self.pending[:cut] if keep else self.pending)
                self.pending = self.pending[cut:] if keep else ""
                break
            start = self.pending.find("<thinking>")
            if start >= 0:
                self._text(self.pending[:start])
                self.in_thinking, self.text_block = True, None
                self.pending = self.pending[start + len("<thinking>") :]
                continue
            cut = self.pending.rfind("<")  # a tag may be arriving: hold it back
            keep = cut >= 0 and cut > len(self.pending) - 50
            self._text(self.pending[:cut] if keep else self.pending)
            self.pending = self.pending[cut:] if keep else ""
            break

    def _set_tool(self, tool_id: str, state: str) -> None:
        self.tools[tool_id] = state
        if not any(b.get("id") == tool_id for b in self.blocks):
            self.blocks.append({"type": "tool_call", "id": tool_id})

    def _finish_tool(self, ev: dict[str, Any], state: str) -> None:
        tool_id = js_or(ev.get("toolCallId"), rec(ev.get("data")).get("id"))
        if tool_id in self.tools and self.tools[tool_id] not in (
            "rejected",
            "review",
            "background",
        ):
            self.tools[tool_id] = state

    def apply(self, raw: dict[str, Any]) -> None:
        """applySseEvent, then the browser's handler for the event's type."""
        if self.closed.is_set():
            return
        ev = normalize(raw)
        kind, data = ev.get("type"), ev.get("data")
        if self.seen.skip(ev) or ev.get("subagent") or kind in ("subagent_start", "subagent_end"):
            return
        if kind == "chat_id":
            self.chat_id = ev.get("chatId")
        elif kind == "title_updated":
            self.title = ev.get("title") or self.title
        elif kind == "tool_generating":
            tool_id, name = ev.get("toolCallId"), ev.get("toolName")
            if tool_id and name and tool_id not in self.tools:
                self.tool_names[tool_id] = name
                self._set_tool(tool_id, "executing" if name in self.auto_allowed else "pending")
        elif kind == "tool_call":
            self._tool_call(ev)
        elif kind == "tool_result":
            skipped = rec(ev.get("result")).get("skipped") is True
            failed = ev.get("failedDependency") is True or skipped
            ok = truthy(ev.get("success"))
            self._finish_tool(ev, "success" if ok else "rejected" if failed else "error")
        elif kind == "tool_error":
            self._finish_tool(ev, "rejected" if ev.get("failedDependency") is True else "error")
        elif kind == "reasoning":
            phase = js_or(ev.get("phase"), rec(data).get("phase"))
            if phase == "start":
                self._thinking("", begin=True)
            elif phase == "end":
                self._end_thinking()
            else:
                self._thinking(js_str(data) if isinstance(data, str) else ev.get("content") or "")
        elif kind == "content" and truthy(data):
            self._content(data)
        elif kind == "done":
            self.complete = True
        elif kind == "error":
            self.error, self.complete = ev.get("error"), True
        if self.complete:
            self.end()

    def _tool_call(self, ev: dict[str, Any]) -> None:
        d = rec(ev.get("data"))
        tool_id = js_or(d.get("id"), ev.get("toolCallId"))
        if not truthy(tool_id):
            return
        name = js_or(
            d.get("name"), ev.get("toolName"), self.tool_names.get(tool_id), "unknown_tool"
        )
        auto = name in self.auto_allowed
        state = "executing" if auto or self.tools.get(tool_id) == "executing" else "pending"
        self.tool_names[tool_id] = name
        self._set_tool(tool_id, state)
        if d.get("partial") is True:
            return
        decision = "accepted" if auto else self.decide(name, d.get("arguments") or {})
        self.decisions[tool_id] = decision
        if decision in ("rejected", "background"):
            self.tools[tool_id] = decision

    def end(self) -> None:
        """Sim's route closed the stream (or the browser stopped reading): stream_end."""
        if self.closed.is_set():
            return
        if self.pending and self.in_thinking and self.thinking_block is not None:
            self._thinking(self.pending)
        elif self.pending.strip():
            self._text(self.pending)
        self.pending = ""
        self._end_thinking()
        self.closed.set()

    def stop(self) -> None:
        """Sim's Stop (abortMessage): the stream is aborted, tools in progress are aborted."""
        if self.closed.is_set():
            return
        self.aborted, self.pending = True, ""
        self._end_thinking()
        for tool_id, state in self.tools.items():
            if state not in ("success", "error", "rejected", "aborted"):
                self.tools[tool_id] = "success" if state == "review" else "aborted"
        self.closed.set()
