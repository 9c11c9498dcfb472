"""What a user message brings besides its text: context items and file attachments.

- **Context** (Sim's ``context``: the user's @-mentions of workflows, blocks, logs, knowledge,
  docs, templates, past chats, already rendered to text by Sim; or the workflow state loaded
  from the host app) is kept in the user message's blocks, each item bounded, and given to the
  model ahead of the message in one stable, labelled format.
- **Attachments** (Sim's processed ``fileAttachments``: ``{type, source: {type: "base64",
  media_type, data}}``) are stored by reference (the ``attachments`` table): the message
  keeps a reference block, the bytes never enter workflow input, history or events. Each
  provider gets them in its own form (``copilot/providers/*``), or a note saying the model
  could not be given the file.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from copilot.errors import InvalidRequest

CONTEXT_ITEM_MAX_CHARS = 40_000
CONTEXT_TOTAL_MAX_CHARS = 120_000
ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS = 10

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
PDF = "application/pdf"


@dataclass
class Attachment:
    """An attachment as the model needs it; ``data`` (base64) is loaded per turn."""

    id: str
    kind: str  # image | document | audio | video
    media_type: str
    size: int
    name: str | None = None
    data: str = ""

    def text(self) -> str | None:
        """The file as text, for a text/* document (any provider can take that)."""
        if not self.media_type.startswith("text/") or not self.data:
            return None
        return base64.b64decode(self.data).decode("utf-8", errors="replace")

    def note(self, provider: str) -> str:
        label = self.name or f"a {self.kind} file"
        return (
            f"[The user attached {label} ({self.media_type}, {self.size} bytes), which "
            f"{provider} cannot be given here. Say so if it matters to the answer.]"
        )


@dataclass
class NewAttachment:
    """An attachment from a request, validated, before it is stored."""

    kind: str
    media_type: str
    data: bytes
    name: str | None = None


@dataclass
class MessageExtras:
    blocks: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[NewAttachment] = field(default_factory=list)


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters not shown]"


def context_blocks(items: Any) -> list[dict[str, Any]]:
    """Sim's ``context`` (``[{type, content}]``; ``label``/``kind`` accepted too) as bounded
    blocks. Items without text are skipped; the total is bounded too."""
    if items is None:
        return []
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise InvalidRequest("context must be a list of {type, content} items")
    blocks: list[dict[str, Any]] = []
    budget = CONTEXT_TOTAL_MAX_CHARS
    for item in items:
        if isinstance(item, str):
            item = {"type": "note", "content": item}
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if not isinstance(content, str) or not content.strip() or budget <= 0:
            continue
        text = _bounded(content, min(CONTEXT_ITEM_MAX_CHARS, budget))
        budget -= len(text)
        kind = str(item.get("type") or item.get("kind") or "context")[:40]
        block = {"type": "context", "kind": kind, "content": text}
        if isinstance(item.get("label"), str):
            block["label"] = item["label"][:200]
        blocks.append(block)
    return blocks


def parse_attachments(items: Any) -> list[NewAttachment]:
    """Sim's processed ``fileAttachments``; a bad one is a 400 saying which and why."""
    if not items:
        return []
    if not isinstance(items, list) or len(items) > MAX_ATTACHMENTS:
        raise InvalidRequest(f"fileAttachments must be a list of at most {MAX_ATTACHMENTS}")
    out = []
    for index, item in enumerate(items):
        where = f"fileAttachments[{index}]"
        source = item.get("source") if isinstance(item, dict) else None
        if not isinstance(source, dict) or source.get("type") != "base64":
            raise InvalidRequest(
                f"{where}: expected {{type, source: {{type: 'base64', media_type, data}}}}}}"
            )
        media_type = str(source.get("media_type") or "").lower()
        try:
            data = base64.b64decode(str(source.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"{where}: source.data is not base64") from None
        if not media_type or not data:
            raise InvalidRequest(f"{where}: media_type and data are required")
        if len(data) > ATTACHMENT_MAX_BYTES:
            raise InvalidRequest(f"{where}: {len(data)} bytes, over {ATTACHMENT_MAX_BYTES}")
        kind = str(item.get("type") or _kind_of(media_type))
        name = item.get("name") or item.get("filename")
        out.append(
            NewAttachment(kind[:16], media_type[:100], data, str(name)[:300] if name else None)
        )
    return out


def _kind_of(media_type: str) -> str:
    for prefix in ("image", "audio", "video"):
        if media_type.startswith(prefix + "/"):
            return prefix
    return "document"


def render_user_message(blocks: list[dict[str, Any]], content: str) -> str:
    """The user message as the model reads it: its context items first, labelled."""
    parts = []
    for block in blocks:
        if block.get("type") != "context":
            continue
        label = f' label="{block["label"]}"' if block.get("label") else ""
        parts.append(
            f'<context kind="{block.get("kind", "context")}"{label}>\n'
            f"{block.get('content', '')}\n</context>"
        )
    if not parts:
        return content
    return "\n\n".join([*parts, content])


def attachment_refs(blocks: list[dict[str, Any]]) -> list[Attachment]:
    return [
        Attachment(
            str(b["id"]),
            str(b.get("kind", "document")),
            str(b.get("media_type", "")),
            int(b.get("bytes", 0)),
            b.get("name"),
        )
        for b in blocks
        if b.get("type") == "attachment" and b.get("id")
    ]
