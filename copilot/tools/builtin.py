"""Built-in server tools."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from copilot.tools.base import ServerTool, ToolFailed


async def _echo(args: dict[str, Any]) -> dict[str, Any]:
    return {"echo": args["text"]}


async def _current_time(args: dict[str, Any]) -> dict[str, Any]:
    name = args.get("timezone") or "UTC"
    try:
        zone = ZoneInfo(name) if name != "UTC" else UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolFailed(f"unknown timezone {name!r}; use an IANA name like Europe/Paris") from None
    now = datetime.now(zone)
    return {"timezone": name, "iso": now.isoformat(), "weekday": now.strftime("%A")}


TOOLS = [
    ServerTool(
        name="echo",
        description="Echo the given text back. Useful to test tool calling.",
        input_schema={
            "type": "object",
            "properties": {"text": {"type": "string", "description": "text to echo"}},
            "required": ["text"],
            "additionalProperties": False,
        },
        handler=_echo,
        idempotent=True,
    ),
    ServerTool(
        name="get_current_time",
        description="The current date and time in a timezone (IANA name, default UTC).",
        input_schema={
            "type": "object",
            "properties": {"timezone": {"type": "string", "description": "e.g. Europe/Paris"}},
            "additionalProperties": False,
        },
        handler=_current_time,
        idempotent=True,
    ),
]
