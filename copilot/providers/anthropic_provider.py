"""Anthropic Messages streaming (text, extended thinking, tool use).

Thinking blocks come back in ``TurnOutput.blocks`` with their signatures: Anthropic requires
them, unchanged, in the assistant message of a tool-use loop, so the next turn replays them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import httpx2
import orjson

from copilot.attachments import IMAGE_TYPES, PDF, Attachment
from copilot.providers.base import (
    TRANSPORT_ERRORS,
    ClientCache,
    ConvMessage,
    Delta,
    Emit,
    ModelPrefix,
    Provider,
    ProviderError,
    ToolCall,
    TurnOutput,
    TurnRequest,
    new_tool_call_id,
    pair_tool_results,
    parse_retry_after,
    status_error,
)
from copilot.providers.sse import SseDecoder
from copilot.types import Usage

if TYPE_CHECKING:
    from typing import Self

    import anthropic

    from copilot.config import Settings

MIN_THINKING_BUDGET = 1024

# In-stream ``error`` events arrive on a 200 response; their type says what status it would be.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def _replayable(block: dict[str, Any]) -> dict[str, Any] | None:
    """An Anthropic block kept from an earlier turn, as the API accepts it back, or None.

    Thinking without a signature (another provider's reasoning) cannot be verified: dropped.
    """
    kind = block.get("type")
    if kind == "thinking" and block.get("signature"):
        return {
            "type": "thinking",
            "thinking": str(block.get("thinking", "")),
            "signature": str(block["signature"]),
        }
    if kind == "redacted_thinking" and block.get("data"):
        return {"type": "redacted_thinking", "data": str(block["data"])}
    return None


def to_anthropic_messages(messages: list[ConvMessage]) -> list[dict[str, Any]]:
    """Neutral history -> Messages API turns (strictly alternating user/assistant).

    Tool results become ``tool_result`` blocks of a user turn; consecutive results (parallel
    calls) share one user turn, ahead of any text the user sent next.
    """
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for msg in pair_tool_results(messages):
        if msg.role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.tool_call_id}
            if msg.content:  # optional in the API; an empty string is not
                result["content"] = msg.content
            if msg.is_error:
                result["is_error"] = True
            add("user", [result])
        elif msg.role == "assistant":
            blocks = [b for b in map(_replayable, msg.blocks) if b is not None]
            if msg.content:
                blocks.append({"type": "text", "text": msg.content})
            blocks.extend(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                for call in msg.tool_calls
            )
            if any(b["type"] in ("text", "tool_use") for b in blocks):
                add("assistant", blocks)
        elif msg.attachments:
            add(
                "user",
                [
                    *map(_anthropic_file, msg.attachments),
                    *([{"type": "text", "text": msg.content}] if msg.content else []),
                ],
            )
        elif msg.content:
            add("user", [{"type": "text", "text": msg.content}])
    return out


def _anthropic_file(att: Attachment) -> dict[str, Any]:
    """Images and PDFs as Anthropic's own blocks, text files as text documents."""
    if att.media_type in IMAGE_TYPES and att.data:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": att.media_type, "data": att.data},
        }
    if att.media_type == PDF and att.data:
        return {
            "type": "document",
            "source": {"type": "base64", "media_type": PDF, "data": att.data},
        }
    if (text := att.text()) is not None:
        document: dict[str, Any] = {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": text},
        }
        if att.name:
            document["title"] = att.name
        return document
    return {"type": "text", "text": att.note("Claude")}


class _Block:
    """One content block being streamed."""

    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        self.kind = kind
        self.data = data
        self.parts: list[str] = []
        self.signature = ""
        self.call: ToolCall | None = None


