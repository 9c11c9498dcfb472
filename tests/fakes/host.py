"""A fake host app (Sim's side): executes delegated client tools and serves workflow context."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class FakeHostApp:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        app = Starlette(
            routes=[Route("/api/copilot/execute-tool", self._execute, methods=["POST"])]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="off")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _execute(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            self.calls.append({"headers": dict(request.headers), "body": body})
        if body["toolName"] == "fail_tool":
            return JSONResponse({"success": False, "error": "the host says no"})
        if body["toolName"] == "get_user_workflow":
            workflow_id = str(body["arguments"].get("workflowId", ""))
            if workflow_id.startswith("missing"):
                return JSONResponse({"success": False, "error": "Workflow not found"}, 404)
            return JSONResponse({"success": True, "result": {
                "workflowId": workflow_id, "name": "Lead router",
                "blocks": {"b1": {"type": "starter"}, "b2": {"type": "agent"}}}})  # fmt: skip
        return JSONResponse({"success": True, "result": {"done": body["arguments"]}})

    def calls_for(self, tool_call_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.calls if c["body"]["toolCallId"] == tool_call_id]

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake host app did not start")
            time.sleep(0.01)  # waiting for uvicorn's started flag in another thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
