"""Starting and stopping runs: the one path every chat route takes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.schemas import ChatRequest, ClientTool
from api.state import AppState
from copilot import search
from copilot.attachments import MessageExtras, context_blocks, parse_attachments
from copilot.auth import Principal, issue_stream_token, key_ref
from copilot.config import Settings
from copilot.errors import Conflict, InvalidRequest, RateLimited, Unavailable
from copilot.netguard import UnsafeUrl, check_base_url
from copilot.providers.registry import Route, route_model, routes_by_name
from copilot.sim import resolve_sim_model
from copilot.sim.models import SIM_MODELS
from copilot.store import catalogs, repo, run_credentials
from copilot.store.run_credentials import ProviderConfig
from copilot.types import RUN_RUNNING, AbortInput, AbortResult, ChatRunInput, ToolSpec

log = logging.getLogger("copilot.api")

INTERRUPT_WAIT_S = 30.0


@dataclass
class StartedRun:
    run_id: str
    chat_id: str
    user_id: str
    created: bool
    tenant_id: str


async def abort_run(state: AppState, run_id: str) -> None:
    """Ask the run's workflow to stop; 409 when it has already finished."""
    handle = state.temporal.get_workflow_handle(run_id)
    try:
        await handle.execute_update("abort", AbortInput(), result_type=AbortResult)
    except (WorkflowUpdateFailedError, RPCError) as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ApplicationError) and cause.type != "finished":
            raise
        raise Conflict("the run has already finished", code="run_finished") from None


async def check_start_limits(state: AppState, principal: Principal, user_id: str, ip: str) -> None:
    """Run starts: per user, and per client IP unless a service key calls (a whole Sim
    instance calls from one address; its users are still limited one by one)."""
    settings = state.settings
    checks = [
        ("starts-user", f"{principal.tenant_id}:{user_id}", settings.rate_limit_starts_per_user)
    ]
    if principal.kind != "service":
        checks.append(("starts-ip", ip, settings.rate_limit_starts_per_ip))
    for scope, ident, limit in checks:
        verdict = await state.limiter.hit(scope, ident, limit)
        if not verdict.allowed:
            state.metrics.rate_limited.labels(scope=scope).inc()
            raise RateLimited(
                f"too many runs started ({scope}); retry in {verdict.reset_s}s",
                headers={
                    "Retry-After": str(verdict.reset_s),
                    **verdict.headers(state.limiter.window_s),
                },
            )


async def start_chat_run(
    state: AppState,
    principal: Principal,
    body: ChatRequest,
    *,
    interactive: bool,
    client_ip: str,
    sim_protocol: bool = False,
    provider_config: ProviderConfig | None = None,
    notice: str | None = None,
    rejoins: bool = False,
) -> StartedRun:
    """Start a run. ``sim_protocol``: Sim's route (client tools are host-executed and the
    events follow Sim's own client code)."""
    principal = principal.in_tenant(body.tenant_id)
    await check_start_limits(state, principal, principal.acting_user(body.user_id), client_ip)
    start = _Start(sim_protocol, provider_config, notice, rejoins)
    try:
        return await _start(state, principal, body, interactive, start)
    except Conflict as exc:
        if exc.code != "run_active" or body.on_active_run != "interrupt":
            raise
        active = exc.extra.get("runId")
        if active:
            log.info("interrupting run %s for a new message", active)
            with contextlib.suppress(Conflict):  # it may have finished on its own meanwhile
                await abort_run(state, str(active))
            handle = state.temporal.get_workflow_handle(str(active))
            try:
                await asyncio.wait_for(handle.result(), INTERRUPT_WAIT_S)
            except Exception as wait_exc:  # the old run's outcome is not this request's
                log.warning("interrupted run %s ended with %r", active, wait_exc)
        return await _start(state, principal, body, interactive, start)


@dataclass(frozen=True)
class _Start:
    sim_protocol: bool
    provider_config: ProviderConfig | None
    notice: str | None
    rejoins: bool = False


