"""Sim-compatible backend routes (Sim's SIM_AGENT_API_URL points here)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClientIpDep, PrincipalDep, ReadLimit, SessionDep, StateDep
from api.runs import start_chat_run, stream_token_for
from api.schemas import SimChatRequest
from api.sse import run_frames, sse_response
from copilot.errors import NotFound
from copilot.providers.registry import context_window
from copilot.store import repo

router = APIRouter(tags=["sim"])


@router.post(
    "/api/chat-completion-streaming",
    summary="Sim: start a run and stream it (client tools are host-executed)",
)
async def chat_completion_streaming(
    body: SimChatRequest, state: StateDep, principal: PrincipalDep, ip: ClientIpDep
) -> StreamingResponse:
    native = body.native()
    run = await start_chat_run(
        state, principal, native, interactive=True, host_executed=True, client_ip=ip
    )
    frames = run_frames(state, run.run_id, after=0, ping_s=state.settings.sse_ping_s)
    token = stream_token_for(state, principal, run)
    return sse_response(
        frames, {"X-Stream-Token": token, "X-Run-Id": run.run_id, "X-Chat-Id": run.chat_id}
    )


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
    acting = principal.acting_user(body.user_id)
    chat = await repo.get_chat(
        session, tenant_id=principal.tenant_id, user_id=acting, chat_id=body.chat_id
    )
    if chat is None:
        raise NotFound("chat not found", code="chat_not_found")
    last = await repo.last_run(session, chat=chat)
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
