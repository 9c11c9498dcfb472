"""Prometheus metrics of a worker, served on ``WORKER_METRICS_PORT`` (0: not served).

What only a worker sees: how long a provider takes to the first token and to the end of a
turn, and how tool calls end. The API's own metrics are on its ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.provider_ttft = Histogram(
            "copilot_worker_provider_time_to_first_token_seconds",
            "Provider request sent to its first streamed delta",
            ["provider"],
            buckets=BUCKETS,
            registry=r,
        )
        self.provider_turn = Histogram(
            "copilot_worker_provider_turn_seconds",
            "One model turn, request to last delta",
            ["provider", "outcome"],
            buckets=BUCKETS,
            registry=r,
        )
        self.tool_calls = Counter(
            "copilot_worker_tool_calls",
            "Tool calls executed or delegated by this worker, by how they ended",
            ["executor", "status"],
            registry=r,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``host:port`` in a background thread."""
        start_http_server(port, addr=host, registry=self.registry)
