"""One Redis reader per API process, multiplexing every run its SSE clients follow.

A blocked ``XREAD`` holds its connection, so one per client would need as many Redis
connections as open streams; and one ``XREAD`` over every followed run's key re-sends all those
keys on every wake-up (1,000 followed runs: about 2 ms of client CPU per read, which capped how
many streams an API process could serve beside many idle ones). Instead, every append also
adds a notice naming its run, and carrying the batch, to one shared *notify* stream
(``copilot.events.log``). The hub blocks on that stream alone and fans the entries of the runs
it follows out to subscriber queues: one round trip per wake-up, and its cost is that of the
runs that changed, whatever the number followed. A notice without its events (a large batch),
or one that does not follow on from a run's cursor, makes the hub read that run's log after the
cursor (``XRANGE``, pipelined).

The run logs stay the truth; a notice is only a hint. Whenever the hub may have missed notices
(its read failed: Redis restarted or the connection dropped; or notices were trimmed while it
lagged) it reads every followed run after its cursor once. New subscribers need no wake-up:
they register before reading their own backlog, so anything appended after that backlog is
noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from copilot.events.log import NOTIFY_KEY, LogEntry, _decode, _entry, stream_key

log = logging.getLogger("copilot.events")

_PREFIX, _SUFFIX = "copilot:run:", ":events"
_NOTICE_FIELDS = frozenset({b"r", b"n", "r", "n"})


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
        """The next entry, waiting up to ``wait_s`` (None: nothing came)."""
        if not self.queue.empty():
            return self.queue.get_nowait()  # no timer, no task: the common case under load
        try:
            return await asyncio.wait_for(self.queue.get(), wait_s)
        except TimeoutError:
            return None

    def ready(self) -> list[LogEntry]:
        """Whatever has already arrived, without waiting."""
        entries = []
        while not self.queue.empty():
            entries.append(self.queue.get_nowait())
        return entries

    def close(self) -> None:
        self._hub._unfollow(self.run_id, self.queue)


class LogHub:
    def __init__(self, redis: Redis, *, block_ms: int = 2000) -> None:
        self._redis = redis
        self._block_ms = block_ms
        self._runs: dict[str, _Followed] = {}
        self._notice_id: str | None = None  # None: not positioned (start, or after a failure)
        self._notice_n = 0  # the number of the last notice read (they are numbered 1, 2, 3…)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Position on the notify stream, then read it in the background: a notice written
        after ``start`` returns is seen (if Redis is down now, the loop positions later)."""
        try:
            await self._position()
        except Exception as exc:
            log.warning("event hub could not position itself yet (%s)", exc)
            self._notice_id = None
        self._task = asyncio.create_task(self._loop(), name="event-log-hub")

    async def stop(self) -> None:
        """Let the blocked read return, then end (redis-py may never finish cancelling a
        blocked ``XREAD``: the task would hang in "cancelling")."""
        if self._task is None:
            return
        self._stopping = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._block_ms / 1000 + 2)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def subscribe(self, run_id: str, after: int) -> Subscription:
        """Deliver entries of ``run_id`` the hub reads from now on (the caller catches up)."""
        queue: asyncio.Queue[LogEntry] = asyncio.Queue()
        followed = self._runs.get(run_id)
        if followed is None:
            followed = self._runs[run_id] = _Followed(cursor=after)
        followed.queues.add(queue)
        return Subscription(self, run_id, queue)

    def _unfollow(self, run_id: str, queue: asyncio.Queue[LogEntry]) -> None:
        followed = self._runs.get(run_id)
        if followed is None:
            return
        followed.queues.discard(queue)
        if not followed.queues:
            del self._runs[run_id]

    async def _loop(self) -> None:
        backoff = 0.05
        while not self._stopping:
            try:
                if self._notice_id is None:
                    await self._position()
                    await self._read_runs(list(self._runs))  # whatever was missed meanwhile
                stale, gap = await self._next_notices()
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event hub read failed (%s); retrying in %.2fs", exc, backoff)
                self._notice_id = None  # notices may be lost: read every followed run again
                await asyncio.sleep(backoff)  # Redis is down: back off, then read again
                backoff = min(backoff * 2, 2.0)
                continue
            # A gap in the numbering: notices were lost (trimmed while this hub lagged, or
            # Redis lost its data); read every followed run rather than miss one.
            changed = list(self._runs) if gap else [r for r in stale if r in self._runs]
            if changed:
                try:
                    await self._read_runs(changed)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("event hub catch-up failed (%s)", exc)
                    self._notice_id = None

    async def _position(self) -> None:
        """Start after the newest notice; if notices were trimmed past us, we re-read anyway."""
        last: Any = await self._redis.xrevrange(NOTIFY_KEY, count=1)
        self._notice_id = _text(last[0][0]) if last else "0-0"
        self._notice_n = _number(last[0][1]) if last else 0

    async def _next_notices(self) -> tuple[list[str], bool]:
        """Deliver what the notices after ours carry; returns (the followed runs whose log must
        be read after their cursor, whether notices were lost). Blocks up to ``block_ms``."""
        if self._notice_id is None:
            raise RuntimeError("the hub read notices before positioning itself")
        reply: Any = await self._redis.xread(
            {NOTIFY_KEY: self._notice_id}, count=1000, block=self._block_ms
        )
        stale: dict[str, None] = {}  # ordered: runs to read from their log, in notice order
        gap = False
        for _key, entries in reply or []:
            for entry_id, fields in entries:
                self._notice_id = _text(entry_id)
                number = _number(fields)
                gap = gap or number != self._notice_n + 1
                self._notice_n = number
                key = _text(fields.get(b"r", fields.get("r", b"")))
                run_id = key.removeprefix(_PREFIX).removesuffix(_SUFFIX)
                target = self._runs.get(run_id)
                if target is None or run_id in stale:
                    continue  # not ours, or its log is read after this batch anyway
                if not self._deliver_notice(target, fields):
                    stale[run_id] = None
        return list(stale), gap

    @staticmethod
    def _deliver_notice(target: _Followed, fields: dict[Any, Any]) -> bool:
        """Fan out the events a notice carries; False if they do not follow on from the
        cursor (or it carries none), and the run's log must be read instead."""
        carried = sorted(
            (int(name), value) for name, value in fields.items() if name not in _NOTICE_FIELDS
        )
        if not carried or carried[0][0] > target.cursor + 1:
            return False
        for seq, value in carried:
            if seq <= target.cursor:
                continue  # a retried write's events, already delivered
            entry = _decode(seq, value)
            target.cursor = seq
            for queue in target.queues:
                queue.put_nowait(entry)
        return True

    async def _read_runs(self, run_ids: list[str]) -> None:
        """Read each run after its cursor (one pipelined round trip) and fan the entries out."""
        wanted = [(run_id, self._runs[run_id].cursor) for run_id in run_ids if run_id in self._runs]
        if not wanted:
            return
        pipe = self._redis.pipeline(transaction=False)
        for run_id, cursor in wanted:
            pipe.xrange(stream_key(run_id), min=f"({cursor}-0", count=1000)
        replies: list[Any] = await pipe.execute()
        for (run_id, _), entries in zip(wanted, replies, strict=True):
            target = self._runs.get(run_id)
            if target is None:
                continue
            for entry_id, fields in entries or []:
                entry = _entry(entry_id, fields)
                if entry.seq <= target.cursor:
                    continue
                target.cursor = entry.seq
                for queue in target.queues:
                    queue.put_nowait(entry)
            if entries and len(entries) == 1000:
                await self._read_runs([run_id])  # more than one batch was waiting


def _number(fields: Any) -> int:
    raw = fields.get(b"n", fields.get("n", 0))
    return int(_text(raw) or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
