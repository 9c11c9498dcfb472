"""Starting runs: the one path every chat route takes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.schemas import ChatRequest
from api.state import AppState
from copilot.auth import Principal, issue_stream_token
from copilot.errors import Unavailable
from copilot.providers.registry import route_model
from copilot.store import repo
from copilot.types import ChatRunInput

log = logging.getLogger("copilot.api")


@dataclass
class StartedRun:
    run_id: str
    chat_id: str
    user_id: str
    created: bool


async def start_chat_run(
    state: AppState, principal: Principal, body: ChatRequest, *, interactive: bool
) -> StartedRun:
    user_id = principal.acting_user(body.user_id)
    route = route_model(body.model, body.provider, state.settings)
    async with state.sessions.begin() as session:
        started = await repo.start_run(
            session,
            tenant_id=principal.tenant_id,
            user_id=user_id,
            chat_id=body.chat_id,
            create_unknown_chat=True,
            client_message_id=body.message_id,
            message=body.message,
            model=route.model,
            provider=route.provider,
            mode=body.mode,
            response_id=body.conversation_id,
            interactive=interactive,
        )
        run = started.run
        user_message_id = body.message_id or run.id
    if started.created:
        input = ChatRunInput(
            run_id=run.id,
            chat_id=run.chat_id,
            tenant_id=principal.tenant_id,
            user_id=user_id,
            model=route.provider_model,
            provider=route.provider,
            mode=body.mode,
            new_chat=started.new_chat,
            response_id=run.response_id,
            user_message_id=user_message_id,
            run_timeout_s=state.settings.run_timeout_s,
        )
        try:
            await state.temporal.start_workflow(
                "ChatWorkflow",
                input,
                id=run.id,
                task_queue=state.settings.temporal_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            pass
        except Exception as exc:
            log.exception("could not start workflow for run %s", run.id)
            async with state.sessions.begin() as session:
                await repo.fail_run(
                    session, run_id=run.id, error="could not start the run", code="unavailable"
                )
            raise Unavailable(
                "the workflow engine is unavailable; try again shortly",
                extra={"runId": run.id},
            ) from exc
        log.info(
            "run %s started (chat %s, %s/%s)", run.id, run.chat_id, route.provider, route.model
        )
    return StartedRun(run_id=run.id, chat_id=run.chat_id, user_id=user_id, created=started.created)


def stream_token_for(state: AppState, principal: Principal, run: StartedRun) -> str:
    return issue_stream_token(
        state.settings.stream_token_key_bytes,
        tenant_id=principal.tenant_id,
        user_id=run.user_id,
        run_id=run.run_id,
        ttl_s=state.settings.stream_token_ttl_s,
    )