class AnthropicProvider(Provider):
    name: ClassVar[str] = "anthropic"
    label: ClassVar[str] = "Anthropic"
    model_prefixes: ClassVar[tuple[ModelPrefix, ...]] = (ModelPrefix("claude"),)
    context_windows: ClassVar[tuple[tuple[str, int], ...]] = (("claude", 200_000),)
    supports_reasoning: ClassVar[bool] = True
    supports_attachments: ClassVar[bool] = True
    api_key_setting: ClassVar[str | None] = "anthropic_api_key"
    base_url_setting: ClassVar[str | None] = "anthropic_base_url"
    byok: ClassVar[bool] = True

    def __init__(
        self, *, new_tool_id: Callable[[], str] = new_tool_call_id, thinking_budget: int = 0
    ) -> None:
        super().__init__(new_tool_id=new_tool_id)
        self._thinking_budget = max(thinking_budget, MIN_THINKING_BUDGET) if thinking_budget else 0
        # A final assistant message is continued exactly, but not with extended thinking on.
        self.supports_prefill = not self._thinking_budget
        self._clients: ClientCache[anthropic.AsyncAnthropic] = ClientCache()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, new_tool_id: Callable[[], str] = new_tool_call_id
    ) -> Self:
        return cls(new_tool_id=new_tool_id, thinking_budget=settings.anthropic_thinking_budget)

    def _client(self, request: TurnRequest) -> anthropic.AsyncAnthropic:
        import anthropic  # lazily: see Provider

        creds = request.credentials
        return self._clients.for_request(
            request,
            lambda: anthropic.AsyncAnthropic(
                api_key=creds.api_key or "not-set",
                base_url=creds.base_url,
                max_retries=0,  # Temporal owns retries
                timeout=request.timeout_s,
                # Never follows a redirect (SSRF): see base.status_error.
                http_client=anthropic.DefaultAsyncHttpxClient(follow_redirects=False),
            ),
        )

    def _params(self, request: TurnRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": to_anthropic_messages(request.messages),
            "stream": True,
        }
        if request.system:
            params["system"] = request.system
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema}
                for t in request.tools
            ]
        if self._thinking_budget:
            # max_tokens counts thinking too: the answer keeps its own budget on top.
            params["max_tokens"] = request.max_tokens + self._thinking_budget
            params["thinking"] = {"type": "enabled", "budget_tokens": self._thinking_budget}
        return params

    async def _stream_turn(self, request: TurnRequest, emit: Emit) -> TurnOutput:
        import anthropic

        client = self._client(request)
        turn = _Turn(self, emit)
        try:
            create = client.messages.with_streaming_response.create
            async with create(**self._params(request)) as resp:
                # The SDK checked the status (an error status raised on entering); the body
                # is read raw, as plain dicts, not the SDK's event objects (issue 17).
                decoder = SseDecoder()
                async for raw in resp.http_response.aiter_bytes():
                    if turn.stopped:
                        continue  # drained to the end, so the connection goes back to the pool
                    for message in decoder.feed(raw):
                        if message.event == "error":
                            raise self._stream_error(message.data, resp.headers)
                        # As the SDK: pings, nameless events and empty data carry nothing.
                        if message.event not in ("ping", "message") and message.data:
                            await turn.event(orjson.loads(message.data))
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from None
        except (anthropic.APIConnectionError, anthropic.APITimeoutError) as exc:
            raise self.unreachable(exc) from None
        except (anthropic.APIError, *TRANSPORT_ERRORS, *_MALFORMED) as exc:
            # Mid-stream transport errors as well: the SDK's stream never wrapped those.
            raise self.malformed(exc) from None
        if not turn.stopped:
            raise self.cut_short("message_stop")
        ordered = [turn.blocks[i] for i in sorted(turn.blocks)]
        for done in ordered:
            if done.call is not None:
                done.call.arguments = _arguments(done, self.label)
        return TurnOutput(
            content="".join("".join(b.parts) for b in ordered if b.kind == "text"),
            tool_calls=turn.calls,
            reasoning="".join("".join(b.parts) for b in ordered if b.kind == "thinking"),
            blocks=[kept for b in ordered if (kept := _kept(b)) is not None],
            usage=turn.usage,
            stop_reason="tool_use" if turn.calls else _stop_reason(turn.stop_reason),
        )

    def _status_error(self, exc: anthropic.APIStatusError) -> ProviderError:
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error")
        if not isinstance(err, dict):
            err = {}
        return status_error(
            self.label,
            exc.status_code,
            str(err.get("message") or exc.message),
            parse_retry_after(exc.response.headers.get("retry-after")),
        )

    def _stream_error(self, data: str, headers: Mapping[str, str]) -> ProviderError:
        """An ``error`` event inside a 200 stream: its type says what status it would be.

        Worded as the SDK's stream worded it (it raised a status error with the parsed body).
        """
        try:
            body: Any = orjson.loads(data)
            text = f"{body}"
        except orjson.JSONDecodeError:
            body, text = data, data or "Error code: 200"
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            err = {}
        return status_error(
            self.label,
            _ERROR_STATUS.get(str(err.get("type")), 500),
            str(err.get("message") or text),
            parse_retry_after(headers.get("retry-after")),
        )


