"""Activity: stream one LLM turn into the run's event log.

Deltas go straight from the provider to Redis; only the finished turn's text comes back to the
workflow. A retried attempt (worker crash, provider cut) continues the run's seq after whatever
the previous attempt wrote and first emits ``turn_reset`` so clients drop that turn's partial
text.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from copilot.conversation import blocks_to_conversation, turns_to_blocks
from copilot.crypto import DecryptError, Keyring
from copilot.events.log import EventLog, LogGone, writer_epoch
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
from copilot.store import keys, repo
from copilot.tools.registry import ToolRegistry
from copilot.types import (
    EV_CONTENT,
    EV_REASONING,
    EV_SNAPSHOT,
    EV_TOOL_GENERATING,
    EV_TURN_RESET,
    StreamTurnInput,
    StreamTurnResult,
    ToolCallData,
)

HEARTBEAT_EVERY_S = 1.0
SEQ_JUMP_AFTER_LOSS = 10_000
SYSTEM_PROMPT = (
    "You are a copilot inside a workflow-builder app. Answer clearly and concisely. Use the "
    "tools you are given when they help; never invent tool results."
)


class LlmActivities:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        event_log: EventLog,
        providers: ProviderRegistry,
        tools: ToolRegistry,
        provider_timeout_s: float,
        keyring: Keyring,
        allow_private_urls: bool = False,
    ) -> None:
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
        writer = _TurnWriter(self._log, input, info.attempt)
        first_seq = await self._resume_point(input, writer.epoch, info.heartbeat_details)
        # The first frames and the history load are independent: overlap them (TTFT).
        _, messages = await asyncio.gather(writer.open(first_seq), self._conversation(input))
        heartbeat = asyncio.create_task(_heartbeat_loop(writer))
        try:
            provider = self._providers.get(input.provider)
            request = TurnRequest(
                model=input.model,
                messages=messages,
                credentials=await self._credentials(input),
                system=SYSTEM_PROMPT,
                tools=self._offered_tools(input),
                timeout_s=self._timeout_s,
            )
            output = await provider.stream_turn(request, writer.emit)
        except ProviderError as exc:
            raise ApplicationError(
                exc.message,
                {"status": exc.status},
                type=exc.code,
                non_retryable=not exc.retryable,
                next_retry_delay=(
                    timedelta(seconds=exc.retry_after_s) if exc.retry_after_s is not None else None
                ),
            ) from None
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await writer.flush()
        return StreamTurnResult(
            content=output.content,
            last_seq=writer.next_seq - 1,
            usage=output.usage,
            stop_reason=output.stop_reason,
            attempt=info.attempt,
            tool_calls=[ToolCallData(c.id, c.name, c.arguments) for c in output.tool_calls],
            blocks=output.blocks,
        )

    def _offered_tools(self, input: StreamTurnInput) -> list[ToolSpec]:
        if not input.offer_tools:
            return []
        client = [ToolSpec(t.name, t.description, t.input_schema) for t in input.client_tools]
        declared = {t.name for t in client}
        return [t for t in self._tools.specs() if t.name not in declared] + client

    async def _resume_point(self, input: StreamTurnInput, epoch: int, details: Any) -> int:
        """The first seq this attempt may write: after anything an earlier attempt wrote.

        Claiming the log fences out the earlier attempt first, so it cannot write after the
        point read here. If the log lost its data (Redis restarted without it), heartbeat
        details say how far the earlier attempt got, but they lag (the SDK throttles them),
        so numbering jumps ahead: a seq a client has seen is never reused. The jump is
        preceded by a snapshot (the log is gone), so it is never a silent gap.
        """
        in_log, fence = await self._log.claim_state(input.run_id, epoch)
        beat = 0
        if details:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                beat = int(details[0])
        retried = activity.info().attempt > 1 or input.seq_start > 1
        lost = beat > in_log or (fence == 0 and retried)
        if lost:
            return max(beat, in_log, input.seq_start - 1) + SEQ_JUMP_AFTER_LOSS
        return max(input.seq_start - 1, in_log) + 1

    async def _conversation(self, input: StreamTurnInput) -> list[ConvMessage]:
        """Earlier messages of the chat from PostgreSQL, then this run's finished turns."""
        async with self._sessions() as session:
            rows = await repo.conversation_rows(session, chat_id=input.chat_id, run_id=input.run_id)
        messages: list[ConvMessage] = []
        for row in rows:
            messages.extend(blocks_to_conversation(row.role, row.blocks, row.content))
        messages.extend(blocks_to_conversation("assistant", turns_to_blocks(input.prior_turns), ""))
        return messages

    async def _credentials(self, input: StreamTurnInput) -> Credentials:
        """The user's own key for the provider (decrypted only here), else the server's.

        The plaintext lives in this activity's memory only: never in its input, result,
        heartbeats, events or error text.
        """
        env = self._providers.env_credentials(input.provider)
        async with self._sessions() as session:
            row = await keys.get_key(
                session, tenant_id=input.tenant_id, user_id=input.user_id, provider=input.provider
            )
        if row is None:
            return env
        label = self._providers.get(input.provider).label
        try:
            api_key = keys.open_key(row, keyring=self._keyring)
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


