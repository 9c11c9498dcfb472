"""Activity: write events the workflow itself produces (``done``, tool statuses...)."""

from __future__ import annotations

from temporalio import activity

from copilot.events.log import EventLog, writer_epoch
from copilot.types import PublishEventsInput, PublishEventsResult


class EventActivities:
    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log

    @activity.defn
    async def publish_events(self, input: PublishEventsInput) -> PublishEventsResult:
        events = []
        for offset, event in enumerate(input.events):
            events.append({**event, "seq": input.seq_start + offset, "runId": input.run_id})
        epoch = writer_epoch(input.seq_start, activity.info().attempt)
        await self._log.append(input.run_id, epoch, events)
        if input.final:
            await self._log.finish(input.run_id)
        return PublishEventsResult(last_seq=input.seq_start + len(events) - 1)

    @activity.defn
    async def last_event_seq(self, run_id: str) -> int:
        """The highest seq in the run's log (after a failed writer, where to continue)."""
        return await self._log.last_seq(run_id)
