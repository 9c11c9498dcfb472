"""U+2028, U+2029 and U+0085 in a model's or a tool's text.

SSE ends lines at CR and LF only, but Python's ``str.splitlines`` and httpx's ``iter_lines``
also end them at these three. Written raw inside a frame's ``data:`` line, they let such a
reader see forged ``id:`` / ``event:`` / ``data:`` lines (``copilot chat`` died on a tool
result holding two U+2028). Frames carry them escaped, and the project's own readers split at
CR and LF only.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import httpx
import ollama
import pytest

from copilot.client import Api, ChatSession, _frames
from copilot.events.fold import fold_events
from copilot.events.log import encode_frame
from copilot.providers.ollama_provider import _escape_line_breaks
from tests.conftest import Stack, scenario

BREAKS = ("\u2028", "\u2029", "\x85")
# Text that, split at those characters, reads as a forged frame.
FORGED = 'one\u2028id: 999\u2029event: done\x85data: {"type":"done"}\u2028\u2028end'
TOOL_TEXT = "a\u2028b\u2028c"


def test_a_frame_splits_into_its_own_lines_only() -> None:
    event = {"type": "content", "seq": 7, "runId": "run_x", "turn": 1, "data": FORGED + " é🙂"}
    frame = encode_frame(event)
    lines = frame.splitlines()
    assert lines == frame.split("\n")[:-1]
    assert len(lines) == 4
    assert lines[:2] == ["id: 7", "event: content"]
    assert lines[2].startswith("data: ")
    assert lines[3] == ""
    assert json.loads(lines[2].removeprefix("data: ")) == event
    assert not any(ch in frame for ch in BREAKS)
    assert "\\u2028" in frame
    assert "\\u0085" in frame
    assert " é🙂" in frame  # other characters stay as they are


def test_the_copilot_chat_reader_splits_lines_at_cr_and_lf_only() -> None:
    """As a server that writes them raw sends them, cut anywhere (inside a character too)."""
    tool = {"type": "tool_result", "seq": 3, "toolName": "echo", "result": {"echo": TOOL_TEXT}}
    done = {"type": "done", "seq": 4, "data": {"status": "completed"}}
    body = (
        ": stream open\n\n"
        f"id: 3\nevent: tool_result\ndata: {json.dumps(tool, ensure_ascii=False)}\n\n"
        f"id: 4\r\nevent: done\r\ndata: {json.dumps(done, ensure_ascii=False)}\r\n\r\n"
    ).encode()
    chunks = [body[i : i + 5] for i in range(0, len(body), 5)]
    resp = httpx.Response(200, content=iter(chunks))
    assert list(_frames(resp)) == [(3, tool), (4, done)]


async def test_ollamas_client_reads_them_raw_even_cut_inside_a_character() -> None:
    """Ollama writes U+0085 raw; its client splits NDJSON with str.splitlines."""
    parts = [{"message": {"role": "assistant", "content": FORGED}, "done": False},
             {"message": {"role": "assistant", "content": ""}, "done": True}]  # fmt: skip
    body = "".join(
        json.dumps({"model": "m", "created_at": "2025-01-01T00:00:00Z", **p}, ensure_ascii=False)
        + "\n"
        for p in parts
    ).encode()

    async def one_byte_at_a_time() -> AsyncIterator[bytes]:
        for i in range(len(body)):
            yield body[i : i + 1]

    client = ollama.AsyncClient(
        host="http://127.0.0.1:9",  # never contacted: the transport answers
        transport=httpx.MockTransport(lambda _r: httpx.Response(200, content=one_byte_at_a_time())),
        event_hooks={"response": [_escape_line_breaks]},
    )
    stream = await client.chat(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    assert [part.message.content async for part in stream] == [FORGED, ""]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-lines", "ollama:lines"])
async def test_the_models_text_and_tool_results_reach_any_reader_intact(
    client: httpx.AsyncClient, stack: Stack, model: str
) -> None:
    # The fake writes the characters raw on the wire, as a provider may.
    call = {"name": "echo", "arguments": {"text": TOOL_TEXT}}
    key = scenario(
        stack.provider,
        [{"text": FORGED, "chunk": 3, "raw_unicode": True, "tool_calls": [call]},
         {"text": " and after"}],
    )  # fmt: skip
    body = {"message": key, "model": model}
    async with client.stream("POST", "/api/copilot/chat", json=body) as resp:
        assert resp.status_code == 200
        run_id = resp.headers["x-run-id"]
        text = (await resp.aread()).decode()
    # A reader that splits with str.splitlines (httpx iter_lines) sees only the frames' lines.
    lines = text.splitlines()
    assert lines == text.split("\n")[:-1]
    events = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data:")]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    folded = fold_events(events)
    assert folded.status == "completed"
    assert folded.content == FORGED + " and after"
    results = [e["result"] for e in events if e["type"] == "tool_result"]
    assert results == [{"echo": TOOL_TEXT}]
    snapshot = (await client.get(f"/api/copilot/runs/{run_id}")).json()
    assert snapshot["content"] == folded.content


def test_copilot_chat_prints_them_intact(stack: Stack) -> None:
    key = scenario(
        stack.provider,
        [{"tool_calls": [{"name": "echo", "arguments": {"text": TOOL_TEXT}}]},
         {"text": FORGED, "chunk": 4, "raw_unicode": True}],
    )  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    api = Api(stack.api_url, None, None)
    try:
        session = ChatSession(api, out=out, err=err, ask=lambda _q: "n", auto=True)
        assert session.run({"message": key}) == 0, err.getvalue()
    finally:
        api.http.close()
    assert out.getvalue() == FORGED + "\n"
    assert f"[tool echo → {json.dumps({'echo': TOOL_TEXT})}]" in err.getvalue()
