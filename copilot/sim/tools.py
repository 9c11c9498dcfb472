"""The catalog of Sim's own copilot tools: what the model may call when Sim is the host.

Sim's tool executor (``apps/sim/lib/copilot/orchestrator/tool-executor/index.ts`` at
``SIM_VERSION``) runs these tools on Sim's side and reports each outcome with
``mark-complete``; this server only offers them to the model and waits. Every entry says:

- ``access``: ``read`` (no side effects), ``propose`` (changes nothing in Sim, but prepares a
  step the user takes: plan mode may use it), ``edit`` (changes workflows, deployments,
  variables, keys or knowledge, runs workflows, or calls an external API);
- ``requires_confirmation``: whether Sim's own interrupt list (``INTERRUPT_TOOL_NAMES`` in
  ``orchestrator/config.ts``) holds the name; Sim asks the user before running those.

Which tools a mode offers: ``tools_for_mode``. Names are Sim's, exactly; descriptions and
schemas are ours (``tool_schemas``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from copilot.sim import tool_schemas as s
from copilot.sim.edit_schema import EDIT_WORKFLOW

SIM_VERSION = "190f12fd77"
SIM_VERSION_DATE = "2026-02-09"

Access = Literal["read", "propose", "edit"]

# Sim's interrupt list at SIM_VERSION, whole. manage_mcp_tool, manage_custom_tool,
# oauth_request_access and navigate_ui are on it but not run by Sim's executor (the hosted
# backend or the browser handles them), so they have no entry in SIM_TOOLS.
SIM_INTERRUPT_TOOLS = frozenset(
    {
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
)


@dataclass(frozen=True)
class SimTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    access: Access
    requires_confirmation: bool

    def to_client_tool(self) -> dict[str, Any]:
        """The tool as a request's ``tools`` entry (CONTRACT.md, chat request)."""
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
            "requiresConfirmation": self.requires_confirmation,
        }


def _tool(name: str, access: Access, schema: dict[str, Any], description: str) -> SimTool:
    # Schemas share parts (WORKFLOW_ID, EMPTY); each tool gets its own copy to hand out.
    text = " ".join(description.split())
    return SimTool(name, text, copy.deepcopy(schema), access, name in SIM_INTERRUPT_TOOLS)


