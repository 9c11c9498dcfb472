"""Which providers this server has: the ``durable_copilot.providers`` entry point group.

A provider is a ``Provider`` subclass registered under its name, as ``llm`` and pytest
plugins are, so a third party ships one as its own package::

    [project.entry-points."durable_copilot.providers"]
    acme = "acme_copilot.provider:AcmeProvider"

The built-ins are registered the same way in this project's ``pyproject.toml``, and are also
listed in ``BUILTINS`` below, for one reason: an install made before the entry points existed
(an editable install is not re-read until reinstalled), or a source checkout on
``PYTHONPATH``, has no entry points of ours, and the server must still know its own providers.
Both lists must agree (a test checks it); an entry point may not take a built-in's name for
another class: it would be handed the users' keys for that provider.

A plugin that fails to load (an import error, not a ``Provider``, a name that does not match,
abstract methods left unimplemented)
is logged as an error with its traceback and skipped: one broken package must not take a
server down that does not use it. What uses it fails clearly instead: ``DEFAULT_PROVIDER``
naming it stops start-up (``copilot.config``), a request naming it is refused with the load
error, never "unknown provider".
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from copilot.config import Settings
from copilot.providers.base import Provider

log = logging.getLogger(__name__)

GROUP = "durable_copilot.providers"

# The order is the order names are listed in (messages, the OpenAPI enum).
BUILTINS: Mapping[str, str] = {
    "anthropic": "copilot.providers.anthropic_provider:AnthropicProvider",
    "openai": "copilot.providers.openai_provider:OpenAIProvider",
    "ollama": "copilot.providers.ollama_provider:OllamaProvider",
    "copilot-backend": "copilot.providers.copilot_backend_provider:CopilotBackendProvider",
}

# A name goes into URLs (/api/copilot/keys/{provider}), settings and model prefixes.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class LoadFailure:
    name: str
    target: str  # "module:Class"
    source: str  # the distribution that registered it
    error: str
    exc: BaseException | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        return (
            f"provider {self.name!r} ({self.target}, from {self.source}) failed to load: "
            f"{self.error}"
        )


@dataclass(frozen=True, eq=False)  # hashed by identity: routing tables are cached per catalog
class Catalog:
    providers: Mapping[str, type[Provider]]  # in listing order
    failures: Mapping[str, LoadFailure]


class UnknownProvider(LookupError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@functools.cache
def catalog() -> Catalog:
    """Every provider, loaded once per process (``refresh`` reads the entry points again)."""
    providers: dict[str, type[Provider]] = {}
    failures: dict[str, LoadFailure] = {}
    for name, (target, source) in _targets().items():
        loaded = _load(name, target, source)
        if isinstance(loaded, LoadFailure):
            log.error("%s; it is skipped", loaded.describe(), exc_info=loaded.exc)
            failures[name] = loaded
        else:
            providers[name] = loaded
    return Catalog(providers, failures)


def refresh() -> Catalog:
    """Forget what was loaded and discover again (tests; a package installed at runtime)."""
    catalog.cache_clear()
    return catalog()


def provider_names() -> tuple[str, ...]:
    return tuple(catalog().providers)


def provider_class(name: str) -> type[Provider]:
    """The provider class for a name; ``UnknownProvider`` says why there is none."""
    found = catalog()
    cls = found.providers.get(name)
    if cls is not None:
        return cls
    failure = found.failures.get(name)
    if failure is not None:
        raise UnknownProvider(failure.describe())
    raise UnknownProvider(
        f"unknown provider {name!r}; use one of {', '.join(found.providers) or '(none)'}"
    )


def _targets() -> dict[str, tuple[str, str]]:
    """name -> (target, source): the built-ins, then every entry point of the group."""
    targets = {name: (target, "built-in") for name, target in BUILTINS.items()}
    for ep in entry_points(group=GROUP):
        source = ep.dist.name if ep.dist is not None else "an unnamed distribution"
        known = targets.get(ep.name)
        if known is None:
            targets[ep.name] = (ep.value, source)
        elif known[0] != ep.value:
            log.error(
                "%s registers provider %r as %s, but %s already provides it as %s: ignored",
                source,
                ep.name,
                ep.value,
                known[1],
                known[0],
            )
    return targets


def _load(name: str, target: str, source: str) -> type[Provider] | LoadFailure:
    def failed(error: str, exc: BaseException | None = None) -> LoadFailure:
        return LoadFailure(name, target, source, error, exc)

    if not _NAME.match(name):
        return failed("a provider name is 1-64 lowercase letters, digits, '-' or '_'")
    try:
        obj = EntryPoint(name=name, value=target, group=GROUP).load()
    except Exception as exc:  # any error of foreign code: reported, never fatal here
        return failed(f"{type(exc).__name__}: {exc}", exc)
    if not (isinstance(obj, type) and issubclass(obj, Provider)):
        return failed("not a subclass of copilot.providers.base.Provider")
    if getattr(obj, "name", None) != name:
        return failed(f"the class declares name {getattr(obj, 'name', None)!r}")
    if not isinstance(getattr(obj, "label", None), str):
        return failed("the class declares no label")
    for setting in (obj.api_key_setting, obj.base_url_setting):
        if setting is not None and setting not in Settings.model_fields:
            return failed(f"the class reads setting {setting!r}, which Settings does not have")
    if inspect.isabstract(obj):
        return failed(f"the class is abstract: implement {', '.join(obj.__abstractmethods__)}")
    return obj
