"""OpenAI chat completions streaming (and any OpenAI-compatible server via base URL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import httpx2
import orjson

from copilot.attachments import IMAGE_TYPES, PDF
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
    import openai


def to_openai_messages(system: str | None, messages: list[ConvMessage]) -> list[dict[str, Any]]:
    """Neutral history -> chat completion messages, whichever provider wrote it.

    Provider-specific blocks (Anthropic thinking) have no OpenAI form and are left out; tool
    ids are ours, so results written under Anthropic or Ollama still pair with their calls.
    """
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for msg in pair_tool_results(messages):
        if msg.role == "tool":
            out.append({"role": "tool", "tool_call_id": msg.tool_call_id, "content": msg.content})
        elif msg.role == "assistant":
            if not msg.content and not msg.tool_calls:
                continue  # e.g. thinking only: OpenAI refuses an empty assistant message
            item: dict[str, Any] = {"role": "assistant", "content": msg.content or None}
            if msg.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                    }
                    for call in msg.tool_calls
                ]
            out.append(item)
        elif msg.attachments:
            out.append({"role": "user", "content": _openai_parts(msg)})
        elif msg.content:
            out.append({"role": "user", "content": msg.content})
    return out


def _openai_parts(msg: ConvMessage) -> list[dict[str, Any]]:
    """A user message with files: images as data URLs, PDFs as file inputs, text inline."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": msg.content}] if msg.content else []
    for att in msg.attachments:
        if att.media_type in IMAGE_TYPES and att.data:
            url = f"data:{att.media_type};base64,{att.data}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif att.media_type == PDF and att.data:
            parts.append(
                {
                    "type": "file",
                    "file": {
                        "filename": att.name or "attachment.pdf",
                        "file_data": f"data:{PDF};base64,{att.data}",
                    },
                }
            )
        elif (text := att.text()) is not None:
            parts.append({"type": "text", "text": f"Attached file {att.name or ''}:\n{text}"})
        else:
            parts.append({"type": "text", "text": att.note("this OpenAI model")})
    return parts


# Sim sends "preview" for Azure OpenAI; a dated version is used when none is given.
AZURE_API_VERSION = "2024-10-21"


class _ToolAcc:
    def __init__(self, our_id: str) -> None:
        self.our_id = our_id
        self.id: str | None = None
        self.name = ""
        self.args = ""


class OpenAIProvider(Provider):
    name: ClassVar[str] = "openai"
    label: ClassVar[str] = "OpenAI"
    model_prefixes: ClassVar[tuple[ModelPrefix, ...]] = (
        ModelPrefix("gpt-"),
        ModelPrefix("o1"),
        ModelPrefix("o3"),
        ModelPrefix("o4"),
    )
    context_windows: ClassVar[tuple[tuple[str, int], ...]] = (
        ("gpt-4.1", 1_047_576),
        ("gpt-5", 400_000),
        ("gpt-4o", 128_000),
        ("gpt-4", 128_000),
        ("o1", 200_000),
        ("o3", 200_000),
        ("o4", 200_000),
    )
    supports_reasoning: ClassVar[bool] = True
    supports_attachments: ClassVar[bool] = True
    api_key_setting: ClassVar[str | None] = "openai_api_key"
    base_url_setting: ClassVar[str | None] = "openai_base_url"
    byok: ClassVar[bool] = True

    def __init__(self, *, new_tool_id: Callable[[], str] = new_tool_call_id) -> None:
        super().__init__(new_tool_id=new_tool_id)
        self._clients: ClientCache[openai.AsyncOpenAI] = ClientCache()

    def _client(self, request: TurnRequest) -> openai.AsyncOpenAI:
        import openai  # lazily: see Provider

        creds = request.credentials
        if creds.azure:
            # Azure OpenAI: the model is the deployment; the endpoint and version are the
            # request's own provider config (the SDK's Azure client builds Azure's URLs).
            return self._clients.for_request(
                request,
                lambda: openai.AsyncAzureOpenAI(
                    api_key=creds.api_key or "not-set",
                    azure_endpoint=creds.base_url or "",
                    api_version=creds.api_version or AZURE_API_VERSION,
                    max_retries=0,
                    timeout=request.timeout_s,
                    http_client=openai.DefaultAsyncHttpxClient(follow_redirects=False),
                ),
            )
        return self._clients.for_request(
            request,
            lambda: openai.AsyncOpenAI(
                api_key=creds.api_key or "not-set",
                base_url=creds.base_url,
                max_retries=0,  # Temporal owns retries
                timeout=request.timeout_s,
                # Never follows a redirect (SSRF): see base.status_error.
                http_client=openai.DefaultAsyncHttpxClient(follow_redirects=False),
            ),
        )

    async def _stream_turn(self, request: TurnRequest, emit: Emit) -> TurnOutput:
        import openai

        client = self._client(request)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": to_openai_messages(request.system, request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            kwargs["tools"] = [
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
        turn = _Turn(self._new_tool_id, emit)
        try:
            async with client.chat.completions.with_streaming_response.create(**kwargs) as resp:
                # The SDK checked the status (an error status raised on entering); the body
                # is read raw: its pydantic chunk objects cost more CPU per token than the
                # rest of the token's path together (issue 17), plain dicts are enough here.
                decoder = SseDecoder()
                async for raw in resp.http_response.aiter_bytes():
                    if turn.done:
                        continue  # drained to the end, so the connection goes back to the pool
                    for message in decoder.feed(raw):
                        if await turn.frame(message.data):
                            break
        except openai.APIStatusError as exc:
            raise status_error(
                self.label,
                exc.status_code,
                _detail(exc),
                parse_retry_after(exc.response.headers.get("retry-after")),
            ) from None
        except (openai.APIConnectionError, openai.APITimeoutError, *TRANSPORT_ERRORS) as exc:
            # Mid-stream transport errors too: the SDK's own stream wraps them as connection
            # errors, and this path reads the body itself.
            raise self.unreachable(exc) from None
        except (openai.APIError, *_MALFORMED) as exc:
            raise self.malformed(exc) from None
        if turn.finish is None:
            raise self.cut_short("its final frame")
        calls = [_tool_call(acc, self.label) for _, acc in sorted(turn.tools.items())]
        return TurnOutput(
            content="".join(turn.content),
            tool_calls=calls,
            reasoning="".join(turn.reasoning),
            usage=turn.usage,
            stop_reason="tool_use" if calls else turn.finish,
        )


