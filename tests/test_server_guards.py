"""What the server refuses before any route runs: foreign host names in development mode
(DNS rebinding), and listening beyond loopback with a guessable admin key."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from api.hosts import is_loopback_host
from copilot.config import Settings, SettingsError
from tests.conftest import Stack


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST:3001", True),
        ("127.0.0.1", True),
        ("127.0.0.1:3001", True),
        ("127.12.0.9:80", True),
        ("[::1]", True),
        ("[::1]:3001", True),
        ("evil.example", False),
        ("evil.example:3001", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("10.0.0.1", False),
        ("0.0.0.0:3001", False),
        ("[::ffff:7f00:1]", False),
        ("[::1]x", False),
        ("localhost:", False),
        ("localhost:80:80", False),
        ("", False),
    ],
)
def test_loopback_host_names(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


async def _console(settings: Settings, host: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(settings))  # in process: no network
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as c:
        return await c.get("/")


async def test_only_development_mode_refuses_foreign_host_names() -> None:
    dev = Settings(COPILOT_API_KEY="")
    refused = await _console(dev, "rebound.example:3001")
    assert refused.status_code == 421
    body = refused.json()
    assert body["success"] is False
    assert body["code"] == "host_not_allowed"
    assert "'rebound.example:3001'" in body["error"]
    assert "COPILOT_API_KEY" in body["error"]
    assert (await _console(dev, "localhost:3001")).status_code == 200
    secured = Settings(COPILOT_API_KEY="k" * 40)
    assert (await _console(secured, "rebound.example:3001")).status_code == 200


async def test_the_development_server_refuses_a_rebound_host_name(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    port = stack.api_url.rsplit(":", 1)[1]
    refused = await client.get("/api/health", headers={"host": f"rebound.example:{port}"})
    assert refused.status_code == 421
    assert refused.json()["code"] == "host_not_allowed"
    for name in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]"):
        assert (await client.get("/api/health", headers={"host": name})).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "copilot.example"])
def test_a_short_admin_key_is_refused_beyond_loopback(host: str) -> None:
    for key in ("k", "k" * 31):
        with pytest.raises(SettingsError) as refused:
            Settings(COPILOT_API_KEY=key).check_listen(host)
        message = str(refused.value)
        assert f"Refusing to listen on {host}" in message
        assert "shorter than 32 characters" in message
        assert "python -c 'import secrets; print(secrets.token_urlsafe(32))'" in message
    Settings(COPILOT_API_KEY="k" * 32).check_listen(host)
    with pytest.raises(SettingsError, match="without COPILOT_API_KEY"):
        Settings(COPILOT_API_KEY="").check_listen(host)  # development mode


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_takes_any_admin_key_or_none(host: str) -> None:
    Settings(COPILOT_API_KEY="k").check_listen(host)
    Settings(COPILOT_API_KEY="").check_listen(host)
