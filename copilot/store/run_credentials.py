"""Provider configs that come with a request (Sim's ``provider``: Azure OpenAI, Azure
Anthropic, OpenAI or Anthropic with the host's own key). The key is a secret: it is encrypted
here (AES-256-GCM, bound to the run), read only inside the LLM activity, and deleted when the
run ends; workflow input, history, events and logs carry at most the fact that one exists."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.crypto import Keyring, Owner, Sealed
from copilot.providers.base import Credentials
from copilot.store.models import RunCredential

# Sim's provider names -> (this server's provider, does it need an endpoint)
FLAVORS = {
    "azure-openai": ("openai", True),
    "openai": ("openai", False),
    "azure-anthropic": ("anthropic", True),
    "anthropic": ("anthropic", False),
}


@dataclass(frozen=True)
class ProviderConfig:
    flavor: str
    api_key: str
    model: str | None = None
    endpoint: str | None = None
    api_version: str | None = None

    @property
    def provider(self) -> str:
        return FLAVORS[self.flavor][0]


def _owner(tenant_id: str, user_id: str, flavor: str, run_id: str) -> Owner:
    return Owner(tenant_id, user_id, f"run-credential:{flavor}", run_id)


def save(
    session: AsyncSession,
    *,
    keyring: Keyring,
    run_id: str,
    tenant_id: str,
    user_id: str,
    config: ProviderConfig,
) -> None:
    sealed = keyring.encrypt(config.api_key, _owner(tenant_id, user_id, config.flavor, run_id))
    session.add(
        RunCredential(
            run_id=run_id,
            tenant_id=tenant_id,
            user_id=user_id,
            flavor=config.flavor,
            endpoint=config.endpoint,
            api_version=config.api_version,
            key_id=sealed.key_id,
            nonce=sealed.nonce,
            ciphertext=sealed.ciphertext,
        )
    )


async def load(session: AsyncSession, *, keyring: Keyring, run_id: str) -> Credentials | None:
    row = await session.get(RunCredential, run_id)
    if row is None:
        return None
    api_key = keyring.decrypt(
        Sealed(row.key_id, row.nonce, row.ciphertext),
        _owner(row.tenant_id, row.user_id, row.flavor, row.run_id),
    )
    return Credentials(
        api_key=api_key,
        base_url=row.endpoint,
        api_version=row.api_version,
        azure=row.flavor.startswith("azure-"),
    )


async def forget(session: AsyncSession, *, run_id: str) -> None:
    """The run is over: its borrowed key goes."""
    await session.execute(delete(RunCredential).where(RunCredential.run_id == run_id))
