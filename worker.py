"""The Temporal worker: builds every dependency once, injects it into the activity classes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.chats import ChatActivities
from activities.events import EventActivities
from activities.llm import LlmActivities
from activities.metrics import WorkerMetrics
from activities.tools import ToolActivities
from activities.upstream import BackendActivities
from copilot.config import Settings
from copilot.crypto import Keyring
from copilot.events.log import EventLog
from copilot.providers.registry import ProviderRegistry
from copilot.store.catalogs import CatalogCache
from copilot.store.engine import make_engine, make_read_sessionmaker, make_sessionmaker
from copilot.temporal import connect
from copilot.tools.registry import ToolRegistry
from workflows.chat import ChatWorkflow

log = logging.getLogger("copilot.worker")


# The workflow's step modules (everything under workflows/ but chat.py, and the activity
# declarations it calls by reference). tests/test_activity_defs.py keeps this list complete.
STEP_MODULES = (
    "copilot.activity_defs",
    "workflows.calls",
    "workflows.events",
    "workflows.finish",
    "workflows.host_context",
    "workflows.llm_turn",
    "workflows.run_context",
    "workflows.tools",
    "workflows.upstream",
)


def workflow_runner(*, strict: bool = False, unsandboxed: bool = False) -> WorkflowRunner:
    """The sandbox, with the workflow's own step modules passed through (``strict``: the
    full default sandbox, as the tests run it, so every workflow line is checked).

    The sandbox re-imports a workflow's module, and whatever it imports that is not passed
    through, for every new run: for our step modules that was the worker's largest CPU cost
    per run (about a sixth of its CPU at 10 concurrent streams, compiling the same source
    again). They hold no module state (each run builds its own ``RunContext`` and steps in
    ``ChatWorkflow.__init__``) and call only ``temporalio.workflow``, so sharing them across
    runs is safe; ``workflows/chat.py`` itself is still loaded per run, as the SDK requires.

    ``unsandboxed`` (UNSANDBOXED_WORKFLOWS): no sandbox at all, which saves building a sandboxed
    instance per run; the tests, always strict, are then the only determinism check.
    """
    if strict:
        return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default)
    if unsandboxed:
        return UnsandboxedWorkflowRunner()
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*STEP_MODULES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def registered_activities(
    llm: LlmActivities,
    chats: ChatActivities,
    events: EventActivities,
    tools: ToolActivities,
    backend: BackendActivities,
) -> list[Callable[..., Any]]:
    """What the worker runs: one implementation per declaration in ``copilot.activity_defs``
    (``tests/test_activity_defs.py`` checks that they match, name for name)."""
    return [
        llm.stream_llm_turn,
        chats.save_assistant_message,
        events.publish_events,
        events.claim_event_log,
        tools.execute_server_tool,
        tools.delegate_client_tool,
        tools.record_tool_calls,
        tools.search_tool_catalog,
        tools.load_host_context,
        backend.stream_backend_turn,
        backend.claim_backend_log,
        backend.report_backend_tool,
    ]


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, client: Client, *, sticky_timeout: timedelta = timedelta(seconds=10)
) -> AsyncIterator[Worker]:
    """A worker with every workflow and activity, polling ``client``'s task queue while the
    block runs; its own database engine, Redis pool and HTTP client are closed after.

    ``sticky_timeout``: how long a run's next workflow task waits for this worker (which has
    the run cached) before any worker may take it, should this one be gone.
    """
    database_url, redis_url, _ = settings.runtime_urls()
    engine = make_engine(database_url)
    redis = Redis.from_url(redis_url, max_connections=64)
    event_log = EventLog(redis, retention_s=settings.event_log_ttl_s)
    sessions = make_sessionmaker(engine)
    tool_registry = ToolRegistry(settings.extra_tool_modules)
    http = httpx.AsyncClient(timeout=httpx.Timeout(settings.client_tool_timeout_s, connect=10))
    catalogs = CatalogCache(sessions)
    metrics = WorkerMetrics()
    if settings.worker_metrics_port:
        metrics.serve(settings.worker_metrics_port)
        log.info("worker metrics on http://127.0.0.1:%d/metrics", settings.worker_metrics_port)
    llm = LlmActivities(
        metrics=metrics,
        catalogs=catalogs,
        sessions=make_read_sessionmaker(engine),  # it only reads: no BEGIN/ROLLBACK per read
        event_log=event_log,
        providers=ProviderRegistry(settings),
        tools=tool_registry,
        provider_timeout_s=settings.provider_timeout_s,
        keyring=Keyring.from_settings(settings),
        allow_private_urls=settings.allow_private_provider_urls,
    )
    chats = ChatActivities(sessions, event_log)
    events = EventActivities(event_log)
    tools = ToolActivities(
        metrics=metrics,
        catalogs=catalogs,
        result_inline_bytes=settings.tool_result_inline_bytes,
        registry=tool_registry,
        sessions=sessions,
        http=http,
        sim_app_url=settings.sim_app_url,
        sim_app_api_key=(
            settings.sim_app_api_key.get_secret_value() if settings.sim_app_api_key else None
        ),
        max_result_bytes=settings.max_tool_result_bytes,
    )
    backend = BackendActivities(
        sessions=sessions,
        event_log=event_log,
        http=http,
        temporal=client,
        tools=tool_registry,
        catalogs=catalogs,
        base_url=settings.copilot_backend_url,
        api_key=(
            settings.copilot_backend_api_key.get_secret_value()
            if settings.copilot_backend_api_key
            else None
        ),
        # The upstream may say nothing while it waits for a tool decision of ours (ours pings
        # every 15 s; others may not): allow the confirmation wait before calling it dead.
        read_timeout_s=max(settings.provider_timeout_s, settings.confirmation_timeout_s + 60),
    )
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[ChatWorkflow],
        workflow_runner=workflow_runner(
            strict=settings.strict_sandbox, unsandboxed=settings.unsandboxed_workflows
        ),
        activities=registered_activities(llm, chats, events, tools, backend),
        max_concurrent_activities=500,
        sticky_queue_schedule_to_start_timeout=sticky_timeout,
    )
    try:
        async with worker:
            yield worker
    finally:
        await http.aclose()
        await redis.aclose()
        await engine.dispose()


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    client = await connect(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker polling task queue %r on %s (namespace %s)",
        settings.temporal_task_queue,
        settings.temporal_address,
        settings.temporal_namespace,
    )
    async with serving(settings, client):
        await stop.wait()
        log.info("worker stopping: finishing in-flight tasks")
