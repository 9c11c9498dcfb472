"""Anthropic Messages streaming (text, extended thinking, tool use).

Thinking blocks come back in ``TurnOutput.blocks`` with their signatures: Anthropic requires
them, unchanged, in the assistant message of a tool-use loop, so the next turn replays them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

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
        blocks: dict[int, _Block] = {}
        calls: list[ToolCall] = []
        usage = Usage()
        stop_reason: str | None = None
        stopped = False
        try:
            stream = await client.messages.create(**self._params(request))
            async with stream:
                async for event in stream:
                    if event.type == "message_start":
                        usage = _usage(event.message.usage, usage)
                    elif event.type == "content_block_start":
                        block = event.content_block
                        blocks[event.index] = current = _Block(block.type, block.model_dump())
                        if block.type == "tool_use":
                            current.call = ToolCall(
                                id=self._new_tool_id(),
                                name=block.name,
                                arguments={},
                                provider_id=block.id,
                            )
                            calls.append(current.call)
                            await emit(
                                Delta(
                                    kind="tool_generating",
                                    tool_name=block.name,
                                    tool_index=len(calls) - 1,
                                    tool_call_id=current.call.id,
                                )
                            )
                        elif block.type == "text" and block.text:
                            current.parts.append(block.text)
                            await emit(Delta(kind="content", text=block.text))
                    elif event.type == "content_block_delta":
                        await self._delta(blocks.get(event.index), event.delta, emit)
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        usage = _usage(event.usage, usage)
                    elif event.type == "message_stop":
                        stopped = True
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from None
        except (anthropic.APIConnectionError, anthropic.APITimeoutError) as exc:
            raise self.unreachable(exc) from None
        except (anthropic.APIError, *TRANSPORT_ERRORS, ValueError) as exc:
            raise self.malformed(exc) from None
        if not stopped:
            raise self.cut_short("message_stop")
        ordered = [blocks[i] for i in sorted(blocks)]
        for done in ordered:
            if done.call is not None:
                done.call.arguments = _arguments(done, self.label)
        return TurnOutput(
            content="".join("".join(b.parts) for b in ordered if b.kind == "text"),
            tool_calls=calls,
            reasoning="".join("".join(b.parts) for b in ordered if b.kind == "thinking"),
            blocks=[kept for b in ordered if (kept := _kept(b)) is not None],
            usage=usage,
            stop_reason="tool_use" if calls else _stop_reason(stop_reason),
        )

    async def _delta(self, block: _Block | None, delta: Any, emit: Emit) -> None:
        if block is None:
            raise ProviderError(
                f"{self.label} sent a delta for a content block it never started.", retryable=True
            )
        if delta.type == "text_delta":
            block.parts.append(delta.text)
            await emit(Delta(kind="content", text=delta.text))
        elif delta.type == "thinking_delta":
            block.parts.append(delta.thinking)
            await emit(Delta(kind="reasoning", text=delta.thinking))
        elif delta.type == "signature_delta":
            block.signature += delta.signature
        elif delta.type == "input_json_delta":
            block.parts.append(delta.partial_json)

    def _status_error(self, exc: anthropic.APIStatusError) -> ProviderError:
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error")
        if not isinstance(err, dict):
            err = {}
        status = exc.status_code
        if status < 300:  # an ``error`` event inside a 200 stream
            status = _ERROR_STATUS.get(str(err.get("type")), 500)
        return status_error(
            self.label,
            status,
            str(err.get("message") or exc.message),
            parse_retry_after(exc.response.headers.get("retry-after")),
        )


_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def _stop_reason(raw: str | None) -> str:
    """Anthropic's stop reasons in OpenAI's words (the ones the rest of the code knows)."""
    return _STOP.get(raw or "end_turn", raw or "stop")


def _usage(raw: Any, previous: Usage) -> Usage:
    """Anthropic reports input once (message_start) and output cumulatively (message_delta)."""
    if raw is None:
        return previous
    inputs = sum(
        getattr(raw, name, None) or 0
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    outputs = getattr(raw, "output_tokens", None) or 0
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
