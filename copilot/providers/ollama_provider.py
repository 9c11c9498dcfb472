"""Ollama's native ``/api/chat`` streaming (NDJSON): text, thinking and tool calls.

Ollama gives tool calls no ids and matches results to calls by order and tool name, so ids
are ours alone; they stay in our history, never in Ollama's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from copilot.attachments import IMAGE_TYPES
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
    status_error,
)
from copilot.types import Usage

if TYPE_CHECKING:
    import ollama


def to_ollama_messages(system: str | None, messages: list[ConvMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for msg in pair_tool_results(messages):
        if msg.role == "tool":
            item: dict[str, Any] = {"role": "tool", "content": msg.content}
            if msg.tool_name:
                item["tool_name"] = msg.tool_name
            out.append(item)
        elif msg.role == "assistant":
            if not msg.content and not msg.tool_calls:
                continue  # reasoning-only blocks of another provider: nothing to replay
            item = {"role": "assistant", "content": msg.content}
            if msg.tool_calls:
                item["tool_calls"] = [
                    {"function": {"name": c.name, "arguments": c.arguments}} for c in msg.tool_calls
                ]
            out.append(item)
        elif msg.content or msg.attachments:
            out.append(_ollama_user(msg))
    return out


def _ollama_user(msg: ConvMessage) -> dict[str, Any]:
    """Images go in ``images`` (vision models read them); text files inline; others a note."""
    text = [msg.content] if msg.content else []
    images = []
    for att in msg.attachments:
        if att.kind == "image" and att.media_type in IMAGE_TYPES and att.data:
            images.append(att.data)
        elif (inline := att.text()) is not None:
            text.append(f"Attached file {att.name or ''}:\n{inline}")
        else:
            text.append(att.note("this Ollama model"))
    item: dict[str, Any] = {"role": "user", "content": "\n\n".join(text)}
    if images:
        item["images"] = images
    return item


# Ollama's client splits its NDJSON with str.splitlines, which also ends a line at U+0085,
# U+2028 and U+2029. Ollama (Go's JSON encoder) escapes the last two but writes U+0085 raw, so
# a model writing one broke the stream. JSON holds them only inside strings, where the escaped
# form is the same text: they are escaped before the client splits. On bytes, because a chunk
# may end inside a character; in UTF-8 these byte sequences can mean nothing else.
_LINE_BREAKS = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)


def _unfinished(data: bytes) -> int:
    """How many trailing bytes may begin one of those sequences (kept for the next chunk)."""
    if data.endswith((b"\xc2", b"\xe2")):
        return 1
    return 2 if data.endswith(b"\xe2\x80") else 0


class _EscapedLineBreaks(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        held = b""
        async for chunk in self._inner:
            data = held + chunk
            cut = len(data) - _unfinished(data)
            data, held = data[:cut], data[cut:]
            for raw, escaped in _LINE_BREAKS:
                if raw in data:
                    data = data.replace(raw, escaped)
            if data:
                yield data
        if held:
            yield held

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _escape_line_breaks(response: httpx.Response) -> None:
    """An httpx response hook: runs before the body is read."""
    encoded = response.headers.get("content-encoding", "identity") != "identity"
    if not encoded and isinstance(response.stream, httpx.AsyncByteStream):
        response.stream = _EscapedLineBreaks(response.stream)


class OllamaProvider(Provider):
    name: ClassVar[str] = "ollama"
    label: ClassVar[str] = "Ollama"
    model_prefixes: ClassVar[tuple[ModelPrefix, ...]] = (ModelPrefix("ollama:", strip=True),)
    supports_reasoning: ClassVar[bool] = True
    supports_attachments: ClassVar[bool] = True  # images, for vision models
    # Ollama itself takes no key; a user's goes to whatever fronts it (see _client).
    base_url_setting: ClassVar[str | None] = "ollama_url"
    byok: ClassVar[bool] = True

    def __init__(self, *, new_tool_id: Callable[[], str] = new_tool_call_id) -> None:
        super().__init__(new_tool_id=new_tool_id)
        self._clients: ClientCache[ollama.AsyncClient] = ClientCache()

    def _client(self, request: TurnRequest) -> ollama.AsyncClient:
        import ollama  # lazily: see Provider

        creds = request.credentials
        # Ollama itself takes no key; one set by the user goes to whatever fronts it (a proxy,
        # ollama.com) as a bearer token.
        headers = {"authorization": f"Bearer {creds.api_key}"} if creds.api_key else None
        return self._clients.for_request(
            request,
            lambda: ollama.AsyncClient(
                host=creds.base_url,
                timeout=request.timeout_s,
                headers=headers,
                follow_redirects=False,  # SSRF: see base.status_error
                event_hooks={"response": [_escape_line_breaks]},
            ),
        )

    async def _stream_turn(self, request: TurnRequest, emit: Emit) -> TurnOutput:
        import ollama

        client = self._client(request)
        tools = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.input_schema,
                },
            }
            for t in request.tools
        ]
        content: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        usage = Usage()
        done_reason: str | None = None
        done = False
        try:
            stream = await client.chat(
                model=request.model,
                messages=to_ollama_messages(request.system, request.messages),
                tools=tools or None,
                stream=True,
                options={"num_predict": request.max_tokens},
            )
            async for part in stream:
                msg = part.message
                if msg.thinking:
                    reasoning.append(msg.thinking)
                    await emit(Delta(kind="reasoning", text=msg.thinking))
                if msg.content:
                    content.append(msg.content)
                    await emit(Delta(kind="content", text=msg.content))
                for raw in msg.tool_calls or []:
                    call = ToolCall(
                        id=self._new_tool_id(),
                        name=raw.function.name,
                        arguments=dict(raw.function.arguments or {}),
                    )
                    calls.append(call)
                    await emit(
                        Delta(
                            kind="tool_generating",
                            tool_name=call.name,
                            tool_index=len(calls) - 1,
                            tool_call_id=call.id,
                        )
                    )
                if part.done:
                    done = True
                    done_reason = part.done_reason
                    usage = Usage(
                        input_tokens=part.prompt_eval_count or 0, output_tokens=part.eval_count or 0
                    )
        except ollama.ResponseError as exc:
            if exc.status_code < 300:  # an {"error": ...} line inside a 200 stream (-1)
                raise ProviderError(
                    f"{self.label} failed mid-stream: {exc.error}", retryable=True
                ) from None
            raise status_error(self.label, exc.status_code, str(exc.error), None) from None
        except (ConnectionError, *TRANSPORT_ERRORS) as exc:
            raise self.unreachable(exc) from None
        except ValueError as exc:  # a line that is not JSON, or not a chat chunk
            raise self.malformed(exc) from None
        if not done:
            raise self.cut_short("its done chunk")
        return TurnOutput(
            content="".join(content),
            tool_calls=calls,
            reasoning="".join(reasoning),
            usage=usage,
            stop_reason="tool_use" if calls else (done_reason or "stop"),
        )
