"""Activities: chat persistence in PostgreSQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from copilot.activity_defs import ChatActivityDefs
from copilot.conversation import turns_to_blocks
from copilot.events.fold import Folded, fold_events
from copilot.events.log import EventLog
from copilot.store import repo, run_credentials
from copilot.types import SaveAssistantMessageInput, SaveAssistantMessageResult


class ChatActivities(ChatActivityDefs):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], event_log: EventLog) -> None:
        self._sessions = sessions
        self._log = event_log

    @activity.defn
    async def save_assistant_message(
        self, input: SaveAssistantMessageInput
    ) -> SaveAssistantMessageResult:
        """Idempotent upsert of the run's assistant message; also closes the run's row."""
        content = input.content
        blocks = turns_to_blocks(input.turns)
        if input.partial_turn is not None:
            # An aborted turn: the workflow never saw its text, the event log did.
            folded = Folded()
            async for batch in self._log.pages(input.run_id):
                turn = (e.event for e in batch if e.event.get("turn") == input.partial_turn)
                fold_events(turn, into=folded)
            partial = folded.content
            if partial:
                content += partial
                blocks.append({"type": "text", "text": partial, "partial": True})
        async with self._sessions.begin() as session:
            if input.forget_credential:
                await run_credentials.forget(session, run_id=input.run_id)  # the run is over
            message_id = await repo.save_assistant_message(
                session,
                run_id=input.run_id,
                content=content,
                status=input.status,
                blocks=blocks,
                tool_calls=input.tool_calls,
                input_tokens=input.usage.input_tokens,
                output_tokens=input.usage.output_tokens,
                error=input.error,
                error_code=input.error_code,
                title=input.title,
                last_seq=input.last_seq,
            )
        return SaveAssistantMessageResult(message_id=message_id or "", content=content)
