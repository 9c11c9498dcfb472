"""Native interactive routes: start a run and stream it; rejoin; snapshot."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from api.deps import (
    ClientIpDep,
    OwnedRun,
    PrincipalDep,
    ReadLimit,
    StateDep,
    authenticate,
    check_stream_key,
    limit_reads,
    owned_run,
)
from api.run_service import StartedRun, start_chat_run, stream_token_for
from api.schemas import ChatRequest
from api.sse import run_frames, run_snapshot, sse_response
from copilot.auth import Principal, verify_stream_token
from copilot.errors import InvalidRequest
from copilot.store import runs

router = APIRouter(tags=["native"])


@router.post("/api/copilot/chat", summary="Start a run and stream its events (SSE)")
async def chat(
    body: ChatRequest, state: StateDep, principal: PrincipalDep, ip: ClientIpDep
) -> StreamingResponse:
    started = time.monotonic()
    run = await start_chat_run(state, principal, body, interactive=True, client_ip=ip)
    token = stream_token_for(state, principal, run)
    frames = run_frames(
        state, run.run_id, after=0, ping_s=state.settings.sse_ping_s, started=started
    )
    return sse_response(
        frames,
        {"X-Stream-Token": token, "X-Run-Id": run.run_id, "X-Chat-Id": run.chat_id},
    )


def _parse_after(last_event_id: str | None, after: int | None) -> int:
    raw: Any = last_event_id if last_event_id not in (None, "") else after
    if raw is None:
        return 0
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidRequest("Last-Event-ID must be an integer seq") from None
    if value < 0:
        raise InvalidRequest("Last-Event-ID must not be negative")
    return value


@router.get("/api/copilot/runs/{run_id}/events", summary="(Re)join a run's event stream")
async def run_events(
    run_id: str,
    state: StateDep,
    ip: ClientIpDep,
    x_api_key: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
    token: Annotated[str | None, Query()] = None,
    user_id: Annotated[str | None, Query(alias="userId")] = None,
    tenant_id: Annotated[str | None, Query(alias="tenantId", max_length=64)] = None,
) -> StreamingResponse:
    principal: Principal
    if token is not None and not x_api_key:
        principal = verify_stream_token(
            state.settings.stream_token_key_bytes,
            token,
            run_id=run_id,
            max_ttl_s=state.settings.stream_token_ttl_s,
        )
    else:
        principal = await authenticate(state, x_api_key, tenant_id)
    await limit_reads(state, principal, ip)
    acting = principal.acting_user(user_id)
    # A session of its own, closed before streaming: a request-scoped one would hold a pooled
    # database connection for as long as the stream stays open (every open SSE client).
    async with state.sessions() as session:
        if principal.kind == "stream":
            await check_stream_key(state, principal, session)
        await owned_run(session, tenant_id=principal.tenant_id, user_id=acting, run_id=run_id)
    start = _parse_after(last_event_id, after)
    frames = run_frames(state, run_id, after=start, ping_s=state.settings.sse_ping_s)
    return sse_response(frames, {"X-Run-Id": run_id})


@router.get(
    "/api/copilot/runs/{run_id}", summary="A run's snapshot as JSON", dependencies=[ReadLimit]
)
async def get_run_snapshot(
    run: OwnedRun, state: StateDep, principal: PrincipalDep
) -> dict[str, Any]:
    snapshot = await run_snapshot(state, run.id)
    out = runs.run_summary(run)
    out.update(
        {
            "content": snapshot.content,
            "lastSeq": snapshot.last_seq,
            "toolCalls": snapshot.tool_calls,
            "pending": snapshot.pending,
            "streamToken": stream_token_for(
                state,
                principal,
                StartedRun(
                    run_id=run.id,
                    chat_id=run.chat_id,
                    user_id=run.user_id,
                    created=False,
                    tenant_id=run.tenant_id,
                ),
            ),
        }
    )
    return out
