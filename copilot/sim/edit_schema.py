"""The schema of ``edit_workflow``: the operation language the model changes workflows with.

What Sim's ``edit_workflow`` server tool reads at ``190f12fd77``
(``apps/sim/lib/copilot/tools/server/workflow/edit-workflow/``: ``operations.ts`` for each
operation, ``builders.ts`` for connections and new block ids, ``validation.ts`` for handles),
in our own words. Sim skips an operation that lacks what it needs and reports why; the
``allOf`` conditions below catch the same omissions before the call leaves this server.
"""

from __future__ import annotations

from copilot.sim.tool_schemas import WORKFLOW_ID, Schema, boolean, obj, string

_TARGET: Schema = {
    "anyOf": [
        string("Target block id."),
        obj(
            {
                "block": string("Target block id."),
                "handle": {"type": "string", "const": "target"},
            },
            "block",
        ),
    ]
}

_CONNECTIONS: Schema = {
    "type": "object",
    "description": (
        "Outgoing connections keyed by source handle: 'source' (normal output), 'error' "
        "(error path), 'if' / 'else-if-0' / 'else' for condition blocks, 'route-0', "
        "'route-1', ... for router blocks, 'loop-start-source' / 'loop-end-source' and "
        "'parallel-start-source' / 'parallel-end-source' for subflows. Each value is a "
        "target block id or a list of them."
    ),
    "additionalProperties": {
        "anyOf": [_TARGET, {"type": "array", "items": _TARGET}, {"type": "null"}]
    },
}

_INPUTS: Schema = {
    "type": "object",
    "description": (
        "Input values keyed by the input ids of get_block_config; dropdowns take an option "
        "id. Loop: loopType (for, forEach, while, doWhile), iterations, collection, condition. "
        "Parallel: parallelType (count, collection), count, collection."
    ),
}

_CHILD_BLOCK = obj(
    {
        "type": string("Block type (not loop or parallel: subflows do not nest)."),
        "name": string("Display name, unique in the workflow."),
        "inputs": _INPUTS,
        "connections": _CONNECTIONS,
        "enabled": boolean("Whether the block runs (default true)."),
        "advancedMode": boolean("Show the block's advanced inputs."),
        "triggerMode": boolean("Use the block as a trigger."),
    },
    "type",
    "name",
)

_OPERATION_PARAMS = obj(
    {
        "type": string("Block type (add, insert_into_subflow; edit changes the type)."),
        "name": string("Display name, unique in the workflow (add, insert_into_subflow, edit)."),
        "inputs": _INPUTS,
        "connections": {
            **_CONNECTIONS,
            "description": _CONNECTIONS["description"]
            + " On edit, these replace all of the block's outgoing connections.",
        },
        "nestedNodes": {
            "type": "object",
            "description": "Loop or parallel only: its child blocks keyed by new block id. "
            "When adding a loop or parallel, give its children here: its loop or parallel "
            "settings in inputs are applied with them. On edit, replaces all current children.",
            "additionalProperties": _CHILD_BLOCK,
        },
        "subflowId": string(
            "The loop or parallel block (insert_into_subflow, extract_from_subflow)."
        ),
        "enabled": boolean("Whether the block runs (add; default true)."),
        "advancedMode": boolean("Show the block's advanced inputs."),
        "triggerMode": boolean(
            "Use the block as a trigger; turning it on removes its incoming connections."
        ),
        "removeEdges": {
            "type": "array",
            "description": "Edit only: outgoing connections to remove.",
            "items": obj(
                {
                    "targetBlockId": string("Target block id."),
                    "sourceHandle": string("Source handle (default 'source')."),
                },
                "targetBlockId",
            ),
        },
    }
)


def _when(operation: str, *required: str) -> Schema:
    return {
        "if": {"properties": {"operation_type": {"const": operation}}},
        "then": {"required": ["params"], "properties": {"params": {"required": list(required)}}},
    }


EDIT_WORKFLOW = obj(
    {
        "workflowId": WORKFLOW_ID,
        "operations": {
            "type": "array",
            "minItems": 1,
            "description": "Changes applied together as one edit. Sim applies deletes, then "
            "extracts, adds, inserts and edits, whatever their order here.",
            "items": {
                **obj(
                    {
                        "operation_type": {
                            "type": "string",
                            "enum": [
                                "add",
                                "edit",
                                "delete",
                                "insert_into_subflow",
                                "extract_from_subflow",
                            ],
                        },
                        "block_id": string(
                            "The block's id. For a new block, any unique id: Sim replaces it "
                            "with a generated one and rewrites references to it in this call.",
                            minLength=1,
                        ),
                        "params": _OPERATION_PARAMS,
                    },
                    "operation_type",
                    "block_id",
                ),
                "allOf": [
                    _when("add", "type", "name"),
                    _when("insert_into_subflow", "subflowId", "type", "name"),
                    _when("extract_from_subflow", "subflowId"),
                ],
            },
        },
    },
    "operations",
)
