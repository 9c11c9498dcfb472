"""Every repository under one name, for callers written before the split by aggregate.

New code imports the aggregate's module (``copilot.store.chats``, ``runs``, ``messages``,
``tool_calls``, ``stats``). Repositories flush; the caller's boundary (request, activity)
commits."""

from __future__ import annotations

from copilot.store.chats import delete_chat, get_chat, list_chats, set_conversation_id
from copilot.store.messages import (
    attachment_data,
    chat_messages,
    conversation_rows,
    run_message,
    save_assistant_message,
    set_user_context,
    user_message,
)
from copilot.store.rows import new_id, without_nul
from copilot.store.runs import (
    RunStart,
    active_run_id,
    fail_run,
    get_run,
    get_run_by_id,
    last_run,
    list_runs,
    new_run_id,
    run_summary,
    runs_of,
    start_run,
)
from copilot.store.tool_calls import get_tool_call, record_tool_calls

__all__ = [
    "RunStart",
    "active_run_id",
    "attachment_data",
    "chat_messages",
    "conversation_rows",
    "delete_chat",
    "fail_run",
    "get_chat",
    "get_run",
    "get_run_by_id",
    "get_tool_call",
    "last_run",
    "list_chats",
    "list_runs",
    "new_id",
    "new_run_id",
    "record_tool_calls",
    "run_message",
    "run_summary",
    "runs_of",
    "save_assistant_message",
    "set_conversation_id",
    "set_user_context",
    "start_run",
    "user_message",
    "without_nul",
]