class _Turn:
    """One streamed turn, folded from the raw event dicts (the wire's own shape).

    Dispatched on the data's ``type``, as the SDK does; unknown events and fields are ignored.
    A frame of the wrong shape raises a type, key or attribute error: malformed.
    """

    def __init__(self, provider: AnthropicProvider, emit: Emit) -> None:
        self._label = provider.label
        self._new_tool_id = provider._new_tool_id
        self._emit = emit
        self.blocks: dict[int, _Block] = {}
        self.calls: list[ToolCall] = []
        self.usage = Usage()
        self.stop_reason: str | None = None
        self.stopped = False

    async def event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "content_block_delta":  # first: nearly every event is one
            await self._delta(self.blocks.get(event["index"]), event["delta"])
        elif kind == "message_start":
            self.usage = _usage(event["message"].get("usage"), self.usage)
        elif kind == "content_block_start":
            await self._start(event["index"], event["content_block"])
        elif kind == "message_delta":
            self.stop_reason = event["delta"].get("stop_reason") or self.stop_reason
            self.usage = _usage(event.get("usage"), self.usage)
        elif kind == "message_stop":
            self.stopped = True

    async def _start(self, index: int, block: dict[str, Any]) -> None:
        kind = block["type"]
        self.blocks[index] = current = _Block(kind, block)
        if kind == "tool_use":
            name = block["name"]
            current.call = ToolCall(
                id=self._new_tool_id(), name=name, arguments={}, provider_id=block["id"]
            )
            self.calls.append(current.call)
            await self._emit(
                Delta(
                    kind="tool_generating",
                    tool_name=name,
                    tool_index=len(self.calls) - 1,
                    tool_call_id=current.call.id,
                )
            )
        elif kind == "text" and (text := block.get("text")):
            current.parts.append(text)
            await self._emit(Delta(kind="content", text=text))

    async def _delta(self, block: _Block | None, delta: dict[str, Any]) -> None:
        if block is None:
            raise ProviderError(
                f"{self._label} sent a delta for a content block it never started.",
                retryable=True,
            )
        kind = delta["type"]
        if kind == "text_delta":
            block.parts.append(delta["text"])
            await self._emit(Delta(kind="content", text=delta["text"]))
        elif kind == "thinking_delta":
            block.parts.append(delta["thinking"])
            await self._emit(Delta(kind="reasoning", text=delta["thinking"]))
        elif kind == "signature_delta":
            block.signature += delta["signature"]
        elif kind == "input_json_delta":
            block.parts.append(delta["partial_json"])


# A body that breaks the wire format: undecodable content, a frame that is not JSON (orjson's
# error is a ValueError), or JSON of the wrong shape (the dict walk trips over it).
_MALFORMED = (httpx2.HTTPError, ValueError, TypeError, KeyError, AttributeError)


_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def _stop_reason(raw: str | None) -> str:
    """Anthropic's stop reasons in OpenAI's words (the ones the rest of the code knows)."""
    return _STOP.get(raw or "end_turn", raw or "stop")


def _usage(raw: dict[str, Any] | None, previous: Usage) -> Usage:
    """Anthropic reports input once (message_start) and output cumulatively (message_delta)."""
    if not raw:
        return previous
    inputs = sum(
        raw.get(name) or 0
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    outputs = raw.get("output_tokens") or 0
    return Usage(
        input_tokens=max(inputs, previous.input_tokens),
        output_tokens=max(outputs, previous.output_tokens),
    )


def _kept(block: _Block) -> dict[str, Any] | None:
    if block.kind == "thinking":
        thinking = "".join(block.parts) or str(block.data.get("thinking") or "")
        signature = block.signature or str(block.data.get("signature") or "")
        return {"type": "thinking", "thinking": thinking, "signature": signature}
    if block.kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": str(block.data.get("data", ""))}
    return None


def _arguments(block: _Block, label: str) -> dict[str, Any]:
    raw = "".join(block.parts)
    if not raw.strip():
        initial = block.data.get("input")
        return dict(initial) if isinstance(initial, dict) else {}
    try:
        args = json.loads(raw)
    except json.JSONDecodeError:
        raise ProviderError(
            f"{label} sent tool input that is not JSON: {raw[:200]!r}", retryable=True
        ) from None
    return args if isinstance(args, dict) else {"value": args}
