"""docs/api.md documents every route the app serves (the OpenAPI schema is the reference)."""

from __future__ import annotations

import re
from pathlib import Path

from api.app import create_app
from copilot.config import Settings
from copilot.events.model import EVENT_TYPES, event_type, events_table

ROOT = Path(__file__).resolve().parent.parent


def _norm(path: str) -> str:
    return re.sub(
        r"\{([a-z_A-Z]+)\}", lambda m: "{" + m.group(1).replace("_", "").lower() + "}", path
    )


def test_every_served_route_is_documented() -> None:
    schema = create_app(Settings()).openapi()
    docs = (ROOT / "docs" / "api.md").read_text()
    documented = {_norm(p) for p in re.findall(r"`(?:GET|POST|PUT|DELETE) (/[^`\s]+)`", docs)}
    served = {_norm(p) for p in schema["paths"]}
    missing = served - documented
    assert not missing, f"routes missing from docs/api.md: {sorted(missing)}"
    phantom = documented - served - {"/openapi.json"}
    assert not phantom, f"docs/api.md documents routes the app does not serve: {sorted(phantom)}"


def test_sim_guide_exists_and_names_the_settings() -> None:
    guide = (ROOT / "docs" / "sim.md").read_text()
    for word in ("SIM_AGENT_API_URL", "COPILOT_API_KEY", "/api/validate-key/generate"):
        assert word in guide


def test_the_events_table_is_the_event_types() -> None:
    """Adding an event is one type in copilot/events/model.py: its docs row is generated."""
    docs = (ROOT / "docs" / "api.md").read_text()
    found = re.search(r"<!-- events:begin -->\n(.*?)\n<!-- events:end -->", docs, re.S)
    assert found, "docs/api.md lost its events table markers"
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", found.group(1), re.M))
    assert documented == {event_type(cls) for cls in EVENT_TYPES}
    assert found.group(1) == events_table(), (
        "docs/api.md's events table is out of date; paste this between its markers:\n"
        + events_table()
    )
