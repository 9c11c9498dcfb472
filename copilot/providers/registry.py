"""Model routing (CONTRACT.md, chat request ``model``/``provider``) and the worker's providers.

Everything here is derived from the provider classes ``copilot.providers.plugins`` found:
the routing prefixes, context windows, which providers take users' keys. No provider is named
in this module.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from copilot.config import Settings
from copilot.errors import InvalidRequest
from copilot.providers.base import (
    DEFAULT_CONTEXT_WINDOW,
    Credentials,
    ModelPrefix,
    Provider,
    new_tool_call_id,
)
from copilot.providers.plugins import (
    Catalog,
    UnknownProvider,
    catalog,
    provider_class,
    provider_names,
)

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "ProviderRegistry",
    "Route",
    "byok_providers",
    "context_window",
    "new_tool_call_id",
    "provider_names",
    "route_model",
    "routes_by_name",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    provider: str
    model: str  # as requested (shown to users, stored on the chat)
    provider_model: str  # as sent to the provider
    # The provider runs the agent loop itself: the run takes the upstream path.
    runs_agent_loop: bool = False


def byok_providers() -> tuple[str, ...]:
    """Providers a user may store their own key (and base URL) for."""
    return tuple(name for name, cls in catalog().providers.items() if cls.byok)


@functools.lru_cache(maxsize=4)  # per catalog: one, unless plugins were refreshed
def _prefixes(found: Catalog) -> tuple[tuple[ModelPrefix, type[Provider]], ...]:
    """Every provider's prefixes, longest first: the most specific match wins, whichever
    provider declared it. A prefix two providers claim stays with the one listed first."""
    owner: dict[str, tuple[ModelPrefix, type[Provider]]] = {}
    for cls in found.providers.values():
        for prefix in cls.model_prefixes:
            taken = owner.get(prefix.prefix)
            if taken is not None:
                log.error(
                    "provider %r declares model prefix %r, which %r already routes: ignored",
                    cls.name,
                    prefix.prefix,
                    taken[1].name,
                )
                continue
            owner[prefix.prefix] = (prefix, cls)
    return tuple(sorted(owner.values(), key=lambda item: -len(item[0].prefix)))


def _match(model: str) -> tuple[ModelPrefix, type[Provider]] | None:
    for prefix, cls in _prefixes(catalog()):
        if model.startswith(prefix.prefix):
            return prefix, cls
    return None


def routes_by_name(model: str) -> bool:
    """Does this model name pick its provider by itself (a known prefix)?"""
    return _match(model) is not None


def route_model(model: str | None, provider: str | None, settings: Settings) -> Route:
    model = (model or settings.default_model).strip()
    if not model:
        raise InvalidRequest("model must not be empty", details=[{"field": "model"}])
    matched = _match(model)
    if matched is not None:
        prefix, routed = matched
        sent = model[len(prefix.prefix) :] if prefix.strip else model
    else:
        routed, sent = _provider(settings.default_provider, "model"), model
    if provider is not None:
        routed = _provider(provider, "provider")
    if not sent:
        raise InvalidRequest(f"model {model!r} names no model after its prefix")
    reason = routed.unavailable(settings)
    if reason is not None:
        raise InvalidRequest(
            f"model {model!r} {reason}",
            details=[{"field": "model", "msg": f"provider {routed.name} is not configured"}],
        )
    return Route(
        provider=routed.name,
        model=model,
        provider_model=sent,
        runs_agent_loop=routed.runs_agent_loop,
    )


def _provider(name: str, field: str) -> type[Provider]:
    try:
        return provider_class(name)
    except UnknownProvider as exc:
        raise InvalidRequest(exc.message, details=[{"field": field}]) from None


def context_window(model: str) -> int:
    """The context window of a model (tokens): its provider's table first, then every
    provider's (a Claude model served through Ollama is still a Claude model)."""
    matched = _match(model)
    if matched is None:
        name = model.split(":", 1)[-1]  # "<provider>:<model>", as Sim's aliases write it
    elif matched[0].strip:
        name = model[len(matched[0].prefix) :]
    else:
        name = model
    providers = list(catalog().providers.values())
    if matched is not None:
        providers.insert(0, matched[1])
    best: tuple[int, int] | None = None  # (prefix length, window)
    for cls in providers:
        for prefix, size in cls.context_windows:
            if name.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), size)
        if best is not None:
            return best[1]
    return matched[1].default_context_window if matched is not None else DEFAULT_CONTEXT_WINDOW


class ProviderRegistry:
    """Provider instances keyed by name, built once per worker.

    A provider whose ``from_settings`` fails is logged and left out (as a plugin that fails to
    load is); the default provider failing stops the worker, which could serve nothing.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._providers: dict[str, Provider] = {}
        for name, cls in catalog().providers.items():
            try:
                self.register(cls.from_settings(settings, new_tool_id=new_tool_call_id))
            except Exception:
                if name == settings.default_provider:
                    raise
                log.exception("provider %r could not be built from the settings: skipped", name)

    def register(self, provider: Provider) -> None:
        self._providers[provider.name] = provider

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise InvalidRequest(f"provider {name!r} is not available on this server") from None

    def env_credentials(self, name: str) -> Credentials:
        """The server's own credentials for a provider (used when the user has none)."""
        return self.get(name).server_credentials(self._settings)
