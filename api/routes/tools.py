"""Decisions on tool calls: the user's confirmation, the host's mark-complete."""

from __future__ import annotations

import contextlib
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Scope
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.deps import PrincipalDep, ReadLimit, SessionDep, StateDep, authenticate
from api.state import AppState
from copilot.auth import Principal
from copilot.errors import AppError, Conflict, Forbidden, InvalidRequest, NotFound, TooLarge
from copilot.store import catalogs, tool_calls
from copilot.store.models import ToolCallRow
from copilot.store.rows import without_nul
from copilot.tools.catalog import bounded_view
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
    row = await tool_calls.get_tool_call(
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
    row = await _host_call(state, session, principal, body.id)
    settings = state.settings
    data = without_nul(body.data)  # PostgreSQL cannot hold U+0000; the host's text may
    if data is not None:
        view, size, cut = bounded_view(data, inline_bytes=settings.tool_result_inline_bytes)
        if size > settings.max_tool_result_bytes:
            message = _over_limit(size, settings.max_tool_result_bytes)
            await _complete(state, row, MarkCompleteInput(row.id, body.name, 413, message))
            raise TooLarge(f"{message}; the tool call failed with that error")
        if cut:
            # Whole with the call; the run (history, events, the model) gets a bounded view.
            await catalogs.save_result(
                session,
                tool_call_id=row.id,
                run_id=row.run_id,
                tenant_id=row.tenant_id,
                user_id=row.user_id,
                size=size,
                data=data,
            )
            data = view
    await _complete(
        state, row, MarkCompleteInput(row.id, body.name, body.status, body.message, data)
    )
    return {"success": True}


def _over_limit(size: int, limit: int) -> str:
    return f"the tool's result is {size} bytes, over the {limit} accepted (MAX_TOOL_RESULT_BYTES)"


async def _host_call(
    state: AppState, session: AsyncSession, principal: Principal, tool_call_id: str
) -> ToolCallRow:
    if principal.kind not in ("service", "admin", "dev"):
        raise Forbidden("only the host app's service key may report tool results", code="forbidden")
    row = await tool_calls.get_tool_call(
        session, tenant_id=principal.tenant_id, tool_call_id=tool_call_id
    )
    if row is None or not row.host_executed:
        raise NotFound("tool call not found", code="tool_call_not_found")
    return row


async def _complete(state: AppState, row: ToolCallRow, done: MarkCompleteInput) -> None:
    handle = state.temporal.get_workflow_handle(row.run_id)
    try:
        await handle.execute_update("complete_tool", done, result_type=bool)
    except (WorkflowUpdateFailedError, RPCError) as exc:
        raise _update_error(exc, waiting_code="not_waiting") from None


_CALL_ID = re.compile(rb'"id"\s*:\s*"(tc_[A-Za-z0-9_-]{1,60})"')


async def fail_oversized_result(scope: Scope, prefix: bytes, limit: int) -> None:
    """A mark-complete body over the route's limit: its tool fails at once, visibly (the host
    may only log our 413, and the run would wait for the result until CLIENT_TOOL_TIMEOUT).
    Ours are the only call ids (``tc_<uuid>``), and Sim sends ``id`` first."""
    match = _CALL_ID.search(prefix)
    if match is None:
        return
    state: AppState = scope["app"].state.copilot
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    principal = await authenticate(state, headers.get("x-api-key"), None)
    async with state.sessions() as session:
        row = await _host_call(state, session, principal, match.group(1).decode())
    message = (
        f"the tool's result is over {limit} bytes, more than this server accepts "
        "(SIM_MAX_BODY_BYTES, MAX_TOOL_RESULT_BYTES)"
    )
    with contextlib.suppress(AppError):  # not waiting any more: nothing to fail
        await _complete(state, row, MarkCompleteInput(row.id, "", 413, message))


@router.get(
    "/api/copilot/tool-calls/{tool_call_id}/result",
    summary="A tool call's whole result, when it was too large to pass around",
)
async def tool_result(
    tool_call_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    user_id: Annotated[str | None, Query(alias="userId")] = None,
) -> dict[str, Any]:
    acting = principal.acting_user(user_id)
    row = await catalogs.get_result(
        session, tenant_id=principal.tenant_id, user_id=acting, tool_call_id=tool_call_id
    )
    if row is None:
        raise NotFound("no stored result for this tool call", code="tool_call_not_found")
    return {
        "success": True,
        "toolCallId": row.tool_call_id,
        "runId": row.run_id,
        "bytes": row.bytes,
        "result": row.data,
    }
