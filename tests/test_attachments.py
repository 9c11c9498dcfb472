"""A message's context items and attached files reach each provider in its own form, by
reference: the bytes never enter workflow input, history or events."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.conftest import Stack, provider_requests, scenario
from tests.sse import collect

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"pixel" * 40).decode()
PDF = base64.b64encode(b"%PDF-1.4 a tiny report").decode()
NOTES = base64.b64encode(b"line one\nline two").decode()
SONG = base64.b64encode(b"ID3 not really music").decode()

FILES = [
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    {"type": "document", "name": "report.pdf",
     "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
    {"type": "document", "name": "notes.txt",
     "source": {"type": "base64", "media_type": "text/plain", "data": NOTES}},
    {"type": "audio", "name": "song.mp3",
     "source": {"type": "base64", "media_type": "audio/mpeg", "data": SONG}},
]  # fmt: skip
CONTEXT = [{"type": "workflow", "label": "Lead router", "content": "start -> agent -> slack"}]
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-test", "ollama": "ollama:llama-test"}


def _user_message(provider: str, body: dict[str, Any]) -> Any:
    return next(m for m in reversed(body["messages"]) if m["role"] == "user")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
async def test_context_and_files_reach_the_provider_in_its_own_form(
    client: httpx.AsyncClient, stack: Stack, provider: str
) -> None:
    key = scenario(stack.provider, [{"text": "seen"}])
    body = {"message": f"look {key}", "model": MODELS[provider], "context": CONTEXT,
            "fileAttachments": FILES}  # fmt: skip
    async with client.stream("POST", "/api/copilot/chat", json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        run_id = resp.headers["x-run-id"]
        frames = await collect(resp)
    assert frames[-1].data["data"]["status"] == "completed"
    sent = (await provider_requests(stack.provider, key))[0]["body"]
    user = _user_message(provider, sent)
    wire = json.dumps(user)
    assert '<context kind=\\"workflow\\" label=\\"Lead router\\">' in wire
    assert "start -> agent -> slack" in wire
    assert "line one\\nline two" in wire  # a text file, inline for every provider
    assert "song.mp3" in wire
    assert "cannot be given here" in wire
    if provider == "openai":
        kinds = [p["type"] for p in user["content"]]
        assert "image_url" in kinds
        assert "file" in kinds
        assert f"data:image/png;base64,{PNG}" in wire
        assert f"data:application/pdf;base64,{PDF}" in wire
    elif provider == "anthropic":
        blocks = {b["type"]: b for b in user["content"] if b["type"] in ("image", "document")}
        assert blocks["image"]["source"] == {"type": "base64", "media_type": "image/png",
                                             "data": PNG}  # fmt: skip
        assert any(b.get("source", {}).get("data") == PDF for b in user["content"])
    else:
        assert user["images"] == [PNG]
        assert "report.pdf" in user["content"]  # a PDF: a note, Ollama reads images only

    # By reference: not in the workflow's history, not in the events.
    temporal = await Client.connect(stack.services.temporal_address)
    history = await temporal.get_workflow_handle(run_id).fetch_history()
    assert PNG not in history.to_json()
    assert all(PNG not in json.dumps(f.data) for f in frames)


async def test_a_bad_attachment_is_a_clear_400(client: httpx.AsyncClient) -> None:
    bad = [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                       "data": "not base64!"}}]  # fmt: skip
    resp = await client.post("/api/copilot/chat", json={"message": "x", "fileAttachments": bad})
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalid_request"
    assert "fileAttachments[0]" in resp.json()["error"]
