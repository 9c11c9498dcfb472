"""CPU per streamed chunk: the SDKs' pydantic chunk objects vs our raw SSE reading (issue 17).

    .venv/bin/python -m bench.provider_parse                 # 3000 chunks, 7 rounds
    .venv/bin/python -m bench.provider_parse --chunks 5000 --rounds 11

Both paths get the same recorded body (one network chunk per SSE frame, the shape and fields
the real APIs send) through the same SDK client over an in-process transport, so the figures
differ only in how the body is read: the SDK's ``create(stream=True)`` folded the way the
providers did before, against the providers' own ``_stream_turn`` today. CPU time
(``process_time``), best of the rounds, in µs per chunk; no network, no server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic
import httpx2
import openai

from copilot.providers.anthropic_provider import AnthropicProvider
from copilot.providers.base import Credentials, Delta, Provider, TurnRequest
from copilot.providers.openai_provider import OpenAIProvider

BASE = "http://provider.invalid"


def openai_body(n: int) -> list[bytes]:
    def frame(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
        chunk: dict[str, Any] = {
            "id": "chatcmpl-AbCdEf0123456789",
            "object": "chat.completion.chunk",
            "created": 1_764_460_800,
            "model": "gpt-4o-mini-2024-07-18",
            "service_tier": "default",
            "system_fingerprint": "fp_0123456789",
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": None,
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    out = [frame({"role": "assistant", "content": "", "refusal": None})]
    out += [frame({"content": f" word{i % 50}"}) for i in range(n)]
    out.append(frame({}, "stop"))
    usage = {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": n + 12}
    out.append(frame(None, usage=usage))
    out.append(b"data: [DONE]\n\n")
    return out


def anthropic_body(n: int) -> list[bytes]:
    def event(kind: str, **data: Any) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

    usage = {"input_tokens": 12, "output_tokens": 1}
    message: dict[str, Any] = {"id": "msg_01AbCdEf", "type": "message", "role": "assistant",
                               "model": "claude-bench", "content": [], "stop_reason": None,
                               "stop_sequence": None, "usage": usage}  # fmt: skip
    out = [event("message_start", message=message), event("ping")]
    out.append(event("content_block_start", index=0, content_block={"type": "text", "text": ""}))
    out += [
        event("content_block_delta", index=0, delta={"type": "text_delta", "text": f" word{i}"})
        for i in range(n)
    ]
    out.append(event("content_block_stop", index=0))
    stop = {"stop_reason": "end_turn", "stop_sequence": None}
    out.append(event("message_delta", delta=stop, usage={"output_tokens": n}))
    out.append(event("message_stop"))
    return out


def transport(body: list[bytes]) -> httpx2.MockTransport:
    async def frames() -> AsyncIterator[bytes]:
        for chunk in body:
            yield chunk

    async def handler(request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                               content=frames())  # fmt: skip

    return httpx2.MockTransport(handler)


async def _emit(_delta: Delta) -> None:
    pass


def request(model: str) -> TurnRequest:
    from copilot.providers.base import ConvMessage

    return TurnRequest(model=model, messages=[ConvMessage("user", "hi")], timeout_s=30,
                       credentials=Credentials(api_key="sk-bench", base_url=BASE))  # fmt: skip


def raw_run(provider: Provider, client: Any, model: str) -> Callable[[], Awaitable[Any]]:
    turn = request(model)
    # The provider's client cache, seeded with the in-process client for this request's key.
    provider._clients.for_request(turn, lambda: client)  # type: ignore[attr-defined]
    return lambda: provider._stream_turn(turn, _emit)


def openai_sdk_run(client: openai.AsyncOpenAI) -> Callable[[], Awaitable[Any]]:
    """The fold the OpenAI provider did over the SDK's chunk objects (before issue 17)."""

    async def run() -> Any:
        parts: list[str] = []
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        async for chunk in stream:
            if chunk.usage is not None:
                _ = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices:
                delta = choice.delta
                extra = delta.model_extra or {}
                _ = extra.get("reasoning_content") or extra.get("reasoning")
                if delta.content:
                    parts.append(delta.content)
                    await _emit(Delta(kind="content", text=delta.content))
                for _frag in delta.tool_calls or []:
                    pass
        return "".join(parts)

    return run


def anthropic_sdk_run(client: anthropic.AsyncAnthropic) -> Callable[[], Awaitable[Any]]:
    """The fold the Anthropic provider did over the SDK's event objects (before issue 17)."""

    async def run() -> Any:
        parts: list[str] = []
        stream = await client.messages.create(
            model="claude-bench", max_tokens=1024, stream=True,
            messages=[{"role": "user", "content": "hi"}],
        )  # fmt: skip
        async with stream:
            async for event in stream:
                if event.type == "content_block_start":
                    event.content_block.model_dump()
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
                    await _emit(Delta(kind="content", text=event.delta.text))
                elif event.type == "message_delta":
                    _ = event.usage.output_tokens
        return "".join(parts)

    return run


async def cpu_us_per_chunk(run: Callable[[], Awaitable[Any]], chunks: int, rounds: int) -> float:
    await run()  # warm: imports, the client's first connection, caches
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        await run()
        best = min(best, time.process_time() - start)
    return best / chunks * 1e6


async def main_async(chunks: int, rounds: int) -> None:
    oa_http = openai.DefaultAsyncHttpxClient(transport=transport(openai_body(chunks)))
    oa = openai.AsyncOpenAI(api_key="sk-bench", base_url=BASE, max_retries=0, http_client=oa_http)
    an_http = anthropic.DefaultAsyncHttpxClient(transport=transport(anthropic_body(chunks)))
    an = anthropic.AsyncAnthropic(api_key="sk-bench", base_url=BASE, max_retries=0,
                                  http_client=an_http)  # fmt: skip
    cases = [
        ("openai", openai_sdk_run(oa), raw_run(OpenAIProvider(), oa, "gpt-4o-mini")),
        ("anthropic", anthropic_sdk_run(an),
         raw_run(AnthropicProvider(), an, "claude-bench")),
    ]  # fmt: skip
    print(f"{chunks} chunks per stream, best of {rounds} rounds, CPU µs per chunk")
    print(f"{'provider':<10} {'SDK objects':>12} {'raw SSE':>10} {'ratio':>7}")
    for name, sdk, raw in cases:
        sdk_us = await cpu_us_per_chunk(sdk, chunks, rounds)
        raw_us = await cpu_us_per_chunk(raw, chunks, rounds)
        print(f"{name:<10} {sdk_us:>12.2f} {raw_us:>10.2f} {sdk_us / raw_us:>6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main_async(args.chunks, args.rounds))


if __name__ == "__main__":
    main()