class _TurnWriter:
    """Numbers this attempt's events and writes them under its fence."""

    def __init__(self, log: EventLog, input: StreamTurnInput, attempt: int) -> None:
        self._log = log
        self._input = input
        self._attempt = attempt
        self.epoch = writer_epoch(input.writer_gen or input.seq_start, attempt)
        self.next_seq = input.seq_start
        self.last_beat = time.monotonic()
        self._text: list[str] = []  # this attempt's text, to re-seed a lost log

    async def open(self, first_seq: int) -> None:
        self.next_seq = first_seq
        events: list[dict[str, Any]] = []
        if first_seq == self._input.seq_start:
            events.extend(self._input.prelude)
        if self._attempt > 1:
            events.append(
                {"type": EV_TURN_RESET, "turn": self._input.turn, "attempt": self._attempt}
            )
        await self._write(events)

    async def emit(self, delta: Delta) -> None:
        if delta.kind == "content":
            event: dict[str, Any] = {"type": EV_CONTENT, "data": delta.text}
        elif delta.kind == "reasoning":
            event = {"type": EV_REASONING, "data": delta.text}
        elif delta.kind == "tool_generating":
            event = {
                "type": EV_TOOL_GENERATING,
                "toolCallId": delta.tool_call_id,
                "toolName": delta.tool_name,
            }
        else:
            return
        event["turn"] = self._input.turn
        await self._write([event])
        if delta.kind == "content":
            self._text.append(delta.text)  # after the write: a re-seed must not count it twice
        self._beat()

    async def flush(self) -> None:
        self._beat(force=True)

    async def _write(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        try:
            await self._log.append(
                self._input.run_id, self.epoch, self._number(events), check_gone=True
            )
        except LogGone:
            # Redis lost the log mid-turn. Only this writer knows the turn's text so far:
            # re-seed the log with a snapshot, so readers never see a silent gap. Numbering
            # jumps ahead: clients may have seen seqs the lost log held (even this batch's).
            self.next_seq += SEQ_JUMP_AFTER_LOSS
            snapshot = {"type": EV_SNAPSHOT, "data": self._snapshot()}
            await self._log.append(
                self._input.run_id, self.epoch, self._number([snapshot, *events])
            )

    def _number(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        numbered = []
        for event in events:
            numbered.append({**event, "seq": self.next_seq, "runId": self._input.run_id})
            self.next_seq += 1
        return numbered

    def _snapshot(self) -> dict[str, Any]:
        prior = self._input.prior_turns
        calls = [
            {"id": c.id, "name": c.name, "arguments": c.arguments, "status": o.status,
             "result": o.result, "error": o.error}
            for turn in prior
            for c, o in zip(turn.tool_calls, turn.outcomes, strict=False)
        ]  # fmt: skip
        content = "".join(t.content for t in prior) + "".join(self._text)
        return {
            "status": "running",
            "content": content,
            "toolCalls": calls,
            "pending": [],
            "lastSeq": self.next_seq,
        }

    def _beat(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_beat >= HEARTBEAT_EVERY_S / 2:
            self.last_beat = now
            activity.heartbeat(self.next_seq - 1)


async def _heartbeat_loop(writer: _TurnWriter) -> None:
    """Heartbeat while the provider is silent (long time to first token)."""
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY_S)
        writer._beat()
