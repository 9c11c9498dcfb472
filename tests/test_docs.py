"""docs/api.md documents every route the app serves (the OpenAPI schema is the reference)."""

from __future__ import annotations

import re
from pathlib import Path

from api.app import create_app
from copilot.config import Settings

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
