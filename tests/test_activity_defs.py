"""The activities the worker registers are exactly those the workflow calls by reference.

``copilot.activity_defs`` declares each activity once (name, input, result); the workflow
calls the declarations, the worker runs the classes in ``activities/``. A registered name
without a declaration, or an implementation whose types drifted from its declaration,
would only show as a failed run; here it fails at once.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from temporalio import activity

from activities.chats import ChatActivities
from activities.events import EventActivities
from activities.llm import LlmActivities
from activities.tools import ToolActivities
from activities.upstream import BackendActivities
from copilot import activity_defs
from worker import STEP_MODULES, registered_activities

IMPLEMENTATIONS = {
    activity_defs.LlmActivityDefs: LlmActivities,
    activity_defs.ChatActivityDefs: ChatActivities,
    activity_defs.EventActivityDefs: EventActivities,
    activity_defs.ToolActivityDefs: ToolActivities,
    activity_defs.UpstreamActivityDefs: BackendActivities,
}


def _declared() -> dict[str, activity._Definition]:
    out = {}
    for decl in activity_defs.DECLARED:
        for _, fn in inspect.getmembers(decl, inspect.isfunction):
            defn = activity._Definition.from_callable(fn)
            if defn is not None:
                out[defn.name or ""] = defn
    return out


def _registered() -> dict[str, activity._Definition]:
    # Only the definitions are read: instances need none of their dependencies.
    instances = [object.__new__(cls) for cls in IMPLEMENTATIONS.values()]
    fns = registered_activities(*instances)  # type: ignore[arg-type]
    defns = [activity._Definition.must_from_callable(fn) for fn in fns]
    names = [d.name or "" for d in defns]
    assert len(names) == len(set(names)), "an activity registered twice"
    return dict(zip(names, defns, strict=True))


def test_worker_registers_every_declaration_and_nothing_else() -> None:
    declared = _declared()
    assert len(declared) == 12
    assert set(_registered()) == set(declared)


@pytest.mark.parametrize("name", sorted(_declared()))
def test_implementation_matches_its_declaration(name: str) -> None:
    declared = _declared()[name]
    implemented = _registered()[name]
    assert implemented.arg_types == declared.arg_types
    assert implemented.ret_type == declared.ret_type


def test_each_implementation_subclasses_its_declaration() -> None:
    # So that mypy checks every override's signature against the declaration.
    for decl, impl in IMPLEMENTATIONS.items():
        assert issubclass(impl, decl)
        for attr, fn in inspect.getmembers(decl, inspect.isfunction):
            if activity._Definition.from_callable(fn) is not None:
                assert getattr(impl, attr) is not fn, f"{impl.__name__}.{attr} not implemented"


def test_every_step_module_is_passed_through() -> None:
    steps = {
        f"workflows.{p.stem}"
        for p in (Path(__file__).parent.parent / "workflows").glob("*.py")
        if p.stem not in ("__init__", "chat")
    }
    assert steps <= set(STEP_MODULES)
    assert "workflows.chat" not in STEP_MODULES
