"""Operations: statistics and Prometheus metrics (admin key only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from api.deps import PrincipalDep, SessionDep, StateDep
from copilot.auth import Principal
from copilot.errors import NotFound
from copilot.store.models import Chat, Message, Run

router = APIRouter(tags=["ops"])


def _require_admin(principal: Principal) -> None:
    if not principal.can_operate:
        raise NotFound("not found", code="not_found")  # never reveal admin routes to others


@router.get("/api/stats", summary="Admin: usage statistics")
async def stats(session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    _require_admin(principal)
    total_messages = await session.scalar(select(func.count()).select_from(Message))
    total_users = await session.scalar(
        select(func.count()).select_from(select(Chat.tenant_id, Chat.user_id).distinct().subquery())
    )
    total_runs = await session.scalar(select(func.count()).select_from(Run))
    active = await session.scalar(select(func.count()).select_from(Run).where(Run.active))
    chats = await session.scalar(select(func.count()).select_from(Chat))
    by_status = (await session.execute(select(Run.status, func.count()).group_by(Run.status))).all()
    return {
        "success": True,
        "totalMessages": total_messages or 0,
        "totalUsers": total_users or 0,
        "totalRequests": total_runs or 0,
        "totalChats": chats or 0,
        "activeRuns": active or 0,
        "runsByStatus": {str(k): int(v) for k, v in by_status},
    }


@router.get("/metrics", summary="Admin: Prometheus metrics", include_in_schema=True)
async def metrics(state: StateDep, session: SessionDep, principal: PrincipalDep) -> Response:
    _require_admin(principal)
    m = state.metrics
    runs = await session.execute(select(Run.status, func.count()).group_by(Run.status))
    for run_status, count in runs.all():
        m.runs.labels(status=str(run_status)).set(int(count))
    calls = await session.execute(
        text(
            "SELECT c->>'status', count(*) FROM messages, jsonb_array_elements(tool_calls) c"
            " WHERE role = 'assistant' GROUP BY 1"
        )
    )
    for call_status, count in calls.all():
        m.tool_calls.labels(status=str(call_status)).set(int(count))
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
