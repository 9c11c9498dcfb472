"""ChatWorkflow: one run of the agent loop for one chat message.

Deterministic: only ``temporalio``, stdlib and shared types. The workflow owns the run's
sequence numbers between activities (each activity gets the first seq it may use and returns
the last it used), so seq never restarts whatever the event log's fate. Tokens never pass
through here: the streaming activity writes them to the log and returns the finished text.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from copilot.types import (
        EV_CHAT_ID,
        EV_DONE,
        EV_ERROR,
        EV_START,
        RUN_COMPLETED,
        RUN_FAILED,
        RUN_RUNNING,
        ChatRunInput,
        ChatRunResult,
        PublishEventsInput,
        PublishEventsResult,
        RunState,
        SaveAssistantMessageInput,
        StreamTurnInput,
        StreamTurnResult,
        Usage,
    )

LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
)
IO_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,  # storage and the event log must eventually take the write
)


@workflow.defn
class ChatWorkflow:
    def __init__(self) -> None:
        self._status = RUN_RUNNING
        self._seq = 0
        self._turn = 0
        self._content: list[str] = []
        self._usage = Usage()
        self._error: str | None = None
        self._run_id = ""

    @workflow.run
    async def run(self, input: ChatRunInput) -> ChatRunResult:
        self._run_id = input.run_id
        prelude: list[dict[str, Any]] = [
            {
                "type": EV_START,
                "data": {
                    "responseId": input.response_id,
                    "chatId": input.chat_id,
                    "messageId": input.user_message_id,
                    "model": input.model,
                    "provider": input.provider,
                },
            }
        ]
        if input.new_chat:
            prelude.append({"type": EV_CHAT_ID, "chatId": input.chat_id})
        error_code: str | None = None
        try:
            result = await workflow.execute_activity(
                "stream_llm_turn",
                StreamTurnInput(
                    run_id=input.run_id,
                    chat_id=input.chat_id,
                    tenant_id=input.tenant_id,
                    user_id=input.user_id,
                    model=input.model,
                    provider=input.provider,
                    turn=1,
                    seq_start=self._seq + 1,
                    prelude=prelude,
                    mode=input.mode,
                ),
                result_type=StreamTurnResult,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=5),
                retry_policy=LLM_RETRY,
                summary="LLM turn 1",
            )
            self._turn = 1
            self._seq = result.last_seq
            self._content.append(result.content)
            self._usage.add(result.usage)
            self._status = RUN_COMPLETED
        except ActivityError as err:
            cause = err.cause
            self._status = RUN_FAILED
            if isinstance(cause, ApplicationError):
                self._error = cause.message
                error_code = cause.type or "provider_error"
            else:
                self._error = "the model call did not complete"
                error_code = "provider_error"
            # The failed attempt may have written events after our last known seq.
            self._seq = max(self._seq, await self._last_seq_after_failure())
        return await self._finish(input, error_code)

    async def _last_seq_after_failure(self) -> int:
        last: int = await workflow.execute_activity(
            "last_event_seq",
            self._run_id,
            result_type=int,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=IO_RETRY,
        )
        return last

    async def _finish(self, input: ChatRunInput, error_code: str | None) -> ChatRunResult:
        content = "".join(self._content)
        await workflow.execute_activity(
            "save_assistant_message",
            SaveAssistantMessageInput(
                run_id=input.run_id,
                chat_id=input.chat_id,
                content=content,
                status=self._status,
                usage=self._usage,
                error=self._error,
                error_code=error_code,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=IO_RETRY,
        )
        events: list[dict[str, Any]] = []
        if self._error is not None:
            events.append(
                {
                    "type": EV_ERROR,
                    "data": {"message": self._error, "code": error_code, "retryable": False},
                }
            )
        events.append(
            {
                "type": EV_DONE,
                "data": {
                    "responseId": input.response_id,
                    "status": self._status,
                    "usage": self._usage.to_wire(),
                },
            }
        )
        published = await workflow.execute_activity(
            "publish_events",
            PublishEventsInput(
                run_id=input.run_id, seq_start=self._seq + 1, events=events, final=True
            ),
            start_to_close_timeout=timedelta(seconds=30),
            result_type=PublishEventsResult,
            retry_policy=IO_RETRY,
        )
        self._seq = published.last_seq
        return ChatRunResult(
            status=self._status,
            usage=self._usage,
            turns=self._turn,
            last_seq=self._seq,
            error_code=error_code,
        )

    @workflow.query
    def state(self) -> RunState:
        return RunState(
            run_id=self._run_id,
            status=self._status,
            turn=self._turn,
            last_seq=self._seq,
            content="".join(self._content),
            usage=self._usage,
            error=self._error,
        )
