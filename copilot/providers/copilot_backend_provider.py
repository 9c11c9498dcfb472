"""Provider ``copilot-backend``: an upstream copilot backend that runs the agent loop itself.

It is a provider like the others in every declaration (name, the ``backend:`` prefix, where
its URL and key live in ``Settings``), but not in how a run talks to it: one upstream turn
pauses mid-stream for tool results our workflow decides, which a ``stream_turn`` call cannot
express. So it declares ``runs_agent_loop``: the API starts such runs with
``ChatRunInput.upstream_loop`` and the workflow takes the upstream path
(``workflows/upstream.py``, ``activities/upstream.py``, which reads the stream with
``copilot.providers.upstream.UpstreamTranslator``). ``stream_turn`` refuses, saying so, should
anything ever call it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from copilot.providers.base import (
    Emit,
    ModelPrefix,
    Provider,
    ProviderError,
    TurnOutput,
    TurnRequest,
)

if TYPE_CHECKING:
    from copilot.config import Settings


class CopilotBackendProvider(Provider):
    name: ClassVar[str] = "copilot-backend"
    label: ClassVar[str] = "The copilot backend"
    model_prefixes: ClassVar[tuple[ModelPrefix, ...]] = (ModelPrefix("backend:", strip=True),)
    supports_reasoning: ClassVar[bool] = True
    supports_attachments: ClassVar[bool] = True
    runs_agent_loop: ClassVar[bool] = True
    api_key_setting: ClassVar[str | None] = "copilot_backend_api_key"
    base_url_setting: ClassVar[str | None] = "copilot_backend_url"
    # The upstream is the server's own service (a key it issued us), never a user's.
    byok: ClassVar[bool] = False

    @classmethod
    def unavailable(cls, settings: Settings) -> str | None:
        if cls.server_credentials(settings).base_url:
            return None
        return (
            "needs an upstream copilot backend, and this server has none: set "
            "COPILOT_BACKEND_URL (and COPILOT_BACKEND_API_KEY), or pick another model"
        )

    async def _stream_turn(self, request: TurnRequest, emit: Emit) -> TurnOutput:
        raise ProviderError(
            f"{self.label} runs the agent loop itself: its runs take the upstream path "
            "(ChatRunInput.upstream_loop), never a single LLM turn.",
            retryable=False,
            code="provider_runs_agent_loop",
        )
