"""SSE over a run's event log: replay, then live, never a silent gap.

A reader asks for everything after seq ``after``. It catches up from the log (``XRANGE``),
then takes live entries from the process's ``LogHub``. Whenever the next entry is not
``last + 1`` (the log expired, was trimmed, or Redis restarted without its data) it first sends
a ``snapshot`` (the run's state from the workflow, or from PostgreSQL once finished) whose
``id`` is the seq just before the entry, so the client replaces its state and goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import msgspec
from fastapi.responses import StreamingResponse

from api.state import AppState
from copilot.events.fold import Folded, fold_events
from copilot.events.log import LogEntry
from copilot.events.model import (
    Done,
    DoneData,
    Snapshot,
    SnapshotEvent,
    TokenUsage,
    encode_frame,
    event_type,
)
from copilot.store import repo
from copilot.store.models import Run
from copilot.types import FINAL_STATUSES, RunState

DONE, SNAPSHOT = event_type(Done), event_type(SnapshotEvent)

log = logging.getLogger("copilot.api")

SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
    "Connection": "keep-alive",
}


def sse_response(frames: AsyncIterator[str], headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
    )


async def run_snapshot(state: AppState, run_id: str) -> Snapshot:
    """The run's state: folded from its log when complete, else workflow or PostgreSQL."""
    folded, whole = Folded(), False
    async for batch in state.event_log.pages(run_id):
        if not whole and batch[0].seq != 1:
            break  # the log lost its start: it cannot be folded
        whole = True
        fold_events((e.event for e in batch), into=folded)
    if whole:
        return folded.to_snapshot()
    async with state.sessions() as session:
        run = await session.get(Run, run_id)
        message = await repo.run_message(session, run_id=run_id) if run else None
    if run is not None and run.status in FINAL_STATUSES:
        return Snapshot(
            status=run.status,
            content=message.content if message else "",
            tool_calls=message.tool_calls if message else [],
            last_seq=run.last_seq or 0,
        )
    try:
        live: RunState = await state.temporal.get_workflow_handle(run_id).query(
            "state", result_type=RunState
        )
    except Exception as exc:
        log.warning("run %s: no state from its workflow (%s)", run_id, exc)
        return Snapshot()
    return Snapshot(
        status=live.status,
        content=live.content,
        tool_calls=live.tool_calls,
        pending=live.pending,
        last_seq=live.last_seq,
    )


def _snapshot_frame(run_id: str, seq: int, snapshot: Snapshot) -> str:
    data = msgspec.structs.replace(snapshot, last_seq=seq)
    return encode_frame(SnapshotEvent(data, seq=seq, run_id=run_id))


async def run_frames(
    state: AppState, run_id: str, *, after: int, ping_s: float, started: float | None = None
) -> AsyncIterator[str]:
    """Every frame after ``after`` until ``done``, with ``: ping`` while idle.

    ``started``: when the request that started the run arrived, to observe time to first token.
    """
    state.metrics.sse_active.inc()
    try:
        async for frame in _frames(state, run_id, after=after, ping_s=ping_s):
            if started is not None and frame.startswith("id:") and "event: content\n" in frame:
                state.metrics.ttft.observe(time.monotonic() - started)
                started = None
            yield frame
    finally:
        state.metrics.sse_active.dec()


async def _frames(state: AppState, run_id: str, *, after: int, ping_s: float) -> AsyncIterator[str]:
    yield ": stream open\n\n"
    subscription = await state.hub.subscribe(run_id, after)
    last = after
    try:
        caught_up = False
        async for backlog in state.event_log.pages(run_id, after):
            caught_up = True
            for entry in backlog:
                for frame in await _deliver(state, run_id, entry, last):
                    yield frame
                last = entry.seq
                if entry.event.get("type") == DONE:
                    return
        if not caught_up:
            frames, last, ended = await _empty_log(state, run_id, after)
            for frame in frames:
                yield frame
            if ended:
                return
        while True:
            first = await subscription.get(ping_s)
            if first is None:
                yield ": ping\n\n"
                continue
            # Everything that arrived together goes out in one write (one send per wake-up).
            out: list[str] = []
            for live in [first, *subscription.ready()]:
                if live.seq <= last:
                    continue  # already sent during catch-up
                out.extend(await _deliver(state, run_id, live, last))
                last = live.seq
                if live.event.get("type") == DONE:
                    yield "".join(out)
                    return
            if out:
                yield "".join(out)
    finally:
        subscription.close()


async def _deliver(state: AppState, run_id: str, entry: LogEntry, last: int) -> list[str]:
    frames = []
    if entry.seq > last + 1 and entry.event.get("type") != SNAPSHOT:
        snapshot = await run_snapshot(state, run_id)
        frames.append(_snapshot_frame(run_id, entry.seq - 1, snapshot))
    frames.append(encode_frame(entry.event))
    return frames


async def _empty_log(state: AppState, run_id: str, after: int) -> tuple[list[str], int, bool]:
    """Nothing in the log after ``after``: a finished run whose log expired, or a lost log."""
    async with state.sessions() as session:
        run = await session.get(Run, run_id)
    if run is None or (after == 0 and run.status not in FINAL_STATUSES):
        return [], after, False  # a new run: its first events are on their way
    if run.status in FINAL_STATUSES and run.last_seq:
        if after >= run.last_seq:
            return [], after, True  # the client has everything
        snapshot = await run_snapshot(state, run_id)
        done = Done(
            DoneData(
                response_id=run.response_id,
                status=run.status,
                usage=TokenUsage(input_tokens=run.input_tokens, output_tokens=run.output_tokens),
            ),
            seq=run.last_seq,
            run_id=run_id,
        )
        return [_snapshot_frame(run_id, run.last_seq - 1, snapshot), encode_frame(done)], 0, True
    snapshot = await run_snapshot(state, run_id)
    seq = snapshot.last_seq
    if seq > after:
        return [_snapshot_frame(run_id, seq, snapshot)], seq, False
    return [], after, False
