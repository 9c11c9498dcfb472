"""Benchmarks: what the orchestration costs, measured against calling the provider directly.

    make bench                      # quick: concurrency 1 and 10
    make bench ARGS="--concurrency 1 10 100 --runs 40"

Starts embedded Temporal/PostgreSQL/Redis, the fake provider in its own process (fixed time to
first token and inter-token interval), a worker and an API. Every figure is measured in the same
run against the floor: the same fake called directly with the official OpenAI SDK. Prints a
table and writes ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
from temporalio.client import Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from copilot.embedded import Ports, free_port, spawn, start_all  # noqa: E402
from copilot.store.migrate import upgrade  # noqa: E402
from tests.conftest import Services, stack_env, wait_healthy  # noqa: E402
from tests.sse import iter_frames  # noqa: E402


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": pct(values, 50),
        "p90": pct(values, 90),
        "p99": pct(values, 99),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


class FakeProvider:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.provider", "--port", str(self.port)], cwd=ROOT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/_requests", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)  # waiting for the fake's process to listen
        raise RuntimeError("fake provider did not start")

    def scenario(self, turns: list[dict[str, Any]]) -> str:
        key = f"bench-{uuid.uuid4().hex[:10]}"
        httpx.post(f"{self.url}/_scenarios", json={"key": key, "turns": turns}).raise_for_status()
        return key

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def direct_stream(provider: FakeProvider, key: str) -> dict[str, Any]:
    client = openai.AsyncOpenAI(api_key="x", base_url=f"{provider.url}/v1", max_retries=0)
    started = time.perf_counter()
    stamps: list[float] = []
    async with client:
        stream = await client.chat.completions.create(
            model="bench", messages=[{"role": "user", "content": key}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                stamps.append(time.perf_counter())
    return {"ttft": stamps[0] - started, "gaps": _gaps(stamps), "total": stamps[-1] - started}


async def server_stream(http: httpx.AsyncClient, key: str) -> dict[str, Any]:
    started = time.perf_counter()
    stamps: list[float] = []
    first_frame = 0.0
    async with http.stream("POST", "/api/copilot/chat", json={"message": key}) as resp:
        run_id = resp.headers["x-run-id"]
        headers_at = time.perf_counter() - started
        async for frame in iter_frames(resp):
            if not first_frame:
                first_frame = time.perf_counter() - started
            if frame.data["type"] == "content":
                stamps.append(time.perf_counter())
            elif frame.data["type"] == "done":
                break
    return {
        "ttft": stamps[0] - started,
        "gaps": _gaps(stamps),
        "total": stamps[-1] - started,
        "run_id": run_id,
        "headers": headers_at,
        "start_frame": first_frame,
    }


def _gaps(stamps: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(stamps)]


async def measure_concurrency(
    provider: FakeProvider, http: httpx.AsyncClient, key: str, concurrency: int, runs: int
) -> dict[str, Any]:
    async def batch(fn: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _ in range(max(1, runs // concurrency)):
            out += await asyncio.gather(*(fn() for _ in range(concurrency)))
        return out

    direct = await batch(lambda: direct_stream(provider, key))
    served = await batch(lambda: server_stream(http, key))
    d_ttft = [r["ttft"] for r in direct]
    s_ttft = [r["ttft"] for r in served]
    d_gap = [g for r in direct for g in r["gaps"]]
    s_gap = [g for r in served for g in r["gaps"]]
    return {
        "concurrency": concurrency,
        "samples": len(served),
        "ttft_direct_ms": {k: v * 1000 for k, v in summary(d_ttft).items()},
        "ttft_server_ms": {k: v * 1000 for k, v in summary(s_ttft).items()},
        "added_ttft_ms": {
            k: (summary(s_ttft)[k] - summary(d_ttft)[k]) * 1000 for k in ("p50", "p90", "p99")
        },
        "added_intertoken_ms": {
            k: (summary(s_gap)[k] - summary(d_gap)[k]) * 1000 for k in ("p50", "p90", "p99")
        },
        "post_to_headers_ms": summary([r["headers"] * 1000 for r in served]),
        "post_to_start_frame_ms": summary([r["start_frame"] * 1000 for r in served]),
        "total_ratio": statistics.fmean(r["total"] for r in served)
        / statistics.fmean(r["total"] for r in direct),
        "run_ids": [r["run_id"] for r in served[:3]],
    }


async def measure_resume(http: httpx.AsyncClient, run_id: str, n: int = 20) -> dict[str, float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        async with http.stream(
            "GET", f"/api/copilot/runs/{run_id}/events", headers={"Last-Event-ID": "3"}
        ) as resp:
            async for _frame in iter_frames(resp):
                times.append(time.perf_counter() - started)
                break
    return {k: v * 1000 for k, v in summary(times).items()}


async def history_events(
    provider: FakeProvider, http: httpx.AsyncClient, temporal: Client
) -> dict[str, int]:
    out = {}
    for tools in (0, 1, 3):
        turns: list[dict[str, Any]] = []
        if tools:
            calls = [{"name": "echo", "arguments": {"text": str(i)}} for i in range(tools)]
            turns.append({"tool_calls": calls})
        for tokens in (20, 200):
            key = provider.scenario([*turns, {"chunks": ["t "] * tokens}])
            result = await server_stream(http, key)
            history = await temporal.get_workflow_handle(result["run_id"]).fetch_history()
            out[f"{tools} tools, {tokens} tokens"] = len(history.events)
    return out


async def run_timeline(
    provider: FakeProvider, http: httpx.AsyncClient, temporal: Client, n: int = 24
) -> dict[str, float]:
    """Where a run's time goes, one run at a time: p50 offset (ms) from the POST of the client's
    frames and of the Temporal history's events (server clock, same machine). The run calls one
    server tool, so the timeline shows the hops between steps too."""
    marks: dict[str, list[float]] = {}
    turns = [{"tool_calls": [{"name": "echo", "arguments": {"text": "x"}}]}, {"chunks": ["t "] * 5}]
    for i in range(n):
        key = provider.scenario(turns)  # a scenario is played once through: one per run
        started = time.time()
        seen: dict[str, float] = {}
        async with http.stream("POST", "/api/copilot/chat", json={"message": key}) as resp:
            seen["response headers"] = time.time() - started
            run_id = resp.headers["x-run-id"]
            async for frame in iter_frames(resp):
                kind = frame.data["type"]
                seen.setdefault(f"frame {kind}", time.time() - started)
                if kind == "done":
                    break
        history = await temporal.get_workflow_handle(run_id).fetch_history()
        for event in history.events:
            attributes = event.WhichOneof("attributes") or "?"
            name = attributes.removesuffix("_event_attributes")
            if name.startswith("activity_task_scheduled"):
                activity_type = event.activity_task_scheduled_event_attributes.activity_type
                name = f"scheduled {activity_type.name}"
            elif name not in (
                "workflow_execution_started",
                "workflow_task_started",
                "workflow_task_completed",
            ):
                continue
            label = f"history {name}"
            count = sum(1 for seen_name in seen if seen_name.startswith(label))
            label += f" #{count + 1}" if count else ""
            seen[label] = event.event_time.ToDatetime(UTC).timestamp() - started
        if i >= 2:  # the first runs warm caches up
            for name, offset in seen.items():
                marks.setdefault(name, []).append(offset * 1000)
    timeline = {name: statistics.median(values) for name, values in marks.items()}
    return dict(sorted(timeline.items(), key=lambda item: item[1]))


async def headless_throughput(provider: FakeProvider, http: httpx.AsyncClient, n: int) -> float:
    key = provider.scenario([{"chunks": ["tok "] * 50}])
    started = time.perf_counter()
    results = await asyncio.gather(
        *(http.post("/api/v1/copilot/chat", json={"message": key}) for _ in range(n))
    )
    elapsed = time.perf_counter() - started
    ok = sum(1 for r in results if r.status_code == 200)
    return ok / elapsed


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def tree_cpu_seconds(pid: int) -> float:
    """A process and its live children (PostgreSQL's backends are children of its postmaster)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def redis_connections_of(pid: int, redis_port: int) -> int:
    """TCP connections the process holds to Redis (its pool and its event hub)."""
    return sum(
        1
        for conn in psutil.Process(pid).net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == redis_port and conn.status == "ESTABLISHED"
    )


async def open_sessions(
    provider: FakeProvider,
    http: httpx.AsyncClient,
    key: str,
    api_pid: int,
    redis_port: int,
    n: int,
    concurrency: int,
    capacity: list[int],
    first_ms: int,
) -> dict[str, Any]:
    """``n`` open SSE sessions on runs that wait (for a decision): memory and Redis connections
    of the API process per session, and added TTFT of new streams while they are open."""
    hold = {"name": "hold", "inputSchema": {"type": "object"}, "requiresConfirmation": True}
    waiting_key = provider.scenario([{"tool_calls": [{"name": "hold", "arguments": {}}]}])
    runs = []
    for _ in range(max(1, n // 50)):
        resp = await http.post(
            "/api/v1/copilot/chat",
            json={"message": waiting_key, "tools": [hold], "autoExecuteTools": False,
                  "wait": False},
        )  # fmt: skip
        runs.append(resp.json()["runId"])
    rss_before = rss_bytes(api_pid)
    redis_before = redis_connections_of(api_pid, redis_port)
    opened = 0
    all_open = asyncio.Event()

    async def session(run_id: str) -> None:
        nonlocal opened
        async with http.stream("GET", f"/api/copilot/runs/{run_id}/events") as resp:
            async for _frame in iter_frames(resp):
                opened += 1
                if opened == n:
                    all_open.set()
                await asyncio.Future()  # stay open until cancelled

    tasks = [asyncio.create_task(session(runs[i % len(runs)])) for i in range(n)]
    try:
        waiter = asyncio.create_task(all_open.wait())
        await asyncio.wait([waiter, *tasks], timeout=120, return_when=asyncio.FIRST_EXCEPTION)
        waiter.cancel()
        failed = [t.exception() for t in tasks if t.done() and t.exception() is not None]
        if failed or opened < n:
            raise RuntimeError(f"{opened} of {n} sessions opened; first error: {failed[:1]!r}")
        rss_after = rss_bytes(api_pid)
        redis_after = redis_connections_of(api_pid, redis_port)
        loaded = await measure_concurrency(provider, http, key, concurrency, concurrency * 2)
        searched = None
        if capacity:
            searched = await capacity_search(
                provider, http, capacity, spread_s=10, first_ms=first_ms
            )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for run_id in runs:
            await http.post(f"/api/copilot/runs/{run_id}/abort")
    return {
        "open_sessions": n,
        "memory_per_session_kib": (rss_after - rss_before) / n / 1024,
        "api_redis_connections_before": redis_before,
        "api_redis_connections_open": redis_after,
        "streaming_concurrency": concurrency,
        "added_ttft_ms_while_open": loaded["added_ttft_ms"],
        "capacity_while_open": searched,
    }


async def capacity_search(
    provider: FakeProvider,
    http: httpx.AsyncClient,
    levels: list[int],
    *,
    spread_s: float,
    first_ms: int,
    tokens_per_s: int = 20,
    budget_ms: float = 250,
) -> dict[str, Any]:
    """Streaming sessions the server sustains before added TTFT p99 passes ``budget_ms``.

    At each level, N streams arrive at random over ``spread_s`` seconds; each answer streams
    at ``tokens_per_s`` for longer than the spread, so at its end all N stream together.
    Added TTFT is each stream's minus the direct SDK call's median in the same run. Stops at
    the first level past the budget.
    """
    direct_key = provider.scenario([{"chunks": ["tok "], "first_delay_ms": first_ms}])
    direct = [(await direct_stream(provider, direct_key))["ttft"] for _ in range(10)]
    floor = statistics.median(direct)
    tokens = int(tokens_per_s * (spread_s + 2))
    key = provider.scenario(
        [{"chunks": ["tok "] * tokens, "first_delay_ms": first_ms,
          "delay_ms": 1000 // tokens_per_s}]
    )  # fmt: skip
    rows = []
    for n in levels:
        print(f"capacity: {n} streams arriving over {spread_s:.0f} s...", flush=True)
        rng = random.Random(n)

        async def arrive(offset: float) -> dict[str, Any]:
            await asyncio.sleep(offset)  # the arrival schedule (a load generator, not a test)
            return await server_stream(http, key)

        started = time.perf_counter()
        results = await asyncio.gather(*(arrive(rng.uniform(0, spread_s)) for _ in range(n)))
        added = summary([(r["ttft"] - floor) * 1000 for r in results])
        rows.append({
            "streams": n,
            "added_ttft_ms": added,
            "tokens_per_s": n * tokens / (time.perf_counter() - started),
        })  # fmt: skip
        if added["p99"] > budget_ms:
            break
    passing = [r["streams"] for r in rows if r["added_ttft_ms"]["p99"] <= budget_ms]
    return {
        "spread_s": spread_s,
        "tokens_per_stream": tokens,
        "tokens_per_s_each": tokens_per_s,
        "budget_ms": budget_ms,
        "levels": rows,
        "max_streams_within_budget": max(passing, default=0),
    }


def redis_clients(redis_url: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.info("clients")["connected_clients"])
    finally:
        client.close()


async def latency_rows(
    provider: FakeProvider,
    http: httpx.AsyncClient,
    key: str,
    args: argparse.Namespace,
    api: Any,
    worker: Any,
) -> list[dict[str, Any]]:
    rows = []
    for c in args.concurrency:
        print(f"concurrency {c}...", flush=True)
        cpu = {"api": cpu_seconds(api.proc.pid), "worker": cpu_seconds(worker.proc.pid)}
        started = time.perf_counter()
        row = await measure_concurrency(provider, http, key, c, args.runs)
        elapsed = time.perf_counter() - started
        streams = max(1, args.runs // c) * c
        tokens = streams * args.tokens * 2  # the direct and the served half
        served_tokens = streams * args.tokens
        row["cpu_s_per_1000_tokens"] = {
            name: (cpu_seconds(proc.pid) - cpu[name]) / served_tokens * 1000
            for name, proc in (("api", api.proc), ("worker", worker.proc))
        }
        row["tokens_per_s_end_to_end"] = tokens / elapsed
        rows.append(row)
    return rows


async def cpu_fit(
    provider: FakeProvider,
    http: httpx.AsyncClient,
    args: argparse.Namespace,
    api: Any,
    worker: Any,
    services: dict[str, int],
) -> dict[str, Any]:
    """CPU per run and per served token, API and worker apart: the same load at two answer
    lengths, then the line through both (cpu = per_run + per_token * tokens)."""
    short, long = args.fit
    c, runs = args.fit_concurrency, max(args.fit_concurrency, args.fit_runs)
    per_stream: dict[int, dict[str, float]] = {}
    for tokens in (short, long):
        print(f"CPU fit: {runs} streams of {tokens} tokens at concurrency {c}...", flush=True)
        turn = {
            "chunks": ["tok "] * tokens,
            "first_delay_ms": args.first_ms,
            "delay_ms": args.gap_ms,
        }
        key = provider.scenario([turn])
        await server_stream(http, key)  # the scenario's first run warms nothing up twice
        pids = {"api": api.proc.pid, "worker": worker.proc.pid, **services}
        before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        done = 0
        while done < runs:
            n = min(c, runs - done)
            await asyncio.gather(*(server_stream(http, key) for _ in range(n)))
            done += n
        per_stream[tokens] = {
            name: (tree_cpu_seconds(pid) - before[name]) / runs for name, pid in pids.items()
        }
    out: dict[str, Any] = {"concurrency": c, "runs": runs, "tokens": [short, long]}
    for name in per_stream[short]:
        a, b = per_stream[short][name], per_stream[long][name]
        per_token = (b - a) / (long - short)
        out[name] = {
            "per_run_ms": (a - per_token * short) * 1000,
            "per_token_ms": per_token * 1000,
            "per_stream_ms": {str(short): a * 1000, str(long): b * 1000},
        }
    out["total"] = {k: out["api"][k] + out["worker"][k] for k in ("per_run_ms", "per_token_ms")}
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="copilot-bench-"))
    ports = Ports(
        temporal=free_port(), temporal_ui=free_port(), postgres=free_port(), redis=free_port()
    )
    print(f"starting services in {data}", flush=True)
    emb = await asyncio.to_thread(start_all, data, ports, headless=True)
    provider = FakeProvider()
    assert emb.database_url is not None
    assert emb.redis_url is not None
    assert emb.temporal_address is not None
    await asyncio.to_thread(upgrade, emb.database_url)
    services = Services(emb.database_url, emb.redis_url, emb.temporal_address, data, emb)
    env = stack_env(
        services,
        provider,
        LOG_LEVEL="WARNING",  # type: ignore[arg-type]
        RATE_LIMIT_STARTS_PER_USER="1000000",
        RATE_LIMIT_STARTS_PER_IP="1000000",
        RATE_LIMIT_READS="1000000",
        # The test stacks check every workflow line under the full sandbox; the bench measures
        # what production runs.
        STRICT_SANDBOX="false",
        UNSANDBOXED_WORKFLOWS="true" if args.unsandboxed else "false",
    )
    port = free_port()
    logs = data / "logs"
    worker = spawn(
        "worker",
        [sys.executable, "-m", "copilot.cli", "worker"],
        log_path=logs / "worker.log",
        env=env,
    )
    api = spawn(
        "api",
        [sys.executable, "-m", "copilot.cli", "api", "--port", str(port)],
        log_path=logs / "api.log",
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {
        "machine": f"{platform.node()} · {os.cpu_count()} cores · {platform.platform()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "fake": {
            "first_token_ms": args.first_ms,
            "intertoken_ms": args.gap_ms,
            "tokens": args.tokens,
        },
    }
    try:
        await asyncio.to_thread(wait_healthy, url, api)
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
            turn = {
                "chunks": ["tok "] * args.tokens,
                "first_delay_ms": args.first_ms,
                "delay_ms": args.gap_ms,
            }
            key = provider.scenario([turn])
            await server_stream(http, key)  # warm up
            results["latency"] = await latency_rows(provider, http, key, args, api, worker)
            if args.fit:
                services_pids = {f"service:{c.name}": c.proc.pid for c in emb.children}
                results["cpu_fit"] = await cpu_fit(provider, http, args, api, worker, services_pids)
            if args.api_worker:
                # The same load against an API that runs a worker and starts runs eagerly.
                eager_port = free_port()
                eager = spawn(
                    "api-worker",
                    [sys.executable, "-m", "copilot.cli", "api", "--port", str(eager_port)],
                    log_path=logs / "api-worker.log",
                    env={**env, "API_WORKER": "true"},
                )
                eager_url = f"http://127.0.0.1:{eager_port}"
                try:
                    await asyncio.to_thread(wait_healthy, eager_url, eager)
                    async with httpx.AsyncClient(
                        base_url=eager_url, timeout=300, limits=limits
                    ) as eager_http:
                        await server_stream(eager_http, key)  # warm up
                        print("the same with API_WORKER=true:", flush=True)
                        results["latency_api_worker"] = await latency_rows(
                            provider, eager_http, key, args, eager, worker
                        )
                finally:
                    eager.stop()
            if args.open:
                print(f"{args.open} open SSE sessions...", flush=True)
                results["open"] = await open_sessions(
                    provider, http, key, api.proc.pid, ports.redis, args.open, 10,
                    args.capacity, args.first_ms,
                )  # fmt: skip
            run_id = results["latency"][0]["run_ids"][0]
            results["resume_ms"] = await measure_resume(http, run_id)
            temporal = await Client.connect(emb.temporal_address)
            results["history_events"] = await history_events(provider, http, temporal)
            results["run_timeline_ms"] = await run_timeline(provider, http, temporal)
            results["headless_runs_per_s"] = await headless_throughput(
                provider, http, args.headless
            )
            results["redis_connections_total"] = redis_clients(emb.redis_url)
    finally:
        api.stop()
        worker.stop()
        provider.stop()
        emb.stop()
    return results


def print_latency(rows: list[dict[str, Any]]) -> None:
    print("conc  added TTFT p50/p90/p99 ms   added inter-token p50/p99 ms   total/direct")
    for row in rows:
        a, g = row["added_ttft_ms"], row["added_intertoken_ms"]
        print(
            f"{row['concurrency']:>4}  {a['p50']:7.1f} {a['p90']:7.1f} {a['p99']:7.1f}"
            f"          {g['p50']:6.2f} {g['p99']:6.2f}              {row['total_ratio']:.3f}"
        )
    for row in rows:
        h, s = row["post_to_headers_ms"], row["post_to_start_frame_ms"]
        print(
            f"c={row['concurrency']}: POST→response headers p50 {h['p50']:.1f} ms, "
            f"POST→start frame p50 {s['p50']:.1f} ms"
        )
    for row in rows:
        cpu = row["cpu_s_per_1000_tokens"]
        print(
            f"c={row['concurrency']}: CPU s per 1,000 served tokens: API {cpu['api']:.3f}, "
            f"worker {cpu['worker']:.3f}; {row['tokens_per_s_end_to_end']:.0f} tokens/s"
        )


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['machine']}  {results['date']}")
    print(
        f"fake provider: first token {results['fake']['first_token_ms']} ms, "
        f"{results['fake']['intertoken_ms']} ms between {results['fake']['tokens']} tokens\n"
    )
    print_latency(results["latency"])
    if "cpu_fit" in results:
        f = results["cpu_fit"]
        print(
            f"\nCPU per run and per served token (fit over {f['tokens'][0]} and "
            f"{f['tokens'][1]}-token answers, {f['runs']} runs at concurrency {f['concurrency']}):"
        )
        for name in ("api", "worker", "total", *(n for n in f if n.startswith("service:"))):
            print(
                f"  {name:<7} {f[name]['per_run_ms']:7.2f} ms per run   "
                f"{f[name]['per_token_ms']:6.3f} ms per token"
            )
    if "latency_api_worker" in results:
        print("\nthe same with API_WORKER=true (a worker in the API, runs started eagerly):")
        print_latency(results["latency_api_worker"])
    if "open" in results:
        o = results["open"]
        a = o["added_ttft_ms_while_open"]
        print(
            f"{o['open_sessions']} open SSE sessions: {o['memory_per_session_kib']:.1f} KiB each "
            f"in the API; API's Redis connections {o['api_redis_connections_before']} → "
            f"{o['api_redis_connections_open']}; meanwhile {o['streaming_concurrency']} "
            f"streaming: added TTFT p50 {a['p50']:.0f} / p99 {a['p99']:.0f} ms"
        )
        cap = o.get("capacity_while_open")
        if cap:
            print(
                f"capacity with {o['open_sessions']} open: streams arriving over "
                f"{cap['spread_s']:.0f} s at {cap['tokens_per_s_each']} tokens/s each"
            )
            for row in cap["levels"]:
                a = row["added_ttft_ms"]
                print(
                    f"  {row['streams']:>4} streams: added TTFT p50 {a['p50']:.0f} / p99 "
                    f"{a['p99']:.0f} ms, {row['tokens_per_s']:.0f} tokens/s"
                )
            print(
                f"  most streams with added TTFT p99 ≤ {cap['budget_ms']:.0f} ms: "
                f"{cap['max_streams_within_budget']}"
            )
    r = results["resume_ms"]
    print(
        f"\nresume (Last-Event-ID → first replayed event): p50 {r['p50']:.1f} ms, "
        f"p99 {r['p99']:.1f} ms"
    )
    print("Temporal history events per run:")
    for name, count in results["history_events"].items():
        print(f"  {name:<22} {count}")
    print("one run, one server tool, one at a time: p50 ms after the POST")
    for name, offset in results["run_timeline_ms"].items():
        print(f"  {offset:7.1f}  {name}")
    print(f"headless throughput: {results['headless_runs_per_s']:.1f} runs/s (50-token answers)")
    print(f"Redis connections (all processes) at the end: {results['redis_connections_total']}")


def main() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Open sessions need a descriptor each, here and in the API (which inherits this limit).
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--runs", type=int, default=20, help="streams per concurrency level")
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--first-ms", type=int, default=50)
    parser.add_argument("--gap-ms", type=int, default=10)
    parser.add_argument("--headless", type=int, default=20, help="concurrent headless runs")
    parser.add_argument("--open", type=int, default=200, help="open SSE sessions (0: skip)")
    parser.add_argument(
        "--capacity",
        type=int,
        nargs="*",
        default=[],
        metavar="N",
        help="while the --open sessions are held, N streams (20 tokens/s each) arriving over "
        "10 s, for each N until added TTFT p99 passes 250 ms (e.g. --capacity 25 50 100 200)",
    )
    parser.add_argument(
        "--fit",
        type=int,
        nargs="*",
        default=[40, 400],
        metavar="TOKENS",
        help="two answer lengths for the CPU-per-run / CPU-per-token fit (none: skip)",
    )
    parser.add_argument(
        "--unsandboxed",
        action="store_true",
        help="run the worker with UNSANDBOXED_WORKFLOWS=true (default: the sandbox, as shipped)",
    )
    parser.add_argument("--fit-concurrency", type=int, default=50)
    parser.add_argument("--fit-runs", type=int, default=100, help="streams per answer length")
    parser.add_argument(
        "--api-worker",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure latency against an API with API_WORKER=true (default: yes)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    if args.fit and (len(args.fit) != 2 or args.fit[0] >= args.fit[1]):
        parser.error("--fit takes two answer lengths, shorter first (e.g. --fit 40 400)")
    results = asyncio.run(main_async(args))
    print_table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
