"""Providers as plugins: a third-party package registers a provider under the
``durable_copilot.providers`` entry point group, and the server finds, routes to and streams
through it, with no change to the server's code.

The package is written at test time: a module and a ``*.dist-info`` folder (``METADATA``,
``entry_points.txt``) in a directory put on ``sys.path``, which is all ``importlib.metadata``
needs to discover it, exactly as for a pip-installed package. It registers:
- ``acme``: an OpenAI-compatible vendor with its own prefix, context window and settings;
- ``echo``: the smallest provider there is (no SDK), streaming its input back;
- ``broken``: a module that does not exist (logged and skipped, never fatal), and
  ``halfdone``, a class that never implemented streaming, and ``typo``, which reads a setting
  that does not exist (the same);
- ``openai``: an attempt to take a built-in's name (refused: it would get users' keys);
- ``anthropic``: the built-in's own target, as our installed pyproject declares it (no error).
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from api.schemas import ChatRequest, SimChatRequest
from copilot.config import Settings
from copilot.errors import InvalidRequest
from copilot.providers import plugins
from copilot.providers.base import (
    ConvMessage,
    Credentials,
    Delta,
    ProviderError,
    TurnRequest,
)
from copilot.providers.copilot_backend_provider import CopilotBackendProvider
from copilot.providers.openai_provider import OpenAIProvider
from copilot.providers.registry import (
    ProviderRegistry,
    byok_providers,
    context_window,
    provider_names,
    route_model,
    routes_by_name,
)
from copilot.sim.models import parse_target
from tests.conftest import Services, provider_requests, running_stack, scenario, sent_key
from tests.fakes.provider import FakeProviderServer
from tests.sse import Frame, collect

ROOT = Path(__file__).resolve().parent.parent

PROVIDER_MODULE = '''
"""Acme AI: an OpenAI-compatible vendor, shipped as its own package."""
import functools

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from copilot.providers import (
    Credentials, Delta, ModelPrefix, Provider, ProviderError, TurnOutput,
)
from copilot.providers.openai_provider import OpenAIProvider


class AcmeSettings(BaseSettings):
    """The plugin's own settings, read once per process like the server's."""

    base_url: str | None = Field(None, validation_alias="ACME_BASE_URL")
    api_key: SecretStr | None = Field(None, validation_alias="ACME_API_KEY")


@functools.cache
def acme_settings() -> AcmeSettings:
    return AcmeSettings()


class AcmeProvider(OpenAIProvider):
    name = "acme"
    label = "Acme AI"
    model_prefixes = (ModelPrefix("acme:", strip=True),)
    context_windows = (("rocket-2", 654_321), ("rocket", 321_000))
    default_context_window = 32_000
    supports_attachments = False
    byok = True

    @classmethod
    def server_credentials(cls, settings):
        own = acme_settings()
        key = own.api_key.get_secret_value() if own.api_key else None
        return Credentials(api_key=key, base_url=own.base_url)


class EchoProvider(Provider):
    """The whole interface: declarations, and one turn streamed."""

    name = "echo"
    label = "Echo"
    model_prefixes = (ModelPrefix("echo-"),)
    supports_tools = False

    async def _stream_turn(self, request, emit):
        text = request.messages[-1].content
        if text == "fail":
            raise ProviderError(f"bad key {request.credentials.api_key}", retryable=False)
        words = text.split() + [f"({len(request.tools)} tools)"]
        for word in words:
            await emit(Delta(kind="content", text=word))
        return TurnOutput(content=" ".join(words))


class HalfDone(Provider):
    name = "halfdone"
    label = "Half done"


class Typo(EchoProvider):
    name = "typo"
    api_key_setting = "typo_api_kee"
'''

ENTRY_POINTS = """
[durable_copilot.providers]
acme = acme_copilot.provider:AcmeProvider
echo = acme_copilot.provider:EchoProvider
broken = acme_copilot.missing:Nothing
halfdone = acme_copilot.provider:HalfDone
typo = acme_copilot.provider:Typo
openai = acme_copilot.provider:AcmeProvider
anthropic = copilot.providers.anthropic_provider:AnthropicProvider
"""


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The third-party package, importable and discoverable while this module's tests run."""
    root = tmp_path_factory.mktemp("site")
    package = root / "acme_copilot"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "provider.py").write_text(textwrap.dedent(PROVIDER_MODULE))
    dist = root / "acme_copilot-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-copilot\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        plugins.refresh()


