"""What one wake-up of an API process's event hub costs, by the number of runs it follows.

    .venv/bin/python -m bench.hub                 # 1, 50, 1000 followed runs
    .venv/bin/python -m bench.hub --followed 1 200 2000 --wakeups 300

Starts an embedded Redis. For each level, N runs are followed and one of them gets an event per
wake-up; it measures the client CPU (process time) and wall time per delivered event, for:

- **baseline**: the earlier hub's read, one ``XREAD`` over every followed run's key (measured
  here in the same run, since that code is gone);
- **hub**: ``copilot.events.hub.LogHub`` (one blocking read on the numbered notify stream, then
  the runs named).

Figures are ratios within one run on one machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from copilot.embedded import free_port, start_redis
from copilot.events.hub import LogHub
from copilot.events.log import EventLog, stream_key, writer_epoch


def _event(seq: int) -> dict[str, Any]:
    return {"type": "content", "seq": seq, "runId": "r", "data": "x", "turn": 1}


async def _baseline(
    redis: Redis, log: EventLog, runs: list[str], wakeups: int
) -> tuple[float, float]:
    """The earlier hub: XREAD over all followed keys, one event appended per wake-up."""
    cursors = dict.fromkeys(runs, 0)
    target = runs[0]
    cpu = wall = 0.0
    for seq in range(1, wakeups + 1):
        await log.append(target, writer_epoch(1, 1), [_event(seq)])
        started_cpu, started = time.process_time(), time.perf_counter()
        reply: Any = await redis.xread(
            {stream_key(r): f"{c}-0" for r, c in cursors.items()}, count=500, block=1000
        )
        cpu += time.process_time() - started_cpu
        wall += time.perf_counter() - started
        if not reply:
            raise RuntimeError("the baseline read nothing")
        cursors[target] = seq
    return cpu / wakeups * 1000, wall / wakeups * 1000


async def _hub(redis: Redis, log: EventLog, runs: list[str], wakeups: int) -> tuple[float, float]:
    hub = LogHub(redis, block_ms=1000)
    await hub.start()
    subs = [await hub.subscribe(r, 0) for r in runs]
    target = subs[0]
    cpu = wall = 0.0
    try:
        # The first event (unmeasured) shows the hub is reading.
        await log.append(runs[0], writer_epoch(1, 1), [_event(1)])
        if await target.get(10) is None:
            raise RuntimeError("the hub delivered nothing")
        for seq in range(2, wakeups + 2):
            started_cpu, started = time.process_time(), time.perf_counter()
            await log.append(runs[0], writer_epoch(1, 1), [_event(seq)])
            entry = await target.get(5)
            cpu += time.process_time() - started_cpu
            wall += time.perf_counter() - started
            if entry is None or entry.seq != seq:
                raise RuntimeError(f"the hub missed event {seq}")
    finally:
        for sub in subs:
            sub.close()
        await hub.stop()
    return cpu / wakeups * 1000, wall / wakeups * 1000


async def _level(redis: Redis, followed: int, wakeups: int, tries: int) -> dict[str, float]:
    log = EventLog(redis, retention_s=600)
    out: dict[str, list[float]] = {"base_cpu": [], "hub_cpu": [], "base_wall": [], "hub_wall": []}
    for _ in range(tries):
        runs = [f"bench-{uuid.uuid4().hex}" for _ in range(followed)]
        cpu, wall = await _baseline(redis, log, runs, wakeups)
        out["base_cpu"].append(cpu)
        out["base_wall"].append(wall)
        runs = [f"bench-{uuid.uuid4().hex}" for _ in range(followed)]
        cpu, wall = await _hub(redis, log, runs, wakeups)  # includes the append: an upper bound
        out["hub_cpu"].append(cpu)
        out["hub_wall"].append(wall)
    return {k: statistics.median(v) for k, v in out.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followed", type=int, nargs="+", default=[1, 50, 1000])
    parser.add_argument("--wakeups", type=int, default=200)
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    (data_dir / "logs").mkdir()
    child, url = await asyncio.to_thread(start_redis, data_dir, free_port())
    redis = Redis.from_url(url)
    try:
        print(f"{'followed':>9} {'baseline cpu ms':>16} {'hub cpu ms':>11} "
              f"{'baseline wall ms':>17} {'hub wall ms':>12}")  # fmt: skip
        for followed in args.followed:
            r = await _level(redis, followed, args.wakeups, args.tries)
            print(f"{followed:>9} {r['base_cpu']:>16.3f} {r['hub_cpu']:>11.3f} "
                  f"{r['base_wall']:>17.3f} {r['hub_wall']:>12.3f}")  # fmt: skip
        print("per wake-up; hub figures include the append that causes it (baseline's do not)")
    finally:
        await redis.aclose()
        child.stop()


if __name__ == "__main__":
    asyncio.run(main())
