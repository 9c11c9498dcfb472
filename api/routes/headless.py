"""Headless API: run to the end and answer one JSON document."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.deps import ClientIpDep, OwnedRun, PrincipalDep, ReadLimit, StateDep
from api.run_service import start_chat_run
from api.schemas import ChatRequest
from api.state import AppState
from copilot.errors import NotFound, Timeout, Unavailable
from copilot.store import messages, runs
from copilot.store.models import Run
from copilot.types import FINAL_STATUSES, RUN_COMPLETED

router = APIRouter(tags=["headless"])
log = logging.getLogger("copilot.api")


def _require_enabled(state: AppState) -> None:
    if not state.settings.enable_headless_api:
        raise Unavailable("the headless API is disabled on this server (ENABLE_HEADLESS_API)")


async def require_headless(state: StateDep) -> None:
    _require_enabled(state)


def _tool_calls(raw: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": c.get("id"),
            "name": c.get("name"),
            "status": c.get("status"),
            "params": c.get("arguments", {}),
            "result": c.get("result"),
            "error": c.get("error"),
            "durationMs": c.get("durationMs", 0),
        }
        for c in raw
    ]


async def _result(state: AppState, run: Run) -> JSONResponse:
    async with state.sessions() as session:
        message = await messages.run_message(session, run_id=run.id)
    content = message.content if message else ""
    calls = _tool_calls(message.tool_calls if message else [])
    usage = {"inputTokens": run.input_tokens, "outputTokens": run.output_tokens}
    if run.status == RUN_COMPLETED:
        return JSONResponse(
            {
                "success": True,
                "content": content,
                "toolCalls": calls,
                "chatId": run.chat_id,
                "conversationId": run.response_id,
                "runId": run.id,
                "status": run.status,
                "usage": usage,
            }
        )
    code = run.error_code or run.status
    status = 502 if code.startswith("provider") else 404 if code == "workflow_not_found" else 200
    body = {
        "success": False,
        "error": run.error or f"the run ended: {run.status}",
        "code": "provider_error" if code.startswith("provider") else code,
        "reason": code,
        "status": run.status,
        "content": content,
        "toolCalls": calls,
        "chatId": run.chat_id,
        "runId": run.id,
        "usage": usage,
    }
    return JSONResponse(body, status_code=status)


async def _load_run(state: AppState, run_id: str) -> Run:
    """The run this request has just started for its caller (so no owner check)."""
    async with state.sessions() as session:
        run = await runs.get_run_by_id(session, run_id=run_id)
    if run is None:
        raise NotFound("run not found", code="run_not_found")
    return run


@router.post(
    "/api/v1/copilot/chat",
    summary="Run a chat to the end and answer JSON (wait=false: 202 at once)",
    responses={202: {"description": "started; poll GET /api/v1/copilot/runs/{runId}"}},
)
async def headless_chat(
    body: ChatRequest, state: StateDep, principal: PrincipalDep, ip: ClientIpDep
) -> JSONResponse:
    _require_enabled(state)
    started = await start_chat_run(state, principal, body, interactive=False, client_ip=ip)
    if not body.wait:
        return JSONResponse(
            {"success": True, "runId": started.run_id, "chatId": started.chat_id}, status_code=202
        )
    run = await _load_run(state, started.run_id)
    if run.status not in FINAL_STATUSES:
        handle = state.temporal.get_workflow_handle(started.run_id)
        try:
            await asyncio.wait_for(handle.result(), body.timeout / 1000)
        except TimeoutError:
            raise Timeout(
                f"the run did not finish within {body.timeout} ms; it goes on: poll "
                f"GET /api/v1/copilot/runs/{started.run_id}",
                extra={"runId": started.run_id, "chatId": started.chat_id},
            ) from None
        except Exception as exc:  # the workflow failed as a whole: report what was persisted
            log.warning("run %s ended abnormally: %r", started.run_id, exc)
        run = await _load_run(state, started.run_id)
    return await _result(state, run)


@router.get(
    "/api/v1/copilot/runs/{run_id}",
    summary="Headless poll: status, then the result",
    # In this order: auth and rate limit, then 503 when disabled, then the run's owner (404).
    dependencies=[ReadLimit, Depends(require_headless)],
)
async def headless_run(run: OwnedRun, state: StateDep) -> JSONResponse:
    if run.status not in FINAL_STATUSES:
        return JSONResponse(
            {"success": True, "runId": run.id, "chatId": run.chat_id, "status": run.status}
        )
    return await _result(state, run)
