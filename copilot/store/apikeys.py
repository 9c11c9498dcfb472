"""Issued API keys (service / user) and tenants. Only a SHA-256 of each key is stored: keys
are 256-bit random, so a plain hash cannot be brute-forced, and lookup stays one index probe."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.store.models import ApiKey, Tenant

KEY_PREFIX = "sk-copilot-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "tenant"


async def find_key(session: AsyncSession, *, key: str) -> ApiKey | None:
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    return row


async def key_is_live(session: AsyncSession, *, key_id: str, tenant_id: str) -> bool:
    row = await session.get(ApiKey, key_id)
    return row is not None and row.revoked_at is None and row.tenant_id == tenant_id


async def tenant_by_name(session: AsyncSession, *, name: str) -> Tenant:
    """A tenant is created with its first service key and kept across key rotation."""
    tenant = await session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(id=f"{_slug(name)}-{uuid.uuid4().hex[:8]}", name=name)
        session.add(tenant)
        await session.flush()
    return tenant


async def issue(
    session: AsyncSession, *, kind: str, tenant_id: str, user_id: str | None, name: str | None
) -> tuple[ApiKey, str]:
    key = new_key()
    row = ApiKey(
        id=f"key_{uuid.uuid4().hex}",
        key_hash=hash_key(key),
        kind=kind,
        tenant_id=tenant_id,
        user_id=user_id,
        name=name,
        last4=key[-4:],
    )
    session.add(row)
    await session.flush()
    return row, key


async def list_keys(session: AsyncSession, *, kind: str, tenant_id: str | None) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.kind == kind, ApiKey.revoked_at.is_(None))
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    return list((await session.scalars(query.order_by(ApiKey.created_at))).all())


async def revoke(session: AsyncSession, *, key_id: str, kind: str, tenant_id: str | None) -> bool:
    row = await session.get(ApiKey, key_id)
    if row is None or row.kind != kind or row.revoked_at is not None:
        return False
    if tenant_id is not None and row.tenant_id != tenant_id:
        return False
    row.revoked_at = datetime.now(UTC)
    return True
