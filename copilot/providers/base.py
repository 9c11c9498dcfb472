"""The provider interface: stream one turn of a normalised conversation.

A provider turns ``TurnRequest`` (messages, tool specs, model, credentials) into a stream of
``Delta`` callbacks and a final ``TurnOutput``. It never retries: Temporal owns retries, so
every SDK client is built with ``max_retries=0`` and every failure is raised as a
``ProviderError`` that says whether a retry can help and after how long.

``Provider`` is the class every provider subclasses, built-in or shipped as its own package
(registered under the ``durable_copilot.providers`` entry point group, see
``copilot.providers.plugins``). Everything the rest of the server needs to know about a
provider is declared on the class: its name, the model prefixes that route to it, context
windows, capabilities, where its server-side credentials live in ``Settings``, whether users
may store their own key. Callers ask these, never the provider's name.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import httpx
import httpx2

from copilot.attachments import Attachment

# The tool types are the ground's (one type from providers to the store); re-exported here.
from copilot.types import ToolCall as ToolCall
from copilot.types import ToolSpec as ToolSpec
from copilot.types import Usage

if TYPE_CHECKING:
    from typing import Self

    from copilot.config import Settings

C = TypeVar("C")

# A connection that breaks mid-stream surfaces as the transport's own error: the SDKs wrap only
# the request itself. Current openai/anthropic SDKs ride on httpx2, older ones and ollama on httpx.
TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)


@dataclass
class ConvMessage:
    """A provider-neutral message.

    ``role``: ``user``, ``assistant`` or ``tool``. Assistant messages may carry tool calls and
    provider-specific ``blocks`` (e.g. Anthropic thinking blocks with their signatures), tool
    messages a ``tool_call_id`` and the result text.
    """

    role: str
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    tool_name: str | None = None
    is_error: bool = False
    blocks: list[dict[str, Any]] = field(default_factory=list)
    # User messages: files the user attached (``copilot.attachments``), data loaded per turn.
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class Credentials:
    api_key: str | None
    base_url: str | None
    # A request's own provider config (Sim's ``provider``): Azure's API version and client.
    api_version: str | None = None
    azure: bool = False


@dataclass
class TurnRequest:
    model: str
    messages: list[ConvMessage]
    credentials: Credentials
    system: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    max_tokens: int = 4096
    timeout_s: float = 120.0


@dataclass
class Delta:
    kind: str  # "content" | "reasoning" | "tool_generating"
    text: str = ""
    tool_name: str | None = None
    tool_index: int | None = None
    tool_call_id: str | None = None  # ours, minted when the call starts streaming


@dataclass
class TurnOutput:
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "stop"


Emit = Callable[[Delta], Awaitable[None]]


class ClientCache(Generic[C]):
    """SDK clients kept per (key, base URL): their connection pools outlive one call, so a
    turn does not pay a TCP/TLS handshake. Bounded; the oldest client is dropped first (its
    connections close when it is garbage-collected)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._clients: OrderedDict[Hashable, C] = OrderedDict()

    def for_request(self, request: TurnRequest, build: Callable[[], C]) -> C:
        """The client for a request's credentials and timeout (every field that shapes one)."""
        creds = request.credentials
        key = (creds.api_key, creds.base_url, creds.api_version, creds.azure, request.timeout_s)
        return self.get(key, build)

    def get(self, key: Hashable, build: Callable[[], C]) -> C:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = build()
            while len(self._clients) > self._size:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(key)
        return client


