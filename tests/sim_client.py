"""Sim (simstudioai/sim at commit 190f12fd77) using this server as its copilot backend, modelled
from a reading of Sim's code, none of it copied. ``SimClient.send`` is one message, end to end:

- **the payload** of Sim's chat route (``lib/copilot/chat-payload.ts``: the UI's agent mode is
  build mode, sent as ``mode: "agent"`` with the whole tool registry as deferred
  ``integrationTools`` and the user's credentials; attachments shaped as ``createFileContent``
  in ``lib/uploads/utils/file-utils.ts`` makes them; no ``conversationId``), posted with Sim's
  ``COPILOT_API_KEY`` as ``x-api-key``;
- **the read loop** (``lib/copilot/orchestrator/stream-core.ts`` over ``sse-parser.ts``: split
  on ``\\n``, ``data:`` lines only, ``[DONE]`` skipped, JSON with a ``type``; a non-2xx answer
  or a dead stream becomes the result's error, never an exception), each event handled by
  ``tests/sim_server.py`` (Sim's server side) and forwarded by Sim's chat route
  (``app/api/copilot/chat/route.ts``, which first announces its own ``chat_id``) to
  ``tests/sim_browser.py`` (Sim's browser);
- **mark-complete**: ``POST /api/tools/mark-complete {id, name, status, message, data}`` as
  ``tool-executor/index.ts`` markToolComplete sends it: fired and not awaited, a non-2xx answer
  only logged (each is recorded here with our answer);
- **Stop** (``stores/panel/copilot/store.ts`` abortMessage): only the browser's stream ends;
  Sim's route neither cancels its request to us nor calls our abort, and its server side reads
  on to the end (``SimTurn.finished``).
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.sim_browser import Seen, SimBrowser, js_json, truthy
from tests.sim_server import Executor, SimServer, SimServerSide, SimToolCall, defined

SIM_AGENT_VERSION = "3.0.0"
DEFAULT_MODEL = "claude-4.6-opus"  # the default of Sim's chat route
EventPred = Callable[[dict[str, Any]], bool]
Decide = Callable[[str, dict[str, Any]], "str | None"]  # accepted / rejected / background / None
NO_CREDENTIALS: dict[str, Any] = {
    "oauth": {}, "apiKeys": [], "metadata": {"connectedOAuth": [], "configuredApiKeys": []},
}  # fmt: skip

# --- what Sim sends ------------------------------------------------------------------------

_SERVICES = {
    "gmail": "google-email", "slack": "slack", "github": "github", "notion": "notion",
    "google_sheets": "google-sheets", "google_drive": "google-drive", "jira": "jira",
    "linear": "linear", "airtable": "airtable", "hubspot": "hubspot",
    "salesforce": "salesforce", "discord": None, "telegram": None, "twilio": None,
    "stripe": None, "shopify": None, "zendesk": None, "asana": "asana", "trello": "trello",
    "dropbox": "dropbox", "outlook": "microsoft", "teams": "microsoft", "confluence": "confluence",
    "supabase": None, "postgres": None, "mysql": None, "mongodb": None, "pinecone": None,
    "qdrant": None, "openai": None, "perplexity": None, "exa": None, "firecrawl": None,
    "typeform": None, "mailchimp": "mailchimp", "sendgrid": None, "clickup": "clickup",
    "calendly": None, "x": "x", "reddit": "reddit",
}  # fmt: skip
_ACTIONS = """send message read search list get create update delete archive upload download
    query insert upsert append comment assign move copy share invite export import schedule
    cancel publish subscribe label tag merge sync count watch reply forward react pin
    star close reopen approve""".split()  # noqa: SIM905


def integration_catalog(count: int = 1505) -> list[dict[str, Any]]:
    """Sim's registry as build mode sends it (``integrationTools``: every tool, deferred,
    ``oauth`` where the tool needs an account); ``gmail_send`` and ``slack_message`` first."""
    pairs = [("gmail", "send"), ("slack", "message")]
    pairs += [p for p in itertools.product(_SERVICES, _ACTIONS) if p not in pairs]
    assert count <= len(pairs)
    tools = []
    for service, action in pairs[:count]:
        words = service.replace("_", " ").title()
        params = {
            f"{p}": {"type": t, "description": f"The {p.replace('_', ' ')} to {action} in "
                     f"{words}, as the {words} API accepts it."}
            for p, t in (("resource_id", "string"), ("content", "string"),
                         ("options", "object"), ("limit", "number"))
        }  # fmt: skip
        tool: dict[str, Any] = {
            "name": f"{service}_{action}",
            "description": f"{action.title()} in {words} on behalf of the user: uses the "
            f"connected {words} account and returns the API's response as JSON.",
            "input_schema": {"type": "object", "properties": params, "required": ["content"]},
            "defer_loading": True,
        }
        if _SERVICES[service]:
            tool["oauth"] = {"required": True, "provider": _SERVICES[service]}
        tools.append(tool)
    return tools


def image_attachment(raw_bytes: int = 150_000) -> dict[str, Any]:
    """A processed file attachment as Sim sends it (createFileContent)."""
    data = b"\x89PNG\r\n\x1a\n" + bytes(i * 7 % 251 for i in range(raw_bytes - 8))
    source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(data).decode()}
    return {"type": "image", "source": source}


# --- what Sim saw ----------------------------------------------------------------------------


@dataclass
class MarkComplete:
    """One ``POST /api/tools/mark-complete`` Sim sent, and what we answered."""

    id: str
    name: str
    status: int
    message: str
    data: Any
    body_bytes: int
    http_status: int | None = None
    answer: Any = None


@dataclass
class SimTurn:
    """One message as Sim experienced it: ``server`` is what Sim's server side recorded,
    ``browser`` what the user sees."""

    payload: dict[str, Any]
    payload_bytes: int
    browser: SimBrowser
    server: SimServer = field(default_factory=SimServer)
    http_status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # as parsed, not normalised
    marks: list[MarkComplete] = field(default_factory=list)
    forwarded: int = 0
    upstream_closed: bool = False  # Sim's side hung up on us (close_upstream_when)
    upstream: asyncio.Task[None] | None = None
    posts: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def run_id(self) -> str | None:
        return self.headers.get("x-run-id")  # ours: Sim does not read it

    @property
    def visible_text(self) -> str:
        return self.browser.visible_text

    @property
    def thinking_text(self) -> str:
        return self.browser.thinking_text

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def marks_for(self, name: str) -> list[MarkComplete]:
        return [m for m in self.marks if m.name == name]

    async def finished(self, timeout: float = 60) -> None:
        """Sim's server side has ended (after a Stop it reads on) and its posts are answered."""
        if self.upstream is not None:
            await asyncio.wait_for(asyncio.shield(self.upstream), timeout)
        if self.posts:
            await asyncio.wait_for(asyncio.gather(*self.posts), timeout)


