"""The server tool registry: built-ins plus the modules named in ``EXTRA_TOOL_MODULES``."""

from __future__ import annotations

import importlib
import json
from typing import Any

import jsonschema

from copilot.providers.base import ToolSpec
from copilot.tools import builtin
from copilot.tools.base import ServerTool, ToolFailed


class ToolRegistry:
    def __init__(self, extra_modules: str = "") -> None:
        self._tools: dict[str, ServerTool] = {}
        for tool in builtin.TOOLS:
            self.register(tool)
        for name in (m.strip() for m in extra_modules.split(",")):
            if name:
                module = importlib.import_module(name)
                for tool in getattr(module, "TOOLS", []):
                    self.register(tool)

    def register(self, tool: ServerTool) -> None:
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        self._tools[tool.name] = tool

    def names(self) -> frozenset[str]:
        return frozenset(self._tools)

    def non_idempotent(self) -> list[str]:
        return sorted(t.name for t in self._tools.values() if not t.idempotent)

    def confirming(self) -> list[str]:
        """Tools that wait for the user's decision (unless the run auto-executes)."""
        return sorted(t.name for t in self._tools.values() if t.requires_confirmation)

    def get(self, name: str) -> ServerTool | None:
        return self._tools.get(name)

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec(t.name, t.description, t.input_schema) for t in self._tools.values()]

    async def execute(self, name: str, arguments: dict[str, Any]) -> Any:
        tool = self._tools.get(name)
        if tool is None:
            raise ToolFailed(f"unknown tool {name!r}")
        errors = sorted(
            jsonschema.Draft202012Validator(tool.input_schema).iter_errors(arguments),
            key=lambda e: list(e.path),
        )
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "arguments"
            raise ToolFailed(f"invalid arguments for {name}: {where}: {errors[0].message}")
        result = await tool.handler(arguments)
        json.dumps(result)  # results must be JSON: fail here, not in the provider call
        return result
