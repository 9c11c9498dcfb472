"""The per-run event log: one Redis Stream per run, entry id ``<seq>-0``.

Why a Stream and not pub/sub: a reader that was away (reload, network drop, API restart) can
replay from its last seq, and a live reader blocks on the same key. Using the run's own seq as
the entry id makes replay ``XRANGE (seq`` and makes writes idempotent: Redis refuses an id
that is not greater than the last one, so a retried write of an event that already landed is a
no-op instead of a duplicate.

Writers are fenced by an *epoch* (``generation * 1000 + attempt``, the workflow numbering its
writers): a writer whose activity attempt has been superseded (it lost its heartbeat, or was
cancelled, but still streams) finds a higher epoch in the fence key and its writes are refused,
so two writers never interleave. ``claim`` raises the fence *before* reading the last seq, so
whoever continues after a failed writer cannot be overtaken by it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

# The frame encoder lives with the event types; importers of this module keep finding it here.
from copilot.events.model import encode_frame as encode_frame
from copilot.events.model import event_json, event_seq

_APPEND = """
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local epoch = tonumber(ARGV[1])
if epoch < cur then return -1 end
if ARGV[2] == '1' and tonumber(ARGV[4]) > 1 and redis.call('EXISTS', KEYS[1]) == 0 then
  return -2
end
if epoch > cur then redis.call('SET', KEYS[2], ARGV[1]) end
if ARGV[3] ~= '' then
  local mark = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tonumber(ARGV[3]) > mark then redis.call('SET', KEYS[3], ARGV[3]) end
end
for i = 4, #ARGV, 2 do
  local id = ARGV[i] .. '-0'
  local ok = redis.pcall('XADD', KEYS[1], id, 'd', ARGV[i + 1])
  if type(ok) == 'table' and ok.err then
    if not string.find(ok.err, 'equal or smaller') then return redis.error_reply(ok.err) end
    -- Only a retried write of an event that already landed may be skipped; anything else
    -- would silently lose an event.
    if #redis.call('XRANGE', KEYS[1], id, id) == 0 then
      return redis.error_reply('SEQCONFLICT seq ' .. ARGV[i] .. ' is behind the log')
    end
  end
end
-- One notice per batch on the shared notify stream: readers (copilot/events/hub.py) block on
-- it alone, whatever number of runs they follow. It carries the batch itself (fields named by
-- seq), so a reader delivers it without reading the run's log again; a large batch goes without
-- its events (the reader then reads the log). Numbered, so a reader sees a gap (notices trimmed
-- while it lagged, or Redis lost its data).
local n = redis.call('INCR', KEYS[5])
local notice = {'r', KEYS[1], 'n', n}
local size = 0
for i = 5, #ARGV, 2 do size = size + #ARGV[i] end
if size <= 65536 and #ARGV <= 2003 then
  for i = 4, #ARGV do notice[#notice + 1] = ARGV[i] end
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', unpack(notice))
return 1
"""

_CLAIM = """
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local epoch = tonumber(ARGV[1])
if epoch < cur then return -1 end
if epoch > cur then redis.call('SET', KEYS[2], ARGV[1]) end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = 0
if #last > 0 then seq = tonumber(string.match(last[1][1], '^(%d+)')) end
return {seq, cur, tonumber(redis.call('GET', KEYS[3]) or '0')}
"""


class WriterFenced(Exception):
    """A newer attempt owns this run's log; this writer must stop."""


class LogGone(Exception):
    """The run's log vanished (Redis lost its data): the writer must re-seed it."""


def stream_key(run_id: str) -> str:
    return f"copilot:run:{run_id}:events"


# Every append adds one entry naming its run's stream key here (trimmed to ~100,000 entries).
NOTIFY_KEY = "copilot:events:notify"
NOTIFY_COUNT_KEY = "copilot:events:notify:n"


def fence_key(run_id: str) -> str:
    return f"copilot:run:{run_id}:fence"


def outbox_key(run_id: str) -> str:
    """How many of the workflow's outbox events a streaming writer has put in the log."""
    return f"copilot:run:{run_id}:outbox"


