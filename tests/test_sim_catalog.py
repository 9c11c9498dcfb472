"""Sim's copilot tools, prompts and model ids (copilot.sim), checked against Sim 190f12fd77."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from copilot.providers.registry import provider_names
from copilot.sim import SIM_TOOLS, SIM_VERSION, prompt_for_mode, tools_for_mode
from copilot.sim.models import (
    SIM_DEFAULT_MODEL_ID,
    SIM_MODELS,
    AliasError,
    ModelChoice,
    parse_aliases,
    resolve_sim_model,
)
from copilot.sim.prompts import PROMPT_FILES
from copilot.sim.tools import SIM_INTERRUPT_TOOLS, sim_tool
from copilot.types import SEARCH_TOOL

ROOT = Path(__file__).resolve().parent.parent

# Every name Sim's tool executor runs itself at 190f12fd77: SERVER_TOOLS and
# SIM_WORKFLOW_TOOL_HANDLERS in apps/sim/lib/copilot/orchestrator/tool-executor/index.ts.
# (Its third branch, the integration tool registry, arrives per request as integrationTools.)
SIM_EXECUTOR_TOOLS = {
    # SERVER_TOOLS, routed by apps/sim/lib/copilot/tools/server/router.ts
    "get_blocks_and_tools",
    "get_blocks_metadata",
    "get_block_options",
    "get_block_config",
    "get_trigger_blocks",
    "edit_workflow",
    "get_workflow_console",
    "search_documentation",
    "search_online",
    "set_environment_variables",
    "get_credentials",
    "make_api_request",
    "knowledge_base",
    # SIM_WORKFLOW_TOOL_HANDLERS
    "get_user_workflow",
    "get_workflow_from_name",
    "list_user_workflows",
    "list_user_workspaces",
    "list_folders",
    "create_workflow",
    "create_folder",
    "rename_workflow",
    "move_workflow",
    "move_folder",
    "get_workflow_data",
    "get_block_outputs",
    "get_block_upstream_references",
    "run_workflow",
    "run_workflow_until_block",
    "run_from_block",
    "run_block",
    "get_deployed_workflow_state",
    "generate_api_key",
    "get_platform_actions",
    "set_global_workflow_variables",
    "deploy_api",
    "deploy_chat",
    "deploy_mcp",
    "redeploy",
    "check_deployment_status",
    "list_workspace_mcp_servers",
    "create_workspace_mcp_server",
    "oauth_get_auth_link",
}

# INTERRUPT_TOOL_NAMES in apps/sim/lib/copilot/orchestrator/config.ts at 190f12fd77.
SIM_INTERRUPT_LIST = {
    "set_global_workflow_variables",
    "run_workflow",
    "run_workflow_until_block",
    "run_from_block",
    "run_block",
    "manage_mcp_tool",
    "manage_custom_tool",
    "deploy_mcp",
    "deploy_chat",
    "deploy_api",
    "create_workspace_mcp_server",
    "set_environment_variables",
    "make_api_request",
    "oauth_request_access",
    "navigate_ui",
    "knowledge_base",
    "generate_api_key",
}

# COPILOT_MODEL_IDS in apps/sim/lib/copilot/models.ts at 190f12fd77.
SIM_MODEL_IDS = [
    "gpt-5-fast",
    "gpt-5",
    "gpt-5-medium",
    "gpt-5-high",
    "gpt-5.1-fast",
    "gpt-5.1",
    "gpt-5.1-medium",
    "gpt-5.1-high",
    "gpt-5-codex",
    "gpt-5.1-codex",
    "gpt-5.2",
    "gpt-5.2-codex",
    "gpt-5.2-pro",
    "gpt-4o",
    "gpt-4.1",
    "o3",
    "claude-4-sonnet",
    "claude-4.5-haiku",
    "claude-4.5-sonnet",
    "claude-4.6-opus",
    "claude-4.5-opus",
    "claude-4.1-opus",
    "gemini-3-pro",
]


def _names(tools: list[Any]) -> set[str]:
    return {t.name for t in tools}


def _validator(name: str) -> Draft202012Validator:
    tool = sim_tool(name)
    assert tool is not None
    return Draft202012Validator(tool.input_schema)


# --- The tool catalog -----------------------------------------------------------------------


def test_sim_version_is_the_pinned_commit() -> None:
    assert SIM_VERSION == "190f12fd77"


def test_names_are_unique_and_exactly_what_sims_executor_runs() -> None:
    names = [t.name for t in SIM_TOOLS]
    assert len(names) == len(set(names))
    assert set(names) == SIM_EXECUTOR_TOOLS


@pytest.mark.parametrize("tool", SIM_TOOLS, ids=lambda t: t.name)
def test_every_schema_is_a_valid_object_schema_with_a_description(tool: Any) -> None:
    Draft202012Validator.check_schema(tool.input_schema)
    assert tool.input_schema["type"] == "object"
    assert set(tool.input_schema.get("required", [])) <= set(tool.input_schema["properties"])
    assert tool.access in {"read", "propose", "edit"}
    assert 20 <= len(tool.description) <= 600
    assert "\n" not in tool.description
    # Serialisable as it goes to a provider or to Sim.
    json.dumps(tool.to_client_tool())


def test_requires_confirmation_follows_sims_interrupt_list() -> None:
    assert SIM_INTERRUPT_TOOLS == SIM_INTERRUPT_LIST
    for tool in SIM_TOOLS:
        assert tool.requires_confirmation == (tool.name in SIM_INTERRUPT_LIST), tool.name
    # The four on Sim's list that its executor does not run have no entry here.
    assert {
        "manage_mcp_tool",
        "manage_custom_tool",
        "oauth_request_access",
        "navigate_ui",
    } == SIM_INTERRUPT_LIST - SIM_EXECUTOR_TOOLS


def test_every_tool_sim_confirms_is_an_edit_tool() -> None:
    for tool in SIM_TOOLS:
        if tool.requires_confirmation:
            assert tool.access == "edit", tool.name


def test_modes_offer_what_they_may_use() -> None:
    ask, plan = tools_for_mode("ask"), tools_for_mode("plan")
    agent, build = tools_for_mode("agent"), tools_for_mode("build")
    assert all(t.access == "read" for t in ask)
    assert all(t.access in {"read", "propose"} for t in plan)
    assert "edit_workflow" not in _names(ask) | _names(plan)
    assert {"get_user_workflow", "get_block_config", "get_workflow_console"} <= _names(ask)
    assert _names(plan) == _names(ask) | {"oauth_get_auth_link"}
    assert _names(agent) == _names(build) == SIM_EXECUTOR_TOOLS
    assert {"edit_workflow", "run_workflow", "deploy_api"} <= _names(agent)
    assert tools_for_mode("chat") == []
    with pytest.raises(ValueError, match="unknown mode 'debug'"):
        tools_for_mode("debug")


def test_ask_and_plan_get_knowledge_base_for_reading_only() -> None:
    for mode in ("ask", "plan"):
        (kb,) = [t for t in tools_for_mode(mode) if t.name == "knowledge_base"]
        assert kb.access == "read"
        check = Draft202012Validator(kb.input_schema)
        assert check.is_valid(
            {"operation": "query", "args": {"knowledgeBaseId": "kb", "query": "q"}}
        )
        assert not check.is_valid({"operation": "create", "args": {"name": "x"}})
    (full,) = [t for t in tools_for_mode("agent") if t.name == "knowledge_base"]
    assert Draft202012Validator(full.input_schema).is_valid({"operation": "delete_tag"})


def test_edit_workflow_accepts_the_operations_sim_applies() -> None:
    check = _validator("edit_workflow")
    operations = [
        {
            "operation_type": "add",
            "block_id": "new_agent",
            "params": {
                "type": "agent",
                "name": "Summarise",
                "inputs": {"model": "claude-sonnet-4-5", "systemPrompt": "<start.input>"},
                "connections": {"source": "slack1", "error": ["notify", {"block": "log"}]},
            },
        },
        {
            "operation_type": "add",
            "block_id": "each_row",
            "params": {
                "type": "loop",
                "name": "Each row",
                "inputs": {"loopType": "forEach", "collection": "<sheet.rows>"},
                "nestedNodes": {"inner": {"type": "function", "name": "Clean", "inputs": {}}},
                "connections": {"loop-end-source": "new_agent"},
            },
        },
        {
            "operation_type": "edit",
            "block_id": "cond-1",
            "params": {
                "connections": {"if": "a", "else-if-0": "b", "else": None},
                "removeEdges": [{"targetBlockId": "old"}],
                "triggerMode": False,
            },
        },
        {"operation_type": "delete", "block_id": "old"},
        {
            "operation_type": "insert_into_subflow",
            "block_id": "x",
            "params": {"subflowId": "each_row", "type": "api", "name": "Fetch"},
        },
        {
            "operation_type": "extract_from_subflow",
            "block_id": "x",
            "params": {"subflowId": "each_row"},
        },
    ]
    assert list(check.iter_errors({"operations": operations})) == []


@pytest.mark.parametrize(
    "operation",
    [
        {"operation_type": "add", "block_id": "a", "params": {"type": "agent"}},  # no name
        {"operation_type": "add", "block_id": "a"},  # no params at all
        {
            "operation_type": "insert_into_subflow",
            "block_id": "a",
            "params": {"type": "x", "name": "X"},
        },
        {"operation_type": "extract_from_subflow", "block_id": "a", "params": {}},
        {"operation_type": "rename", "block_id": "a"},
        {"operation_type": "delete", "block_id": ""},
        {"operation_type": "edit", "block_id": "a", "params": {"position": {"x": 1}}},
        {
            "operation_type": "edit",
            "block_id": "a",
            "params": {"connections": {"source": {"block": "b", "handle": "input"}}},
        },
    ],
)
def test_edit_workflow_rejects_what_sim_would_skip(operation: dict[str, Any]) -> None:
    assert not _validator("edit_workflow").is_valid({"operations": [operation]})
    assert not _validator("edit_workflow").is_valid({"operations": []})


def test_schemas_require_what_sims_executor_fails_without() -> None:
    required = {
        t.name: set(t.input_schema.get("required", []))
        for t in SIM_TOOLS
        if t.name != "edit_workflow"
    }
    assert required["get_blocks_metadata"] == {"blockIds"}
    assert required["get_block_config"] == {"blockType"}
    assert required["run_from_block"] == {"startBlockId"}
    assert required["run_block"] == {"blockId"}
    assert required["run_workflow_until_block"] == {"stopAfterBlockId"}
    assert required["deploy_mcp"] == {"serverId"}
    assert required["make_api_request"] == {"url", "method"}
    assert required["rename_workflow"] == {"workflowId", "name"}
    assert required["get_workflow_data"] == {"data_type"}
    # Sim falls back to the chat's workflow, except where it renames or moves one.
    needs_id = {n for n, r in required.items() if "workflowId" in r}
    assert needs_id == {"rename_workflow", "move_workflow"}
    assert _validator("run_workflow").is_valid({"workflow_input": {"email": "a@b.c"}})
    assert not _validator("run_workflow").is_valid({"input": {}})  # one spelling offered
    assert not _validator("deploy_chat").is_valid({"identifier": "Has Spaces"})
    assert _validator("move_workflow").is_valid({"workflowId": "w", "folderId": None})


def test_what_ask_and_plan_see_never_names_a_tool_they_cannot_call() -> None:
    for mode in ("ask", "plan"):
        offered = tools_for_mode(mode)
        seen = json.dumps([t.to_client_tool() for t in offered])
        assert _mentioned_tools(seen) <= _names(offered), mode


def test_tools_do_not_share_schema_objects() -> None:
    a, b = sim_tool("get_user_workflow"), sim_tool("check_deployment_status")
    assert a is not None
    assert b is not None
    assert a.input_schema == b.input_schema
    assert a.input_schema is not b.input_schema


# --- Prompts --------------------------------------------------------------------------------

_ALL_TOOL_NAMES = {t.name for t in SIM_TOOLS} | {SEARCH_TOOL}


def _mentioned_tools(text: str) -> set[str]:
    return {n for n in _ALL_TOOL_NAMES if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)}


@pytest.mark.parametrize("mode", ["ask", "plan", "agent", "build"])
def test_every_prompt_loads_with_its_version(mode: str) -> None:
    text, version = prompt_for_mode(mode)
    assert version == "1 (sim 190f12fd77)"
    assert "prompt-version" not in text  # the version line is metadata, not for the model
    assert len(text) > 1500
    raw = (ROOT / "copilot/sim/prompts" / PROMPT_FILES[mode]).read_text(encoding="utf-8")
    assert raw.splitlines()[0] == "<!-- prompt-version: 1 (sim 190f12fd77) -->"
    assert '<context kind="' in text
    assert '"truncated": true' in text


@pytest.mark.parametrize("mode", ["ask", "plan", "agent"])
def test_prompts_mention_only_tools_their_mode_offers(mode: str) -> None:
    text, _ = prompt_for_mode(mode)
    offered = _names(tools_for_mode(mode)) | ({SEARCH_TOOL} if mode == "agent" else set())
    mentioned = _mentioned_tools(text)
    assert mentioned <= offered, mentioned - offered
    assert {"get_user_workflow", "get_blocks_and_tools", "get_block_config"} <= mentioned


def test_each_prompt_relies_on_the_tools_of_its_job() -> None:
    agent = _mentioned_tools(prompt_for_mode("agent")[0])
    assert {
        "edit_workflow",
        "get_user_workflow",
        "get_blocks_metadata",
        "get_block_options",
        "get_credentials",
        "oauth_get_auth_link",
        SEARCH_TOOL,
    } <= agent
    ask = _mentioned_tools(prompt_for_mode("ask")[0])
    assert {n for n in ask if n in SIM_EXECUTOR_TOOLS} <= _names(tools_for_mode("ask"))
    assert "get_workflow_console" in ask
    plan = _mentioned_tools(prompt_for_mode("plan")[0])
    assert "edit_workflow" not in plan
    assert "oauth_get_auth_link" in plan
    assert prompt_for_mode("build") == prompt_for_mode("agent")


def test_chat_mode_has_no_prompt_and_unknown_modes_fail_clearly() -> None:
    for mode in ("chat", "nope"):
        with pytest.raises(ValueError, match=f"no Sim prompt for mode '{mode}'"):
            prompt_for_mode(mode)


def test_prompt_files_are_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "sim/prompts/*.md" in pyproject["tool"]["setuptools"]["package-data"]["copilot"]
    assert {p.name for p in (ROOT / "copilot/sim/prompts").glob("*.md")} == set(
        PROMPT_FILES.values()
    )


# --- Models -----------------------------------------------------------------------------------


def test_the_model_table_covers_exactly_sims_ids() -> None:
    assert list(SIM_MODELS) == SIM_MODEL_IDS
    assert SIM_DEFAULT_MODEL_ID in SIM_MODELS
    assert {m.provider for m in SIM_MODELS.values() if m} <= set(provider_names())


@pytest.mark.parametrize("model_id", SIM_MODEL_IDS)
def test_every_sim_model_id_resolves(model_id: str) -> None:
    choice = resolve_sim_model(model_id, {})
    if model_id.startswith("gemini"):
        assert (choice.provider, choice.model) == (None, None)
        assert choice.notice is not None
        assert "SIM_MODEL_ALIASES" in choice.notice
        return
    assert choice.notice is None
    assert choice.provider == ("anthropic" if model_id.startswith("claude") else "openai")
    assert choice.model
    if choice.provider == "anthropic":
        assert re.fullmatch(r"claude-(opus|sonnet|haiku)-4-\d", choice.model), choice.model


def test_known_mappings() -> None:
    assert resolve_sim_model("claude-4.6-opus", {}) == ModelChoice("anthropic", "claude-opus-4-6")
    assert resolve_sim_model(" gpt-5-high ", {}) == ModelChoice("openai", "gpt-5", None, "high")
    assert resolve_sim_model("gpt-5.2-codex", {}).model == "gpt-5.2-codex"
    assert resolve_sim_model("o3", {}) == ModelChoice("openai", "o3")


def test_unknown_ids_get_the_default_and_a_notice() -> None:
    choice = resolve_sim_model("claude-9-mythos", {})
    assert (choice.provider, choice.model) == (None, None)
    assert choice.notice is not None
    assert "'claude-9-mythos'" in choice.notice


def test_overrides_win() -> None:
    overrides = {"gemini-3-pro": "ollama:gemma3:27b", "claude-4.6-opus": "openai:gpt-5.2"}
    assert resolve_sim_model("gemini-3-pro", overrides) == ModelChoice("ollama", "gemma3:27b")
    assert resolve_sim_model("claude-4.6-opus", overrides) == ModelChoice("openai", "gpt-5.2")
    # An id Sim may add later can be served before this table knows it.
    assert resolve_sim_model("sim-next", {"sim-next": "copilot-backend:x"}) == ModelChoice(
        "copilot-backend", "x"
    )
    with pytest.raises(AliasError):
        resolve_sim_model("o3", {"o3": "azure:o3"})


def test_parse_aliases_reads_both_formats() -> None:
    assert parse_aliases("") == {}
    assert parse_aliases("  ") == {}
    expected = {"gemini-3-pro": "ollama:gemma3:27b", "o3": "openai:o3-mini"}
    assert (
        parse_aliases('{"gemini-3-pro": "ollama:gemma3:27b", "o3": " openai : o3-mini "}')
        == expected
    )
    assert parse_aliases(" gemini-3-pro = ollama:gemma3:27b , o3=openai:o3-mini,") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"invalid JSON .* expected a JSON object"),
        ('["o3"]', r"expected a JSON object"),
        ('{"o3": 5}', r"'o3': expected a '<provider>:<model>' string, got int"),
        ("o3", r"'o3' has no '='"),
        ("o3=gpt-5", r"'o3': 'gpt-5' is not '<provider>:<model>'"),
        ("o3=azure:gpt-5", r"'o3': 'azure:gpt-5': unknown provider 'azure'; one of anthropic"),
        ("o3=openai:", r"'o3': 'openai:' is not '<provider>:<model>'"),
        ("=openai:o3", r"empty model id"),
        ("o3=openai:o3,o3=openai:o4-mini", r"'o3' is given twice"),
    ],
)
def test_parse_aliases_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(AliasError, match=message) as info:
        parse_aliases(text)
    assert str(info.value).startswith("SIM_MODEL_ALIASES: ")
    assert isinstance(info.value, ValueError)
