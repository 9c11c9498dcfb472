"""docker-compose.yml, .env.example and the README agree with the settings class.

There is no Docker engine here, so the compose file is checked by parsing it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from copilot.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _setting_names() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert isinstance(alias, str), "every setting is named by its environment variable"
        names.add(alias)
    return names


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_environment_names_are_settings() -> None:
    services = _compose()["services"]
    names = _setting_names()
    for role in ("api", "worker", "migrate"):
        env = services[role].get("environment", {})
        unknown = set(env) - names
        assert not unknown, f"{role} sets unknown variables {unknown}"


def test_compose_has_every_piece_and_keeps_temporal_private() -> None:
    services = _compose()["services"]
    assert set(services) >= {"postgres", "redis", "temporal", "temporal-ui", "api", "worker"}
    for name in ("temporal", "temporal-ui"):
        for port in services[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    assert "--appendonly" in services["redis"]["command"]
    readme = (ROOT / "README.md").read_text()
    for name in services:
        assert f"`{name}`" in readme, f"README does not describe compose service {name}"


def test_env_example_lists_every_setting_with_a_comment() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.M)
    assert set(listed) == _setting_names()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#?\s*[A-Z][A-Z0-9_]+=", line):
            assert i > 0
            assert lines[i - 1].startswith("#"), f"{line} has no comment above it"


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    head = readme[:1500]
    assert "make dev" in head
    assert "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()
