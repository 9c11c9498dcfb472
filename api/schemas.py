"""Request bodies (camelCase on the wire)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from copilot.providers.plugins import UnknownProvider, catalog, provider_class, provider_names
from copilot.store.run_credentials import FLAVORS, ProviderConfig

Mode = Literal["agent", "build", "plan", "ask", "chat"]
MAX_INTEGRATION_TOOLS = 5000


def _known_provider(name: str) -> str:
    try:
        provider_class(name)
    except UnknownProvider as exc:
        raise ValueError(exc.message) from None
    return name


class _ProviderEnum:
    """The OpenAPI schema lists the providers as an enum, as the literal it replaced did; the
    names are read from the registry when the schema is generated (installed plugins too)."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "enum": list(provider_names())}


# A provider name the registry knows (copilot.providers.plugins).
ProviderField = Annotated[str, AfterValidator(_known_provider), _ProviderEnum()]


class ClientTool(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = Field("", max_length=10_000)
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"}, alias="inputSchema"
    )
    requires_confirmation: bool = Field(False, alias="requiresConfirmation")
    # Sim marks its integration tools so: found through search_integration_tools, not offered
    # up front (copilot/tools/catalog.py).
    defer_loading: bool = Field(
        False, validation_alias=AliasChoices("defer_loading", "deferLoading")
    )


class ChatRequest(BaseModel):
    """One body for all chat routes (CONTRACT.md, "Chat request")."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message: str = Field(min_length=1, max_length=100_000)
    user_id: str | None = Field(None, alias="userId", min_length=1, max_length=200)
    tenant_id: str | None = Field(None, alias="tenantId", min_length=1, max_length=64)
    chat_id: str | None = Field(
        None, alias="chatId", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$"
    )
    message_id: str | None = Field(None, alias="messageId", min_length=1, max_length=128)
    workflow_id: str | None = Field(None, alias="workflowId", max_length=200)
    mode: Mode = "agent"
    model: str | None = Field(None, max_length=200)
    provider: ProviderField | None = None
    tools: list[ClientTool] = Field(default_factory=list, max_length=256)
    auto_execute_tools: bool | None = Field(None, alias="autoExecuteTools")
    on_active_run: Literal["reject", "interrupt"] = Field("reject", alias="onActiveRun")
    timeout: int = Field(300_000, ge=1, le=3_600_000)
    wait: bool = True
    conversation_id: str | None = Field(None, alias="conversationId", max_length=200)
    # Sim's build mode sends its whole registry (~1,500 tools); they are kept by reference.
    integration_tools: list[ClientTool] = Field(
        default_factory=list, alias="integrationTools", max_length=MAX_INTEGRATION_TOOLS
    )
    # Sim's extras: accepted; secrets in them never enter workflow input, events or logs.
    version: str | None = Field(None, max_length=50)
    context: list[Any] | dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None
    commands: list[Any] | None = None
    file_attachments: list[Any] | None = Field(None, alias="fileAttachments")

    def client_tools(self) -> list[ClientTool]:
        """``tools`` and Sim's ``integrationTools``, one entry per name."""
        seen: dict[str, ClientTool] = {}
        for tool in [*self.tools, *self.integration_tools]:
            seen.setdefault(tool.name, tool)
        return list(seen.values())


class SimChatRequest(ChatRequest):
    """Sim's payload: ``provider`` may be a provider config object (e.g. Azure OpenAI)."""

    provider: ProviderField | dict[str, Any] | None = None  # type: ignore[assignment]
    # Sim's Stop aborts only the browser's stream and sends no onActiveRun: its next message
    # must not be refused while the stopped run still waits.
    on_active_run: Literal["reject", "interrupt"] = Field("interrupt", alias="onActiveRun")

    def native(self) -> tuple[ChatRequest, ProviderConfig | None, str | None]:
        """(the request, the provider config Sim sent with its key, a notice for the user
        when that config cannot be used here)."""
        provider = self.provider
        config, notice = None, None
        if isinstance(provider, dict):
            config, notice = _provider_config(provider)
            named = provider.get("provider")
            # A model provider named by Sim's config; never one that runs its own agent loop.
            llm = catalog().providers.get(named) if isinstance(named, str) else None
            provider = named if llm is not None and not llm.runs_agent_loop else None
        data = self.model_dump(by_alias=True, exclude={"provider"})
        return ChatRequest.model_validate({**data, "provider": provider}), config, notice


def _provider_config(raw: dict[str, Any]) -> tuple[ProviderConfig | None, str | None]:
    flavor = str(raw.get("provider") or "")
    api_key = raw.get("apiKey")
    if flavor not in FLAVORS:
        return None, (
            f"Sim's provider config {flavor or '(unnamed)'!r} is not supported by this "
            "server; it answers with its own configured provider instead."
        )
    if not isinstance(api_key, str) or not api_key:
        return None, None  # a name only: routed by name, the server's own key
    endpoint = raw.get("endpoint")
    if FLAVORS[flavor][1] and not (isinstance(endpoint, str) and endpoint):
        # Sim leaves it out when its AZURE_*_ENDPOINT is unset: answer anyway, and say so.
        return None, (
            f"Sim's {flavor} provider config has no endpoint (set it in Sim); this server "
            "answers with its own configured provider instead."
        )
    model, version = raw.get("model"), raw.get("apiVersion")
    return ProviderConfig(
        flavor=flavor,
        api_key=api_key,
        model=model if isinstance(model, str) and model else None,
        endpoint=endpoint if isinstance(endpoint, str) and endpoint else None,
        api_version=version if isinstance(version, str) and version else None,
    ), None
