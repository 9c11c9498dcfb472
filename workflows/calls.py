"""How the workflow calls its activities: the retry policies, and the short local writes.

Temporal owns every retry (STYLE.md 5): each activity call below names its timeout and its
``RetryPolicy``; no activity retries by hand. Activities are called by reference to their
declarations in ``copilot.activity_defs`` (``workflow.execute_activity_method``), so mypy
checks each call's input and result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

ParamT = TypeVar("ParamT")
ResultT = TypeVar("ResultT")

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
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=["tool_failed"],
)
# A tool that must not run twice gets one attempt: after a crash its outcome is unknown.
TOOL_ONCE = RetryPolicy(maximum_attempts=1)
# The upstream's mark-complete: a refusal (4xx) is final, anything else is tried again.
REPORT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=8,
    non_retryable_error_types=["report_refused"],
)
SHORT_IO_TIMEOUT = timedelta(seconds=30)


async def short_io(
    activity: Callable[[Any, ParamT], Awaitable[ResultT]], arg: ParamT, *, patch: str
) -> ResultT:
    """One short idempotent write (Redis append, PostgreSQL upsert) as a local activity.

    It needs no trip through the task queue and no workflow task of its own (each cost
    ~15 ms; a tool step made five such hops, the end of a run two). Re-run after a worker
    crash before its workflow task completed, it writes the same thing again, which these
    writes skip (the log skips seqs it holds; the rows are upserts). Runs started before
    the change (``patch``) replay with the activity they recorded.
    """
    if workflow.patched(patch):
        return await workflow.execute_local_activity_method(
            activity, arg, start_to_close_timeout=SHORT_IO_TIMEOUT, retry_policy=IO_RETRY
        )
    return await workflow.execute_activity_method(
        activity, arg, start_to_close_timeout=SHORT_IO_TIMEOUT, retry_policy=IO_RETRY
    )
