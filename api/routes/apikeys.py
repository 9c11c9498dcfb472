"""Issued keys (Sim's /api/validate-key/*): the admin issues service keys, a service key
issues user keys for its tenant; each lists and revokes only the keys it may issue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import PrincipalDep, ReadLimit, SessionDep
from copilot.auth import Principal
from copilot.errors import Forbidden, InvalidRequest, NotFound
from copilot.store import apikeys
from copilot.store.models import ApiKey

router = APIRouter(tags=["keys"], dependencies=[ReadLimit])


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    tenant_name: str | None = Field(None, alias="tenantName", min_length=1, max_length=200)
    user_id: str | None = Field(None, alias="userId", min_length=1, max_length=200)
    name: str | None = Field(None, max_length=200)


class DeleteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)


def _issuable(principal: Principal) -> tuple[str, str | None]:
    """(kind of keys this caller issues, tenant it is limited to)."""
    if principal.kind in ("admin", "dev"):
        return "service", None
    if principal.kind == "service":
        return "user", principal.tenant_id
    raise Forbidden("user keys cannot issue or manage keys", code="forbidden")


def _key(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "tenantId": row.tenant_id,
        "userId": row.user_id,
        "name": row.name,
        "last4": row.last4,
        "createdAt": row.created_at.isoformat() if row.created_at else None,
    }


@router.post("/api/validate-key/generate", summary="Issue a key (shown once)")
async def generate(
    body: GenerateBody, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    kind, tenant_limit = _issuable(principal)
    if kind == "service":
        if not body.tenant_name:
            raise InvalidRequest("tenantName is required to issue a service key",
                                 details=[{"field": "tenantName", "msg": "required"}])  # fmt: skip
        tenant = await apikeys.tenant_by_name(session, name=body.tenant_name)
        row, key = await apikeys.issue(
            session, kind="service", tenant_id=tenant.id, user_id=None,
            name=body.name or body.tenant_name,
        )  # fmt: skip
    else:
        if not body.user_id:
            raise InvalidRequest("userId is required to issue a user key",
                                 details=[{"field": "userId", "msg": "required"}])  # fmt: skip
        assert tenant_limit is not None
        row, key = await apikeys.issue(session, kind="user", tenant_id=tenant_limit,
                                       user_id=body.user_id, name=body.name)  # fmt: skip
    await session.refresh(row)
    return {"success": True, "apiKey": key, **_key(row)}


@router.post("/api/validate-key/get-api-keys", summary="List the keys this caller may issue")
async def get_api_keys(session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    kind, tenant_limit = _issuable(principal)
    rows = await apikeys.list_keys(session, kind=kind, tenant_id=tenant_limit)
    return {"success": True, "keys": [_key(r) for r in rows]}


@router.post("/api/validate-key/delete", summary="Revoke a key this caller may issue")
async def delete(body: DeleteBody, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    kind, tenant_limit = _issuable(principal)
    if not await apikeys.revoke(session, key_id=body.id, kind=kind, tenant_id=tenant_limit):
        raise NotFound("key not found", code="key_not_found")
    return {"success": True, "id": body.id}
