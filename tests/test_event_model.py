"""The typed events (copilot/events/model.py) write what clients read before they existed.

The golden set below is each emitter's event as it was built by hand before issue 16 (the
dicts are copied from that code). Typed, every one writes the same JSON object (same keys,
same values, the same keys absent); the frames of the per-token events, and of every event
whose field order allowed it, are the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from temporalio.converter import DataConverter

from copilot import types
from copilot.events.fold import fold_events
from copilot.events.model import (
    EVENT_TYPES,
    BaseEvent,
    ChatId,
    Content,
    Done,
    DoneData,
    ErrorEvent,
    PhaseData,
    Reasoning,
    Snapshot,
    SnapshotEvent,
    Start,
    StartData,
    StructuredResult,
    SubagentEnd,
    SubagentStart,
    TitleUpdated,
    TokenUsage,
    ToolCallEvent,
    ToolCallInfo,
    ToolError,
    ToolErrorData,
    ToolGenerating,
    ToolResult,
    ToolStatus,
    TurnReset,
    encode_frame,
    event_type,
    from_wire,
    numbered,
    to_wire,
)
from copilot.store.models import ToolCallRow
from copilot.types import ToolCall

TEXT = 'hé 🙂 "quoted" \u2028 line\nbreaks \x85 \u2029 end'
ARGS = {"path": "src/main.py", "n": 3, "deep": {"x": [1, 2.5, None, True]}}
CALL = {
    "id": "tc_1",
    "name": "read_file",
    "arguments": ARGS,
    "executor": "server",
    "requiresConfirmation": False,
    "status": "pending",
}
INFO = ToolCallInfo(
    id="tc_1",
    name="read_file",
    arguments=ARGS,
    executor="server",
    requires_confirmation=False,
    status="pending",
)
START = {"responseId": "resp_1", "chatId": "c1", "messageId": "m1", "model": "m", "provider": "p"}
START_DATA = StartData(response_id="resp_1", chat_id="c1", message_id="m1", model="m", provider="p")
SNAP = {"status": "running", "content": TEXT, "toolCalls": [CALL], "pending": [], "lastSeq": 41}
USAGE = {"inputTokens": 10, "outputTokens": 3}
DONE = DoneData(
    response_id="resp_1", status="completed", usage=TokenUsage(input_tokens=10, output_tokens=3)
)

# (the event as built by hand before, the typed event, are the frames the same bytes?)
GOLDEN: list[tuple[dict[str, Any], BaseEvent, bool]] = [
    # workflows/chat.py: _prelude, _finish
    ({"type": "start", "data": START}, Start(START_DATA), True),
    (
        {"type": "start", "data": {**START, "notice": "n"}},
        Start(msgspec.structs.replace(START_DATA, notice="n")),
        True,
    ),
    ({"type": "chat_id", "chatId": "c1", "data": {"chatId": "c1"}}, ChatId("c1"), True),
    ({"type": "title_updated", "title": "T"}, TitleUpdated("T"), True),
    (
        {
            "type": "error",
            "error": "boom",
            "data": {"message": "boom", "code": "max_turns", "retryable": False},
        },
        ErrorEvent.of("boom", "max_turns"),
        True,
    ),
    (
        {"type": "done", "data": {"responseId": "resp_1", "status": "completed", "usage": USAGE}},
        Done(DONE),
        True,
    ),
    # activities/turn_events.py (native and Sim's route)
    ({"type": "content", "data": TEXT, "turn": 1}, Content(TEXT, 1), True),
    ({"type": "content", "data": "42", "turn": 2, "content": "42"}, Content("42", 2, "42"), True),
    ({"type": "reasoning", "data": TEXT, "turn": 1}, Reasoning(data=TEXT, turn=1), True),
    (
        {"type": "reasoning", "data": "x", "turn": 1, "content": "x"},
        Reasoning(data="x", turn=1, content="x"),
        True,
    ),
    ({"type": "reasoning", "phase": "start", "turn": 1}, Reasoning(phase="start", turn=1), True),
    (
        {"type": "reasoning", "phase": "end", "turn": 1, "data": {"phase": "end"}},
        Reasoning(phase="end", data=PhaseData(phase="end"), turn=1),
        False,
    ),
    (
        {"type": "tool_generating", "toolCallId": "tc_1", "toolName": "read_file", "turn": 1},
        ToolGenerating("tc_1", "read_file", 1),
        True,
    ),
    (
        {"type": "tool_generating", "toolCallId": None, "toolName": None, "turn": 1},
        ToolGenerating(None, None, 1),
        True,
    ),
    # activities/writer.py
    ({"type": "turn_reset", "turn": 2, "attempt": 3}, TurnReset(2, 3), True),
    (
        {"type": "snapshot", "data": SNAP},
        SnapshotEvent(
            Snapshot(status="running", content=TEXT, tool_calls=[CALL], pending=[], last_seq=41)
        ),
        True,
    ),
    # workflows/steps.py: _call_event, _status_event, _outcome_event
    (
        {"type": "tool_call", "toolCallId": "tc_1", "toolName": "read_file", "data": CALL},
        ToolCallEvent("tc_1", "read_file", INFO),
        True,
    ),
    (
        {
            "type": "tool_call",
            "toolCallId": "tc_1",
            "toolName": "read_file",
            "data": {**CALL, "partial": True},
        },
        ToolCallEvent("tc_1", "read_file", msgspec.structs.replace(INFO, partial=True)),
        True,
    ),
    (
        {"type": "tool_status", "toolCallId": "tc_1", "status": "executing"},
        ToolStatus("tc_1", "executing"),
        True,
    ),
    (
        {
            "type": "tool_result",
            "toolCallId": "tc_1",
            "toolName": "read_file",
            "success": True,
            "result": {"text": TEXT},
            "durationMs": 12,
            "data": {"id": "tc_1", "name": "read_file", "success": True, "result": {"text": TEXT}},
        },
        ToolResult("tc_1", "read_file", True, {"text": TEXT}, 12),
        True,
    ),
    (
        {
            "type": "tool_result",
            "toolCallId": "tc_1",
            "toolName": "read_file",
            "success": True,
            "result": None,
            "durationMs": 0,
            "data": {"id": "tc_1", "name": "read_file", "success": True, "result": None},
        },
        ToolResult("tc_1", "read_file", True, None, 0),
        True,
    ),
    (
        {
            "type": "tool_error",
            "toolCallId": "tc_1",
            "toolName": "read_file",
            "durationMs": 0,
            "data": {"id": "tc_1", "name": "read_file", "error": None},
        },
        ToolError("tc_1", "read_file", ToolErrorData(id="tc_1", name="read_file", error=None), 0),
        False,  # durationMs now follows data
    ),
    # copilot/providers/upstream.py (an upstream backend's events, scoped to a subagent)
    (
        {"type": "content", "data": "x", "turn": 2, "subagent": "research"},
        Content("x", 2, subagent="research"),
        True,
    ),
    ({"type": "reasoning", "phase": "start"}, Reasoning(phase="start"), True),
    ({"type": "subagent_start", "subagent": "research"}, SubagentStart("research"), True),
    ({"type": "subagent_end", "subagent": "research"}, SubagentEnd("research"), True),
    ({"type": "structured_result", "data": {"a": [1]}}, StructuredResult({"a": [1]}), True),
    (
        {
            "type": "tool_call",
            "toolCallId": "tc_1",
            "toolName": "read_file",
            "subagent": "build",
            "data": {**CALL, "status": "executing"},
        },
        ToolCallEvent(
            "tc_1", "read_file", msgspec.structs.replace(INFO, status="executing"), "build"
        ),
        False,  # subagent now follows data
    ),
    (
        {
            "type": "tool_error",
            "toolCallId": "tc_1",
            "toolName": None,
            "data": {"id": "tc_1", "name": None, "error": "quota"},
        },
        ToolError("tc_1", None, ToolErrorData(id="tc_1", name=None, error="quota")),
        True,
    ),
    # api/routes/sim.py: a refused run
    (
        {
            "type": "error",
            "error": "slow down",
            "data": {
                "message": "slow down",
                "code": "rate_limited",
                "status": 429,
                "retryable": True,
            },
        },
        ErrorEvent.of("slow down", "rate_limited", retryable=True, status=429),
        False,  # status now follows retryable
    ),
    ({"type": "done", "data": {"status": "failed"}}, Done(DoneData(status="failed")), True),
]


def _old_frame(event: dict[str, Any]) -> str:
    """copilot/events/log.py's encode_frame before issue 16."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("\x85", "\\u0085")):
        data = data.replace(raw, escaped)
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {data}\n\n"