async def _start(
    state: AppState,
    principal: Principal,
    body: ChatRequest,
    interactive: bool,
    start: _Start,
) -> StartedRun:
    settings = state.settings
    sim_protocol, config = start.sim_protocol, start.provider_config
    user_id = principal.acting_user(body.user_id)
    model_notice = None
    if config is not None:
        route = route_model(config.model or body.model, config.provider, settings)
        if config.endpoint:
            try:
                await check_base_url(
                    config.endpoint, allow_private=settings.allow_private_provider_urls
                )
            except UnsafeUrl as exc:
                raise InvalidRequest(
                    f"provider.endpoint is refused: {exc.message}",
                    details=[{"field": "provider.endpoint"}],
                ) from None
    else:
        route, model_notice = _route(body, settings, sim_route=sim_protocol)
    notice = " ".join(filter(None, [start.notice, model_notice])) or None
    # Before the run's row exists: a failure here leaves no run without a workflow.
    extras = MessageExtras(
        blocks=context_blocks(body.context), attachments=parse_attachments(body.file_attachments)
    )
    # On Sim's route, Sim's own tools for the mode are added by the model call itself (static
    # data of this version: kept out of the run's input and history).
    offered, catalog = await _tool_catalog(state, body.client_tools())
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
            extras=extras,
        )
        run = started.run
        if started.created and config is not None:
            run_credentials.save(
                session,
                keyring=state.keyring,
                run_id=run.id,
                tenant_id=principal.tenant_id,
                user_id=user_id,
                config=config,
            )
    if started.created:
        auto = body.auto_execute_tools if body.auto_execute_tools is not None else not interactive
        input = ChatRunInput(
            run_id=run.id,
            chat_id=run.chat_id,
            tenant_id=principal.tenant_id,
            user_id=user_id,
            model=route.provider_model,
            provider=route.provider,
            upstream_loop=route.runs_agent_loop,
            mode=body.mode,
            new_chat=started.new_chat,
            response_id=run.response_id,
            user_message_id=body.message_id or run.id,
            run_timeout_s=settings.run_timeout_s,
            client_tools=[
                ToolSpec(t.name, t.description, t.input_schema, t.requires_confirmation)
                for t in offered
            ],
            tool_catalog=catalog[0] if catalog else None,
            tool_catalog_size=catalog[1] if catalog else 0,
            host_executed=sim_protocol,
            delegate_client_tools=bool(settings.sim_app_url) and not sim_protocol,
            sim_protocol=sim_protocol,
            run_credential=config is not None,
            notice=notice,
            host_rejoin_grace_s=settings.host_rejoin_grace_s if start.rejoins else 0,
            load_host_context=bool(settings.sim_app_url and body.workflow_id) and not sim_protocol,
            auto_execute=auto,
            server_tools=sorted(state.tools.names()),
            non_idempotent_tools=state.tools.non_idempotent(),
            confirm_server_tools=state.tools.confirming(),
            tool_heartbeat_timeout_s=settings.tool_heartbeat_timeout_s,
            confirm_always=sorted(settings.confirm_always),
            max_turns=settings.max_turns,
            confirmation_timeout_s=settings.confirmation_timeout_s,
            client_tool_timeout_s=settings.client_tool_timeout_s,
            host_workflow_id=body.workflow_id,
            title_hint=body.message[:200] if started.new_chat else None,
            search_attributes=settings.temporal_search_attributes,
        )
        try:
            attributes = None
            if settings.temporal_search_attributes:
                attributes = TypedSearchAttributes(
                    [
                        SearchAttributePair(search.USER_ID, user_id),
                        SearchAttributePair(search.CHAT_ID, run.chat_id),
                        SearchAttributePair(search.MODEL, route.model),
                        SearchAttributePair(search.PROVIDER, route.provider),
                        SearchAttributePair(search.STATUS, RUN_RUNNING),
                    ]
                )
            await state.temporal.start_workflow(
                "ChatWorkflow",
                input,
                id=run.id,
                task_queue=settings.temporal_task_queue,
                # With a worker in this process the first workflow task comes back in the
                # start response and the first activity is dispatched to it eagerly.
                request_eager_start=settings.api_worker,
                # Run ids are fresh uuids: an id already known to Temporal is never ours to
                # attach to (that once served a deleted chat's run to a new caller).
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=attributes,
                static_summary=f"chat · {route.provider}/{route.model} · {body.mode}",
                static_details=(
                    f"user {user_id} · chat {run.chat_id} · tenant {principal.tenant_id}"
                    + (f" · host workflow {body.workflow_id}" if body.workflow_id else "")
                ),
            )
        except Exception as exc:
            if isinstance(exc, WorkflowAlreadyStartedError):
                log.error("run %s: its workflow id is already taken in Temporal", run.id)
            else:
                log.exception("could not start workflow for run %s", run.id)
            async with state.sessions.begin() as session:
                await repo.fail_run(
                    session, run_id=run.id, error="could not start the run", code="unavailable"
                )
            raise Unavailable(
                "the workflow engine is unavailable; try again shortly",
                extra={"runId": run.id},
            ) from exc
        state.metrics.runs_started.labels(provider=route.provider).inc()
        log.info("run %s started (%s/%s)", run.id, route.provider, route.model)
    return StartedRun(
        run_id=run.id,
        chat_id=run.chat_id,
        user_id=user_id,
        created=started.created,
        tenant_id=principal.tenant_id,
    )


def _route(body: ChatRequest, settings: Settings, *, sim_route: bool) -> tuple[Route, str | None]:
    """Route the model; Sim's own model ids (and SIM_MODEL_ALIASES) map to provider models. On
    Sim's route an id that neither maps nor routes by name gets DEFAULT_MODEL and a notice (a
    provider would refuse it: better an answer, saying so)."""
    model = (body.model or "").strip()
    aliases = settings.model_aliases
    if model and not body.provider and (model in aliases or model in SIM_MODELS):
        choice = resolve_sim_model(model, aliases)
        if choice.provider and choice.model:
            return route_model(choice.model, choice.provider, settings), None
        return route_model(None, None, settings), choice.notice
    if sim_route and model and not body.provider and not routes_by_name(model):
        choice = resolve_sim_model(model, aliases)
        return route_model(None, None, settings), choice.notice
    return route_model(body.model, body.provider, settings), None


async def _tool_catalog(
    state: AppState, tools: list[ClientTool]
) -> tuple[list[ClientTool], tuple[str, int] | None]:
    """(the tools offered up front, (the catalog's key, its size) for the rest, if any).

    Deferred tools, and any beyond MAX_OFFERED_TOOLS, are kept by reference: stored once
    under the hash of their content, never in workflow input or history."""
    offered = [t for t in tools if not t.defer_loading]
    deferred = [t for t in tools if t.defer_loading]
    limit = state.settings.max_offered_tools
    if len(offered) > limit:
        offered, deferred = offered[:limit], offered[limit:] + deferred
    if not deferred:
        return offered, None
    entries = [ToolSpec(t.name, t.description, t.input_schema) for t in deferred]
    async with state.sessions.begin() as session:
        key = await catalogs.save_catalog(session, tools=entries)
    return offered, (key, len(entries))


def stream_token_for(state: AppState, principal: Principal, run: StartedRun) -> str:
    return issue_stream_token(
        state.settings.stream_token_key_bytes,
        tenant_id=run.tenant_id,
        user_id=run.user_id,
        run_id=run.run_id,
        ttl_s=state.settings.stream_token_ttl_s,
        key_ref=key_ref(state.settings, principal),
    )
