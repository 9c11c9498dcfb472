"""Server tools for fault tests, loaded by the worker through ``EXTRA_TOOL_MODULES``.

Each records when it starts and ends in the file ``FAKE_TOOL_LOG`` names, so a test sees how
many times a call really ran, across worker processes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from copilot.tools.base import ServerTool

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


def runs_of(path: Path, mark: str) -> tuple[int, int]:
    """(starts, ends) recorded for ``mark``."""
    lines = path.read_text().splitlines() if path.exists() else []
    return lines.count(f"start {mark}"), lines.count(f"end {mark}")


TOOLS = [
    ServerTool("slow_idempotent", "Sleeps, harmlessly repeatable.", SCHEMA, _slow,
               idempotent=True),
    ServerTool("slow_once", "Sleeps; stands for a tool that must not run twice.", SCHEMA, _slow),
]  # fmt: skip
