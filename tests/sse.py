"""A small SSE client for tests: parses frames the way browsers (and Sim's reader) do."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from copilot.providers.sse import SseDecoder


@dataclass
class Frame:
    id: int | None
    event: str | None
    data: dict[str, Any]


async def iter_frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Lines end at CR and LF only, as SSE says (``aiter_lines`` would also end them at
    U+2028, U+2029 and U+0085)."""
    decoder = SseDecoder()
    async for chunk in response.aiter_bytes():
        for message in decoder.feed(chunk):
            frame_id = int(message.id) if message.id is not None else None
            yield Frame(frame_id, message.event, json.loads(message.data))


async def collect(response: httpx.Response, *, stop_after: int | None = None) -> list[Frame]:
    frames = []
    async for frame in iter_frames(response):
        frames.append(frame)
        if frame.data.get("type") == "done":
            break
        if stop_after is not None and len(frames) >= stop_after:
            break
    return frames
