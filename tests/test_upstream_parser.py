"""Pure unit tests for the upstream stream parser: ``copilot.providers.sse.SseDecoder`` (bytes in
any chunking -> SSE messages) and ``copilot.providers.upstream.UpstreamTranslator`` (one upstream
message -> our actions). No services, no network."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copilot.events.model import from_wire, to_wire
from copilot.providers.sse import SseDecoder, SseMessage
from copilot.providers.upstream import (
    Action,
    Finished,
    Forward,
    MalformedFrame,
    UpstreamFailed,
    UpstreamTranslator,
    tool_call_id_for,
)
from copilot.types import ToolCall, Usage

# --- helpers ---------------------------------------------------------------------------------


def fwd(event: dict[str, Any]) -> Forward:
    """The Forward action the translator gives for this event as the wire shows it."""
    typed = from_wire(event)
    assert typed is not None, event
    assert to_wire(typed) == event  # the typed event writes exactly this JSON
    return Forward(typed)


def handoff(
    upstream_id: str, ours: str, name: str, arguments: dict[str, Any], subagent: str | None
) -> ToolCall:
    return ToolCall(ours, name, arguments, upstream_id=upstream_id, subagent=subagent)


def decode_whole(raw: bytes) -> list[SseMessage]:
    decoder = SseDecoder()
    return decoder.feed(raw) + decoder.close()


def decode_pieces(pieces: Iterable[bytes]) -> list[SseMessage]:
    decoder = SseDecoder()
    out: list[SseMessage] = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    return out + decoder.close()


def split_at(raw: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


def join_lines(lines: list[str], ends: list[str]) -> str:
    """Terminate each line with its line end; a "\\r" followed by an empty line ended by "\\n"
    would read as one "\\r\\n" and swallow that blank line, so that one becomes "\\r\\n"."""
    out: list[str] = []
    previous = ""
    for line, end in zip(lines, ends, strict=True):
        if previous == "\r" and line == "" and end == "\n":
            end = "\r\n"
        out.append(line + end)
        previous = end
    return "".join(out)


# --- SseDecoder: property ----------------------------------------------------------------------

LINE_ENDS = ("\n", "\r\n", "\r")

# Characters that must never end a line in SSE although str.splitlines() would split on them.
_TRICKY = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x00"]
_char = st.one_of(
    st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"),
    st.sampled_from(["é", "€", "😀", "中", "𝄞", " ", ":", *_TRICKY]),
)
_value = st.text(alphabet=_char, max_size=10)


@st.composite
def field_line(draw: st.DrawFn, name: str, value: str) -> str:
    """``name: value`` as a server may write it: the space after the colon is optional unless
    the value itself starts with a space; an empty value may have no colon at all."""
    if value == "" and draw(st.booleans()):
        return name
    space = " " if value.startswith(" ") or draw(st.booleans()) else ""
    return f"{name}:{space}{value}"


_noise_line = st.one_of(
    st.text(alphabet=_char, max_size=8).map(lambda text: ":" + text),  # comments / pings
    st.sampled_from(["retry: 1000", "foo: bar", "Data: x", "data ", " data: x", "DATA:x"]),
)


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[SseMessage]]:
    """Random SSE bytes and the messages they must decode to."""
    lines: list[str] = []
    expected: list[SseMessage] = []
    last_id: str | None = None
    for _ in range(draw(st.integers(0, 5))):
        values = draw(st.lists(_value, max_size=4))  # no data line: nothing is dispatched
        block = [draw(field_line("data", value)) for value in values]
        extras = draw(st.lists(_noise_line, max_size=2))
        event = draw(st.none() | _value)
        if event is not None:
            extras.append(draw(field_line("event", event)))
        id_ = draw(st.none() | _value)
        if id_ is not None:
            extras.append(draw(field_line("id", id_)))
            if "\x00" not in id_:  # an id containing NUL is ignored
                last_id = id_
        for extra in extras:  # extras anywhere in the block; data lines keep their order
            block.insert(draw(st.integers(0, len(block))), extra)
        lines.extend([*block, ""])
        if draw(st.booleans()):
            lines.append("")  # a second blank line dispatches nothing
        if values:
            expected.append(SseMessage("\n".join(values), event or "message", last_id))
    # A last message cut before its blank line: close() must drop it.
    unfinished = [draw(field_line("data", v)) for v in draw(st.lists(_value, max_size=2))]
    lines.extend(unfinished)
    ends = draw(st.lists(st.sampled_from(LINE_ENDS), min_size=len(lines), max_size=len(lines)))
    text = join_lines(lines, ends)
    if unfinished and draw(st.booleans()):
        text = text.rstrip("\r\n")  # ... or cut mid-line
    return text.encode("utf-8"), expected


@settings(max_examples=200, deadline=None)
@given(stream=sse_streams(), data=st.data())
def test_sse_decoder_is_independent_of_chunking(
    stream: tuple[bytes, list[SseMessage]], data: st.DataObject
) -> None:
    raw, expected = stream
    cuts = data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=24), label="cuts")
    pieces = split_at(raw, {c for c in cuts if 0 < c < len(raw)})
    assert b"".join(pieces) == raw
    assert all(pieces) or raw == b""
    whole = decode_whole(raw)
    assert whole == expected
    assert decode_pieces(pieces) == whole


def test_sse_decoder_byte_by_byte_and_every_single_cut() -> None:
    text = (
        ": ping\r\n"
        "event: delta\r"
        "id: 7\n"
        "data: h€llo 😀\r\n"
        "data:  two spaces\r\n"
        "data\r\n"
        "\r\n"
        "data:中\u2028文\x85\r"
        "\r"
        "data: tail without its blank line\r\n"
    )
    raw = text.encode("utf-8")
    expected = [
        SseMessage("h€llo 😀\n two spaces\n", "delta", "7"),
        SseMessage("中\u2028文\x85", "message", "7"),
    ]
    assert decode_whole(raw) == expected
    assert decode_pieces(raw[i : i + 1] for i in range(len(raw))) == expected
    for cut in range(1, len(raw)):
        assert decode_pieces(split_at(raw, [cut])) == expected, cut


def test_sse_decoder_crlf_split_across_chunks_is_one_line_end() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\r") == []
    # The "\n" completes the "\r\n" of the previous line: it is not a blank line.
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\r\n") == [SseMessage("a\nb")]


def test_sse_decoder_cr_then_cr_lf_is_a_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r\n") == [SseMessage("a")]


def test_sse_decoder_empty_chunk_between_cr_and_lf() -> None:
    # feed(b"") is a legal call (a transport may hand over an empty read); it must not make the
    # "\n" of a split "\r\n" count as a second line end (a blank line that dispatches early).
    pieces = [b"data: a\r", b"", b"\ndata: b\r\n\r\n"]
    assert decode_pieces(pieces) == decode_whole(b"".join(pieces)) == [SseMessage("a\nb")]


def test_sse_decoder_split_multibyte_character() -> None:
    raw = "data: 😀€\n\n".encode()
    decoder = SseDecoder()
    out: list[SseMessage] = []
    for i in range(len(raw)):
        out.extend(decoder.feed(raw[i : i + 1]))
    assert out == [SseMessage("😀€")]
    assert "\ufffd" not in out[0].data


def test_sse_decoder_close_drops_unfinished_message() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b'data: {"type": "done"}\n') == []
    assert decoder.close() == []
    decoder = SseDecoder()
    assert decoder.feed(b"data: one\n\ndata: two") == [SseMessage("one")]
    assert decoder.close() == []


def test_sse_decoder_event_is_reset_id_is_kept() -> None:
    raw = b"event: a\nid: 1\ndata: x\n\ndata: y\n\nevent: lost\n\ndata: z\nid: \x00bad\n\n"
    assert decode_whole(raw) == [
        SseMessage("x", "a", "1"),
        SseMessage("y", "message", "1"),  # event reset after dispatch, id persists
        SseMessage("z", "message", "1"),  # event of a data-less block dropped, NUL id ignored
    ]


def test_sse_decoder_strips_leading_bom() -> None:
    # WHATWG: the stream is decoded with "UTF-8 decode", which strips one leading BOM.
    assert decode_whole(b"\xef\xbb\xbfdata: x\n\n") == [SseMessage("x")]


# --- UpstreamTranslator: a realistic stream ------------------------------------------------------

RUN_ID = "run_01HZX"
OURS_READ = tool_call_id_for(RUN_ID, "toolu_01")
OURS_SEARCH = tool_call_id_for(RUN_ID, "srv_1")

UPSTREAM: list[dict[str, Any] | str] = [
    {"type": "start", "data": {"responseId": "resp_abc"}},
    {"type": "chat_id", "data": {"chatId": "chat_1"}},
    {"type": "content", "turn": 1, "data": "Let me look "},
    {"type": "reasoning", "phase": "start"},
    {"type": "reasoning", "data": {"content": "The user wants main.py."}},
    {"type": "reasoning", "phase": "end"},
    {"type": "content", "data": {"content": "at that file.\n"}},
    {"type": "tool_call", "data": {"id": "toolu_01", "name": "read_file", "partial": True}},
    {
        "type": "tool_call",
        "data": {"id": "toolu_01", "name": "read_file", "arguments": {"path": "src/main.py"}},
    },
    {"type": "tool_status", "toolCallId": "toolu_01", "status": "executing"},
    # The upstream repeats the call (a replay): it must not be handed off twice.
    {
        "type": "tool_call",
        "data": {"id": "toolu_01", "name": "read_file", "arguments": {"path": "src/main.py"}},
    },
    {
        "type": "tool_result",
        "toolCallId": "toolu_01",
        "data": {"id": "toolu_01", "success": True, "result": "print('hi')"},
    },
    {"type": "content", "turn": 2, "data": "It prints hi. "},
    {
        "type": "tool_call",
        "data": {
            "id": "srv_1",
            "name": "search_documentation",
            "executor": "server",
            "arguments": '{"query": "print"}',
        },
    },
    {"type": "tool_status", "toolCallId": "srv_1", "data": {"status": "executing"}},
    {
        "type": "tool_result",
        "toolCallId": "srv_1",
        "toolName": "search_documentation",
        "success": True,
        "result": {"hits": 2},
        "durationMs": 12,
    },
    {"type": "subagent_start", "subagent": "research"},
    {"type": "content", "subagent": "research", "data": "Digging in…"},
    {"type": "subagent_end", "subagent": "research"},
    {"type": "content", "data": "Done ✅"},
    {"type": "structured_result", "data": {"summary": "ok", "files": ["src/main.py"]}},
    {"type": "title_updated", "title": "Reading main.py"},
    {
        "type": "done",
        "data": {"status": "completed", "usage": {"inputTokens": 1200, "outputTokens": 85}},
    },
    "[DONE]",
    {"type": "content", "data": "late text"},
]

FINISHED = Finished("completed", Usage(1200, 85), "resp_abc")

EXPECTED_ACTIONS: list[Action] = [
    fwd({"type": "content", "data": "Let me look ", "turn": 1}),
    fwd({"type": "reasoning", "phase": "start"}),
    fwd({"type": "reasoning", "data": "The user wants main.py.", "turn": 1}),
    fwd({"type": "reasoning", "phase": "end"}),
    fwd({"type": "content", "data": "at that file.\n", "turn": 1}),
    fwd({"type": "tool_generating", "toolCallId": OURS_READ, "toolName": "read_file"}),
    handoff("toolu_01", OURS_READ, "read_file", {"path": "src/main.py"}, None),
    fwd({"type": "content", "data": "It prints hi. ", "turn": 2}),
    fwd({"type": "tool_generating", "toolCallId": OURS_SEARCH, "toolName": "search_documentation"}),
    fwd(
        {
            "type": "tool_call",
            "toolCallId": OURS_SEARCH,
            "toolName": "search_documentation",
            "data": {
                "id": OURS_SEARCH,
                "name": "search_documentation",
                "arguments": {"query": "print"},
                "executor": "server",
                "requiresConfirmation": False,
                "status": "executing",
            },
        }
    ),
    fwd({"type": "tool_status", "toolCallId": OURS_SEARCH, "status": "executing"}),
    fwd(
        {
            "type": "tool_result",
            "toolCallId": OURS_SEARCH,
            "toolName": "search_documentation",
            "success": True,
            "result": {"hits": 2},
            "durationMs": 12,
            "data": {
                "id": OURS_SEARCH,
                "name": "search_documentation",
                "success": True,
                "result": {"hits": 2},
            },
        }
    ),
    fwd({"type": "subagent_start", "subagent": "research"}),
    fwd({"type": "content", "data": "Digging in…", "turn": 2, "subagent": "research"}),
    fwd({"type": "subagent_end", "subagent": "research"}),
    fwd({"type": "content", "data": "Done ✅", "turn": 2}),
    fwd({"type": "structured_result", "data": {"summary": "ok", "files": ["src/main.py"]}}),
    fwd({"type": "title_updated", "title": "Reading main.py"}),
    FINISHED,
]

EXPECTED_CONTENT = "Let me look at that file.\nIt prints hi. Done ✅"


def upstream_lines(events: list[dict[str, Any] | str]) -> list[str]:
    """The upstream's SSE lines: pings, ``event:``/``id:`` fields, and every other JSON frame
    spread over several ``data:`` lines (joined with "\\n", it is still the same JSON)."""
    lines: list[str] = [": connected"]
    for n, event in enumerate(events):
        if isinstance(event, str):
            body = [event]
        elif n % 2:
            body = json.dumps(event, ensure_ascii=False, indent=1).split("\n")
        else:
            body = [json.dumps(event, ensure_ascii=False)]
        if n % 3 == 0:
            lines.append(": ping")
        if n % 4 == 0:
            lines.append("event: message")
        lines.append(f"id: {n}")
        lines.extend(f"data: {line}" for line in body)
        lines.append("")
    return lines


def translate(messages: Iterable[SseMessage], translator: UpstreamTranslator) -> list[Action]:
    actions: list[Action] = []
    for message in messages:
        actions.extend(translator.handle(message))
    return actions


def test_tool_call_id_for_is_deterministic() -> None:
    ours = tool_call_id_for("run_1", "toolu_01")
    assert ours.startswith("tc_")
    assert ours == tool_call_id_for("run_1", "toolu_01")
    assert ours != tool_call_id_for("run_2", "toolu_01")
    assert ours != tool_call_id_for("run_1", "toolu_02")


def test_realistic_stream_whole() -> None:
    raw = join_lines(lines := upstream_lines(UPSTREAM), ["\n"] * len(lines)).encode()
    messages = decode_whole(raw)
    assert len(messages) == len(UPSTREAM)
    translator = UpstreamTranslator(run_id=RUN_ID)
    assert translate(messages, translator) == EXPECTED_ACTIONS
    assert translator.content == EXPECTED_CONTENT
    assert sorted(translator.text) == [1, 2]
    assert translator.finished == FINISHED
    assert translator.response_id == "resp_abc"
    assert translator.ignored_after_done == 1  # "late text"; the "[DONE]" is not counted


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_realistic_stream_any_chunking(data: st.DataObject) -> None:
    lines = upstream_lines(UPSTREAM)
    ends = data.draw(
        st.lists(st.sampled_from(LINE_ENDS), min_size=len(lines), max_size=len(lines)),
        label="line ends",
    )
    raw = join_lines(lines, ends).encode("utf-8")
    cuts = data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=40), label="cuts")
    translator = UpstreamTranslator(run_id=RUN_ID)
    actions = translate(decode_pieces(split_at(raw, cuts)), translator)
    assert actions == EXPECTED_ACTIONS
    handoffs = [a for a in actions if isinstance(a, ToolCall)]
    assert [h.upstream_id for h in handoffs] == ["toolu_01"]
    assert translator.content == EXPECTED_CONTENT
    assert "Digging in" not in translator.content
    assert translator.finished == FINISHED
    assert translator.ignored_after_done == 1


# --- UpstreamTranslator: single behaviours -------------------------------------------------------


def msg(event: dict[str, Any]) -> SseMessage:
    return SseMessage(json.dumps(event))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("{not json", "malformed frame"),
        ('{"type": "content", "data": "x"', "malformed frame"),
        ("", "malformed frame"),
        ('{"data": "no type"}', "without a type"),
        ('{"type": 3}', "without a type"),
        ('["content"]', "without a type"),
        ('"content"', "without a type"),
    ],
)
def test_malformed_frame_raises(data: str, problem: str) -> None:
    translator = UpstreamTranslator(run_id=RUN_ID, label="Upstream X")
    with pytest.raises(MalformedFrame) as caught:
        translator.handle(SseMessage(data))
    assert problem in str(caught.value)
    assert str(caught.value).startswith("Upstream X sent")
    assert data[:20] in str(caught.value)
    assert caught.value.retryable is True
    assert caught.value.code == "upstream_malformed"
    assert translator.finished is None


def test_malformed_frame_mid_stream_propagates_after_earlier_actions() -> None:
    raw = b'data: {"type": "content", "data": "ok"}\n\ndata: {"type": "cont\n\n'
    translator = UpstreamTranslator(run_id=RUN_ID)
    good, bad = decode_whole(raw)
    assert translator.handle(good) == [fwd({"type": "content", "data": "ok", "turn": 1})]
    with pytest.raises(MalformedFrame, match=r"malformed frame .*'\{\"type\": \"cont'"):
        translator.handle(bad)
    assert translator.finished is None


def test_tool_call_without_id_or_unparseable_arguments_is_malformed() -> None:
    translator = UpstreamTranslator(run_id=RUN_ID)
    with pytest.raises(MalformedFrame, match="without an id or a name"):
        translator.handle(msg({"type": "tool_call", "data": {"name": "read_file"}}))
    with pytest.raises(MalformedFrame, match="unparseable arguments for tool read_file"):
        translator.handle(
            msg({"type": "tool_call", "data": {"id": "t1", "name": "read_file", "arguments": "{"}})
        )


def test_error_event_raises_upstream_failed() -> None:
    translator = UpstreamTranslator(run_id=RUN_ID, label="Upstream X")
    event = {
        "type": "error",
        "data": {"message": "rate limited by model", "code": "rate_limit", "retryable": True},
    }
    with pytest.raises(UpstreamFailed) as caught:
        translator.handle(msg(event))
    assert str(caught.value) == "Upstream X reported an error: rate limited by model"
    assert caught.value.retryable is True
    assert caught.value.code == "rate_limit"


@pytest.mark.parametrize(
    ("event", "text"),
    [
        ({"type": "error", "data": "context window exceeded"}, "context window exceeded"),
        ({"type": "error", "error": "boom"}, "boom"),
        ({"type": "error", "data": {"error": "bad key"}}, "bad key"),
        ({"type": "error"}, "no message"),
    ],
)
def test_error_event_shapes(event: dict[str, Any], text: str) -> None:
    with pytest.raises(UpstreamFailed) as caught:
        UpstreamTranslator(run_id=RUN_ID).handle(msg(event))
    assert caught.value.message.endswith(f"reported an error: {text}")
    assert caught.value.retryable is False
    assert caught.value.code == "upstream_error"


def test_events_after_done_are_ignored_and_counted() -> None:
    translator = UpstreamTranslator(run_id=RUN_ID)
    assert translator.handle(msg({"type": "content", "data": "answer"})) != []
    done = translator.handle(msg({"type": "done", "data": {"responseId": "resp_9"}}))
    assert done == [Finished("completed", Usage(), "resp_9")]
    late = [
        msg({"type": "content", "data": "more"}),
        msg({"type": "tool_call", "data": {"id": "t9", "name": "read_file"}}),
        msg({"type": "error", "data": {"message": "late error"}}),
        msg({"type": "done", "data": {"status": "error"}}),
        SseMessage("not even json"),
        SseMessage("[DONE]"),
    ]
    assert [translator.handle(m) for m in late] == [[]] * len(late)
    assert translator.ignored_after_done == 5  # "[DONE]" is the expected terminator
    assert translator.finished == Finished("completed", Usage(), "resp_9")
    assert translator.content == "answer"


def test_sentinel_done_finishes() -> None:
    translator = UpstreamTranslator(run_id=RUN_ID)
    translator.handle(msg({"type": "start", "data": {"responseId": "resp_1"}}))
    assert translator.handle(SseMessage(" [DONE] ")) == [Finished("completed", Usage(), "resp_1")]
    assert translator.handle(msg({"type": "done"})) == []
    assert translator.ignored_after_done == 1


def test_done_usage_and_status() -> None:
    translator = UpstreamTranslator(run_id=RUN_ID)
    event = {
        "type": "done",
        "data": {
            "status": "max_turns",
            "responseId": "r2",
            "usage": {"input_tokens": 10, "completion_tokens": 4},
        },
    }
    assert translator.handle(msg(event)) == [Finished("max_turns", Usage(10, 4), "r2")]


def test_stream_without_done_is_not_finished() -> None:
    raw = (
        b'data: {"type": "start", "data": {"responseId": "r"}}\n\n'
        b'data: {"type": "content", "data": "partial answer"}\n\n'
        b'data: {"type": "done"}\n'  # cut before its blank line: dropped
    )
    translator = UpstreamTranslator(run_id=RUN_ID)
    actions = translate(decode_whole(raw), translator)
    assert actions == [fwd({"type": "content", "data": "partial answer", "turn": 1})]
    assert translator.finished is None
    assert translator.content == "partial answer"


def test_turn_reset_drops_that_turns_text() -> None:
    translator = UpstreamTranslator(run_id=RUN_ID)
    translator.handle(msg({"type": "content", "turn": 1, "data": "first turn. "}))
    translator.handle(msg({"type": "content", "turn": 2, "data": "draft that failed"}))
    reset = translator.handle(msg({"type": "turn_reset", "turn": 2, "attempt": 3}))
    assert reset == [fwd({"type": "turn_reset", "turn": 2, "attempt": 3})]
    assert translator.content == "first turn. "
    translator.handle(msg({"type": "content", "data": "retried text"}))
    assert translator.content == "first turn. retried text"
    assert sorted(translator.text) == [1, 2]


def test_subagent_content_is_forwarded_but_not_answer_text() -> None:
    translator = UpstreamTranslator(run_id=RUN_ID)
    actions = translator.handle(msg({"type": "content", "subagent": "plan", "data": "thinking"}))
    assert actions == [fwd({"type": "content", "data": "thinking", "turn": 1, "subagent": "plan"})]
    assert translator.content == ""
    assert sorted(translator.text) == []


def test_empty_content_yields_nothing() -> None:
    translator = UpstreamTranslator(run_id=RUN_ID)
    assert translator.handle(msg({"type": "content", "data": ""})) == []
    assert translator.handle(msg({"type": "content", "data": {"content": ""}})) == []
    assert translator.content == ""


def test_handoff_once_per_upstream_id_even_without_partial() -> None:
    translator = UpstreamTranslator(run_id="run_a")
    call = {
        "type": "tool_call",
        "subagent": "build",
        "data": {"id": "u1", "name": "edit_workflow", "arguments": '{"ops": [1]}'},
    }
    first = translator.handle(msg(call))
    ours = tool_call_id_for("run_a", "u1")
    assert first == [
        fwd(
            {
                "type": "tool_generating",
                "toolCallId": ours,
                "toolName": "edit_workflow",
                "subagent": "build",
            }
        ),
        handoff("u1", ours, "edit_workflow", {"ops": [1]}, "build"),
    ]
    assert translator.handle(msg(call)) == []
    # A partial announcement after the full call changes nothing either.
    call["data"] = {"id": "u1", "name": "edit_workflow", "partial": True}
    assert translator.handle(msg(call)) == []
    # Progress for a handed-off call is ours to report: dropped.
    for kind in ("tool_status", "tool_result", "tool_error"):
        assert translator.handle(msg({"type": kind, "toolCallId": "u1"})) == []
    # Unknown ids too.
    assert translator.handle(msg({"type": "tool_result", "toolCallId": "nope"})) == []


def test_partial_tool_call_only_announces_generation() -> None:
    translator = UpstreamTranslator(run_id=RUN_ID)
    partial = {"type": "tool_call", "data": {"id": "p1", "name": "run_code", "partial": True}}
    ours = tool_call_id_for(RUN_ID, "p1")
    assert translator.handle(msg(partial)) == [
        fwd({"type": "tool_generating", "toolCallId": ours, "toolName": "run_code"})
    ]
    assert translator.handle(msg(partial)) == []
    full = {"type": "tool_call", "data": {"id": "p1", "name": "run_code", "input": {"x": 1}}}
    assert translator.handle(msg(full)) == [handoff("p1", ours, "run_code", {"x": 1}, None)]


def test_respond_tools_and_server_tools_are_upstream_owned() -> None:
    translator = UpstreamTranslator(run_id=RUN_ID)
    respond = {
        "type": "tool_call",
        "data": {"id": "r1", "name": "research_respond", "arguments": {"answer": "x"}},
    }
    actions = translator.handle(msg(respond))
    assert not any(isinstance(a, ToolCall) for a in actions)
    ours = tool_call_id_for(RUN_ID, "r1")
    assert isinstance(actions[-1], Forward)
    assert to_wire(actions[-1].event)["type"] == "tool_call"
    assert to_wire(actions[-1].event)["toolCallId"] == ours
    assert to_wire(actions[-1].event)["data"]["executor"] == "server"
    assert translator.handle(msg(respond)) == []  # repeated: not shown twice
    error = {"type": "tool_error", "toolCallId": "r1", "data": {"error": "quota exceeded"}}
    assert translator.handle(msg(error)) == [
        fwd(
            {
                "type": "tool_error",
                "toolCallId": ours,
                "toolName": None,
                "data": {"id": ours, "name": None, "error": "quota exceeded"},
            }
        )
    ]
    failed = {"type": "tool_result", "toolCallId": "r1", "data": {"success": False}}
    (result,) = translator.handle(msg(failed))
    assert isinstance(result, Forward)
    assert to_wire(result.event)["success"] is False
    assert to_wire(result.event)["toolCallId"] == ours
