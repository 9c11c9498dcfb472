"""Operations: statistics and Prometheus metrics (admin key only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import PrincipalDep, SessionDep, StateDep
from copilot.auth import Principal
from copilot.errors import NotFound
from copilot.store import stats as store_stats

router = APIRouter(tags=["ops"])


def _require_admin(principal: Principal) -> None:
    if not principal.can_operate:
        raise NotFound("not found", code="not_found")  # never reveal admin routes to others


@router.get("/api/stats", summary="Admin: usage statistics")
async def stats(session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    _require_admin(principal)
    usage = await store_stats.usage_stats(session)
    return {
        "success": True,
        "totalMessages": usage.messages,
        "totalUsers": usage.users,
        "totalRequests": usage.runs,
        "totalChats": usage.chats,
        "activeRuns": usage.active_runs,
        "runsByStatus": usage.runs_by_status,
    }


@router.get("/metrics", summary="Admin: Prometheus metrics", include_in_schema=True)
async def metrics(state: StateDep, session: SessionDep, principal: PrincipalDep) -> Response:
    _require_admin(principal)
    m = state.metrics
    for run_status, count in (await store_stats.runs_by_status(session)).items():
        m.runs.labels(status=run_status).set(count)
    for call_status, count in (await store_stats.tool_calls_by_status(session)).items():
        m.tool_calls.labels(status=call_status).set(count)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
