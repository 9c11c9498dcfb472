"""Health: each backing service's state; 503 when one is down."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.deps import StateDep
from api.state import AppState

router = APIRouter(tags=["sim"])

CHECK_TIMEOUT_S = 2.0


async def _check(name: str, state: AppState) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            if name == "database":
                async with state.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            elif name == "redis":
                await state.redis.ping()
            else:
                await state.temporal.workflow_service.get_system_info(
                    GetSystemInfoRequest(), timeout=timedelta(seconds=CHECK_TIMEOUT_S)
                )
    except Exception:
        return "down"
    return "up"


@router.get("/api/health", summary="Service health")
async def health(state: StateDep) -> JSONResponse:
    names = ("database", "redis", "temporal")
    results = await asyncio.gather(*(_check(n, state) for n in names))
    services = dict(zip(names, results, strict=True))
    healthy = all(v == "up" for v in results)
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": datetime.now(UTC).isoformat(),
        "services": services,
        "mode": "development (no auth, loopback only)" if state.settings.dev_mode else "secured",
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
