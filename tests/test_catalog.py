"""Tool catalogs, bounded results and the turn's event shaping, as pure functions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from activities.turn_events import Shown, TurnEvents
from copilot.events.model import AnyEvent, to_wire
from copilot.providers.base import Delta
from copilot.tools.catalog import bounded_view, catalog_id, search
from copilot.types import ToolSpec


def _tool(name: str, description: str) -> ToolSpec:
    return ToolSpec(name, description, {"type": "object", "properties": {}})


TOOLS = [
    _tool("gmail_send", "Send an email with Gmail"),
    _tool("gmail_read", "Read emails from a Gmail inbox"),
    _tool("slack_message", "Post a message to a Slack channel"),
    _tool("outlook_send", "Send an email with Outlook"),
    _tool("postgres_query", "Run a SQL query on PostgreSQL"),
]


def test_search_ranks_name_matches_first_and_is_deterministic() -> None:
    found = [t.name for t in search(TOOLS, "send gmail email", 3)]
    # Both words in its name first; then a name and description matching two words each.
    assert found == ["gmail_send", "outlook_send", "gmail_read"]
    assert [t.name for t in search(list(reversed(TOOLS)), "send gmail email", 3)] == found
    assert [t.name for t in search(TOOLS, "slack", 5)] == ["slack_message"]
    assert search(TOOLS, "kubernetes", 5) == []
    assert search(TOOLS, "   ", 5) == []
    assert len(search(TOOLS, "a e s", 100)) <= 15  # capped whatever is asked


def test_a_catalog_key_depends_on_content_not_on_object_identity() -> None:
    copies = [ToolSpec(t.name, t.description, dict(t.input_schema)) for t in TOOLS]
    assert catalog_id(TOOLS) == catalog_id(copies)
    assert catalog_id(TOOLS) != catalog_id(TOOLS[:-1])


def test_a_large_result_becomes_a_bounded_view_with_a_note() -> None:
    small = {"ok": True}
    assert bounded_view(small, inline_bytes=1000) == (
        small,
        len(json.dumps(small).replace(" ", "")),
        False,
    )
    big = {"rows": ["x" * 100] * 1000}
    view, size, cut = bounded_view(big, inline_bytes=2000)
    assert cut
    assert size > 100_000
    assert view["truncated"] is True
    assert view["bytes"] == size
    assert len(view["preview"]) == 2000
    assert str(size) in view["note"]


class _Writer:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def write(self, events: Sequence[AnyEvent], *, text: str = "") -> None:
        self.events.extend(to_wire(e) for e in events)

    def write_soon(self, events: Sequence[AnyEvent], *, text: str = "") -> None:
        self.events.extend(to_wire(e) for e in events)


async def test_reasoning_is_bracketed_by_phases_before_the_answer() -> None:
    writer = _Writer()
    emit = TurnEvents(writer, 1, sim=True)  # type: ignore[arg-type]
    for delta in (Delta("reasoning", "think "), Delta("reasoning", "more"),
                  Delta("content", "Answer"), Delta("reasoning", "again")):  # fmt: skip
        await emit(delta)
    await emit.close()
    shape = [(e["type"], e.get("phase"), e.get("data")) for e in writer.events]
    assert shape == [
        ("reasoning", "start", {"phase": "start"}),
        ("reasoning", None, "think "),
        ("reasoning", None, "more"),
        ("reasoning", "end", {"phase": "end"}),
        ("content", None, "Answer"),
        ("reasoning", "start", {"phase": "start"}),
        ("reasoning", None, "again"),
        ("reasoning", "end", {"phase": "end"}),
    ]
    native = _Writer()
    emit = TurnEvents(native, 1)  # type: ignore[arg-type]
    await emit(Delta("reasoning", "x"))
    await emit.close()
    assert [e.get("data") for e in native.events] == [None, "x", None]  # data stays text


async def test_a_retried_turn_continues_after_what_was_shown() -> None:
    # Repeats the shown text exactly, then goes on: only the rest is written.
    writer = _Writer()
    emit = TurnEvents(writer, 2, Shown("t0 t1 t2 "))  # type: ignore[arg-type]
    for chunk in ("t0 ", "t1 ", "t2 ", "t3 ", "t4"):
        await emit(Delta("content", chunk))
    assert [e["data"] for e in writer.events] == ["t3 ", "t4"]
    assert emit.content == "t0 t1 t2 t3 t4"
    # A chunk that straddles the shown text's end.
    writer = _Writer()
    emit = TurnEvents(writer, 2, Shown("Hello wo"))  # type: ignore[arg-type]
    await emit(Delta("content", "Hello world"))
    assert [e["data"] for e in writer.events] == ["rld"]
    # Says something else: what was shown stays, the rest follows it; content == shown.
    writer = _Writer()
    emit = TurnEvents(writer, 2, Shown("Hello "))  # type: ignore[arg-type]
    await emit(Delta("content", "Hi there"))
    assert emit.content == "Hello " + "".join(e["data"] for e in writer.events)
    # A prefilled provider continues after the text minus its trailing whitespace.
    writer = _Writer()
    emit = TurnEvents(writer, 2, Shown("Hello "), prefilled=True)  # type: ignore[arg-type]
    await emit(Delta("content", " world"))
    assert [e["data"] for e in writer.events] == ["world"]
    assert emit.content == "Hello world"
    # An open thinking block from the earlier attempt is closed before the text.
    writer = _Writer()
    emit = TurnEvents(writer, 2, Shown("", reasoning_open=True))  # type: ignore[arg-type]
    await emit(Delta("content", "x"))
    assert [(e["type"], e.get("phase")) for e in writer.events] == [
        ("reasoning", "end"), ("content", None)]  # fmt: skip


async def test_on_sims_route_no_delta_reads_as_json_and_text_is_also_content() -> None:
    writer = _Writer()
    emit = TurnEvents(writer, 1, sim=True)  # type: ignore[arg-type]
    chunks = ["The answer is", " 42", ", then ", "2024", ".", ' "quoted"', " null", " end", "7"]
    for chunk in chunks:
        await emit(Delta("content", chunk))
    await emit.close()
    sent = [e["data"] for e in writer.events]
    assert "".join(sent) == "".join(chunks) == emit.content
    for text in sent[:-1]:  # each parses as no JSON value (Sim would turn it into one)
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
    assert sent[-1] == "7"  # a lone value at the very end goes out as it is
    assert all(e["content"] == e["data"] for e in writer.events)
