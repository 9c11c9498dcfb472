"""Input schemas (JSON Schema, draft 2020-12) of Sim's own copilot tools.

Each schema describes what Sim's tool executor reads from a call's arguments at Sim commit
``190f12fd77`` (``apps/sim/lib/copilot/orchestrator/tool-executor/`` and
``apps/sim/lib/copilot/tools/server/``), in our own words. Where Sim accepts two spellings of
one argument (``workflow_input``/``input``, ``data_type``/``dataType``) only the first is
offered, so the model has one way to say it. ``required`` lists what Sim fails without; a
``workflowId`` is optional wherever Sim falls back to the chat's current workflow.
``edit_workflow``'s schema, a small language of its own, is in ``edit_schema``.

Plain data: no I/O, nothing computed at import beyond building these dicts.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def obj(properties: Schema, *required: str) -> Schema:
    """A closed object: a misspelt argument is an error the model sees, not silently dropped."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def boolean(description: str) -> Schema:
    return {"type": "boolean", "description": description}


def id_list(description: str, *, min_items: int = 0) -> Schema:
    schema: Schema = {"type": "array", "items": {"type": "string"}, "description": description}
    if min_items:
        schema["minItems"] = min_items
    return schema


WORKFLOW_ID = string("Workflow id. Omit to use the workflow this chat is about.")
WORKSPACE_ID = string("Workspace id. Omit to use the user's most recent workspace.")
EMPTY = obj({})

# --- Blocks and documentation ------------------------------------------------------------

GET_BLOCKS_AND_TOOLS = EMPTY
GET_TRIGGER_BLOCKS = EMPTY

GET_BLOCKS_METADATA = obj(
    {"blockIds": id_list("Block types to describe, e.g. ['agent', 'slack'].", min_items=1)},
    "blockIds",
)

GET_BLOCK_OPTIONS = obj(
    {"blockId": string("Block type, e.g. 'gmail', 'loop' or 'parallel'.", minLength=1)},
    "blockId",
)

GET_BLOCK_CONFIG = obj(
    {
        "blockType": string("Block type, e.g. 'slack'.", minLength=1),
        "operation": string(
            "Operation id from get_block_options; narrows the inputs and outputs to it."
        ),
        "trigger": boolean("Describe the block used as a trigger (its trigger-mode fields)."),
    },
    "blockType",
)

SEARCH_DOCUMENTATION = obj(
    {
        "query": string("What to look up in Sim's documentation.", minLength=1),
        "topK": {"type": "integer", "minimum": 1, "description": "Most passages (default 10)."},
        "threshold": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Minimum similarity (0-1); omit for Sim's default.",
        },
    },
    "query",
)

SEARCH_ONLINE = obj(
    {
        "query": string("Web search query.", minLength=1),
        "num": {"type": "integer", "minimum": 1, "description": "Most results (default 10)."},
        "type": string("Kind of search, e.g. 'search' (default) or 'news'."),
        "gl": string("Country code for results, e.g. 'us'."),
        "hl": string("Language code for results, e.g. 'en'."),
    },
    "query",
)

GET_PLATFORM_ACTIONS = EMPTY

# --- Workflows, folders, workspaces: reading ------------------------------------------------

GET_USER_WORKFLOW = obj({"workflowId": WORKFLOW_ID})

GET_WORKFLOW_FROM_NAME = obj(
    {"workflow_name": string("The workflow's name (case-insensitive, exact).", minLength=1)},
    "workflow_name",
)

LIST_USER_WORKFLOWS = obj(
    {
        "workspaceId": string("Only workflows of this workspace."),
        "folderId": string("Only workflows in this folder."),
    }
)

LIST_USER_WORKSPACES = EMPTY

LIST_FOLDERS = obj({"workspaceId": WORKSPACE_ID})

GET_WORKFLOW_DATA = obj(
    {
        "workflowId": WORKFLOW_ID,
        "data_type": {
            "type": "string",
            "enum": ["global_variables", "custom_tools", "mcp_tools", "files"],
            "description": "What to list: the workflow's variables, the workspace's custom "
            "tools, its MCP tools, or its uploaded files.",
        },
    },
    "data_type",
)

GET_BLOCK_OUTPUTS = obj(
    {
        "workflowId": WORKFLOW_ID,
        "blockIds": id_list("Blocks to list; omit for every block of the workflow."),
    }
)

GET_BLOCK_UPSTREAM_REFERENCES = obj(
    {
        "workflowId": WORKFLOW_ID,
        "blockIds": id_list("Blocks whose reachable references to list.", min_items=1),
    },
    "blockIds",
)

GET_DEPLOYED_WORKFLOW_STATE = obj({"workflowId": WORKFLOW_ID})
CHECK_DEPLOYMENT_STATUS = obj({"workflowId": WORKFLOW_ID})

