"""The user's own provider keys (BYOK): stored encrypted, never shown again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from api.deps import PrincipalDep, ReadLimit, SessionDep, StateDep
from copilot.errors import InvalidRequest, NotFound
from copilot.netguard import check_base_url
from copilot.providers.registry import byok_providers
from copilot.store import provider_keys as keys
from copilot.store.models import ProviderKey

router = APIRouter(tags=["native"], dependencies=[ReadLimit])

UserQuery = Annotated[str | None, Query(alias="userId")]


class PutKeyBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    # SecretStr: the key never shows in a repr, a log line or a validation error.
    api_key: SecretStr = Field(alias="apiKey", min_length=1, max_length=4096)
    base_url: str | None = Field(None, alias="baseUrl", max_length=500)
    user_id: str | None = Field(None, alias="userId", min_length=1, max_length=200)


def _provider(name: str) -> str:
    byok = byok_providers()
    if name not in byok:
        raise InvalidRequest(
            f"unknown provider {name!r}; use one of {', '.join(byok)}",
            details=[{"field": "provider", "msg": "unknown provider"}],
        )
    return name


def _view(row: ProviderKey) -> dict[str, Any]:
    return {
        "provider": row.provider,
        "last4": row.last4,
        "baseUrl": row.base_url,
        "createdAt": row.created_at.isoformat(),
        "updatedAt": row.updated_at.isoformat(),
    }


def _not_found(provider: str) -> NotFound:
    return NotFound(f"no {provider} key stored for this user", code="key_not_found")


@router.put("/api/copilot/keys/{provider}", summary="Store the user's key for a provider")
async def put_key(
    provider: str,
    body: PutKeyBody,
    session: SessionDep,
    principal: PrincipalDep,
    state: StateDep,
) -> dict[str, Any]:
    provider = _provider(provider)
    acting = principal.acting_user(body.user_id)
    api_key = body.api_key.get_secret_value().strip()
    if not api_key:
        raise InvalidRequest("apiKey must not be blank", details=[{"field": "apiKey"}])
    base_url = (body.base_url or "").strip().rstrip("/") or None
    if base_url is not None:
        await check_base_url(base_url, allow_private=state.settings.allow_private_provider_urls)
    row = await keys.put_key(
        session,
        keyring=state.keyring,
        tenant_id=principal.tenant_id,
        user_id=acting,
        provider=provider,
        api_key=api_key,
        base_url=base_url,
    )
    return {"success": True, **_view(row)}


@router.get("/api/copilot/keys", summary="The user's stored provider keys (never the keys)")
async def list_keys(
    session: SessionDep, principal: PrincipalDep, user_id: UserQuery = None
) -> dict[str, Any]:
    acting = principal.acting_user(user_id)
    rows = await keys.list_keys(session, tenant_id=principal.tenant_id, user_id=acting)
    return {"success": True, "keys": [_view(r) for r in rows]}


@router.get("/api/copilot/keys/{provider}", summary="One stored provider key (never the key)")
async def get_key(
    provider: str, session: SessionDep, principal: PrincipalDep, user_id: UserQuery = None
) -> dict[str, Any]:
    provider = _provider(provider)
    acting = principal.acting_user(user_id)
    row = await keys.get_key(
        session, tenant_id=principal.tenant_id, user_id=acting, provider=provider
    )
    if row is None:
        raise _not_found(provider)
    return {"success": True, **_view(row)}


@router.delete("/api/copilot/keys/{provider}", summary="Delete the user's key for a provider")
async def delete_key(
    provider: str, session: SessionDep, principal: PrincipalDep, user_id: UserQuery = None
) -> dict[str, Any]:
    provider = _provider(provider)
    acting = principal.acting_user(user_id)
    if not await keys.delete_key(
        session, tenant_id=principal.tenant_id, user_id=acting, provider=provider
    ):
        raise _not_found(provider)
    return {"success": True, "provider": provider}