def _data_line(line: str) -> dict[str, Any] | None:
    if not line.strip() or not line.startswith("data: ") or line[6:] == "[DONE]":
        return None
    try:
        event = js_json(line[6:])
    except ValueError:
        return None  # Sim logs it and reads on
    return event if isinstance(event, dict) and truthy(event.get("type")) else None


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """sse-parser.ts: lines split on ``\\n`` only; ``id:``, ``event:`` and comments ignored."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer = ""
    async for chunk in response.aiter_bytes():
        *lines, buffer = (buffer + decoder.decode(chunk)).split("\n")
        for line in lines:
            if (event := _data_line(line)) is not None:
                yield event
    if (event := _data_line(buffer)) is not None:
        yield event


class SimClient:
    """One self-hosted Sim (its server process and one browser tab) whose ``SIM_AGENT_API_URL``
    is ``base_url`` and ``COPILOT_API_KEY`` is ``api_key``. ``catalog`` is Sim's tool registry,
    sent whole as ``integrationTools`` in build mode; ``executors`` fake each tool's execution;
    ``decide`` is the user's Allow / Skip on a tool needing approval (unless auto-allowed)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        user_id: str = "sim-user-1",
        workflow_id: str = "wf-sim-1",
        catalog: Iterable[dict[str, Any]] | None = None,
        executors: Mapping[str, Executor] | None = None,
        auto_allowed: Iterable[str] = (),
        decide: Decide | None = None,
        credentials: dict[str, Any] | None = None,
        provider_config: dict[str, Any] | None = None,
        orchestration_timeout: float = 60.0,  # Sim's ORCHESTRATION_TIMEOUT_MS is 5 min
    ) -> None:
        self.api_key, self.user_id, self.workflow_id = api_key, user_id, workflow_id
        self.catalog = integration_catalog() if catalog is None else list(catalog)
        self.registry = frozenset(t["name"] for t in self.catalog)
        self.executors = dict(executors or {})
        self.auto_allowed = frozenset(auto_allowed)
        self.decide: Decide = decide or (lambda _name, _args: "accepted")
        self.credentials = NO_CREDENTIALS if credentials is None else credentials
        self.provider_config = provider_config
        self.orchestration_timeout = orchestration_timeout
        self.server_seen, self.browser_seen = Seen(), Seen()  # one per process, kept across turns
        self.executed: list[tuple[str, dict[str, Any]]] = []  # every tool Sim ran: (name, params)
        self._http = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=None))
        self._upstreams: set[asyncio.Task[None]] = set()
        self._posts: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> SimClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for task in self._upstreams:  # Sim's side of a stopped message, still reading
            task.cancel()
        await asyncio.gather(*self._upstreams, *self._posts, return_exceptions=True)
        await self._http.aclose()

    def payload(
        self, message: str, *, chat_id: str | None, mode: str, model: str, message_id: str,
        integration_tools: list[dict[str, Any]] | None, attachments: Iterable[dict[str, Any]],
        contexts: Iterable[dict[str, str]], commands: Iterable[str],
    ) -> dict[str, Any]:  # fmt: skip
        """chat-payload.ts; empty fields are left out."""
        build = mode in ("agent", "build")
        out: dict[str, Any] = {
            "message": message, "workflowId": self.workflow_id, "userId": self.user_id,
            "model": model, "mode": "agent" if build else mode, "messageId": message_id,
            "version": SIM_AGENT_VERSION,
        }  # fmt: skip
        tools = (self.catalog if integration_tools is None else integration_tools) if build else []
        extras = {
            "provider": self.provider_config, "context": list(contexts), "chatId": chat_id,
            "fileAttachments": list(attachments), "integrationTools": tools,
            "credentials": self.credentials if build else None, "commands": list(commands),
        }  # fmt: skip
        return out | {k: v for k, v in extras.items() if v}

    async def send(
        self, message: str, *, chat_id: str | None, mode: str = "agent",
        model: str = DEFAULT_MODEL, integration_tools: list[dict[str, Any]] | None = None,
        attachments: Iterable[dict[str, Any]] = (), contexts: Iterable[dict[str, str]] = (),
        commands: Iterable[str] = (), message_id: str | None = None,
        stop_after_events: int | None = None, stop_when: EventPred | None = None,
        close_upstream_when: EventPred | None = None,
    ) -> SimTurn:  # fmt: skip
        """Send one message (``mode``: Sim's ``agent`` = build, ``ask`` or ``plan``) and follow
        it as Sim does. Returns when Sim's stream to the browser ends: after a Stop (once the
        browser got ``stop_after_events`` events, or one matching ``stop_when``) at once, while
        Sim's server side reads on. ``close_upstream_when``: Sim's server side goes away at
        that event, unread (its orchestration timeout, a restart: never its Stop)."""
        payload = self.payload(
            message, chat_id=chat_id, mode=mode, model=model,
            message_id=message_id or str(uuid.uuid4()), integration_tools=integration_tools,
            attachments=attachments, contexts=contexts, commands=commands,
        )  # fmt: skip
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        browser = SimBrowser(self.browser_seen, self.auto_allowed, self.decide)
        turn = SimTurn(payload, len(body), browser)
        if chat_id:
            browser.apply({"type": "chat_id", "chatId": chat_id})  # Sim's route's own, first

        def forward(ev: dict[str, Any]) -> None:  # Sim's route: nothing once the browser left
            if browser.closed.is_set():
                return
            turn.forwarded += 1
            browser.apply(ev)
            stop = stop_after_events is not None and turn.forwarded >= stop_after_events
            if stop or (stop_when is not None and stop_when(ev)):
                browser.stop()

        def post(call: SimToolCall, status: int, message: str, data: Any) -> None:
            self._post(turn, call, status, message, data)

        side = SimServerSide(
            seen=self.server_seen, registry=self.registry, executors=self.executors,
            executed=self.executed, decisions=browser.decisions, forward=forward, post=post,
        )  # fmt: skip
        turn.server = side.record
        turn.upstream = asyncio.create_task(self._run(turn, body, side, close_upstream_when))
        self._upstreams.add(turn.upstream)
        turn.upstream.add_done_callback(self._upstreams.discard)
        closed = asyncio.create_task(browser.closed.wait())
        await asyncio.wait({turn.upstream, closed}, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if turn.upstream.done():
            await turn.finished()
        return turn

    async def _run(
        self, turn: SimTurn, body: bytes, side: SimServerSide, close_when: EventPred | None
    ) -> None:
        """orchestrateCopilotStream / runStreamLoop."""
        srv = side.record
        headers = {"content-type": "application/json", "x-api-key": self.api_key}
        try:
            async with (
                asyncio.timeout(self.orchestration_timeout),
                self._http.stream("POST", "/api/chat-completion-streaming", content=body,
                                  headers=headers) as resp,
            ):  # fmt: skip
                turn.http_status, turn.headers = resp.status_code, dict(resp.headers)
                if not resp.is_success:
                    text = (await resp.aread()).decode(errors="replace")
                    srv.failure = f"Copilot backend error ({resp.status_code}): {text}"
                    return
                async for raw in sse_events(resp):
                    if close_when is not None and close_when(raw):
                        turn.upstream_closed = True
                        return
                    turn.events.append(raw)
                    await side.handle(raw)
                    if srv.complete:
                        return
        except TimeoutError:
            srv.errors.append("Request timed out")
            srv.complete = True
        except httpx.HTTPError as exc:
            srv.failure = f"copilot orchestration failed: {exc!r}"
        finally:
            turn.browser.end()  # the route closes the browser's stream

    def _post(self, turn: SimTurn, call: SimToolCall, status: int, message: str, data: Any) -> None:
        """markToolComplete: fired, not awaited (awaiting it could deadlock Sim's reader)."""
        body = defined({"id": call.id, "name": call.name, "status": status, "message": message,
                         "data": data})  # fmt: skip
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        mark = MarkComplete(call.id, call.name, status, message, data, len(raw))
        turn.marks.append(mark)
        task = asyncio.create_task(self._send_mark(mark, raw))
        turn.posts.add(task)
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _send_mark(self, mark: MarkComplete, raw: bytes) -> None:
        headers = {"content-type": "application/json", "x-api-key": self.api_key}
        try:
            resp = await self._http.post("/api/tools/mark-complete", content=raw, headers=headers)
        except httpx.HTTPError as exc:
            mark.answer = repr(exc)
            return
        mark.http_status = resp.status_code
        try:
            mark.answer = resp.json()
        except ValueError:
            mark.answer = resp.text
