"""Large tool sets kept by reference, and large tool results given to the model bounded.

Sim's build mode sends its whole registry as ``integrationTools``: about 1,500 tools, a
megabyte of schemas, each marked ``defer_loading``. A provider takes a few hundred tools per
request at most, and a model picks badly among that many anyway. So the tools a request marks
deferred (and any beyond ``MAX_OFFERED_TOOLS``) go into a **catalog**: stored once in
PostgreSQL under the hash of its content, referenced by that hash from the run (never in
workflow history: Temporal caps a payload at 2 MB). The model is offered the other tools plus
``search_integration_tools``; what a search finds is offered from the next turn on, and a call
to it is a client tool like any other (on Sim's route, Sim runs it and reports mark-complete).

Results work the same way in reverse: one over ``TOOL_RESULT_INLINE_BYTES`` is stored whole
with its tool call; the model, the events and the history get a bounded view with a note.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from copilot.types import SEARCH_TOOL, ToolSpec

__all__ = ["SEARCH_TOOL", "bounded_view", "catalog_id", "search"]

SEARCH_LIMIT_DEFAULT = 5
SEARCH_LIMIT_MAX = 15
# What a search may put in front of the model at once (names; their schemas load per turn).
MAX_LOADED = 48

SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {
            "type": "string",
            "description": "What the tool should do or which service it is for, in a few "
            "words, e.g. 'send gmail email' or 'slack post message'.",
        },
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": SEARCH_LIMIT_MAX,
            "description": f"How many tools to return (default {SEARCH_LIMIT_DEFAULT}).",
        },
    },
    "required": ["query"],
    "additionalProperties": False,
}


def search_description(size: int) -> str:
    return (
        f"Search the {size} integration tools of this workspace (email, chat, databases, "
        "CRMs, storage, …) by what they do. Returns each match's name, description and input "
        "schema; the matches can be called by name from the next step on. Search before "
        "saying a tool does not exist."
    )


def catalog_id(tools: list[ToolSpec]) -> str:
    """The catalog's key: the hash of its content (Sim sends the same one every message)."""
    canonical = json.dumps([t.to_json() for t in tools], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def search(tools: list[ToolSpec], query: str, limit: int) -> list[ToolSpec]:
    """Best matches first: query words in the tool's name count most, then in its
    description. Deterministic (ties by name)."""
    terms = [w for w in _words(query) if len(w) > 1] or _words(query)
    if not terms:
        return []
    scored: list[tuple[float, str, ToolSpec]] = []
    for tool in tools:
        name_words = set(_words(tool.name))
        name = tool.name.lower()
        described = set(_words(tool.description))
        score = 0.0
        for term in terms:
            if term in name_words:
                score += 3
            elif term in name:
                score += 2
            elif any(w.startswith(term) for w in name_words):
                score += 1.5
            if term in described:
                score += 1
        if score > 0:
            scored.append((-score, tool.name, tool))
    scored.sort(key=lambda s: (s[0], s[1]))
    return [tool for _, _, tool in scored[: max(1, min(limit, SEARCH_LIMIT_MAX))]]


def bounded_view(data: Any, *, inline_bytes: int) -> tuple[Any, int, bool]:
    """(what the model and the events get, the result's size in bytes, whether it was cut).

    A result over ``inline_bytes`` becomes its JSON text's first ``inline_bytes`` characters
    with a note; the whole result stays with the tool call
    (``GET /api/copilot/tool-calls/{id}/result``)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    size = len(text.encode())
    if size <= inline_bytes:
        return data, size, False
    view = {
        "truncated": True,
        "bytes": size,
        "preview": text[:inline_bytes],
        "note": (
            f"The result is {size} bytes; this is its first {inline_bytes} characters. Work "
            "from what is here, or ask the tool for a narrower result."
        ),
    }
    return view, size, True