SIM_TOOLS: tuple[SimTool, ...] = (
    # --- Blocks, integrations and documentation (read) ---
    _tool(
        "get_blocks_and_tools",
        "read",
        s.GET_BLOCKS_AND_TOOLS,
        """
        List every block type the user may add to a workflow (integrations such as Slack or
        Gmail, agents, logic, triggers, loop and parallel), each with its type id, name and a
        short description. Call it before choosing blocks instead of guessing type ids.""",
    ),
    _tool(
        "get_blocks_metadata",
        "read",
        s.GET_BLOCKS_METADATA,
        """
        Full reference for the given block types: their inputs (ids, kinds, options,
        conditions), operations with the inputs and outputs of each, outputs, credentials and
        triggers. Large: ask for the few blocks you are about to use.""",
    ),
    _tool(
        "get_block_options",
        "read",
        s.GET_BLOCK_OPTIONS,
        """
        The operations a block type offers (e.g. Gmail: send, read, search), with their ids
        and descriptions. Use an id as the block's 'operation' input and with
        get_block_config.""",
    ),
    _tool(
        "get_block_config",
        "read",
        s.GET_BLOCK_CONFIG,
        """
        The exact inputs (id, type, required, allowed option ids, default) and outputs of one
        block type, optionally for one operation or for its trigger mode. Call it before
        setting a block's inputs, and use those ids exactly.""",
    ),
    _tool(
        "get_trigger_blocks",
        "read",
        s.GET_TRIGGER_BLOCKS,
        """
        The type ids of blocks that can start a workflow (schedules, webhooks, chat, app
        events). Use it when choosing how a workflow is triggered.""",
    ),
    _tool(
        "search_documentation",
        "read",
        s.SEARCH_DOCUMENTATION,
        """
        Search Sim's documentation; returns matching passages with titles, links and
        similarity scores. Use it for how Sim features work rather than answering from
        memory.""",
    ),
    _tool(
        "search_online",
        "read",
        s.SEARCH_ONLINE,
        """
        Search the web; returns titles, links and snippets. For facts outside Sim, such as a
        third-party API's endpoints or limits.""",
    ),
    _tool(
        "get_platform_actions",
        "read",
        s.GET_PLATFORM_ACTIONS,
        """
        A quick reference of Sim's user interface: keyboard shortcuts and where common actions
        live. Use it to tell the user how to do something themselves.""",
    ),
    # --- Workflows, folders and workspaces (read) ---
    _tool(
        "get_user_workflow",
        "read",
        s.GET_USER_WORKFLOW,
        """
        The current state of a workflow (by default the one this chat is about): every block
        with its id, type, name, inputs and outgoing connections, loops and parallels with
        their children. Read it before changing a workflow and again after, to check.""",
    ),
    _tool(
        "get_workflow_from_name",
        "read",
        s.GET_WORKFLOW_FROM_NAME,
        """
        Like get_user_workflow, but finds the workflow by its name among those the user can
        access.""",
    ),
    _tool(
        "list_user_workflows",
        "read",
        s.LIST_USER_WORKFLOWS,
        """
        The workflows the user can access (id, name, workspace, folder), optionally only those
        of one workspace or folder.""",
    ),
    _tool(
        "list_user_workspaces",
        "read",
        s.LIST_USER_WORKSPACES,
        """
        The user's workspaces with their ids, names and the user's role in each.""",
    ),
    _tool(
        "list_folders",
        "read",
        s.LIST_FOLDERS,
        """
        The folders of a workspace (id, name, parent), to place or find workflows.""",
    ),
    _tool(
        "get_workflow_data",
        "read",
        s.GET_WORKFLOW_DATA,
        """
        Extra data around a workflow, by data_type: its global variables, the workspace's
        custom tools, its MCP tools (with input schemas) or its uploaded files.""",
    ),
    _tool(
        "get_block_outputs",
        "read",
        s.GET_BLOCK_OUTPUTS,
        """
        The output paths each block of a workflow exposes, written as references (e.g.
        'agent1.content'), plus the workflow variables' references. Use them as '<path>' in
        other blocks' inputs.""",
    ),
    _tool(
        "get_block_upstream_references",
        "read",
        s.GET_BLOCK_UPSTREAM_REFERENCES,
        """
        For each given block, every output and variable it may reference: the blocks upstream
        of it and, inside a loop or parallel, the subflow's own values (index, currentItem).
        Check it before wiring one block's output into another's input.""",
    ),
    _tool(
        "get_deployed_workflow_state",
        "read",
        s.GET_DEPLOYED_WORKFLOW_STATE,
        """
        The deployed version of a workflow, in the same shape as get_user_workflow, or a note
        that it has never been deployed. Compare with the draft to see undeployed changes.""",
    ),
    _tool(
        "check_deployment_status",
        "read",
        s.CHECK_DEPLOYMENT_STATUS,
        """
        Where a workflow is deployed: as an API (endpoint, date), as a chat (URL, access
        settings) and as tools on workspace MCP servers.""",
    ),
    _tool(
        "get_workflow_console",
        "read",
        s.GET_WORKFLOW_CONSOLE,
        """
        The latest executions of a workflow: status, trigger, timing, cost, output and the
        first error with the block that raised it; with includeDetails, each block's inputs
        and outputs. Start here when debugging a failed run.""",
    ),
    _tool(
        "list_workspace_mcp_servers",
        "read",
        s.LIST_WORKSPACE_MCP_SERVERS,
        """
        The MCP servers of the workflow's workspace (ids, names) with the workflow tools each
        one serves. A server id is where a deployed workflow can be offered as a tool.""",
    ),
    _tool(
        "get_credentials",
        "read",
        s.GET_CREDENTIALS,
        """
        The user's connected OAuth accounts (with credential ids to use in blocks), the
        services not yet connected, and the names of their environment variables. The result
        holds access tokens: never show or repeat them.""",
    ),
    # --- Proposals the user acts on ---
    _tool(
        "oauth_get_auth_link",
        "propose",
        s.OAUTH_GET_AUTH_LINK,
        """
        Where the user connects an account for a service (OAuth), with instructions to pass
        on. Nothing is connected until the user does it in their browser.""",
    ),
    # --- Changing workflows ---
    _tool(
        "edit_workflow",
        "edit",
        EDIT_WORKFLOW,
        """
        Change a workflow's blocks and connections with a list of operations: add, edit,
        delete, insert_into_subflow, extract_from_subflow. Saved at once. Returns the
        resulting workflow and any operation or input Sim skipped or rejected, with the
        reason: read those and fix them.""",
    ),
    _tool(
        "create_workflow",
        "edit",
        s.CREATE_WORKFLOW,
        """
        Create a new workflow with a start block; returns its id. Later tools in this chat
        use it when no workflow was open.""",
    ),
    _tool(
        "create_folder",
        "edit",
        s.CREATE_FOLDER,
        """
        Create a folder for workflows, at the top level or inside another folder; returns its
        id.""",
    ),
    _tool(
        "rename_workflow",
        "edit",
        s.RENAME_WORKFLOW,
        """
        Rename a workflow; needs its id (list_user_workflows) even for this chat's
        workflow.""",
    ),
    _tool(
        "move_workflow",
        "edit",
        s.MOVE_WORKFLOW,
        """
        Move a workflow into a folder, or to the workspace root.""",
    ),
    _tool(
        "move_folder",
        "edit",
        s.MOVE_FOLDER,
        """
        Move a folder under another folder, or to the top level.""",
    ),
    _tool(
        "set_global_workflow_variables",
        "edit",
        s.SET_GLOBAL_WORKFLOW_VARIABLES,
        """
        Add, change or delete a workflow's variables (referenced as '<variable.name>') by
        name; returns how many variables the workflow has after.""",
    ),
    # --- Running ---
    _tool(
        "run_workflow",
        "edit",
        s.RUN_WORKFLOW,
        """
        Run a workflow (the draft unless useDeployedState) with the given input; returns the
        execution id, output and block logs. It really runs: messages are sent and records
        written.""",
    ),
    _tool(
        "run_workflow_until_block",
        "edit",
        s.RUN_WORKFLOW_UNTIL_BLOCK,
        """
        Run a workflow from its start and stop after the given block; returns that partial
        run's output and logs. For testing the first part of a workflow.""",
    ),
    _tool(
        "run_from_block",
        "edit",
        s.RUN_FROM_BLOCK,
        """
        Run a workflow from the given block on, reusing the saved outputs of an earlier run
        for the blocks before it (the latest run unless executionId). Needs a previous
        run.""",
    ),
    _tool(
        "run_block",
        "edit",
        s.RUN_BLOCK,
        """
        Run one block alone, with the saved outputs of an earlier run as its upstream values.
        Needs a previous run. For testing a block after changing it.""",
    ),
    # --- Deploying ---
    _tool(
        "deploy_api",
        "edit",
        s.DEPLOY_API,
        """
        Deploy a workflow as an API (a new deployed version of the current draft) or undeploy
        it; returns the endpoint to call.""",
    ),
    _tool(
        "deploy_chat",
        "edit",
        s.DEPLOY_CHAT,
        """
        Publish a workflow as a chat page, update that deployment, or remove it; also deploys
        the workflow. Returns the chat URL.""",
    ),
    _tool(
        "deploy_mcp",
        "edit",
        s.DEPLOY_MCP,
        """
        Serve a deployed workflow as a tool on one of the workspace's MCP servers, or update
        that tool; returns the server URL.""",
    ),
    _tool(
        "redeploy",
        "edit",
        s.REDEPLOY,
        """
        Deploy the current draft of this chat's workflow again, so its API, chat and MCP
        deployments serve the latest changes.""",
    ),
    _tool(
        "create_workspace_mcp_server",
        "edit",
        s.CREATE_WORKSPACE_MCP_SERVER,
        """
        Create an MCP server in the workspace, optionally serving some deployed workflows as
        its tools.""",
    ),
    _tool(
        "generate_api_key",
        "edit",
        s.GENERATE_API_KEY,
        """
        Create a workspace API key for calling deployed workflows. The key is shown once in
        the result: give it to the user and do not repeat it afterwards.""",
    ),
    # --- Account: variables, knowledge, outside calls ---
    _tool(
        "set_environment_variables",
        "edit",
        s.SET_ENVIRONMENT_VARIABLES,
        """
        Add or update the user's personal environment variables (secrets referenced as
        '{{NAME}}' in block inputs). Values are stored encrypted.""",
    ),
    _tool(
        "knowledge_base",
        "edit",
        s.KNOWLEDGE_BASE,
        """
        Work with the user's knowledge bases: list, get, query (semantic search), create, and
        list, create, update or delete tags, or count tag usage.""",
    ),
    _tool(
        "make_api_request",
        "edit",
        s.MAKE_API_REQUEST,
        """
        Send an HTTP request (GET, POST or PUT) from Sim and return the status, headers and
        body (text, cut past about 20,000 characters). It can change things on the other
        side.""",
    ),
)

