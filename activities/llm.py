"""Activity: stream one LLM turn into the run's event log.

Deltas go straight from the provider to Redis; only the finished turn's text comes back to the
workflow. A retried attempt (worker crash, provider cut) continues the run's seq after whatever
the previous attempt wrote and first emits ``turn_reset`` so clients drop that turn's partial
text.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.metrics import WorkerMetrics
from activities.turn_events import Shown, TurnEvents, shown_so_far
from activities.writer import TurnWriter, activity_error, heartbeating
from copilot.activity_defs import LlmActivityDefs
from copilot.conversation import blocks_to_conversation, turns_to_blocks
from copilot.crypto import DecryptError, Keyring
from copilot.events.log import EventLog
from copilot.netguard import UnsafeUrl, check_base_url
from copilot.providers.base import (
    ConvMessage,
    Credentials,
    Delta,
    ProviderError,
    ToolSpec,
    TurnRequest,
)
from copilot.providers.registry import ProviderRegistry
from copilot.sim import prompt_for_mode, tools_for_mode
from copilot.store import provider_keys, repo, run_credentials
from copilot.store.catalogs import CatalogCache
from copilot.tools.catalog import SEARCH_SCHEMA, SEARCH_TOOL, search_description
from copilot.tools.registry import ToolRegistry
from copilot.types import StreamTurnInput, StreamTurnResult

SYSTEM_PROMPT = (
    "You are a copilot inside a workflow-builder app. Answer clearly and concisely. Use the "
    "tools you are given when they help; never invent tool results."
)


class LlmActivities(LlmActivityDefs):
    def __init__(
        self,
        *,
        metrics: WorkerMetrics | None = None,
        catalogs: CatalogCache,
        sessions: async_sessionmaker[AsyncSession],
        event_log: EventLog,
        providers: ProviderRegistry,
        tools: ToolRegistry,
        provider_timeout_s: float,
        keyring: Keyring,
        allow_private_urls: bool = False,
    ) -> None:
        self._metrics = metrics or WorkerMetrics()
        self._catalogs = catalogs
        self._keyring = keyring
        self._allow_private_urls = allow_private_urls
        self._sessions = sessions
        self._log = event_log
        self._providers = providers
        self._tools = tools
        self._timeout_s = provider_timeout_s

    @activity.defn
    async def stream_llm_turn(self, input: StreamTurnInput) -> StreamTurnResult:
        info = activity.info()
        writer = TurnWriter(self._log, input, info.attempt)
        first_seq = await writer.resume_point(info.heartbeat_details)
        continues = input.sim_protocol and info.attempt > 1
        # The first frames and the history load are independent: overlap them (TTFT).
        # The first frames, the history and the credentials are independent: overlap them
        # (time to first token). A credentials failure is raised below, as the turn's error.
        _, messages, credentials = await asyncio.gather(
            writer.open(first_seq, reset=not continues),
            self._conversation(input),
            self._credentials_or_error(input),
        )
        provider = self._providers.get(input.provider)
        shown = Shown()
        if continues:
            shown = await shown_so_far(self._log, input.run_id, input.turn, input.seq_start)
            writer.carry_text(shown.text)
        prefill = shown.text.rstrip() if provider.supports_prefill else ""
        if prefill:
            messages.append(ConvMessage(role="assistant", content=prefill))
        emit = TurnEvents(
            writer,
            input.turn,
            shown,
            prefilled=bool(prefill),
            sim=input.sim_protocol,
            notice=None if continues else input.notice,
        )

        clock = _TurnClock(self._metrics, input.provider)

        async def timed(delta: Delta) -> None:
            clock.first_delta()
            await emit(delta)

        try:
            async with heartbeating(writer):
                request = TurnRequest(
                    model=input.model,
                    messages=messages,
                    credentials=_raise_if_error(credentials),
                    system=_system_prompt(input),
                    tools=await self._offered_tools(input) if provider.supports_tools else [],
                    timeout_s=self._timeout_s,
                )
                output = await provider.stream_turn(request, timed)
                await emit.close()
        except ProviderError as exc:
            clock.done("error")
            raise activity_error(exc) from None
        clock.done("ok")
        writer.beat(force=True)
        return StreamTurnResult(
            content=emit.content if continues else output.content,
            last_seq=writer.next_seq - 1,
            usage=output.usage,
            stop_reason=output.stop_reason,
            attempt=info.attempt,
            tool_calls=[c.public() for c in output.tool_calls],
            blocks=output.blocks,
        )

    async def _offered_tools(self, input: StreamTurnInput) -> list[ToolSpec]:
        if not input.offer_tools:
            return []
        client = list(input.client_tools)
        if input.sim_protocol and input.mode != "chat":
            # Sim's own tools for what the mode may do (Sim runs them, reports mark-complete).
            own = _sim_tool_specs(input.mode)
            names = {t.name for t in own}
            client = [*own, *(t for t in client if t.name not in names)]
        if input.tool_catalog:
            # The catalog is offered through a search; what it found is offered by name.
            client.append(
                ToolSpec(SEARCH_TOOL, search_description(input.tool_catalog_size), SEARCH_SCHEMA)
            )
            catalog = await self._catalogs.get(input.tool_catalog)
            for name in input.loaded_tools:
                if (tool := catalog.get(name)) is not None:
                    client.append(ToolSpec(tool.name, tool.description, tool.input_schema))
        declared = {t.name for t in client}
        return [t for t in self._tools.specs() if t.name not in declared] + client

    async def _conversation(self, input: StreamTurnInput) -> list[ConvMessage]:
        """Earlier messages of the chat from PostgreSQL, then this run's finished turns."""
        async with self._sessions() as session:
            rows = await repo.conversation_rows(
                session,
                tenant_id=input.tenant_id,
                user_id=input.user_id,
                chat_id=input.chat_id,
                run_id=input.run_id,
            )
            messages: list[ConvMessage] = []
            for row in rows:
                messages.extend(blocks_to_conversation(row.role, row.blocks, row.content))
            files = [a for m in messages for a in m.attachments]
            if files:  # the bytes are loaded here only, never carried through the workflow
                data = await repo.attachment_data(
                    session,
                    run_ids=sorted({r.run_id for r in rows if r.run_id}),
                    ids=[a.id for a in files],
                )
                for att in files:
                    att.data = base64.b64encode(data.get(att.id, b"")).decode()
        messages.extend(blocks_to_conversation("assistant", turns_to_blocks(input.prior_turns), ""))
        return messages

    async def _credentials_or_error(self, input: StreamTurnInput) -> Credentials | ProviderError:
        try:
            return await self._credentials(input)
        except ProviderError as exc:
            return exc

    async def _credentials(self, input: StreamTurnInput) -> Credentials:
        """The user's own key for the provider (decrypted only here), else the server's.

        The plaintext lives in this activity's memory only: never in its input, result,
        heartbeats, events or error text.
        """
        env = self._providers.env_credentials(input.provider)
        async with self._sessions() as session:
            if input.run_credential:
                try:
                    borrowed = await run_credentials.load(
                        session, keyring=self._keyring, run_id=input.run_id
                    )
                except DecryptError as exc:
                    raise ProviderError(
                        str(exc), retryable=False, code="provider_key_unreadable"
                    ) from None
                if borrowed is not None:
                    return borrowed
            row = await provider_keys.get_key(
                session, tenant_id=input.tenant_id, user_id=input.user_id, provider=input.provider
            )
        if row is None:
            return env
        label = self._providers.get(input.provider).label
        try:
            api_key = provider_keys.open_key(row, keyring=self._keyring)
        except DecryptError as exc:
            raise ProviderError(
                f"{label}: {exc}", retryable=False, code="provider_key_unreadable"
            ) from None
        if row.base_url:
            # Checked when stored; checked again now, as DNS may point elsewhere since.
            try:
                await check_base_url(
                    row.base_url, allow_private=self._allow_private_urls, require_resolvable=False
                )
            except UnsafeUrl as exc:
                raise ProviderError(
                    f"{label}: the stored base URL is refused: {exc.message}",
                    retryable=False,
                    code="provider_url_refused",
                ) from None
        return Credentials(api_key=api_key, base_url=row.base_url or env.base_url)


