"""Provider ``copilot-backend``: an upstream copilot backend that speaks Sim's protocol.

The upstream runs the agent loop itself and streams Sim's events over SSE. It asks the host
(us) to execute tools with ``tool_call`` and keeps its stream open until each result comes
back through ``POST /api/tools/mark-complete``. So, unlike the LLM providers, one upstream
"turn" pauses mid-stream for tool results that our workflow decides; the reader hands every
tool call to the workflow and keeps reading (see ``activities/upstream.py``).

``UpstreamTranslator`` is the pure part: one upstream SSE message in, our actions out:
- ``Forward``: an event for our log (content, reasoning, subagent scope, the upstream's own
  tools, titles...), already in our shapes and with our tool call ids;
- a ``ToolCall`` (with the upstream's id): a tool call for our workflow to execute (server
  tool, client tool, with confirmations), then report upstream;
- ``Finished``: the upstream's ``done`` (or ``[DONE]``).
Malformed frames raise ``MalformedFrame``; an upstream ``error`` raises ``UpstreamFailed``.

Exception tree::

    ProviderError (copilot.providers.base)
    ├── MalformedFrame   retryable: the stream is corrupt, a new upstream call may be fine
    └── UpstreamFailed   the upstream reported an error event (retryable if it said so)
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from copilot.events.model import (
    BaseEvent,
    Content,
    Reasoning,
    StructuredResult,
    SubagentEnd,
    SubagentStart,
    TitleUpdated,
    ToolCallEvent,
    ToolCallInfo,
    ToolError,
    ToolErrorData,
    ToolGenerating,
    ToolResult,
    ToolStatus,
    TurnReset,
)
from copilot.providers.base import ProviderError
from copilot.providers.sse import SseMessage
from copilot.types import (
    EV_CONTENT,
    EV_REASONING,
    EV_STRUCTURED_RESULT,
    EV_SUBAGENT_END,
    EV_SUBAGENT_START,
    EV_TITLE_UPDATED,
    EV_TOOL_CALL,
    EV_TOOL_ERROR,
    EV_TOOL_GENERATING,
    EV_TOOL_RESULT,
    EV_TOOL_STATUS,
    EV_TURN_RESET,
    ToolCall,
    Usage,
)

# Ids of our tool calls, derived from the upstream's: the same upstream id maps to the same id
# in every activity attempt and in the workflow, with no shared state.
_TOOL_ID_NAMESPACE = uuid.UUID("6f1d9a4e-3c1b-4d0e-9a57-2b8c7e5d4f10")


def tool_call_id_for(run_id: str, upstream_id: str) -> str:
    return f"tc_{uuid.uuid5(_TOOL_ID_NAMESPACE, f'{run_id}:{upstream_id}')}"


def upstream_chat_id(chat_id: str) -> str:
    """The chat's id upstream: stable per chat (so the upstream keeps one conversation), and
    not ours, so an upstream sharing a database, Redis or Temporal with us (another instance
    of this server) never confuses its chat, runs and logs with ours."""
    return str(uuid.uuid5(_TOOL_ID_NAMESPACE, f"chat:{chat_id}"))


class MalformedFrame(ProviderError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, code="upstream_malformed")


class UpstreamFailed(ProviderError):
    def __init__(self, message: str, *, retryable: bool, code: str | None) -> None:
        super().__init__(message, retryable=retryable, code=code or "upstream_error")


@dataclass
class Forward:
    event: BaseEvent


@dataclass
class Finished:
    status: str
    usage: Usage
    response_id: str | None


# A ``ToolCall`` action is handed to the workflow (its ``upstream_id`` set).
Action = Forward | ToolCall | Finished


def _is_upstream_owned(name: str, data: dict[str, Any]) -> bool:
    """Tools the upstream runs itself: ours say ``executor: server``; Sim's hosted backend
    has internal ``*_respond`` tools that close its subagents."""
    return data.get("executor") == "server" or name.endswith("_respond")


@dataclass
class UpstreamTranslator:
    run_id: str
    label: str = "The copilot backend"
    response_id: str | None = None
    finished: Finished | None = None
    ignored_after_done: int = 0
    # Top-level answer text by upstream turn (subagent text is shown, not part of the answer).
    text: dict[int, list[str]] = field(default_factory=dict)
    turn: int = 1
    _generating: set[str] = field(default_factory=set)
    _handed: set[str] = field(default_factory=set)
    _owned: set[str] = field(default_factory=set)

    @property
    def content(self) -> str:
        return "".join("".join(self.text[t]) for t in sorted(self.text))

    def handle(self, message: SseMessage) -> list[Action]:
        raw = message.data.strip()
        if self.finished is not None:
            if raw and raw != "[DONE]":
                self.ignored_after_done += 1
            return []
        if raw == "[DONE]":
            self.finished = Finished("completed", Usage(), self.response_id)
            return [self.finished]
        try:
            event = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise MalformedFrame(
                f"{self.label} sent a malformed frame ({exc.msg} at {exc.pos}): {raw[:120]!r}"
            ) from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise MalformedFrame(f"{self.label} sent a frame without a type: {raw[:120]!r}")
        return self._event(event)

    # --- one event -----------------------------------------------------------------------------

    def _event(self, event: dict[str, Any]) -> list[Action]:
        kind = event["type"]
        data = event.get("data")
        sub = event["subagent"] if isinstance(event.get("subagent"), str) else None
        if isinstance(event.get("turn"), int) and event["turn"] > 0:
            self.turn = event["turn"]
        if kind == "start":
            self._take_response_id(data)
            return []
        if kind == EV_CONTENT:
            chunk = _text_of(data)
            if not chunk:
                return []
            if sub is None:
                self.text.setdefault(self.turn, []).append(chunk)
            return [Forward(Content(chunk, self.turn, subagent=sub))]
        if kind == EV_REASONING:
            phase = event.get("phase") or (data.get("phase") if isinstance(data, dict) else None)
            if phase in ("start", "end"):
                return [Forward(Reasoning(phase=phase, subagent=sub))]
            chunk = _text_of(data)
            if not chunk:
                return []
            return [Forward(Reasoning(data=chunk, turn=self.turn, subagent=sub))]
        if kind == EV_TURN_RESET:
            self.text.pop(self.turn, None)
            return [Forward(TurnReset(self.turn, _int(event.get("attempt"), 2)))]
        if kind == EV_TOOL_GENERATING:
            upstream_id = _first_str(
                event.get("toolCallId"), _get(data, "toolCallId"), _get(data, "id")
            )
            name = _first_str(event.get("toolName"), _get(data, "toolName"), _get(data, "name"))
            return self._generating_event(upstream_id, name, sub)
        if kind == EV_TOOL_CALL:
            return self._tool_call(event, sub)
        if kind in (EV_TOOL_STATUS, EV_TOOL_RESULT, EV_TOOL_ERROR):
            return self._tool_progress(event, sub)
        if kind in (EV_SUBAGENT_START, EV_SUBAGENT_END):
            name = _first_str(event.get("subagent"), _get(data, "subagent"), _get(data, "agent"))
            scope = SubagentStart if kind == EV_SUBAGENT_START else SubagentEnd
            return [Forward(scope(name or "subagent"))]
        if kind == EV_STRUCTURED_RESULT:
            return [Forward(StructuredResult(data if data is not None else {}, subagent=sub))]
        if kind == EV_TITLE_UPDATED:
            title = _first_str(event.get("title"), _get(data, "title"))
            return [Forward(TitleUpdated(title))] if title else []
        if kind == "error":
            message = _first_str(
                _get(data, "message"),
                _get(data, "error"),
                event.get("error"),
                data if isinstance(data, str) else None,
            )
            retryable = _get(data, "retryable") is True
            code = _first_str(_get(data, "code"))
            raise UpstreamFailed(
                f"{self.label} reported an error: {message or 'no message'}",
                retryable=retryable,
                code=code,
            )
        if kind == "done":
            self._take_response_id(data)
            status = _first_str(_get(data, "status")) or "completed"
            self.finished = Finished(status, _usage(_get(data, "usage")), self.response_id)
            return [self.finished]
        # chat_id (we announce our own), ping-like and future types: nothing for our clients.
        return []

    def _take_response_id(self, data: Any) -> None:
        rid = _first_str(_get(data, "responseId"))
        if rid:
            self.response_id = rid

    def _generating_event(
        self, upstream_id: str | None, name: str | None, sub: str | None
    ) -> list[Action]:
        if not upstream_id or upstream_id in self._generating:
            return []
        self._generating.add(upstream_id)
        ours = tool_call_id_for(self.run_id, upstream_id)
        return [Forward(ToolGenerating(ours, name, subagent=sub))]

    def _tool_call(self, event: dict[str, Any], sub: str | None) -> list[Action]:
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        assert isinstance(data, dict)
        upstream_id = _first_str(data.get("id"), event.get("toolCallId"))
        name = _first_str(data.get("name"), event.get("toolName"))
        if not upstream_id or not name:
            raise MalformedFrame(f"{self.label} sent a tool_call without an id or a name")
        if data.get("partial") is True:
            return self._generating_event(upstream_id, name, sub)
        if upstream_id in self._handed or upstream_id in self._owned:
            return []  # a repeat (the upstream replayed its stream): never run a call twice
        arguments = data.get("arguments", data.get("input", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                raise MalformedFrame(
                    f"{self.label} sent unparseable arguments for tool {name}"
                ) from None
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        ours = tool_call_id_for(self.run_id, upstream_id)
        actions: list[Action] = list(self._generating_event(upstream_id, name, sub))
        if _is_upstream_owned(name, data):
            self._owned.add(upstream_id)
            info = ToolCallInfo(
                id=ours,
                name=name,
                arguments=arguments,
                executor="server",
                requires_confirmation=False,
                status=str(data.get("status") or "executing"),
            )
            actions.append(Forward(ToolCallEvent(ours, name, info, subagent=sub)))
            return actions
        self._handed.add(upstream_id)
        actions.append(ToolCall(ours, name, arguments, upstream_id=upstream_id, subagent=sub))
        return actions

    def _tool_progress(self, event: dict[str, Any], sub: str | None) -> list[Action]:
        """Progress of a tool: the upstream's own ones are shown; ours are reported by our
        workflow (the upstream echoes our results back, which would show them twice)."""
        data = event.get("data")
        upstream_id = _first_str(
            event.get("toolCallId"), _get(data, "id"), _get(data, "toolCallId")
        )
        if not upstream_id or upstream_id not in self._owned:
            return []
        ours = tool_call_id_for(self.run_id, upstream_id)
        kind = event["type"]
        name = _first_str(event.get("toolName"), _get(data, "name"))
        if kind == EV_TOOL_STATUS:
            status = _first_str(event.get("status"), _get(data, "status")) or "executing"
            return [Forward(ToolStatus(ours, status, subagent=sub))]
        if kind == EV_TOOL_RESULT:
            result = event.get("result", _get(data, "result"))
            success = event.get("success", _get(data, "success"))
            duration = _int(event.get("durationMs"), 0)
            ok = success is not False
            return [Forward(ToolResult(ours, name, ok, result, duration, subagent=sub))]
        error = _first_str(_get(data, "error"), event.get("error")) or "the tool failed"
        info = ToolErrorData(id=ours, name=name, error=error)
        return [Forward(ToolError(ours, name, info, subagent=sub))]


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else None


def _first_str(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def _int(value: Any, default: int) -> int:
    """A count from the upstream (typed events take ints only; a float is cut, else default)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def _text_of(data: Any) -> str:
    if isinstance(data, str):
        return data
    return _first_str(_get(data, "content"), _get(data, "data"), _get(data, "text")) or ""


def _usage(data: Any) -> Usage:
    def count(*keys: str) -> int:
        for key in keys:
            value = _get(data, key)
            if isinstance(value, int) and value >= 0:
                return value
        return 0

    return Usage(
        count("inputTokens", "input_tokens", "prompt_tokens"),
        count("outputTokens", "output_tokens", "completion_tokens"),
    )
