"""Sim's copilot model ids, and the provider model each one is answered with here.

Sim's copilot panel sends one of its own ids (``COPILOT_MODEL_IDS`` in
``apps/sim/lib/copilot/models.ts`` at ``190f12fd77``), e.g. ``claude-4.6-opus``; the providers
want their API names, e.g. ``claude-opus-4-6``. ``resolve_sim_model`` maps one to the other.
Sim's ``-fast``/``-medium``/``-high`` variants of GPT-5 are one model at a reasoning effort.
An id with no provider here (Gemini) or one Sim does not list resolves to no model and a notice:
the caller answers with the server's default model and shows the notice. ``SIM_MODEL_ALIASES``
(``parse_aliases``) overrides or extends the table, e.g. to send Gemini to an Ollama model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# The provider names come from the registry (built-ins and installed plugins); it loads no
# provider SDK, so this module stays cheap to import.
from copilot.providers.plugins import provider_names


@dataclass(frozen=True)
class SimModel:
    provider: str
    model: str
    reasoning_effort: str | None = None


# Sim id -> what answers it here; None: known to Sim, not served here.
SIM_MODELS: dict[str, SimModel | None] = {
    "gpt-5-fast": SimModel("openai", "gpt-5", "low"),
    "gpt-5": SimModel("openai", "gpt-5"),
    "gpt-5-medium": SimModel("openai", "gpt-5", "medium"),
    "gpt-5-high": SimModel("openai", "gpt-5", "high"),
    "gpt-5.1-fast": SimModel("openai", "gpt-5.1", "low"),
    "gpt-5.1": SimModel("openai", "gpt-5.1"),
    "gpt-5.1-medium": SimModel("openai", "gpt-5.1", "medium"),
    "gpt-5.1-high": SimModel("openai", "gpt-5.1", "high"),
    "gpt-5-codex": SimModel("openai", "gpt-5-codex"),
    "gpt-5.1-codex": SimModel("openai", "gpt-5.1-codex"),
    "gpt-5.2": SimModel("openai", "gpt-5.2"),
    "gpt-5.2-codex": SimModel("openai", "gpt-5.2-codex"),
    "gpt-5.2-pro": SimModel("openai", "gpt-5.2-pro"),
    "gpt-4o": SimModel("openai", "gpt-4o"),
    "gpt-4.1": SimModel("openai", "gpt-4.1"),
    "o3": SimModel("openai", "o3"),
    "claude-4-sonnet": SimModel("anthropic", "claude-sonnet-4-0"),
    "claude-4.5-haiku": SimModel("anthropic", "claude-haiku-4-5"),
    "claude-4.5-sonnet": SimModel("anthropic", "claude-sonnet-4-5"),
    "claude-4.6-opus": SimModel("anthropic", "claude-opus-4-6"),
    "claude-4.5-opus": SimModel("anthropic", "claude-opus-4-5"),
    "claude-4.1-opus": SimModel("anthropic", "claude-opus-4-1"),
    "gemini-3-pro": None,
}

# Sim's default when a request names no model (apps/sim/app/api/copilot/chat/route.ts).
SIM_DEFAULT_MODEL_ID = "claude-4.6-opus"


@dataclass(frozen=True)
class ModelChoice:
    """``provider``/``model`` None: use the server's default model and show ``notice``."""

    provider: str | None
    model: str | None
    notice: str | None = None
    reasoning_effort: str | None = None


class AliasError(ValueError):
    """``SIM_MODEL_ALIASES`` (or an override) is malformed; the message says where and how."""


_ALIAS_FORMAT = (
    'a JSON object {"<sim model id>": "<provider>:<model>"} or '
    "'<sim model id>=<provider>:<model>,...'"
)


def parse_target(value: str) -> tuple[str, str]:
    """``"anthropic:claude-opus-4-6"`` -> ``("anthropic", "claude-opus-4-6")``. The model may
    itself hold colons (``ollama:llama3:8b``)."""
    provider, sep, model = value.strip().partition(":")
    provider, model = provider.strip(), model.strip()
    if not sep or not provider or not model:
        raise AliasError(f"{value!r} is not '<provider>:<model>'")
    known = provider_names()
    if provider not in known:
        raise AliasError(f"{value!r}: unknown provider {provider!r}; one of {', '.join(known)}")
    return provider, model


def parse_aliases(text: str) -> dict[str, str]:
    """Parse ``SIM_MODEL_ALIASES``: {sim model id: "provider:model"}. Empty text: no aliases.

    Raises ``AliasError`` naming the entry at fault and the expected format."""
    text = text.strip()
    if not text:
        return {}
    pairs = _json_pairs(text) if text.startswith("{") else _list_pairs(text)
    aliases: dict[str, str] = {}
    for model_id, target in pairs:
        if not model_id:
            raise AliasError(
                f"SIM_MODEL_ALIASES: an entry has an empty model id; expected {_ALIAS_FORMAT}"
            )
        if model_id in aliases:
            raise AliasError(f"SIM_MODEL_ALIASES: {model_id!r} is given twice")
        try:
            provider, model = parse_target(target)
        except AliasError as e:
            raise AliasError(f"SIM_MODEL_ALIASES: {model_id!r}: {e}") from None
        aliases[model_id] = f"{provider}:{model}"
    return aliases


def _json_pairs(text: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise AliasError(
            f"SIM_MODEL_ALIASES: invalid JSON ({e.msg} at character {e.pos}); "
            f"expected {_ALIAS_FORMAT}"
        ) from None
    if not isinstance(data, dict):
        raise AliasError(f"SIM_MODEL_ALIASES: expected {_ALIAS_FORMAT}")
    pairs = []
    for key, value in data.items():
        if not isinstance(value, str):
            raise AliasError(
                f"SIM_MODEL_ALIASES: {key!r}: expected a '<provider>:<model>' string, "
                f"got {type(value).__name__}"
            )
        pairs.append((key.strip(), value))
    return pairs


def _list_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split(","):
        if not item.strip():
            continue  # a trailing or doubled comma
        model_id, sep, target = item.partition("=")
        if not sep:
            raise AliasError(
                f"SIM_MODEL_ALIASES: {item.strip()!r} has no '='; expected {_ALIAS_FORMAT}"
            )
        pairs.append((model_id.strip(), target))
    return pairs


def resolve_sim_model(model_id: str, overrides: dict[str, str]) -> ModelChoice:
    """The provider model that answers Sim's ``model_id``; ``overrides`` (from
    ``parse_aliases``) win over the built-in table."""
    key = model_id.strip()
    if key in overrides:
        provider, model = parse_target(overrides[key])
        return ModelChoice(provider, model)
    if key not in SIM_MODELS:
        return ModelChoice(
            None,
            None,
            f"Model {key!r} is not one of Sim's copilot models; answering with this server's "
            "default model instead.",
        )
    entry = SIM_MODELS[key]
    if entry is None:
        return ModelChoice(
            None,
            None,
            f"Model {key!r} is not served by this copilot server; answering with its default "
            "model instead. An administrator can map it with SIM_MODEL_ALIASES.",
        )
    return ModelChoice(entry.provider, entry.model, None, entry.reasoning_effort)