class _Turn:
    """One streamed turn, folded from the raw chunk dicts (the wire's own shape).

    Unknown fields are ignored, as the SDK's models ignore them; a frame whose shape is wrong
    (a chunk that is not an object, a non-list ``choices``) raises and reads as malformed.
    """

    def __init__(self, new_tool_id: Callable[[], str], emit: Emit) -> None:
        self._new_tool_id = new_tool_id
        self._emit = emit
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tools: dict[int, _ToolAcc] = {}
        self.usage = Usage()
        self.finish: str | None = None
        self.done = False

    async def frame(self, data: str) -> bool:
        """Fold one ``data:`` payload; True at ``[DONE]`` (nothing after it counts)."""
        if data.startswith("[DONE]"):
            self.done = True
            return True
        chunk = orjson.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError(f"a chunk that is not a JSON object: {data[:100]}")
        if error := chunk.get("error"):
            # What the SDK's stream raises (APIError) for an error inside a 200 stream.
            message = error.get("message") if isinstance(error, dict) else None
            if not message or not isinstance(message, str):
                message = "An error occurred during streaming"
            raise _StreamError(message)
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage(
                input_tokens=usage.get("prompt_tokens") or 0,
                output_tokens=usage.get("completion_tokens") or 0,
            )
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            if delta:
                await self._delta(delta)
            if finish := choice.get("finish_reason"):
                self.finish = finish
        return False

    async def _delta(self, delta: dict[str, Any]) -> None:
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thought, str) and thought:
            self.reasoning.append(thought)
            await self._emit(Delta(kind="reasoning", text=thought))
        if text := delta.get("content"):
            self.content.append(text)
            await self._emit(Delta(kind="content", text=text))
        for frag in delta.get("tool_calls") or ():
            index = frag.get("index") or 0
            if not isinstance(index, int):
                raise TypeError(f"a tool call index that is not a number: {index!r}")
            acc = self.tools.get(index)
            if acc is None:
                acc = self.tools[index] = _ToolAcc(self._new_tool_id())
            if frag_id := frag.get("id"):
                acc.id = frag_id
            function = frag.get("function")
            if not function:
                continue
            if name := function.get("name"):
                acc.name += name
                await self._emit(
                    Delta(
                        kind="tool_generating",
                        tool_name=acc.name,
                        tool_index=index,
                        tool_call_id=acc.our_id,
                    )
                )
            if arguments := function.get("arguments"):
                acc.args += arguments


class _StreamError(Exception):
    """An ``error`` object inside a data frame (the server failed after the 200)."""


# A body that breaks the wire format: undecodable content, a frame that is not JSON, or JSON
# of the wrong shape (the dict walk trips with a type or attribute error).
_MALFORMED = (_StreamError, httpx2.HTTPError, ValueError, TypeError, AttributeError)


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and "message" in err:
            return str(err["message"])
    return str(exc.message)


def _tool_call(acc: _ToolAcc, label: str) -> ToolCall:
    try:
        args = json.loads(acc.args) if acc.args.strip() else {}
    except json.JSONDecodeError:
        raise ProviderError(
            f"{label} sent tool call arguments that are not JSON: {acc.args[:200]!r}",
            retryable=True,
        ) from None
    if not isinstance(args, dict):
        args = {"value": args}
    return ToolCall(id=acc.our_id, name=acc.name, arguments=args, provider_id=acc.id)
