"""Before the first turn: the host workflow's current state, for the model to read.

Deterministic (only ``temporalio``, stdlib and shared types).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from copilot.activity_defs import ToolActivityDefs
    from copilot.types import ChatRunInput, LoadHostContextInput

from workflows.calls import TOOL_RETRY


async def load_host_context(input: ChatRunInput, workflow_id: str) -> bool:
    """The host workflow's current state, added to the user message before the first turn
    (a durable step: a retried turn reads the same context from PostgreSQL). False: the
    host does not know ``workflow_id``."""
    try:
        loaded = await workflow.execute_activity_method(
            ToolActivityDefs.load_host_context,
            LoadHostContextInput(
                run_id=input.run_id,
                user_id=input.user_id,
                chat_id=input.chat_id,
                host_workflow_id=workflow_id,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=TOOL_RETRY,
            summary=f"load host workflow {workflow_id}",
        )
    except ActivityError as err:
        # The host failed (not "unknown workflow"): go on without; the model may still
        # read the workflow with a tool.
        workflow.logger.warning("host context for %s not loaded: %s", workflow_id, err)
        return True
    return loaded.found
