"""What a server tool is. Add your own: a module exposing ``TOOLS: list[ServerTool]``, named in
``EXTRA_TOOL_MODULES``. Arguments are validated against ``input_schema`` (JSON Schema) before
the handler runs; a validation failure is a tool error the model sees, not a crashed run.

    # mytools.py
    from copilot.tools.base import ServerTool

    async def add(args: dict) -> dict:
        return {"sum": args["a"] + args["b"]}

    TOOLS = [ServerTool(
        name="add", description="Add two numbers",
        input_schema={"type": "object", "properties": {"a": {"type": "number"},
                      "b": {"type": "number"}}, "required": ["a", "b"]},
        handler=add,
        idempotent=True,  # a pure function: safe to run again after a worker crash
    )]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

ToolHandler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class ServerTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    handler: ToolHandler
    requires_confirmation: bool = False
    # May it run twice for one call? A worker can crash while a tool runs; the run goes on on
    # another worker, which runs an idempotent tool again and reports a non-idempotent one as
    # interrupted (it may or may not have taken effect) instead. Say True only when running it
    # again with the same arguments is harmless (reads, upserts keyed by the call).
    idempotent: bool = False


class ToolFailed(Exception):
    """The tool ran and failed; the message goes back to the model. Not retried."""


class ToolUnavailable(Exception):
    """A transient failure (a service down, a timeout): the call is tried again later, if the
    tool is ``idempotent``; otherwise the model is told. Any other exception a handler raises
    is taken for a bug: the model is told the tool crashed, and it is not retried."""
