"""SSE responses over a run's event log."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from copilot.events.log import EventLog, encode_frame

SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
    "Connection": "keep-alive",
}


async def run_frames(
    log: EventLog, run_id: str, *, after: int, ping_s: float
) -> AsyncIterator[str]:
    """Every frame after ``after`` until ``done``, with ``: ping`` while idle."""
    yield ": stream open\n\n"
    async for entry in log.follow(run_id, after, block_ms=int(ping_s * 1000)):
        if entry is None:
            yield ": ping\n\n"
        else:
            yield encode_frame(entry.event)


def sse_response(frames: AsyncIterator[str], headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
    )