GET_WORKFLOW_CONSOLE = obj(
    {
        "workflowId": WORKFLOW_ID,
        "limit": {
            "type": "integer",
            "minimum": 1,
            "description": "How many recent executions (default 2).",
        },
        "includeDetails": boolean("Include each block's inputs, outputs and timing."),
    }
)

LIST_WORKSPACE_MCP_SERVERS = obj(
    {"workflowId": string("A workflow of the workspace to look in; omit for this chat's.")}
)

GET_CREDENTIALS = obj(
    {
        "workflowId": string(
            "Include the variables of this workflow's workspace; omit for this chat's."
        )
    }
)

# --- Workflows, folders: changing -----------------------------------------------------------

CREATE_WORKFLOW = obj(
    {
        "name": string("Name of the new workflow.", minLength=1, maxLength=200),
        "description": string("What the workflow is for.", maxLength=2000),
        "workspaceId": WORKSPACE_ID,
        "folderId": string("Folder to create it in; omit for the workspace root."),
    },
    "name",
)

CREATE_FOLDER = obj(
    {
        "name": string("Folder name.", minLength=1, maxLength=200),
        "workspaceId": WORKSPACE_ID,
        "parentId": string("Parent folder id; omit for a top-level folder."),
    },
    "name",
)

RENAME_WORKFLOW = obj(
    {
        "workflowId": string("Workflow to rename.", minLength=1),
        "name": string("New name.", minLength=1, maxLength=200),
    },
    "workflowId",
    "name",
)

MOVE_WORKFLOW = obj(
    {
        "workflowId": string("Workflow to move.", minLength=1),
        "folderId": {
            "type": ["string", "null"],
            "description": "Destination folder; null or omitted moves it to the root.",
        },
    },
    "workflowId",
)

MOVE_FOLDER = obj(
    {
        "folderId": string("Folder to move.", minLength=1),
        "parentId": {
            "type": ["string", "null"],
            "description": "New parent folder; null or omitted makes it top-level.",
        },
    },
    "folderId",
)

SET_GLOBAL_WORKFLOW_VARIABLES = obj(
    {
        "workflowId": WORKFLOW_ID,
        "operations": {
            "type": "array",
            "minItems": 1,
            "description": "Changes, applied in order, to the workflow's variables by name.",
            "items": obj(
                {
                    "operation": {"type": "string", "enum": ["add", "edit", "delete"]},
                    "name": string("Variable name.", minLength=1),
                    "value": {
                        "description": "New value (add, edit). JSON text for object and "
                        "array variables."
                    },
                    "type": {
                        "type": "string",
                        "enum": ["plain", "string", "number", "boolean", "object", "array"],
                        "description": "Value type; an edit keeps the current one if omitted.",
                    },
                },
                "operation",
                "name",
            ),
        },
    },
    "operations",
)

# --- Running -----------------------------------------------------------------------------

_WORKFLOW_INPUT: Schema = {
    "type": "object",
    "description": "Input for the start block, keyed by its input field names.",
}
_USE_DEPLOYED = boolean("Run the deployed version instead of the current draft (default false).")
_EXECUTION_ID = string("Execution whose saved block outputs to reuse; omit for the latest run.")

RUN_WORKFLOW = obj(
    {
        "workflowId": WORKFLOW_ID,
        "workflow_input": _WORKFLOW_INPUT,
        "useDeployedState": _USE_DEPLOYED,
    }
)

RUN_WORKFLOW_UNTIL_BLOCK = obj(
    {
        "workflowId": WORKFLOW_ID,
        "stopAfterBlockId": string("Block after which the run stops.", minLength=1),
        "workflow_input": _WORKFLOW_INPUT,
        "useDeployedState": _USE_DEPLOYED,
    },
    "stopAfterBlockId",
)

RUN_FROM_BLOCK = obj(
    {
        "workflowId": WORKFLOW_ID,
        "startBlockId": string("Block to start from.", minLength=1),
        "executionId": _EXECUTION_ID,
        "workflow_input": _WORKFLOW_INPUT,
        "useDeployedState": _USE_DEPLOYED,
    },
    "startBlockId",
)

RUN_BLOCK = obj(
    {
        "workflowId": WORKFLOW_ID,
        "blockId": string("The one block to run.", minLength=1),
        "executionId": _EXECUTION_ID,
        "workflow_input": _WORKFLOW_INPUT,
        "useDeployedState": _USE_DEPLOYED,
    },
    "blockId",
)

# --- Deploying ---------------------------------------------------------------------------

DEPLOY_API = obj(
    {
        "workflowId": WORKFLOW_ID,
        "action": {
            "type": "string",
            "enum": ["deploy", "undeploy"],
            "description": "Default deploy.",
        },
    }
)

