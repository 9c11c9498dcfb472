"""Decisions on tool calls: the user's confirmation, the host's mark-complete."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.deps import PrincipalDep, ReadLimit, SessionDep, StateDep
from copilot.errors import AppError, Conflict, Forbidden, InvalidRequest, NotFound, TooLarge
from copilot.store import repo
from copilot.types import DecisionInput, DecisionResult, MarkCompleteInput

router = APIRouter(tags=["tools"], dependencies=[ReadLimit])


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    tool_call_id: str = Field(alias="toolCallId", min_length=1, max_length=64)
    status: Literal["accepted", "rejected", "background"]
    message: str | None = Field(None, max_length=10_000)
    user_id: str | None = Field(None, alias="userId", max_length=200)


class MarkCompleteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=128)
    status: int = Field(ge=100, le=599)
    message: str | None = Field(None, max_length=10_000)
    data: Any = None


def _update_error(exc: Exception, *, waiting_code: str) -> AppError:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ApplicationError):
        if cause.type == "not_found":
            return NotFound("tool call not found", code="tool_call_not_found")
        if cause.type == "invalid_request":
            return InvalidRequest(cause.message)
        return Conflict(cause.message, code=waiting_code)
    # The workflow has finished: nothing waits any more.
    return Conflict("the run has finished; nothing is waiting for this call", code=waiting_code)


@router.post("/api/copilot/confirm", summary="Accept, reject or background a tool call")
async def confirm(
    body: ConfirmBody, state: StateDep, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    user_id = principal.acting_user(body.user_id)
    row = await repo.get_tool_call(
        session, tenant_id=principal.tenant_id, user_id=user_id, tool_call_id=body.tool_call_id
    )
    if row is None:
        raise NotFound("tool call not found", code="tool_call_not_found")
    handle = state.temporal.get_workflow_handle(row.run_id)
    try:
        result = await handle.execute_update(
            "decide",
            DecisionInput(tool_call_id=row.id, status=body.status, message=body.message),
            result_type=DecisionResult,
        )
    except (WorkflowUpdateFailedError, RPCError) as exc:
        raise _update_error(exc, waiting_code="already_decided") from None
    out: dict[str, Any] = {"success": True, "toolCallId": row.id, "status": body.status}
    if result.duplicate:
        out["duplicate"] = True
    return out


@router.post("/api/tools/mark-complete", summary="The host executed a client tool")
async def mark_complete(
    body: MarkCompleteBody, state: StateDep, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    if body.data is not None:
        size = len(json.dumps(body.data))
        if size > state.settings.max_tool_result_bytes:
            raise TooLarge(
                f"data is {size} bytes; the limit is {state.settings.max_tool_result_bytes} "
                "(MAX_TOOL_RESULT_BYTES)"
            )
    if principal.kind not in ("service", "admin", "dev"):
        raise Forbidden("only the host app's service key may report tool results",
                        code="forbidden")  # fmt: skip
    row = await repo.get_tool_call(session, tenant_id=principal.tenant_id, tool_call_id=body.id)
    if row is None or not row.host_executed:
        raise NotFound("tool call not found", code="tool_call_not_found")
    handle = state.temporal.get_workflow_handle(row.run_id)
    try:
        await handle.execute_update(
            "complete_tool",
            MarkCompleteInput(
                id=row.id, name=body.name, status=body.status, message=body.message, data=body.data
            ),
            result_type=bool,
        )
    except (WorkflowUpdateFailedError, RPCError) as exc:
        raise _update_error(exc, waiting_code="not_waiting") from None
    return {"success": True}
