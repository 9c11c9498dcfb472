"""Prometheus metrics of the API process (``GET /metrics``, admin only).

Workers serve theirs (provider latency and time to first token, tool calls) on
``WORKER_METRICS_PORT``; the API observes time to first token as its clients see it.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "copilot_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.runs_started = Counter(
            "copilot_runs_started", "Runs started", ["provider"], registry=r
        )
        self.runs = Gauge("copilot_runs", "Runs by status (at scrape time)", ["status"], registry=r)
        self.tool_calls = Gauge(
            "copilot_tool_calls", "Tool calls by status (at scrape time)", ["status"], registry=r
        )
        self.sse_active = Gauge("copilot_sse_streams_active", "Open SSE streams", registry=r)
        self.rate_limited = Counter(
            "copilot_rate_limited", "Requests refused by rate limits", ["scope"], registry=r
        )
        self.ttft = Histogram(
            "copilot_api_time_to_first_token_seconds",
            "POST to the first content frame, as the client sees it",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )


class RequestMetrics:
    """Counts requests by route template (not raw path: ids would explode the labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.monotonic()

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            del started
