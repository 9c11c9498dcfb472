"""Server tools for fault tests, loaded by the worker through ``EXTRA_TOOL_MODULES``.

Each records when it starts and ends in the file ``FAKE_TOOL_LOG`` names, so a test sees how
many times a call really ran, across worker processes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from copilot.tools.base import ServerTool, ToolUnavailable

SCHEMA = {
    "type": "object",
    "properties": {"ms": {"type": "integer"}, "mark": {"type": "string"}},
    "required": ["ms", "mark"],
}


def _note(line: str) -> None:
    with Path(os.environ["FAKE_TOOL_LOG"]).open("a") as log:
        log.write(line + "\n")


async def _slow(args: dict[str, Any]) -> dict[str, Any]:
    _note(f"start {args['mark']}")
    await asyncio.sleep(args["ms"] / 1000)
    _note(f"end {args['mark']}")
    return {"sleptMs": args["ms"]}


async def _crash(args: dict[str, Any]) -> dict[str, Any]:
    _note(f"start {args['mark']}")
    return {"not json": {1, 2}}  # type: ignore[dict-item]  # a bug: a set is not JSON


async def _flaky(args: dict[str, Any]) -> dict[str, Any]:
    """Unavailable on its first call for a mark, fine on the next."""
    _note(f"start {args['mark']}")
    starts, _ = runs_of(Path(os.environ["FAKE_TOOL_LOG"]), args["mark"])
    if starts == 1:
        raise ToolUnavailable("the service is restarting")
    _note(f"end {args['mark']}")
    return {"attempt": starts}


def runs_of(path: Path, mark: str) -> tuple[int, int]:
    """(starts, ends) recorded for ``mark``."""
    lines = path.read_text().splitlines() if path.exists() else []
    return lines.count(f"start {mark}"), lines.count(f"end {mark}")


TOOLS = [
    ServerTool("slow_idempotent", "Sleeps, harmlessly repeatable.", SCHEMA, _slow,
               idempotent=True),
    ServerTool("slow_once", "Sleeps; stands for a tool that must not run twice.", SCHEMA, _slow),
    ServerTool("crashing", "Returns a result that is not JSON (a bug).", SCHEMA, _crash,
               idempotent=True),
    ServerTool("flaky", "Unavailable once, then works.", SCHEMA, _flaky, idempotent=True),
    ServerTool("guarded", "Runs only once the user accepts.", SCHEMA, _slow, idempotent=True,
               requires_confirmation=True),
]  # fmt: skip