DEPLOY_CHAT = obj(
    {
        "workflowId": WORKFLOW_ID,
        "action": {
            "type": "string",
            "enum": ["deploy", "undeploy"],
            "description": "Default deploy, which also updates an existing chat deployment.",
        },
        "identifier": string(
            "URL slug of the chat: lowercase letters, digits and hyphens. Required for a first "
            "deployment.",
            pattern="^[a-z0-9-]+$",
        ),
        "title": string("Chat title. Required for a first deployment."),
        "description": string("Chat description."),
        "customizations": obj(
            {
                "primaryColor": string("Brand color, e.g. '#3972F6'."),
                "welcomeMessage": string("First message the chat shows."),
            }
        ),
        "authType": {
            "type": "string",
            "enum": ["public", "password", "email", "sso"],
            "description": "Who may use the chat (default public).",
        },
        "password": string("Password, for authType password."),
        "allowedEmails": id_list("Allowed email addresses, for authType email or sso."),
        "outputConfigs": {
            "type": "array",
            "description": "Which block outputs the chat shows.",
            "items": obj(
                {
                    "blockId": string("Block id."),
                    "path": string("Output path, e.g. 'content'."),
                },
                "blockId",
                "path",
            ),
        },
    }
)

DEPLOY_MCP = obj(
    {
        "workflowId": WORKFLOW_ID,
        "serverId": string("Workspace MCP server id (list_workspace_mcp_servers).", minLength=1),
        "toolName": string("Tool name on the server; defaults to the workflow's name."),
        "toolDescription": string("Tool description; defaults to the workflow's description."),
        "parameterSchema": {
            "type": "object",
            "description": "JSON Schema of the tool's parameters.",
        },
    },
    "serverId",
)

REDEPLOY = EMPTY

CREATE_WORKSPACE_MCP_SERVER = obj(
    {
        "workflowId": string("A workflow of the workspace to create it in; omit for this chat's."),
        "name": string("Server name.", minLength=1),
        "description": string("Server description."),
        "isPublic": boolean("Whether the server is public (default false)."),
        "workflowIds": id_list("Deployed workflows of the workspace to add as tools."),
    },
    "name",
)

GENERATE_API_KEY = obj(
    {
        "name": string("Key name, unique in the workspace.", minLength=1, maxLength=200),
        "workspaceId": WORKSPACE_ID,
    },
    "name",
)

# --- Account: credentials, variables, knowledge, HTTP ---------------------------------------

OAUTH_GET_AUTH_LINK = obj(
    {"providerName": string("The service to connect, e.g. 'Google Sheets' or 'Slack'.")}
)

SET_ENVIRONMENT_VARIABLES = obj(
    {
        "variables": {
            "type": "object",
            "description": "Variables to add or update, name to value.",
            "additionalProperties": {"type": "string"},
            "minProperties": 1,
        }
    },
    "variables",
)

MAKE_API_REQUEST = obj(
    {
        "url": string("Full URL.", minLength=1),
        "method": {"type": "string", "enum": ["GET", "POST", "PUT"]},
        "queryParams": {
            "type": "object",
            "description": "Query parameters.",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
        "headers": {
            "type": "object",
            "description": "Request headers.",
            "additionalProperties": {"type": "string"},
        },
        "body": {"description": "Request body (POST, PUT): JSON value or text."},
    },
    "url",
    "method",
)

KNOWLEDGE_BASE_READ_OPERATIONS = ("list", "get", "query", "list_tags", "get_tag_usage")
KNOWLEDGE_BASE_WRITE_OPERATIONS = ("create", "create_tag", "update_tag", "delete_tag")


def knowledge_base_schema(operations: tuple[str, ...]) -> Schema:
    """The knowledge_base schema, offering only ``operations``."""
    return obj(
        {
            "operation": {"type": "string", "enum": list(operations)},
            "args": obj(
                {
                    "knowledgeBaseId": string(
                        "Knowledge base id (every operation but create and list)."
                    ),
                    "workspaceId": string("Workspace id (create; filters list)."),
                    "name": string("Name (create)."),
                    "description": string("Description (create)."),
                    "query": string("Search text (query)."),
                    "topK": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 50,
                        "description": "Most results (query; default 5).",
                    },
                    "chunkingConfig": obj(
                        {
                            "maxSize": {"type": "integer", "minimum": 100, "maximum": 4000},
                            "minSize": {"type": "integer", "minimum": 1, "maximum": 2000},
                            "overlap": {"type": "integer", "minimum": 0, "maximum": 500},
                        }
                    ),
                    "tagDefinitionId": string("Tag id (update_tag, delete_tag)."),
                    "tagDisplayName": string("Tag name (create_tag; update_tag)."),
                    "tagFieldType": {
                        "type": "string",
                        "enum": ["text", "number", "date", "boolean"],
                        "description": "Tag type (create_tag, default text; update_tag).",
                    },
                }
            ),
        },
        "operation",
    )


KNOWLEDGE_BASE = knowledge_base_schema(
    KNOWLEDGE_BASE_READ_OPERATIONS + KNOWLEDGE_BASE_WRITE_OPERATIONS
)
KNOWLEDGE_BASE_READ = knowledge_base_schema(KNOWLEDGE_BASE_READ_OPERATIONS)