def _raise_if_error(credentials: Credentials | ProviderError) -> Credentials:
    if isinstance(credentials, ProviderError):
        raise credentials
    return credentials


def _system_prompt(input: StreamTurnInput) -> str:
    """Sim's route: the copilot's instructions for the mode (copilot/sim/prompts/*.md)."""
    if input.sim_protocol and input.mode != "chat":
        return _sim_prompt(input.mode)
    return SYSTEM_PROMPT


@functools.lru_cache(maxsize=8)
def _sim_prompt(mode: str) -> str:
    return prompt_for_mode(mode)[0]


@functools.lru_cache(maxsize=8)
def _sim_tool_specs(mode: str) -> tuple[ToolSpec, ...]:
    return tuple(ToolSpec(t.name, t.description, t.input_schema) for t in tools_for_mode(mode))


class _TurnClock:
    """Times one provider call for the worker's metrics."""

    def __init__(self, metrics: WorkerMetrics, provider: str) -> None:
        self._metrics = metrics
        self._provider = provider
        self._started = time.monotonic()
        self._first = False

    def first_delta(self) -> None:
        if not self._first:
            self._first = True
            self._metrics.provider_ttft.labels(self._provider).observe(
                time.monotonic() - self._started
            )

    def done(self, outcome: str) -> None:
        self._metrics.provider_turn.labels(self._provider, outcome).observe(
            time.monotonic() - self._started
        )
