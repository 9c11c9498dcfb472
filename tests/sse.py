"""A small SSE client for tests: parses frames the way browsers (and Sim's reader) do."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Frame:
    id: int | None
    event: str | None
    data: dict[str, Any]


async def iter_frames(response: httpx.Response) -> AsyncIterator[Frame]:
    frame_id: int | None = None
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Frame(frame_id, event, json.loads("\n".join(data)))
            frame_id, event, data = None, None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                frame_id = int(value)
            elif field == "event":
                event = value
            elif field == "data":
                data.append(value)


async def collect(response: httpx.Response, *, stop_after: int | None = None) -> list[Frame]:
    frames = []
    async for frame in iter_frames(response):
        frames.append(frame)
        if frame.data.get("type") == "done":
            break
        if stop_after is not None and len(frames) >= stop_after:
            break
    return frames