_BY_NAME = {t.name: t for t in SIM_TOOLS}

# knowledge_base as ask and plan modes offer it: its reading operations only.
KNOWLEDGE_BASE_READ = SimTool(
    "knowledge_base",
    "Look into the user's knowledge bases: list them, get one, query one (semantic search), "
    "list its tags or count how often each is used.",
    s.KNOWLEDGE_BASE_READ,
    "read",
    True,
)

_MODE_ACCESS: dict[str, frozenset[str]] = {
    "ask": frozenset({"read"}),
    "plan": frozenset({"read", "propose"}),
    "agent": frozenset({"read", "propose", "edit"}),
    "build": frozenset({"read", "propose", "edit"}),
    "chat": frozenset(),
}
MODES = tuple(_MODE_ACCESS)


def sim_tool(name: str) -> SimTool | None:
    return _BY_NAME.get(name)


def tools_for_mode(mode: str) -> list[SimTool]:
    """The tools a mode offers, in catalog order: ``ask`` reads; ``plan`` reads and proposes;
    ``agent`` and ``build`` have everything; ``chat`` has none."""
    try:
        allowed = _MODE_ACCESS[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}") from None
    out = []
    for tool in SIM_TOOLS:
        if tool.name == "knowledge_base" and allowed and "edit" not in allowed:
            out.append(KNOWLEDGE_BASE_READ)
        elif tool.access in allowed:
            out.append(tool)
    return out
