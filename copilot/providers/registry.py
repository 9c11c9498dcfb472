"""Provider registry and model routing (CONTRACT.md, chat request ``model``/``provider``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from copilot.config import Settings
from copilot.errors import InvalidRequest
from copilot.providers.base import Credentials, Provider

PROVIDER_NAMES = ("anthropic", "openai", "ollama", "copilot-backend")
# Providers a user may store their own key (and base URL) for.
BYOK_PROVIDERS = ("anthropic", "openai", "ollama")

# Model-name prefixes, most specific first. ``strip`` removes the routing prefix from the name
# sent to the provider (``ollama:llama3`` is ``llama3`` to Ollama).
_PREFIXES: tuple[tuple[str, str, bool], ...] = (
    ("ollama:", "ollama", True),
    ("backend:", "copilot-backend", True),
    ("claude", "anthropic", False),
    ("gpt-", "openai", False),
    ("o1", "openai", False),
    ("o3", "openai", False),
    ("o4", "openai", False),
)


@dataclass(frozen=True)
class Route:
    provider: str
    model: str  # as requested (shown to users, stored on the chat)
    provider_model: str  # as sent to the provider


def routes_by_name(model: str) -> bool:
    """Does this model name pick its provider by itself (a known prefix)?"""
    return any(model.startswith(prefix) for prefix, _, _ in _PREFIXES)


def route_model(model: str | None, provider: str | None, settings: Settings) -> Route:
    model = (model or settings.default_model).strip()
    if not model:
        raise InvalidRequest("model must not be empty", details=[{"field": "model"}])
    for prefix, name, strip in _PREFIXES:
        if model.startswith(prefix):
            routed, sent = name, model[len(prefix) :] if strip else model
            break
    else:
        routed, sent = settings.default_provider, model
    if provider is not None:
        if provider not in PROVIDER_NAMES:
            raise InvalidRequest(
                f"unknown provider {provider!r}; use one of {', '.join(PROVIDER_NAMES)}",
                details=[{"field": "provider"}],
            )
        routed = provider
    if not sent:
        raise InvalidRequest(f"model {model!r} names no model after its prefix")
    if routed == "copilot-backend" and not settings.copilot_backend_url:
        raise InvalidRequest(
            f"model {model!r} needs an upstream copilot backend, and this server has none: "
            "set COPILOT_BACKEND_URL (and COPILOT_BACKEND_API_KEY), or pick another model",
            details=[{"field": "model", "msg": "no upstream copilot backend configured"}],
        )
    return Route(provider=routed, model=model, provider_model=sent)


def new_tool_call_id() -> str:
    return f"tc_{uuid.uuid4()}"


class ProviderRegistry:
    """Provider instances keyed by name, built once per worker."""

    def __init__(self, settings: Settings) -> None:
        from copilot.providers.anthropic_provider import AnthropicProvider
        from copilot.providers.ollama_provider import OllamaProvider
        from copilot.providers.openai_provider import OpenAIProvider

        self._settings = settings
        self._providers: dict[str, Provider] = {}
        for provider in (
            OpenAIProvider(new_tool_id=new_tool_call_id),
            AnthropicProvider(
                new_tool_id=new_tool_call_id, thinking_budget=settings.anthropic_thinking_budget
            ),
            OllamaProvider(new_tool_id=new_tool_call_id),
        ):
            self.register(provider)

    def register(self, provider: Provider) -> None:
        self._providers[provider.name] = provider

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise InvalidRequest(f"provider {name!r} is not available on this server") from None

    def env_credentials(self, name: str) -> Credentials:
        """The server's own credentials for a provider (used when the user has none)."""
        s = self._settings
        if name == "openai":
            key = s.openai_api_key.get_secret_value() if s.openai_api_key else None
            return Credentials(api_key=key, base_url=s.openai_base_url)
        if name == "anthropic":
            key = s.anthropic_api_key.get_secret_value() if s.anthropic_api_key else None
            return Credentials(api_key=key, base_url=s.anthropic_base_url)
        if name == "ollama":
            return Credentials(api_key=None, base_url=s.ollama_url)
        return Credentials(api_key=None, base_url=None)


# Context windows by model-name prefix, most specific first (tokens).
_CONTEXT_WINDOWS: tuple[tuple[str, int], ...] = (
    ("claude", 200_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-5", 400_000),
    ("gpt-4o", 128_000),
    ("gpt-4", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
)
DEFAULT_CONTEXT_WINDOW = 128_000


def context_window(model: str) -> int:
    name = model.split(":", 1)[-1]
    for prefix, size in _CONTEXT_WINDOWS:
        if name.startswith(prefix):
            return size
    return DEFAULT_CONTEXT_WINDOW