@pytest.mark.parametrize(("old", "typed", "same_bytes"), GOLDEN)
def test_typed_events_write_what_was_written_before(
    old: dict[str, Any], typed: BaseEvent, same_bytes: bool
) -> None:
    assert to_wire(typed) == old  # unnumbered: as the workflow hands events to an activity
    assert list(to_wire(typed)) == ["type", *(k for k in to_wire(typed) if k != "type")]
    (numbered_old,) = numbered([old], 7, "run_x")
    (numbered_typed,) = numbered([typed], 7, "run_x")
    frame = encode_frame(numbered_typed)
    lines = frame.split("\n")
    assert lines[:2] == ["id: 7", f"event: {old['type']}"]
    assert json.loads(lines[2].removeprefix("data: ")) == numbered_old
    assert frame.splitlines() == lines[:-1]  # U+2028 and friends escaped: 4 lines, no more
    if same_bytes:
        assert frame == _old_frame(numbered_old)
    # A JSON object read back from the log (the API's case) is framed as it always was.
    assert encode_frame(numbered_old) == _old_frame(numbered_old)


def test_the_golden_set_covers_every_event_type() -> None:
    assert {type(typed) for _, typed, _ in GOLDEN} == set(EVENT_TYPES)


@pytest.mark.parametrize(("old", "typed", "same_bytes"), GOLDEN)
def test_every_event_round_trips_and_the_union_decodes_by_type(
    old: dict[str, Any], typed: BaseEvent, same_bytes: bool
) -> None:
    decoded = from_wire({**old, "seq": 3, "runId": "r"})
    assert type(decoded) is type(typed)
    assert decoded == msgspec.structs.replace(typed, seq=3, run_id="r")
    assert event_type(decoded) == old["type"]