class ProviderError(Exception):
    """A provider call failed. ``retryable`` says whether the same call may succeed later."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
        code: str = "provider_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.code = code


def new_tool_call_id() -> str:
    return f"tc_{uuid.uuid4()}"


@dataclass(frozen=True)
class ModelPrefix:
    """A model-name prefix that routes to a provider. ``strip``: the prefix is ours only and
    is removed from the name sent to the provider (``ollama:llama3`` is ``llama3`` to Ollama)."""

    prefix: str
    strip: bool = False


DEFAULT_CONTEXT_WINDOW = 128_000


class Provider(ABC):
    """One provider: declarations on the class, streaming on the instance.

    Subclasses set the class attributes and implement ``_stream_turn``; ``stream_turn`` wraps
    it so that no error text leaves with the key in it. The worker builds one instance per
    provider (``from_settings``); the API reads only the class attributes (routing, windows),
    which is why provider modules import their SDK lazily: the API never streams a turn and
    should not pay a second of SDK imports for it.
    """

    name: ClassVar[str]  # as in requests (``provider``), settings and the entry point
    label: ClassVar[str]  # in messages users read
    # Model-name prefixes that pick this provider; the longest match over all providers wins.
    model_prefixes: ClassVar[tuple[ModelPrefix, ...]] = ()
    # Context windows (tokens) by model-name prefix; the longest match wins.
    context_windows: ClassVar[tuple[tuple[str, int], ...]] = ()
    default_context_window: ClassVar[int] = DEFAULT_CONTEXT_WINDOW
    # --- capabilities, so callers never switch on the name ---
    supports_tools: ClassVar[bool] = True
    supports_reasoning: ClassVar[bool] = False
    # Images and files in user messages (a provider without it gets a note in their place).
    supports_attachments: ClassVar[bool] = False
    # Does it continue a final assistant message exactly (a retried turn resumes)? An
    # instance attribute: it may depend on configuration (Anthropic's extended thinking).
    supports_prefill: bool = False
    # It runs the whole agent loop itself (an upstream copilot backend): a run goes through
    # the upstream path (``ChatRunInput.upstream_loop``), never through ``stream_turn``.
    runs_agent_loop: ClassVar[bool] = False
    # --- credentials ---
    # The ``Settings`` fields holding the server's own key and base URL for this provider.
    api_key_setting: ClassVar[str | None] = None
    base_url_setting: ClassVar[str | None] = None
    # May users store their own key and base URL (``PUT /api/copilot/keys/{provider}``)?
    byok: ClassVar[bool] = False

    def __init__(self, *, new_tool_id: Callable[[], str] = new_tool_call_id) -> None:
        self._new_tool_id = new_tool_id

    @classmethod
    def from_settings(
        cls, settings: Settings, *, new_tool_id: Callable[[], str] = new_tool_call_id
    ) -> Self:
        """Built once per worker. Override to read provider-specific settings."""
        return cls(new_tool_id=new_tool_id)

    @classmethod
    def server_credentials(cls, settings: Settings) -> Credentials:
        """The server's own credentials (used when the user has none)."""
        key = getattr(settings, cls.api_key_setting, None) if cls.api_key_setting else None
        url = getattr(settings, cls.base_url_setting, None) if cls.base_url_setting else None
        if key is not None and hasattr(key, "get_secret_value"):
            key = key.get_secret_value()
        return Credentials(api_key=key or None, base_url=url or None)

    @classmethod
    def unavailable(cls, settings: Settings) -> str | None:
        """Why this server cannot route a model here (what to configure), or None."""
        return None

    async def stream_turn(self, request: TurnRequest, emit: Emit) -> TurnOutput:
        try:
            return await self._stream_turn(request, emit)
        except ProviderError as exc:
            redact(exc, request.credentials.api_key)
            raise

    @abstractmethod
    async def _stream_turn(self, request: TurnRequest, emit: Emit) -> TurnOutput:
        """Stream one turn; raise ``ProviderError`` (the key is redacted by the caller)."""

    # The errors every provider raises alike, worded once.
    def unreachable(self, exc: BaseException) -> ProviderError:
        return ProviderError(f"{self.label} could not be reached: {exc}", retryable=True)

    def malformed(self, exc: BaseException) -> ProviderError:
        return ProviderError(
            f"{self.label} sent a malformed or broken stream: {str(exc)[:300]}", retryable=True
        )

    def cut_short(self, missing: str) -> ProviderError:
        return ProviderError(
            f"{self.label} ended the stream before {missing} (cut mid-answer).", retryable=True
        )


def status_error(
    label: str, status: int, detail: str, retry_after_s: float | None
) -> ProviderError:
    """Map an HTTP status from a provider to a ``ProviderError`` whose text says what to fix."""
    detail = detail.strip()[:300]
    if 300 <= status < 400:
        # Provider clients never follow redirects: a user's base URL is checked against SSRF
        # (copilot.netguard), but a redirect could lead anywhere (cloud metadata, a loopback
        # port), and POST bodies carry the user's key and conversation.
        return ProviderError(
            f"{label} answered with a redirect ({status}), and provider requests do not follow "
            "redirects. Set the base URL to the address it redirects to.",
            retryable=False,
            status=status,
            code="provider_redirect",
        )
    if status in (401, 403):
        return ProviderError(
            f"{label} rejected the API key for this user ({status}). Set a valid key with "
            f"PUT /api/copilot/keys/<provider> or in the server's environment.",
            retryable=False,
            status=status,
            code="provider_auth",
        )
    if status == 404:
        return ProviderError(
            f"{label} does not know this model or endpoint (404): {detail}",
            retryable=False,
            status=status,
            code="provider_not_found",
        )
    if status == 429:
        return ProviderError(
            f"{label} is rate limiting requests (429); retrying.",
            retryable=True,
            status=status,
            retry_after_s=retry_after_s,
            code="provider_rate_limited",
        )
    if status >= 500:
        return ProviderError(
            f"{label} failed with {status}: {detail}",
            retryable=True,
            status=status,
            retry_after_s=retry_after_s,
        )
    return ProviderError(
        f"{label} rejected the request ({status}): {detail}",
        retryable=False,
        status=status,
        code="provider_bad_request",
    )


def redact(exc: ProviderError, secret: str | None) -> None:
    """Scrub the key from an error's text: some servers echo a rejected key back, and the text
    travels on into workflow history, events and logs."""
    if secret and len(secret) >= 4 and secret in exc.message:
        exc.message = exc.message.replace(secret, "[redacted]")
        exc.args = (exc.message,)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


MISSING_RESULT = "No result was recorded for this tool call."


def pair_tool_results(messages: list[ConvMessage]) -> list[ConvMessage]:
    """Every tool call answered right after its assistant message, and no orphan results.

    OpenAI and Anthropic both refuse a history where a tool call lacks its result (a run cut
    short between the two) or a result names no earlier call; any provider's history must be
    replayable by any other, so the gaps are closed here rather than failing the next turn.
    """
    out: list[ConvMessage] = []
    open_calls: dict[str, ToolCall] = {}

    def close() -> None:
        for call in open_calls.values():
            out.append(
                ConvMessage(
                    role="tool",
                    content=MISSING_RESULT,
                    tool_call_id=call.id,
                    tool_name=call.name,
                    is_error=True,
                )
            )
        open_calls.clear()

    for msg in messages:
        if msg.role == "tool":
            if open_calls.pop(msg.tool_call_id or "", None) is not None:
                out.append(msg)
            continue
        close()
        out.append(msg)
        if msg.role == "assistant":
            open_calls = {call.id: call for call in msg.tool_calls}
    close()
    return out
