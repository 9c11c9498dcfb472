"""Provider-neutral content blocks <-> the conversation a provider sees.

A run's assistant message is persisted as blocks, in order, turn by turn:

    {"type": "thinking", ...}                         provider-specific, replayed as is
    {"type": "text", "text": "..."}
    {"type": "tool_use", "id": "tc_...", "name": "...", "input": {...}}
    {"type": "tool_result", "tool_use_id": "tc_...", "name": "...", "content": "...",
     "is_error": false, "status": "success"}

so any provider can rebuild the whole exchange, and a chat can switch model between messages.
"""

from __future__ import annotations

import json
from typing import Any

from copilot.attachments import attachment_refs, render_user_message
from copilot.providers.base import ConvMessage, ToolCall
from copilot.types import ToolOutcome, TurnRecord

_OUTCOME_TEXT = {
    "rejected": "The user rejected this tool call.",
    "skipped": "The user did not decide in time; the tool call was skipped.",
    "cancelled": "The tool call was cancelled.",
    "background": "The user moved this tool call to the background; its result is not awaited.",
}


def outcome_text(outcome: ToolOutcome) -> tuple[str, bool]:
    """What the model reads for a tool outcome, and whether it is an error."""
    if outcome.status == "success":
        result = outcome.result
        return (result if isinstance(result, str) else json.dumps(result)), False
    if outcome.status == "error":
        return f"Error: {outcome.error or 'the tool failed'}", True
    text = _OUTCOME_TEXT.get(outcome.status, outcome.status)
    if outcome.error:
        text = f"{text} Message: {outcome.error}"
    return text, outcome.status != "background"


def turns_to_blocks(turns: list[TurnRecord]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for turn in turns:
        blocks.extend(turn.blocks)
        if turn.content:
            blocks.append({"type": "text", "text": turn.content})
        for call in turn.tool_calls:
            blocks.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            )
        for outcome in turn.outcomes:
            text, is_error = outcome_text(outcome)
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": outcome.tool_call_id,
                    "name": outcome.name,
                    "content": text,
                    "is_error": is_error,
                    "status": outcome.status,
                }
            )
    return blocks


def blocks_to_conversation(
    role: str, blocks: list[dict[str, Any]], content: str
) -> list[ConvMessage]:
    """Expand one persisted message into provider-neutral messages."""
    if role == "user":
        return [
            ConvMessage(
                role="user",
                content=render_user_message(blocks, content),
                attachments=attachment_refs(blocks),
            )
        ]
    if role != "assistant" or not blocks:
        return [ConvMessage(role=role, content=content)] if content else []
    out: list[ConvMessage] = []
    current: ConvMessage | None = None
    for block in blocks:
        kind = block.get("type")
        if kind == "tool_result":
            current = None
            out.append(
                ConvMessage(
                    role="tool",
                    content=str(block.get("content", "")),
                    tool_call_id=str(block.get("tool_use_id")),
                    tool_name=block.get("name"),
                    is_error=bool(block.get("is_error")),
                )
            )
            continue
        if current is None:
            current = ConvMessage(role="assistant")
            out.append(current)
        if kind == "text":
            current.content += str(block.get("text", ""))
        elif kind == "tool_use":
            current.tool_calls.append(
                ToolCall(
                    id=str(block["id"]),
                    name=str(block["name"]),
                    arguments=dict(block.get("input") or {}),
                )
            )
        else:
            current.blocks.append(block)
    return [m for m in out if m.role != "assistant" or m.content or m.tool_calls or m.blocks]
