"""The event-log writer a streaming activity uses (LLM turns, upstream backend turns).

It numbers events from the seq the workflow handed over, writes them under this attempt's
fence, heartbeats the last seq written, and re-seeds a log that Redis lost mid-turn with a
snapshot so readers never see a silent gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from copilot.events.log import EventLog, LogGone, writer_epoch
from copilot.events.model import AnyEvent, Snapshot, SnapshotEvent, TurnReset, numbered
from copilot.providers.base import ProviderError
from copilot.types import StreamTurnInput

HEARTBEAT_EVERY_S = 1.0
SEQ_JUMP_AFTER_LOSS = 10_000


class TurnWriter:
    """Numbers this attempt's events and writes them under its fence."""

    def __init__(self, log: EventLog, input: StreamTurnInput, attempt: int) -> None:
        self._log = log
        self._input = input
        self._attempt = attempt
        self.epoch = writer_epoch(input.writer_gen or input.seq_start, attempt)
        self.next_seq = input.seq_start
        self.last_beat = time.monotonic()
        self._text: list[str] = []  # this attempt's text, to re-seed a lost log
        # Extra snapshot state a caller knows (e.g. tool calls of an upstream turn).
        self.snapshot_tools: Callable[[], list[dict[str, Any]]] = list
        self.outbox_mark: int | None = None  # see EventLog.append
        # Deltas and the workflow's outbox are written by two tasks: one at a time, or a
        # later seq could reach Redis first and the earlier one would be refused.
        self._lock = asyncio.Lock()
        # Deltas that arrive while a write is in flight wait here and go out as one append
        # (``write_soon``): under load, one round trip carries many tokens.
        self._pending: list[tuple[Sequence[AnyEvent], str]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def resume_point(self, details: Any) -> int:
        """The first seq this attempt may write: after anything an earlier attempt wrote.

        Claiming the log fences out the earlier attempt first, so it cannot write after the
        point read here. If the log lost its data (Redis restarted without it), heartbeat
        details say how far the earlier attempt got, but they lag (the SDK throttles them),
        so numbering jumps ahead: a seq a client has seen is never reused. The jump is
        preceded by a snapshot (the log is gone), so it is never a silent gap.
        """
        input = self._input
        in_log, fence, mark = await self._log.claim_full(input.run_id, self.epoch)
        self.outbox_mark = mark
        beat = 0
        if details:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                beat = int(details[0])
        retried = self._attempt > 1 or input.seq_start > 1
        lost = beat > in_log or (fence == 0 and retried)
        if lost:
            return max(beat, in_log, input.seq_start - 1) + SEQ_JUMP_AFTER_LOSS
        return max(input.seq_start - 1, in_log) + 1

    async def open(
        self, first_seq: int, *, reset_turns: list[int] | None = None, reset: bool = True
    ) -> None:
        """Write the prelude (first attempt) or ``turn_reset`` (a retry, unless it continues
        the earlier attempts' text) before any delta."""
        self.next_seq = first_seq
        events: list[AnyEvent] = []
        if first_seq == self._input.seq_start:
            events.extend(self._input.prelude)
        if self._attempt > 1 and reset:
            for turn in reset_turns or [self._input.turn]:
                events.append(TurnReset(turn, self._attempt))
        await self.write(events)

    def carry_text(self, text: str) -> None:
        """Text earlier attempts wrote that this one continues (for a re-seed snapshot)."""
        if text:
            self._text.insert(0, text)

    async def write(
        self, events: Sequence[AnyEvent], *, text: str = "", outbox_mark: int | None = None
    ) -> None:
        """Append events once everything before them is written; ``text`` is answer text
        they carry (kept for a re-seed)."""
        await self.drain()
        if not events:
            return
        async with self._lock:
            await self._write_locked(events, text, outbox_mark)

    def write_soon(self, events: Sequence[AnyEvent], *, text: str = "") -> None:
        """Queue events behind the write in flight, if any, without waiting for it: what
        queues meanwhile goes out as one append. Order is kept; a failed write is raised by
        the next ``write_soon``, ``write`` or ``drain``."""
        if self._failure is not None:
            raise self._failure
        if not events:
            return
        self._pending.append((events, text))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def drain(self) -> None:
        """Wait until every queued event is written (raising a failed write's error)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        if self._failure is not None:
            raise self._failure

    def abandon(self) -> None:
        """This attempt is over (cancelled): queued events are not written."""
        self._pending.clear()
        if self._flusher is not None:
            self._flusher.cancel()

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                events = [event for part, _ in batch for event in part]
                async with self._lock:
                    await self._write_locked(events, "".join(t for _, t in batch), None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # WriterFenced, Redis errors: the attempt's next step raises it
            self._failure = exc
            self._pending.clear()

    async def _write_locked(
        self, events: Sequence[AnyEvent], text: str, outbox_mark: int | None
    ) -> None:
        try:
            await self._log.append(
                self._input.run_id,
                self.epoch,
                self._number(events),
                check_gone=True,
                outbox_mark=outbox_mark,
            )
        except LogGone:
            # Redis lost the log mid-turn. Only this writer knows the turn's text so far:
            # re-seed the log with a snapshot, so readers never see a silent gap. Numbering
            # jumps ahead: clients may have seen seqs the lost log held (even this batch's).
            self.next_seq += SEQ_JUMP_AFTER_LOSS
            snapshot = SnapshotEvent(self._snapshot())
            await self._log.append(
                self._input.run_id,
                self.epoch,
                self._number([snapshot, *events]),
                outbox_mark=outbox_mark,
            )
        if text:
            self._text.append(text)  # after the write: a re-seed must not count it twice
        if outbox_mark is not None:
            self.outbox_mark = outbox_mark
        self.beat()

    def _number(self, events: Sequence[AnyEvent]) -> list[AnyEvent]:
        out = numbered(events, self.next_seq, self._input.run_id)
        self.next_seq += len(out)
        return out

    def _snapshot(self) -> Snapshot:
        prior = self._input.prior_turns
        calls = [
            {
                "id": c.id,
                "name": c.name,
                "arguments": c.arguments,
                "status": o.status,
                "result": o.result,
                "error": o.error,
            }
            for turn in prior
            for c, o in zip(turn.tool_calls, turn.outcomes, strict=False)
        ]
        content = "".join(t.content for t in prior) + "".join(self._text)
        return Snapshot(
            content=content, tool_calls=calls + self.snapshot_tools(), last_seq=self.next_seq
        )

    def beat(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_beat >= HEARTBEAT_EVERY_S / 2:
            self.last_beat = now
            activity.heartbeat(self.next_seq - 1)


@contextlib.asynccontextmanager
async def heartbeating(writer: TurnWriter) -> AsyncIterator[None]:
    """Heartbeat while the stream is silent (long time to first token, a tool being run)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_S)
            writer.beat()

    task = asyncio.create_task(loop())
    try:
        yield
    except asyncio.CancelledError:
        writer.abandon()  # the attempt was cancelled: nothing more of it is written
        raise
    except BaseException:
        # A failed stream (the provider's error is what counts): what it said so far still
        # reaches the log, so clients and a retry see it.
        with contextlib.suppress(Exception):
            await writer.drain()
        raise
    else:
        await writer.drain()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def activity_error(exc: ProviderError) -> ApplicationError:
    """A provider failure as Temporal sees it: retryable or not, after the provider's delay."""
    return ApplicationError(
        exc.message,
        {"status": exc.status},
        type=exc.code,
        non_retryable=not exc.retryable,
        next_retry_delay=(
            timedelta(seconds=exc.retry_after_s) if exc.retry_after_s is not None else None
        ),
    )
