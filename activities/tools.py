"""Activities: execute server tools, delegate client tools to the host app, record calls.

Both tool activities heartbeat while the tool runs: a worker that dies mid-tool is noticed at
the heartbeat timeout (seconds), not at the start-to-close (``CLIENT_TOOL_TIMEOUT``). What runs
again then is the workflow's choice (``workflows/tools.py``): idempotent server tools and
delegated calls (which carry their call id as ``Idempotency-Key``) are retried, other server
tools are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.metrics import WorkerMetrics
from copilot.activity_defs import ToolActivityDefs
from copilot.attachments import context_blocks
from copilot.store import catalogs, repo
from copilot.store.catalogs import CatalogCache
from copilot.store.models import ToolCallRow
from copilot.tools.base import ToolFailed, ToolUnavailable
from copilot.tools.catalog import SEARCH_LIMIT_DEFAULT, bounded_view, search
from copilot.tools.registry import ToolRegistry
from copilot.types import (
    SEARCH_TOOL,
    ExecuteToolInput,
    LoadHostContextInput,
    LoadHostContextResult,
    RecordToolCallsInput,
    SearchCatalogInput,
    ToolOutcome,
)

T = TypeVar("T")
log = logging.getLogger("copilot.tools")


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _heartbeating(work: Awaitable[T]) -> T:
    """Await ``work``, heartbeating meanwhile (the SDK throttles what reaches the server)."""
    timeout = activity.info().heartbeat_timeout
    every = max(0.2, timeout.total_seconds() / 4) if timeout else 1.0
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        if not task.done():  # the activity was cancelled (run aborted, or timed out)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class ToolActivities(ToolActivityDefs):
    def __init__(
        self,
        *,
        metrics: WorkerMetrics | None = None,
        catalogs: CatalogCache,
        result_inline_bytes: int,
        registry: ToolRegistry,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        sim_app_url: str | None,
        sim_app_api_key: str | None,
        max_result_bytes: int,
    ) -> None:
        self._metrics = metrics or WorkerMetrics()
        self._catalogs = catalogs
        self._inline_bytes = result_inline_bytes
        self._registry = registry
        self._sessions = sessions
        self._http = http
        self._sim_app_url = sim_app_url.rstrip("/") if sim_app_url else None
        self._sim_app_api_key = sim_app_api_key
        self._max_result_bytes = max_result_bytes

    @activity.defn
    async def execute_server_tool(self, input: ExecuteToolInput) -> ToolOutcome:
        """Run a server tool. How each failure ends is explicit (``copilot.tools.base``):

        - ``ToolFailed``: the tool ran and failed; the model is told, nothing is retried;
        - ``ToolUnavailable``: transient; this activity fails and Temporal retries it (an
          idempotent tool only: a non-idempotent one gets a single attempt);
        - anything else is a bug in the tool: running it again would repeat it, so the model
          is told it crashed and the traceback goes to the worker's log.
        """
        started = time.monotonic()
        try:
            result = await _heartbeating(self._registry.execute(input.name, input.arguments))
            outcome = ToolOutcome(input.tool_call_id, input.name, "success", result=result)
        except ToolFailed as exc:
            outcome = ToolOutcome(input.tool_call_id, input.name, "error", error=str(exc))
        except ToolUnavailable as exc:
            self._metrics.tool_calls.labels("server", "retried").inc()
            raise ApplicationError(f"{input.name}: {exc}", type="tool_unavailable") from None
        except Exception as exc:
            log.exception("server tool %s crashed (call %s)", input.name, input.tool_call_id)
            message = f"the tool {input.name} crashed ({type(exc).__name__}: {exc})"
            outcome = ToolOutcome(input.tool_call_id, input.name, "error", error=message)
        outcome.duration_ms = _elapsed_ms(started)
        self._metrics.tool_calls.labels("server", outcome.status).inc()
        return outcome

    @activity.defn
    async def delegate_client_tool(self, input: ExecuteToolInput) -> ToolOutcome:
        """POST the call to the host app. The tool call id makes retries idempotent there."""
        outcome = await self._delegate(input)
        self._metrics.tool_calls.labels("client", outcome.status).inc()
        return outcome

    async def _delegate(self, input: ExecuteToolInput) -> ToolOutcome:
        if not self._sim_app_url:
            raise ApplicationError("SIM_APP_URL is not set", type="tool_failed", non_retryable=True)
        started = time.monotonic()
        resp = await self._host_execute(
            input.tool_call_id,
            input.name,
            input.arguments,
            user_id=input.user_id,
            workflow_id=input.host_workflow_id,
            chat_id=input.chat_id,
        )
        if len(resp.content) > self._max_result_bytes:
            return ToolOutcome(
                input.tool_call_id,
                input.name,
                "error",
                error=f"the tool's result ({len(resp.content)} bytes) is over "
                f"the {self._max_result_bytes} bytes accepted "
                "(MAX_TOOL_RESULT_BYTES)",
                duration_ms=_elapsed_ms(started),
            )
        payload: Any
        try:
            payload = resp.json()
        except json.JSONDecodeError:
            payload = resp.text
        if resp.status_code >= 400:
            message = payload.get("error") if isinstance(payload, dict) else str(payload)
            return ToolOutcome(
                input.tool_call_id,
                input.name,
                "error",
                error=str(message or f"host app answered {resp.status_code}"),
                duration_ms=_elapsed_ms(started),
            )
        if isinstance(payload, dict) and payload.get("success") is False:
            return ToolOutcome(
                input.tool_call_id,
                input.name,
                "error",
                error=str(payload.get("error", "the tool failed")),
                duration_ms=_elapsed_ms(started),
            )
        result = payload.get("result", payload) if isinstance(payload, dict) else payload
        view, size, cut = bounded_view(result, inline_bytes=self._inline_bytes)
        if cut:
            async with self._sessions.begin() as session:
                await catalogs.save_result(
                    session,
                    tool_call_id=input.tool_call_id,
                    run_id=input.run_id,
                    tenant_id=input.tenant_id,
                    user_id=input.user_id,
                    size=size,
                    data=result,
                )
        return ToolOutcome(
            input.tool_call_id, input.name, "success", result=view, duration_ms=_elapsed_ms(started)
        )

    async def _host_execute(
        self,
        call_id: str,
        name: str,
        arguments: dict[str, Any],
        *,
        user_id: str,
        workflow_id: str | None,
        chat_id: str,
    ) -> httpx.Response:
        """POST one tool call to the host app; its 5xx, 429 and transport errors are
        retryable failures of the calling activity."""
        # A retry after a crash repeats the call id: a host that keeps what it did per key
        # answers it again instead of doing it twice (see README, "Tools: running twice").
        headers = {"Idempotency-Key": call_id}
        if self._sim_app_api_key:
            headers["x-api-key"] = self._sim_app_api_key
        body = {
            "toolCallId": call_id,
            "toolName": name,
            "arguments": arguments,
            "userId": user_id,
            "workflowId": workflow_id,
            "chatId": chat_id,
        }
        try:
            resp = await _heartbeating(
                self._http.post(
                    f"{self._sim_app_url}/api/copilot/execute-tool", json=body, headers=headers
                )
            )
        except httpx.HTTPError as exc:
            raise ApplicationError(f"host app unreachable: {exc}") from None  # retryable
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ApplicationError(f"host app answered {resp.status_code}")  # retryable
        return resp

    @activity.defn
    async def load_host_context(self, input: LoadHostContextInput) -> LoadHostContextResult:
        """Ask the host app for the workflow's current state (its ``get_user_workflow`` tool)
        and add it to the run's user message as a context block."""
        if not self._sim_app_url:
            return LoadHostContextResult(found=True)
        resp = await self._host_execute(
            f"ctx_{input.run_id}",
            "get_user_workflow",
            {"workflowId": input.host_workflow_id},
            user_id=input.user_id,
            workflow_id=input.host_workflow_id,
            chat_id=input.chat_id,
        )
        if resp.status_code == 404:
            return LoadHostContextResult(found=False)
        try:
            payload = resp.json()
        except json.JSONDecodeError:
            payload = None
        if (
            resp.status_code >= 400
            or not isinstance(payload, dict)
            or payload.get("success") is False
        ):
            error = payload.get("error") if isinstance(payload, dict) else resp.text[:200]
            if "not found" in str(error).lower():
                return LoadHostContextResult(found=False)
            raise ApplicationError(
                f"the host app could not load the workflow: {error}", non_retryable=True
            )
        state = payload.get("result", payload)
        text = json.dumps(state, ensure_ascii=False, indent=1)
        block = context_blocks(
            [{"type": "current_workflow", "label": input.host_workflow_id, "content": text}]
        )
        async with self._sessions.begin() as session:
            await repo.set_user_context(
                session, run_id=input.run_id, blocks=block, kind="current_workflow"
            )
        return LoadHostContextResult(found=True, size=len(text))

    @activity.defn
    async def search_tool_catalog(self, input: SearchCatalogInput) -> ToolOutcome:
        """``search_integration_tools``: matches from the run's catalog, with their schemas
        (the workflow then offers them by name)."""
        started = time.monotonic()
        query = str(input.arguments.get("query") or "").strip()
        if not query:
            return ToolOutcome(
                input.tool_call_id,
                SEARCH_TOOL,
                "error",
                error="query is required: say what the tool should do",
            )
        raw_limit = input.arguments.get("limit")
        limit = raw_limit if isinstance(raw_limit, int) else SEARCH_LIMIT_DEFAULT
        catalog = await self._catalogs.get(input.catalog)
        found = search(list(catalog.values()), query, limit)
        result: dict[str, Any] = {"tools": [t.to_json() for t in found]}
        if not found:
            result["note"] = "No tool matched; try other words (the service's name, the action)."
        return ToolOutcome(
            input.tool_call_id,
            SEARCH_TOOL,
            "success",
            result=result,
            duration_ms=_elapsed_ms(started),
        )

    @activity.defn
    async def record_tool_calls(self, input: RecordToolCallsInput) -> None:
        rows = [
            ToolCallRow.values_for(
                call,
                run_id=input.run_id,
                chat_id=input.chat_id,
                tenant_id=input.tenant_id,
                user_id=input.user_id,
                executor=executor,
                host_executed=host,
            )
            for call, executor, host in zip(
                input.calls, input.executors, input.host_executed, strict=True
            )
        ]
        if not rows:
            return
        async with self._sessions.begin() as session:
            await repo.record_tool_calls(session, rows=rows)
