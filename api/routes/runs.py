"""Runs: list and abort."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import OwnedRun, PrincipalDep, ReadLimit, SessionDep, StateDep
from api.run_service import abort_run
from copilot.errors import Conflict
from copilot.store import runs
from copilot.types import FINAL_STATUSES

router = APIRouter(tags=["native"], dependencies=[ReadLimit])


@router.get("/api/copilot/runs", summary="The caller's runs, newest first")
async def list_runs(
    session: SessionDep,
    principal: PrincipalDep,
    user_id: Annotated[str | None, Query(alias="userId")] = None,
    chat_id: Annotated[str | None, Query(alias="chatId")] = None,
    status: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    # Not ActingUserDep: a dependency would answer 403 before ``limit`` is validated (400).
    acting = principal.acting_user(user_id)
    found = await runs.list_runs(
        session,
        tenant_id=principal.tenant_id,
        user_id=acting,
        chat_id=chat_id,
        status=status,
        limit=limit,
    )
    return {"success": True, "runs": [runs.run_summary(r) for r in found]}


@router.post("/api/copilot/runs/{run_id}/abort", summary="Cancel a run")
async def abort(run: OwnedRun, state: StateDep) -> dict[str, Any]:
    if run.status in FINAL_STATUSES:
        raise Conflict(f"the run has already finished ({run.status})", code="run_finished")
    await abort_run(state, run.id)
    return {"success": True, "runId": run.id, "status": "aborting"}
