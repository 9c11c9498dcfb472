"""OpenAI chat completions streaming (and any OpenAI-compatible server via base URL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

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
        content: list[str] = []
        reasoning: list[str] = []
        tools: dict[int, _ToolAcc] = {}
        usage = Usage()
        finish: str | None = None
        try:
            stream = await client.chat.completions.create(**kwargs)
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(
                        input_tokens=chunk.usage.prompt_tokens or 0,
                        output_tokens=chunk.usage.completion_tokens or 0,
                    )
                for choice in chunk.choices:
                    delta = choice.delta
                    extra = delta.model_extra or {}
                    thought = extra.get("reasoning_content") or extra.get("reasoning")
                    if isinstance(thought, str) and thought:
                        reasoning.append(thought)
                        await emit(Delta(kind="reasoning", text=thought))
                    if delta.content:
                        content.append(delta.content)
                        await emit(Delta(kind="content", text=delta.content))
                    for frag in delta.tool_calls or []:
                        acc = tools.get(frag.index)
                        if acc is None:
                            acc = tools[frag.index] = _ToolAcc(self._new_tool_id())
                        if frag.id:
                            acc.id = frag.id
                        if frag.function and frag.function.name:
                            acc.name += frag.function.name
                            await emit(
                                Delta(
                                    kind="tool_generating",
                                    tool_name=acc.name,
                                    tool_index=frag.index,
                                    tool_call_id=acc.our_id,
                                )
                            )
                        if frag.function and frag.function.arguments:
                            acc.args += frag.function.arguments
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except openai.APIStatusError as exc:
            raise status_error(
                self.label,
                exc.status_code,
                _detail(exc),
                parse_retry_after(exc.response.headers.get("retry-after")),
            ) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise self.unreachable(exc) from None
        except (openai.APIError, *TRANSPORT_ERRORS, ValueError) as exc:
            raise self.malformed(exc) from None
        if finish is None:
            raise self.cut_short("its final frame")
        calls = [_tool_call(acc, self.label) for _, acc in sorted(tools.items())]
        return TurnOutput(
            content="".join(content),
            tool_calls=calls,
            reasoning="".join(reasoning),
            usage=usage,
            stop_reason="tool_use" if calls else finish,
        )


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