def writer_epoch(generation: int, attempt: int) -> int:
    """Fence value of one attempt of one writer; the workflow numbers writers 1, 2, 3..."""
    return generation * 1000 + min(attempt, 999)


@dataclass
class LogEntry:
    seq: int
    event: dict[str, Any]


class EventLog:
    """Reads and writes run event logs. One instance per process, sharing one Redis pool."""

    def __init__(self, redis: Redis, *, retention_s: int) -> None:
        self._redis = redis
        self._retention_s = retention_s
        self._append = redis.register_script(_APPEND)
        self._claim = redis.register_script(_CLAIM)

    async def append(
        self,
        run_id: str,
        epoch: int,
        events: Sequence[Any],
        *,
        check_gone: bool = False,
        outbox_mark: int | None = None,
    ) -> None:
        """Write events (each with ``seq``; typed or JSON objects) atomically under ``epoch``'s
        fence.

        ``check_gone``: raise ``LogGone`` instead of writing into a log that no longer exists
        (so the writer can put a snapshot first and readers never see a silent gap).
        ``outbox_mark``: these events include the workflow's outbox up to this count; recorded
        in the same transaction, so a retried writer knows exactly where to go on.
        """
        if not events:
            return
        mark = "" if outbox_mark is None else str(outbox_mark)
        argv: list[Any] = [epoch, "1" if check_gone else "0", mark]
        for event in events:
            argv.append(event_seq(event))
            argv.append(event_json(event))
        keys = [*self._keys(run_id), NOTIFY_KEY, NOTIFY_COUNT_KEY]
        result = await self._append(keys=keys, args=argv)
        if int(result) == -2:
            raise LogGone(f"run {run_id}: the event log is gone")
        if int(result) < 0:
            raise WriterFenced(f"run {run_id}: a newer writer owns the log")

    async def claim(self, run_id: str, epoch: int) -> int:
        """Fence out every older writer, then return the last seq in the log."""
        return (await self.claim_full(run_id, epoch))[0]

    async def claim_full(self, run_id: str, epoch: int) -> tuple[int, int, int]:
        """``claim``, also returning the fence found (0: no writer ever wrote, or data lost)
        and the outbox mark (see ``append``)."""
        result = await self._claim(keys=self._keys(run_id), args=[epoch])
        if not isinstance(result, list):
            raise WriterFenced(f"run {run_id}: a newer writer owns the log")
        return int(result[0]), int(result[1]), int(result[2])

    @staticmethod
    def _keys(run_id: str) -> list[str]:
        return [stream_key(run_id), fence_key(run_id), outbox_key(run_id)]

    async def finish(self, run_id: str) -> None:
        """The run is over: keep its log for the retention period, then let it expire."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.expire(stream_key(run_id), self._retention_s)
        pipe.expire(fence_key(run_id), self._retention_s)
        pipe.expire(outbox_key(run_id), self._retention_s)
        await pipe.execute()

    async def delete(self, run_ids: list[str]) -> None:
        """Remove finished runs' logs at once (their chat was deleted)."""
        keys = [key for run_id in run_ids for key in self._keys(run_id)]
        if keys:
            await self._redis.delete(*keys)

    async def pages(
        self, run_id: str, after: int = 0, *, size: int = 1000
    ) -> AsyncIterator[list[LogEntry]]:
        """The log after ``after``, ``size`` entries at a time (a long run's log is never held
        in memory whole)."""
        while batch := await self.read_after(run_id, after, count=size):
            yield batch
            after = batch[-1].seq

    async def read_after(self, run_id: str, after: int, count: int = 1000) -> list[LogEntry]:
        entries: Any = await self._redis.xrange(stream_key(run_id), min=f"({after}-0", count=count)
        return [_entry(entry_id, fields) for entry_id, fields in entries]


def _seq_of(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def _entry(entry_id: bytes | str, fields: dict[Any, Any]) -> LogEntry:
    raw = fields.get(b"d") if b"d" in fields else fields.get("d")
    return _decode(_seq_of(entry_id), raw)


def _decode(seq: int, raw: Any) -> LogEntry:
    return LogEntry(seq=seq, event=json.loads(raw))  # json.loads takes bytes as they come
