"""Follow a run's SSE stream in the background and wait for conditions on it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import httpx

from tests.sse import Frame, iter_frames


class LiveRun:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.status_code = 0
        self.headers: httpx.Headers = httpx.Headers()
        self.body: dict[str, Any] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()

    @classmethod
    async def start(
        cls, client: httpx.AsyncClient, body: dict[str, Any], path: str = "/api/copilot/chat",
        headers: dict[str, str] | None = None,
    ) -> LiveRun:  # fmt: skip
        live = cls()
        live._task = asyncio.create_task(live._read(client, "POST", path, body, headers or {}))
        await asyncio.wait_for(live._opened.wait(), 30)
        return live

    @property
    def run_id(self) -> str:
        return self.headers["x-run-id"]

    async def _read(
        self, client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any],
        headers: dict[str, str],
    ) -> None:  # fmt: skip
        try:
            async with client.stream(method, path, json=body, headers=headers) as resp:
                self.status_code, self.headers = resp.status_code, resp.headers
                if resp.status_code != 200:
                    await resp.aread()
                    self.body = resp.json()
                    return
                self._opened.set()
                async for frame in iter_frames(resp):
                    async with self._changed:
                        self.frames.append(frame)
                        self._changed.notify_all()
                    if frame.data.get("type") == "done":
                        return
        finally:
            self._opened.set()
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, pred: Callable[[Frame], bool], timeout: float = 30) -> Frame:
        async def find() -> Frame:
            async with self._changed:
                while True:
                    for frame in self.frames:
                        if pred(frame):
                            return frame
                    if self._task is not None and self._task.done():
                        raise AssertionError(f"stream ended without it: {self.types()}")
                    await self._changed.wait()

        return await asyncio.wait_for(find(), timeout)

    async def event(self, kind: str, timeout: float = 30, **match: Any) -> Frame:
        return await self.wait_for(
            lambda f: (
                f.data.get("type") == kind and all(f.data.get(k) == v for k, v in match.items())
            ),
            timeout,
        )

    async def finished(self, timeout: float = 60) -> list[Frame]:
        await self.event("done", timeout)
        return self.frames

    def types(self) -> list[str]:
        return [f.data["type"] for f in self.frames]

    def content(self) -> str:
        return "".join(f.data["data"] for f in self.frames if f.data["type"] == "content")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