@pytest.fixture
def installed(plugin_dir: Path, caplog: pytest.LogCaptureFixture) -> plugins.Catalog:
    with caplog.at_level(logging.ERROR, logger="copilot.providers.plugins"):
        return plugins.refresh()


def test_the_registry_finds_the_plugin_and_skips_what_is_broken(
    plugin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="copilot.providers.plugins"):
        found = plugins.refresh()
    names = provider_names()
    assert names[:4] == ("anthropic", "openai", "ollama", "copilot-backend")
    assert set(names[4:]) == {"acme", "echo"}
    assert "acme" in byok_providers()
    assert "echo" not in byok_providers()
    # The broken one: skipped, logged with its cause, and named as such when asked for.
    assert "broken" not in found.providers
    assert "ModuleNotFoundError" in found.failures["broken"].error
    assert "abstract: implement _stream_turn" in found.failures["halfdone"].error
    assert "'typo_api_kee', which Settings does not have" in found.failures["typo"].error
    messages = [r.getMessage() for r in caplog.records]
    assert any("'broken'" in m and "acme-copilot" in m and "skipped" in m for m in messages)
    with pytest.raises(InvalidRequest, match=r"'broken'.*failed to load"):
        route_model("x", "broken", Settings())
    # A built-in's name stays the built-in's.
    assert found.providers["openai"] is OpenAIProvider
    assert any("'openai'" in m and "ignored" in m for m in messages)
    assert not any("'anthropic'" in m for m in messages)  # the same target twice: no conflict


def test_a_plugins_prefix_routes_and_its_windows_count(installed: plugins.Catalog) -> None:
    settings = Settings()
    route = route_model("acme:rocket-2-mini", None, settings)
    assert (route.provider, route.provider_model, route.runs_agent_loop) == (
        "acme",
        "rocket-2-mini",
        False,
    )
    assert route_model("echo-1", None, settings).provider == "echo"
    assert route_model("anything", "acme", settings).provider == "acme"
    assert routes_by_name("acme:x")
    assert not routes_by_name("acme-x")
    assert context_window("acme:rocket-2-mini") == 654_321  # the longest prefix wins
    assert context_window("acme:rocket-1") == 321_000
    assert context_window("acme:other") == 32_000  # the plugin's own default
    assert context_window("claude-sonnet-4") == 200_000  # built-ins unchanged
    assert parse_target("acme:rocket") == ("acme", "rocket")  # SIM_MODEL_ALIASES


def test_settings_and_requests_accept_exactly_the_registered_names(
    installed: plugins.Catalog,
) -> None:
    assert Settings(DEFAULT_PROVIDER="acme").default_provider == "acme"
    with pytest.raises(ValidationError, match="unknown provider 'nope'"):
        Settings(DEFAULT_PROVIDER="nope")
    with pytest.raises(ValidationError, match=r"'broken'.*failed to load"):
        Settings(DEFAULT_PROVIDER="broken")
    assert ChatRequest(message="hi", provider="acme").provider == "acme"
    with pytest.raises(ValidationError, match="unknown provider"):
        ChatRequest(message="hi", provider="nope")
    schema = ChatRequest.model_json_schema(by_alias=True)
    enum = schema["properties"]["provider"]["anyOf"][0]["enum"]
    assert enum == list(provider_names())
    # Sim's provider config naming a model provider keeps it; the agent-loop one never.
    request, _, _ = SimChatRequest(message="hi", provider={"provider": "acme"}).native()
    assert request.provider == "acme"
    request, _, _ = SimChatRequest(message="hi", provider={"provider": "copilot-backend"}).native()
    assert request.provider is None


async def test_the_smallest_provider_streams_and_its_key_is_redacted(
    installed: plugins.Catalog,
) -> None:
    echo = ProviderRegistry(Settings()).get("echo")
    seen: list[str] = []

    async def emit(delta: Delta) -> None:
        seen.append(delta.text)

    def request(text: str) -> TurnRequest:
        creds = Credentials(api_key="sk-echo-secret", base_url=None)
        return TurnRequest("echo-1", [ConvMessage(role="user", content=text)], creds)

    output = await echo.stream_turn(request("one two  three"), emit)
    assert seen == ["one", "two", "three", "(0 tools)"]
    assert output.content == "one two three (0 tools)"
    with pytest.raises(ProviderError) as caught:
        await echo.stream_turn(request("fail"), emit)
    assert caught.value.message == "bad key [redacted]"  # the base class redacts for everyone