def test_tool_result_carries_its_result_twice_from_one_field() -> None:
    event = ToolResult("tc_1", "echo", True, {"v": 1}, 5)
    wire = to_wire(event)
    assert wire["result"] == wire["data"]["result"] == {"v": 1}
    # A decoded event rebuilds the copy from the top-level field: the two cannot disagree.
    decoded = from_wire({**wire, "data": {"id": "x", "name": "y", "success": False, "result": 2}})
    assert isinstance(decoded, ToolResult)
    assert to_wire(decoded)["data"] == {
        "id": "tc_1",
        "name": "echo",
        "success": True,
        "result": {"v": 1},
    }


def test_unknown_or_malformed_objects_decode_to_none_and_fold_counts_their_seq() -> None:
    assert from_wire({"type": "future_thing", "seq": 1}) is None
    assert from_wire({"type": "content", "seq": 2}) is None  # no data
    folded = fold_events(
        [{"type": "future_thing", "seq": 1}, Content("hi", 1, seq=2), {"type": "content", "seq": 3}]
    )
    assert (folded.content, folded.last_seq) == ("hi", 3)


def test_a_snapshot_always_has_every_key() -> None:
    assert to_wire(SnapshotEvent(Snapshot()))["data"] == {
        "status": "running",
        "content": "",
        "toolCalls": [],
        "pending": [],
        "lastSeq": 0,
    }


def test_the_type_names_in_copilot_types_are_the_models() -> None:
    names = {v for k, v in vars(types).items() if k.startswith("EV_")}
    assert names <= {event_type(cls) for cls in EVENT_TYPES}


def test_one_tool_call_type_from_provider_to_store() -> None:
    call = ToolCall("tc_1", "echo", {"a": 1}, provider_id="call_0")
    public = call.public()  # what crosses into the workflow: no provider id
    assert public == ToolCall("tc_1", "echo", {"a": 1})
    values = ToolCallRow.values_for(
        public,
        run_id="r",
        chat_id="c",
        tenant_id="t",
        user_id="u",
        executor="client",
        host_executed=True,
    )
    assert ToolCallRow(**values).to_call() == ToolCall("tc_1", "echo")
    # Payloads recorded before: StreamTurnResult's calls, and the upstream reader's signal
    # (then BackendToolCall, upstream_id first), decode into the one type by field name.
    converter = DataConverter.default.payload_converter
    old_signal = {"upstream_id": "u1", "id": "tc_2", "name": "n", "arguments": {}, "subagent": "s"}
    old_call = {"id": "tc_3", "name": "m", "arguments": {"x": 1}}
    payloads = converter.to_payloads([old_signal, old_call])
    decoded = converter.from_payloads(payloads, [ToolCall, ToolCall])
    assert decoded == [
        ToolCall("tc_2", "n", {}, upstream_id="u1", subagent="s"),
        ToolCall("tc_3", "m", {"x": 1}),
    ]
