"""Activity: write events the workflow itself produces (``done``, tool statuses...)."""

from __future__ import annotations

from temporalio import activity

from copilot.activity_defs import EventActivityDefs
from copilot.events.log import EventLog, writer_epoch
from copilot.events.model import numbered
from copilot.types import ClaimLogInput, PublishEventsInput, PublishEventsResult


class EventActivities(EventActivityDefs):
    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log

    @activity.defn
    async def publish_events(self, input: PublishEventsInput) -> PublishEventsResult:
        events = numbered(input.events, input.seq_start, input.run_id)
        epoch = writer_epoch(input.writer_gen or input.seq_start, activity.info().attempt)
        await self._log.append(input.run_id, epoch, events)
        if input.final:
            await self._log.finish(input.run_id)
        return PublishEventsResult(last_seq=input.seq_start + len(events) - 1)

    @activity.defn
    async def claim_event_log(self, input: ClaimLogInput) -> int:
        """After a failed or cancelled writer: fence it out, then say where to continue."""
        return await self._log.claim(
            input.run_id, writer_epoch(input.writer_gen, activity.info().attempt)
        )
