"""Issued keys (Sim's /api/validate-key/*): the admin issues service keys, a service key
issues user keys for its tenant; each lists and revokes only the keys it may issue.

Sim's own shapes (its ``app/api/copilot/api-keys`` and ``app/api/mcp/copilot`` routes): a
service key naming ``userId`` lists that user's keys as a bare array and revokes one by
``apiKeyId``; ``POST /api/validate-key {targetApiKey}`` tells Sim's MCP server whose key it
was given."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import PrincipalDep, ReadLimit, SessionDep
from copilot.auth import Principal
from copilot.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from copilot.store import apikeys
from copilot.store.models import ApiKey

router = APIRouter(tags=["keys"], dependencies=[ReadLimit])


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    tenant_name: str | None = Field(None, alias="tenantName", min_length=1, max_length=200)
    user_id: str | None = Field(None, alias="userId", min_length=1, max_length=200)
    name: str | None = Field(None, max_length=200)


class ListBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    user_id: str | None = Field(None, alias="userId", min_length=1, max_length=200)


class DeleteBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str | None = Field(None, min_length=1, max_length=64)
    api_key_id: str | None = Field(None, alias="apiKeyId", min_length=1, max_length=64)
    user_id: str | None = Field(None, alias="userId", min_length=1, max_length=200)

    @model_validator(mode="after")
    def _names_a_key(self) -> DeleteBody:
        if self.id is None and self.api_key_id is None:
            raise ValueError("id (or Sim's apiKeyId) is required")
        return self

    @property
    def key_id(self) -> str:
        key_id = self.id or self.api_key_id
        assert key_id is not None  # checked by the validator
        return key_id


class ValidateBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    target_api_key: str = Field(alias="targetApiKey", min_length=1, max_length=200)


def _issuable(principal: Principal) -> tuple[str, str | None]:
    """(kind of keys this caller issues, tenant it is limited to)."""
    if principal.kind in ("admin", "dev"):
        return "service", None
    if principal.kind == "service":
        return "user", principal.tenant_id
    raise Forbidden("user keys cannot issue or manage keys", code="forbidden")


def _users_keys_tenant(principal: Principal) -> str:
    """The tenant whose user keys this caller manages when it names a ``userId``: a service
    key's own; the admin's is the one it acts in (``tenantId``)."""
    _issuable(principal)  # user keys manage none
    return principal.tenant_id


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def _key(row: ApiKey, last_used: datetime | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "tenantId": row.tenant_id,
        "userId": row.user_id,
        "name": row.name,
        "last4": row.last4,
        "createdAt": _iso(row.created_at),
        "lastUsed": _iso(last_used),
    }


def _sim_key(row: ApiKey, last_used: datetime | None) -> dict[str, Any]:
    """One entry of Sim's key list: the key itself only masked."""
    return {
        "id": row.id,
        "apiKey": apikeys.masked(row),
        "name": row.name,
        "createdAt": _iso(row.created_at),
        "lastUsed": _iso(last_used),
    }


@router.post("/api/validate-key/generate", summary="Issue a key (shown once)")
async def generate(
    body: GenerateBody, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    kind, tenant_limit = _issuable(principal)
    if kind == "service":
        if not body.tenant_name:
            raise InvalidRequest(
                "tenantName is required to issue a service key",
                details=[{"field": "tenantName", "msg": "required"}],
            )
        tenant = await apikeys.tenant_by_name(session, name=body.tenant_name)
        row, key = await apikeys.issue(
            session,
            kind="service",
            tenant_id=tenant.id,
            user_id=None,
            name=body.name or body.tenant_name,
        )
    else:
        if not body.user_id:
            raise InvalidRequest(
                "userId is required to issue a user key",
                details=[{"field": "userId", "msg": "required"}],
            )
        assert tenant_limit is not None
        row, key = await apikeys.issue(
            session, kind="user", tenant_id=tenant_limit, user_id=body.user_id, name=body.name
        )
    await session.refresh(row)
    return {"success": True, "apiKey": key, **_key(row)}


@router.post(
    "/api/validate-key/get-api-keys",
    summary="List the keys this caller may issue (with userId: that user's keys, Sim's shape)",
)
async def get_api_keys(
    session: SessionDep, principal: PrincipalDep, body: ListBody | None = None
) -> dict[str, Any] | list[dict[str, Any]]:
    if body is not None and body.user_id is not None:
        tenant = _users_keys_tenant(principal)
        rows = await apikeys.list_keys(session, kind="user", tenant_id=tenant, user_id=body.user_id)
        return [_sim_key(row, last_used) for row, last_used in rows]
    kind, tenant_limit = _issuable(principal)
    rows = await apikeys.list_keys(session, kind=kind, tenant_id=tenant_limit)
    return {"success": True, "keys": [_key(row, last_used) for row, last_used in rows]}


@router.post("/api/validate-key/delete", summary="Revoke a key this caller may issue")
async def delete(body: DeleteBody, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    if body.user_id is not None:
        revoked = await apikeys.revoke(
            session,
            key_id=body.key_id,
            kind="user",
            tenant_id=_users_keys_tenant(principal),
            user_id=body.user_id,
        )
    else:
        kind, tenant_limit = _issuable(principal)
        revoked = await apikeys.revoke(
            session, key_id=body.key_id, kind=kind, tenant_id=tenant_limit
        )
    if not revoked:
        raise NotFound("key not found", code="key_not_found")
    return {"success": True, "id": body.key_id}


@router.post("/api/validate-key", summary="Whose user key is this (Sim's Copilot MCP server)")
async def validate_key(
    body: ValidateBody, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    kind, tenant_limit = _issuable(principal)
    # A service key learns only about its own tenant's users: another Sim's key is invalid here.
    tenant = tenant_limit if kind == "user" else None
    row = await apikeys.user_key(session, key=body.target_api_key, tenant_id=tenant)
    if row is None:
        raise Unauthorized("targetApiKey is not a valid user key")
    return {"success": True, "ok": True, "userId": row.user_id}
