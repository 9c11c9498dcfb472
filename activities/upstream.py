"""Activities for provider ``copilot-backend``: read an upstream turn, report tool results.

``stream_backend_turn`` POSTs Sim's payload upstream and reads its SSE. Deltas go to the run's
event log (as with any provider). A tool call the upstream asks for is *handed* to our
workflow with a signal, and the reader keeps reading: the upstream holds its stream open
until the result comes back, so a reader that waited for the tool would deadlock. While the
reader owns the log, the workflow cannot write it (one writer per log keeps seqs gapless), so
the workflow's own events (tool_call, confirmations, results) queue in its *outbox*; the
reader pulls them with a long-polling update and writes them in order with its deltas,
recording how many it wrote in the same Redis transaction. A retried reader starts after
that mark; whatever no reader wrote, the workflow writes once the turn is over. The pump
and its failure semantics: ``activities/outbox_pump.py``.

``report_backend_tool`` answers the upstream's wait (``POST /api/tools/mark-complete``) from
its own activity, never from the reader, which may have to drain the stream first.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError

from activities.outbox_pump import read_and_pump
from activities.writer import TurnWriter, activity_error, heartbeating
from copilot.activity_defs import UpstreamActivityDefs
from copilot.events.log import EventLog, writer_epoch
from copilot.events.model import Content
from copilot.providers.base import ProviderError, parse_retry_after, status_error
from copilot.providers.sse import SseDecoder
from copilot.providers.upstream import (
    Finished,
    Forward,
    UpstreamTranslator,
    upstream_chat_id,
)
from copilot.store import repo
from copilot.store.catalogs import CatalogCache
from copilot.tools.registry import ToolRegistry
from copilot.types import (
    EV_CONTENT,
    ClaimBackendLogResult,
    ClaimLogInput,
    ReportToolInput,
    StreamTurnInput,
    StreamTurnResult,
    ToolCall,
)

log = logging.getLogger("copilot.backend")

LABEL = "The copilot backend"
CLIENT_VERSION = "durable-copilot/1"
REJOIN_HEADER = "x-copilot-rejoin"


class BackendActivities(UpstreamActivityDefs):
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        event_log: EventLog,
        http: httpx.AsyncClient,
        temporal: Client,
        tools: ToolRegistry,
        base_url: str | None,
        api_key: str | None,
        read_timeout_s: float,
        catalogs: CatalogCache | None = None,
    ) -> None:
        self._catalogs = catalogs
        self._sessions = sessions
        self._log = event_log
        self._http = http
        self._temporal = temporal
        self._tools = tools
        self._url = base_url.rstrip("/") if base_url else None
        self._api_key = api_key
        self._read_timeout_s = read_timeout_s

    # --- the reader ---------------------------------------------------------------------------

    @activity.defn
    async def stream_backend_turn(self, input: StreamTurnInput) -> StreamTurnResult:
        url = self._require_url()
        info = activity.info()
        writer = TurnWriter(self._log, input, info.attempt)
        first_seq = await writer.resume_point(info.heartbeat_details)
        # A retry is a new upstream turn: clients drop the text of every turn the last
        # attempt streamed (an upstream may run several model turns in one stream).
        resets = await self._turns_written(input) if info.attempt > 1 else None
        payload, _ = await asyncio.gather(
            self._payload(input), writer.open(first_seq, reset_turns=resets)
        )
        handle = self._temporal.get_workflow_handle(input.run_id, run_id=info.workflow_run_id)
        translator = UpstreamTranslator(run_id=input.run_id, label=LABEL)
        handed: list[ToolCall] = []
        writer.snapshot_tools = lambda: [
            {"id": h.id, "name": h.name, "arguments": h.arguments, "status": "pending"}
            for h in handed
        ]
        try:
            async with heartbeating(writer):
                await read_and_pump(
                    self._read(url, payload, writer, translator, handle, handed),
                    handle,
                    writer,
                )
        except ProviderError as exc:
            raise activity_error(exc) from None
        finished = translator.finished
        assert finished is not None
        if translator.ignored_after_done:
            log.warning(
                "run %s: %d upstream events after done were ignored",
                input.run_id,
                translator.ignored_after_done,
            )
        if finished.response_id:
            await self._remember_conversation(input, finished.response_id)
        writer.beat(force=True)
        return StreamTurnResult(
            content=translator.content,
            last_seq=writer.next_seq - 1,
            usage=finished.usage,
            stop_reason=finished.status,
            attempt=info.attempt,
            tool_calls=[ToolCall(h.id, h.name, h.arguments) for h in handed],
            outbox_written=writer.outbox_mark or 0,
        )

    async def _read(
        self,
        url: str,
        payload: dict[str, Any],
        writer: TurnWriter,
        translator: UpstreamTranslator,
        handle: WorkflowHandle[Any, Any],
        handed: list[ToolCall],
    ) -> None:
        headers = {
            "accept": "text/event-stream",
            "x-client-version": CLIENT_VERSION,
            # This reader resubmits the same message after a cut: an upstream that is this
            # server keeps its waits for our tool results open for a while (SIM_REJOIN_GRACE).
            REJOIN_HEADER: "resubmit",
        }
        if self._api_key:
            headers["x-api-key"] = self._api_key
        timeout = httpx.Timeout(30.0, read=self._read_timeout_s)
        decoder = SseDecoder()
        try:
            async with self._http.stream(
                "POST",
                f"{url}/api/chat-completion-streaming",
                json=payload,
                headers=headers,
                timeout=timeout,
            ) as resp:
                if resp.status_code >= 400:
                    body = (await resp.aread()).decode(errors="replace")
                    if resp.status_code in (401, 403):
                        raise ProviderError(
                            f"{LABEL} rejected this server's key ({resp.status_code}): set "
                            "COPILOT_BACKEND_API_KEY to a key the backend issued",
                            retryable=False,
                            status=resp.status_code,
                            code="provider_auth",
                        )
                    retry_after = parse_retry_after(resp.headers.get("retry-after"))
                    raise status_error(LABEL, resp.status_code, _error_text(body), retry_after)
                async for chunk in resp.aiter_bytes():
                    for message in decoder.feed(chunk):
                        for action in translator.handle(message):
                            if isinstance(action, Forward):
                                event = action.event
                                text = (
                                    event.data
                                    if isinstance(event, Content) and event.subagent is None
                                    else ""
                                )
                                await writer.write([event], text=text)
                            elif isinstance(action, ToolCall):
                                handed.append(action)
                                # The workflow's backend_tool_call signal takes the call as is.
                                await handle.signal("backend_tool_call", action)
                            elif isinstance(action, Finished):
                                return
                decoder.close()
        except httpx.TransportError as exc:
            raise ProviderError(
                f"{LABEL} connection failed: {type(exc).__name__}: {exc}", retryable=True
            ) from None
        if translator.finished is None:
            raise ProviderError(
                f"{LABEL} ended its stream without a done event (cut mid-answer)", retryable=True
            )

    def _require_url(self) -> str:
        if not self._url:
            raise ApplicationError(
                "COPILOT_BACKEND_URL is not set: the server has no upstream copilot backend "
                "for models named backend:<name>",
                type="provider_not_configured",
                non_retryable=True,
            )
        return self._url

    async def _payload(self, input: StreamTurnInput) -> dict[str, Any]:
        """Sim's payload: the run's user message, the chat's upstream conversation, our tools."""
        async with self._sessions() as session:
            message = await repo.user_message(session, run_id=input.run_id)
            chat = await repo.get_chat(
                session, tenant_id=input.tenant_id, user_id=input.user_id, chat_id=input.chat_id
            )
        tools: list[dict[str, Any]] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in self._tools.specs()
        ]
        declared = {t["name"] for t in tools}
        tools += [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in input.client_tools
            if t.name not in declared
        ]
        if input.tool_catalog and self._catalogs is not None:
            # An upstream backend takes the whole set (Sim's does, deferring them itself).
            catalog = await self._catalogs.get(input.tool_catalog)
            tools += [
                {**t.to_json(), "defer_loading": True}
                for t in catalog.values()
                if t.name not in declared
            ]
        user = (
            input.user_id if input.tenant_id == "default" else f"{input.tenant_id}:{input.user_id}"
        )
        payload: dict[str, Any] = {
            "message": message.content if message is not None else "",
            "userId": user,
            # This incarnation of the chat: one deleted and made again under the same id, or
            # another owner's chat with the same id, is a different conversation upstream.
            "chatId": upstream_chat_id(chat.uid if chat is not None else input.run_id),
            "messageId": input.user_message_id or input.run_id,
            "model": input.model,
            "mode": input.mode,
            "stream": True,
            "version": CLIENT_VERSION,
            "integrationTools": tools if input.offer_tools else [],
        }
        if chat is not None and chat.conversation_id:
            payload["conversationId"] = chat.conversation_id
        if input.host_workflow_id:
            payload["workflowId"] = input.host_workflow_id
        return payload

    async def _turns_written(self, input: StreamTurnInput) -> list[int]:
        turns: set[int] = set()
        after = input.seq_start - 1
        while True:
            batch = await self._log.read_after(input.run_id, after)
            if not batch:
                break
            for entry in batch:
                if entry.event.get("type") == EV_CONTENT and "subagent" not in entry.event:
                    turns.add(int(entry.event.get("turn", input.turn)))
            after = batch[-1].seq
        return sorted(turns) or [input.turn]

    async def _remember_conversation(self, input: StreamTurnInput, response_id: str) -> None:
        async with self._sessions.begin() as session:
            await repo.set_conversation_id(
                session,
                tenant_id=input.tenant_id,
                user_id=input.user_id,
                chat_id=input.chat_id,
                conversation_id=response_id,
            )

    # --- the workflow's side ------------------------------------------------------------------

    @activity.defn
    async def claim_backend_log(self, input: ClaimLogInput) -> ClaimBackendLogResult:
        """After a failed reader: fence it out; where to continue and how much outbox it wrote."""
        epoch = writer_epoch(input.writer_gen, activity.info().attempt)
        seq, _, mark = await self._log.claim_full(input.run_id, epoch)
        return ClaimBackendLogResult(last_seq=seq, outbox_mark=mark)

    @activity.defn
    async def report_backend_tool(self, input: ReportToolInput) -> str:
        """The upstream's mark-complete. Answers: ``reported``, ``already`` (it had it: a retry
        of ours after a lost answer), ``unknown`` (it no longer waits for this call)."""
        url = self._require_url()
        headers = {"x-api-key": self._api_key} if self._api_key else {}
        body = {
            "id": input.upstream_id,
            "name": input.name,
            "status": input.status,
            "message": input.message,
            "data": input.data,
        }
        try:
            resp = await self._http.post(
                f"{url}/api/tools/mark-complete", json=body, headers=headers, timeout=30.0
            )
        except httpx.TransportError as exc:
            raise ApplicationError(f"{LABEL} unreachable for mark-complete: {exc}") from None
        if resp.status_code < 300:
            return "reported"
        if resp.status_code == 409:
            return "already"
        if resp.status_code == 404:
            log.warning(
                "run %s: the upstream does not know tool call %s (any more)",
                input.run_id,
                input.upstream_id,
            )
            return "unknown"
        if resp.status_code == 429 or resp.status_code >= 500:
            delay = parse_retry_after(resp.headers.get("retry-after"))
            raise ApplicationError(
                f"{LABEL} answered {resp.status_code} to mark-complete",
                next_retry_delay=timedelta(seconds=delay) if delay is not None else None,
            )
        raise ApplicationError(
            f"{LABEL} refused mark-complete ({resp.status_code}): {_error_text(resp.text)}",
            type="report_refused",
            non_retryable=True,
        )


def _error_text(body: str) -> str:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body[:300]
    if isinstance(data, dict):
        return str(data.get("error") or data.get("message") or body)[:300]
    return body[:300]
