"""The FastAPI application: ``create_app`` and its lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from redis.asyncio import BlockingConnectionPool, Redis

from api.errors import install_error_handlers
from api.hosts import LoopbackHostsOnly
from api.limits import BodyLimit, RouteLimit
from api.metrics import Metrics, RequestMetrics
from api.routes import (
    apikeys,
    chat,
    chats,
    headless,
    health,
    ops,
    provider_keys,
    runs,
    sim,
    tools,
)
from api.state import AppState
from copilot.config import Settings
from copilot.events.hub import LogHub
from copilot.events.log import EventLog
from copilot.ratelimit import RateLimiter, parse_proxies
from copilot.store.engine import make_engine, make_sessionmaker
from copilot.temporal import connect
from copilot.tools.registry import ToolRegistry

log = logging.getLogger("copilot.api")
STATIC = Path(__file__).parent / "static"


REDIS_POOL_SIZE = 32
REDIS_POOL_WAIT_S = 20.0


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database_url, redis_url, _ = settings.runtime_urls()
        engine = make_engine(database_url)
        # Readers block on XREAD for up to the ping interval: the socket must outlast it.
        # A bounded, *blocking* pool: a burst of clients (a thousand reconnecting at once)
        # queues for a connection instead of opening hundreds, so the API holds O(1) Redis
        # connections whatever the number of open streams (the hub multiplexes the reads).
        redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                redis_url,
                max_connections=REDIS_POOL_SIZE,
                timeout=REDIS_POOL_WAIT_S,
                socket_timeout=settings.sse_ping_s + 10,
            )
        )
        temporal = await connect(settings)
        hub = LogHub(redis)
        await hub.start()
        app.state.copilot = AppState(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            redis=redis,
            event_log=EventLog(redis, retention_s=settings.event_log_ttl_s),
            temporal=temporal,
            tools=ToolRegistry(settings.extra_tool_modules),
            hub=hub,
            limiter=RateLimiter(redis, window_s=settings.rate_limit_window_s),
            metrics=metrics,
            trusted_proxies=parse_proxies(settings.trusted_proxies),
        )
        if settings.dev_mode:
            log.warning("COPILOT_API_KEY is not set: development mode, no auth (loopback only)")
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(engine.dispose)
            stack.push_async_callback(redis.aclose)
            stack.push_async_callback(hub.stop)
            if settings.api_worker:
                from worker import serving

                # On the same client that starts runs: eager start needs exactly that. A
                # short sticky timeout: when this API is restarted, its runs' next workflow
                # tasks go to the dedicated workers after 3 s rather than the default 10 s.
                await stack.enter_async_context(
                    serving(settings, temporal, sticky_timeout=timedelta(seconds=3))
                )
                log.info(
                    "API worker polling task queue %r: runs start eagerly here",
                    settings.temporal_task_queue,
                )
            yield

    app = FastAPI(
        title="Durable Copilot",
        version="0.1.0",
        summary="Crash-proof copilot server: every request is a Temporal workflow.",
        lifespan=lifespan,
    )
    if settings.cors_origins.strip():
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["content-type", "x-api-key", "last-event-id"],
            expose_headers=["x-stream-token", "x-run-id", "x-chat-id"],
        )
    sim_limit = settings.sim_max_body_bytes
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        routes={
            "/api/chat-completion-streaming": RouteLimit(sim_limit, "SIM_MAX_BODY_BYTES"),
            "/api/tools/mark-complete": RouteLimit(
                sim_limit, "SIM_MAX_BODY_BYTES", on_overflow=tools.fail_oversized_result
            ),
        },
    )
    app.add_middleware(RequestMetrics, metrics=metrics)
    if settings.dev_mode:
        app.add_middleware(LoopbackHostsOnly)  # outermost: before anything else runs
    install_error_handlers(app)

    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        """A small web console for trying the server (no build step)."""
        return FileResponse(STATIC / "console.html", media_type="text/html")

    app.include_router(health.router)
    app.include_router(chat.router)
    app.include_router(chats.router)
    app.include_router(runs.router)
    app.include_router(tools.router)
    app.include_router(sim.router)
    app.include_router(headless.router)
    app.include_router(apikeys.router)
    app.include_router(provider_keys.router)
    app.include_router(ops.router)
    return app
