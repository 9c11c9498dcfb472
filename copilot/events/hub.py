"""One Redis reader per API process, multiplexing every run its SSE clients follow.

A blocked ``XREAD`` holds its connection, so one per client would need as many Redis
connections as open streams. The hub runs a single ``XREAD BLOCK`` over all followed runs (plus
a private *wake* stream, written when a new run is followed so the blocked read returns and
picks it up) and fans entries out to subscriber queues. Catch-up reads (``XRANGE``) use the
shared pool and never block, so an API process uses O(1) Redis connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from copilot.events.log import LogEntry, _entry, stream_key

log = logging.getLogger("copilot.events")


@dataclass
class _Followed:
    cursor: int
    queues: set[asyncio.Queue[LogEntry]] = field(default_factory=set)


class Subscription:
    def __init__(self, hub: LogHub, run_id: str, queue: asyncio.Queue[LogEntry]) -> None:
        self._hub = hub
        self.run_id = run_id
        self.queue = queue

    async def get(self, wait_s: float) -> LogEntry | None:
        try:
            return await asyncio.wait_for(self.queue.get(), wait_s)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._hub._unfollow(self.run_id, self.queue)


class LogHub:
    def __init__(self, redis: Redis, *, block_ms: int = 5000) -> None:
        self._redis = redis
        self._block_ms = block_ms
        self._runs: dict[str, _Followed] = {}
        self._wake_key = f"copilot:hub:{uuid.uuid4().hex}:wake"
        self._wake_id = "$"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="event-log-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._redis.delete(self._wake_key)

    async def subscribe(self, run_id: str, after: int) -> Subscription:
        """Deliver entries of ``run_id`` the hub reads from now on (the caller catches up)."""
        queue: asyncio.Queue[LogEntry] = asyncio.Queue()
        followed = self._runs.get(run_id)
        if followed is None:
            followed = self._runs[run_id] = _Followed(cursor=after)
            await self._wake()
        followed.queues.add(queue)
        return Subscription(self, run_id, queue)

    def _unfollow(self, run_id: str, queue: asyncio.Queue[LogEntry]) -> None:
        followed = self._runs.get(run_id)
        if followed is None:
            return
        followed.queues.discard(queue)
        if not followed.queues:
            del self._runs[run_id]

    async def _wake(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.xadd(self._wake_key, {"w": "1"}, maxlen=10, approximate=True)

    async def _loop(self) -> None:
        backoff = 0.05
        while True:
            streams: dict[Any, Any] = {self._wake_key: self._wake_id}
            for run_id, followed in self._runs.items():
                streams[stream_key(run_id)] = f"{followed.cursor}-0"
            try:
                reply: Any = await self._redis.xread(streams, count=500, block=self._block_ms)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event hub read failed (%s); retrying in %.2fs", exc, backoff)
                await asyncio.sleep(backoff)  # Redis is down: back off, then read again
                backoff = min(backoff * 2, 2.0)
                continue
            for key, entries in reply or []:
                name = key.decode() if isinstance(key, bytes) else str(key)
                if name == self._wake_key:
                    last = entries[-1][0]
                    self._wake_id = last.decode() if isinstance(last, bytes) else str(last)
                    continue
                run_id = name.removeprefix("copilot:run:").removesuffix(":events")
                target = self._runs.get(run_id)
                if target is None:
                    continue
                for entry_id, fields in entries:
                    entry = _entry(entry_id, fields)
                    target.cursor = max(target.cursor, entry.seq)
                    for queue in target.queues:
                        queue.put_nowait(entry)
