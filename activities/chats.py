"""Activities: chat persistence in PostgreSQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from copilot.store import repo
from copilot.types import SaveAssistantMessageInput, SaveAssistantMessageResult


class ChatActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def save_assistant_message(
        self, input: SaveAssistantMessageInput
    ) -> SaveAssistantMessageResult:
        """Idempotent upsert of the run's assistant message; also closes the run's row."""
        async with self._sessions.begin() as session:
            message_id = await repo.save_assistant_message(
                session,
                run_id=input.run_id,
                chat_id=input.chat_id,
                content=input.content,
                status=input.status,
                blocks=[{"type": "text", "text": input.content}] if input.content else [],
                tool_calls=[],
                input_tokens=input.usage.input_tokens,
                output_tokens=input.usage.output_tokens,
                error=input.error,
                error_code=input.error_code,
            )
        return SaveAssistantMessageResult(message_id=message_id)
