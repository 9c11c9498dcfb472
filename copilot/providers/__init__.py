"""LLM providers: one class per provider behind one interface, found through entry points.

What a provider package needs (see ``base.Provider`` and ``plugins``)::

    from copilot.providers import Delta, ModelPrefix, Provider, TurnOutput
"""

from copilot.providers.base import (
    ConvMessage,
    Credentials,
    Delta,
    Emit,
    ModelPrefix,
    Provider,
    ProviderError,
    ToolCall,
    ToolSpec,
    TurnOutput,
    TurnRequest,
    status_error,
)

__all__ = [
    "ConvMessage",
    "Credentials",
    "Delta",
    "Emit",
    "ModelPrefix",
    "Provider",
    "ProviderError",
    "ToolCall",
    "ToolSpec",
    "TurnOutput",
    "TurnRequest",
    "status_error",
]
