"""Sim-compatible backend routes (Sim's SIM_AGENT_API_URL points here)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClientIpDep, PrincipalDep, ReadLimit, SessionDep, StateDep, owned_chat
from api.run_service import start_chat_run, stream_token_for
from api.schemas import SimChatRequest
from api.sse import run_frames, sse_response
from api.state import AppState
from copilot.errors import AppError
from copilot.events.model import Done, DoneData, ErrorEvent, encode_frame
from copilot.providers.registry import context_window
from copilot.store import runs
from copilot.types import HostDetachedInput

router = APIRouter(tags=["sim"])
log = logging.getLogger("copilot.api")


@router.post(
    "/api/chat-completion-streaming",
    summary="Sim: start a run and stream it (client tools are host-executed)",
)
async def chat_completion_streaming(
    body: SimChatRequest,
    state: StateDep,
    principal: PrincipalDep,
    ip: ClientIpDep,
    x_copilot_rejoin: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    native, config, notice = body.native()
    if config is not None and x_api_key is not None and config.api_key == x_api_key:
        # Sim fills an openai/anthropic config's apiKey with its COPILOT_API_KEY, which is
        # our service key: never forward that to a provider; answer with the server's key.
        config = None
    try:
        run = await start_chat_run(
            state,
            principal,
            native,
            interactive=True,
            sim_protocol=True,
            client_ip=ip,
            provider_config=config,
            notice=notice,
            # Sim never reopens a stream: its waits end as soon as it hangs up. A caller that
            # resubmits after a cut (this server as an upstream's client) says so.
            rejoins=x_copilot_rejoin == "resubmit",
        )
    except AppError as exc:
        # Sim throws on any non-2xx and shows the user an empty answer (it only logs): say
        # what went wrong in the stream instead, where Sim shows it.
        return sse_response(_refusal(exc), {"X-Copilot-Error": exc.code})
    if not run.created:  # the same message again: a caller rejoining its run
        await _signal(state, run.run_id, "host_attached")
    frames = _detach_on_close(
        state, run.run_id, run_frames(state, run.run_id, after=0, ping_s=state.settings.sse_ping_s)
    )
    token = stream_token_for(state, principal, run)
    return sse_response(
        frames, {"X-Stream-Token": token, "X-Run-Id": run.run_id, "X-Chat-Id": run.chat_id}
    )


async def _refusal(exc: AppError) -> AsyncIterator[str]:
    error = ErrorEvent.of(
        exc.message, exc.code, retryable=exc.status in (429, 503), status=exc.status
    )
    error.seq = 1
    done = Done(DoneData(status="failed"), seq=2)
    yield encode_frame(error) + encode_frame(done)


_detaching: set[asyncio.Task[None]] = set()


async def _detach_on_close(
    state: AppState, run_id: str, frames: AsyncIterator[str]
) -> AsyncIterator[str]:
    """Sim reads one stream per run and has no rejoin: when it closes before ``done``, the
    run's waits for Sim's tool results end at once instead of at CLIENT_TOOL_TIMEOUT."""
    finished = False
    try:
        async for frame in frames:
            if "\nevent: done\n" in frame:
                finished = True
            yield frame
    finally:
        if not finished:
            task = asyncio.create_task(_signal(state, run_id, "host_detached"))
            _detaching.add(task)  # keep a reference until it ran (the stream is gone)
            task.add_done_callback(_detaching.discard)


async def _signal(state: AppState, run_id: str, name: str) -> None:
    try:
        await state.temporal.get_workflow_handle(run_id).signal(name, HostDetachedInput())
    except Exception as exc:  # the run may have just finished; nothing is waiting then
        log.info("run %s: %s not delivered (%s)", run_id, name, exc)


class ContextUsageBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    chat_id: str = Field(alias="chatId", min_length=1, max_length=128)
    user_id: str | None = Field(None, alias="userId", max_length=200)
    model: str | None = Field(None, max_length=200)


@router.post(
    "/api/get-context-usage",
    summary="Tokens the chat uses vs the model's window",
    dependencies=[ReadLimit],
)
async def get_context_usage(
    body: ContextUsageBody, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    # Not OwnedChat: the chat is named in the body, which the handler validates (400) first.
    acting = principal.acting_user(body.user_id)
    chat = await owned_chat(
        session, tenant_id=principal.tenant_id, user_id=acting, chat_id=body.chat_id
    )
    last = await runs.last_run(session, chat=chat)
    # The last run's prompt plus its answer is what the next message starts from.
    used = (last.input_tokens + last.output_tokens) if last else 0
    model = body.model or chat.model or ""
    window = context_window(model)
    return {
        "success": True,
        "chatId": chat.id,
        "model": model,
        "tokensUsed": used,
        "contextWindow": window,
        "percentage": round(100 * used / window, 2) if window else 0,
    }