def test_builtins_declare_credentials_capabilities_and_the_upstream_loop() -> None:
    settings = Settings(
        OPENAI_API_KEY="sk-openai",
        OPENAI_BASE_URL="http://openai.test/v1",
        OLLAMA_URL="http://ollama.test",
        COPILOT_BACKEND_URL="http://upstream.test",
        COPILOT_BACKEND_API_KEY="sk-upstream",
        ANTHROPIC_THINKING_BUDGET=2048,
    )
    registry = ProviderRegistry(settings)
    assert registry.env_credentials("openai") == Credentials("sk-openai", "http://openai.test/v1")
    assert registry.env_credentials("ollama") == Credentials(None, "http://ollama.test")
    assert registry.env_credentials("copilot-backend") == Credentials(
        "sk-upstream", "http://upstream.test"
    )
    assert registry.get("anthropic").supports_prefill is False  # extended thinking is on
    assert registry.get("openai").supports_prefill is False
    assert byok_providers()[:3] == ("anthropic", "openai", "ollama")
    route = route_model("backend:copilot", None, settings)
    assert (route.provider, route.provider_model, route.runs_agent_loop) == (
        "copilot-backend",
        "copilot",
        True,
    )
    assert CopilotBackendProvider.runs_agent_loop
    assert not any(plugins.provider_class(n).runs_agent_loop for n in ("openai", "ollama"))


async def test_the_upstream_provider_refuses_a_single_turn() -> None:
    provider = CopilotBackendProvider()
    creds = Credentials(api_key="k", base_url="http://upstream.test")

    async def emit(delta: Delta) -> None:
        raise AssertionError("nothing streams")

    with pytest.raises(ProviderError, match="upstream path") as caught:
        await provider.stream_turn(TurnRequest("copilot", [], creds), emit)
    assert not caught.value.retryable


def test_the_builtins_in_code_match_the_entry_points_in_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = project["project"]["entry-points"][plugins.GROUP]
    assert declared == dict(plugins.BUILTINS)


def test_a_provider_that_cannot_be_built_is_left_out_unless_it_is_the_default(
    installed: plugins.Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo = installed.providers["echo"]

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no echo today")

    monkeypatch.setattr(echo, "from_settings", classmethod(refuse))
    registry = ProviderRegistry(Settings())
    with pytest.raises(InvalidRequest, match="not available"):
        registry.get("echo")
    assert registry.get("acme").name == "acme"
    with pytest.raises(RuntimeError, match="no echo today"):
        ProviderRegistry(Settings(DEFAULT_PROVIDER="echo"))


# --- end to end: the plugin in the API and worker processes, against the fake provider -------


async def test_a_run_streams_through_the_plugin(
    plugin_dir: Path, services: Services, fake_provider: FakeProviderServer
) -> None:
    path = os.pathsep.join(p for p in (str(plugin_dir), os.environ.get("PYTHONPATH")) if p)
    with running_stack(
        services,
        fake_provider,
        PYTHONPATH=path,
        ACME_BASE_URL=f"{fake_provider.url}/v1",
        ACME_API_KEY="sk-acme-server",
    ) as stack:
        chunks = ["Acme ", "streams ", "too."]
        key = scenario(fake_provider, [{"chunks": chunks}])
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
            frames = await _chat(client, {"message": f"go {key}", "model": "acme:rocket-1"})
            usage = await client.post(
                "/api/get-context-usage",
                json={"chatId": frames[0].data["data"]["chatId"]},
            )
            # A provider without tool support is offered none (the server has two built-ins).
            echoed = await _chat(client, {"message": "say it back", "model": "echo-1"})
    assert frames[0].data["data"]["provider"] == "acme"
    assert [f.data["data"] for f in frames if f.data["type"] == "content"] == chunks
    assert frames[-1].data["data"]["status"] == "completed"
    [sent] = await provider_requests(fake_provider, key)
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "rocket-1"  # the routing prefix is ours, stripped
    assert sent_key(sent["headers"]) == "sk-acme-server"  # the plugin's own settings
    assert usage.status_code == 200, usage.text
    assert usage.json()["contextWindow"] == 321_000
    assert {t["function"]["name"] for t in sent["body"]["tools"]} >= {"echo", "get_current_time"}
    assert echoed[0].data["data"]["provider"] == "echo"
    assert [f.data["data"] for f in echoed if f.data["type"] == "content"] == [
        "say",
        "it",
        "back",
        "(0 tools)",
    ]
    assert echoed[-1].data["data"]["status"] == "completed"


async def _chat(client: httpx.AsyncClient, body: dict[str, object]) -> list[Frame]:
    async with client.stream("POST", "/api/copilot/chat", json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        return await collect(resp)
