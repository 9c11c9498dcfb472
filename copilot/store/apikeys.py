"""Issued API keys (service / user) and tenants. Only a SHA-256 of each key is stored: keys
are 256-bit random, so a plain hash cannot be brute-forced, and lookup stays one index probe.

``api_keys.last_used_at`` (migration 0006) is not mapped on ``ApiKey``: the queries here name
the column themselves, and it is written at most once a minute per key, in a transaction of
its own, so authenticating stays a read."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from copilot.store.models import ApiKey, Tenant

KEY_PREFIX = "sk-copilot-"
TOUCH_EVERY = timedelta(minutes=1)

_LAST_USED = sa.literal_column("api_keys.last_used_at", sa.DateTime(timezone=True))
_KEYS = sa.table(
    "api_keys", sa.column("id", sa.String), sa.column("last_used_at", sa.DateTime(timezone=True))
)

KeyWithUse = tuple[ApiKey, datetime | None]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def masked(row: ApiKey) -> str:
    """What a listing shows of a key: its prefix and last four characters (Sim displays the
    last six of this string)."""
    return f"{KEY_PREFIX}••••{row.last4}"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "tenant"


async def find_key(session: AsyncSession, *, key: str) -> ApiKey | None:
    """The live key with this value (authentication), noting its use."""
    found = (
        await session.execute(select(ApiKey, _LAST_USED).where(ApiKey.key_hash == hash_key(key)))
    ).first()
    if found is None or found[0].revoked_at is not None:
        return None
    row, last_used = found
    if last_used is None or datetime.now(UTC) - last_used >= TOUCH_EVERY:
        await _record_use(session, key_id=row.id)
    return row


async def _record_use(session: AsyncSession, *, key_id: str) -> None:
    stale = sa.func.now() - sa.text("interval '1 minute'")
    stmt = (
        sa.update(_KEYS)
        .where(_KEYS.c.id == key_id)
        .where(sa.or_(_KEYS.c.last_used_at.is_(None), _KEYS.c.last_used_at < stale))
        .values(last_used_at=sa.func.now())
    )
    engine = session.bind
    if isinstance(engine, AsyncEngine):
        # Its own transaction: the lookup's session is read-only and never committed.
        async with engine.begin() as conn:
            await conn.execute(stmt)
    else:
        await session.execute(stmt)


async def user_key(session: AsyncSession, *, key: str, tenant_id: str | None) -> ApiKey | None:
    """The live ``user`` key with this value, in ``tenant_id`` unless None (admin)."""
    row = await find_key(session, key=key)
    if row is None or row.kind != "user" or row.user_id is None:
        return None
    if tenant_id is not None and row.tenant_id != tenant_id:
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


async def list_keys(
    session: AsyncSession, *, kind: str, tenant_id: str | None, user_id: str | None = None
) -> list[KeyWithUse]:
    """Live keys of one kind (in ``tenant_id`` unless None; of ``user_id`` when given), oldest
    first, each with when it last authenticated."""
    query = select(ApiKey, _LAST_USED).where(ApiKey.kind == kind, ApiKey.revoked_at.is_(None))
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    rows = await session.execute(query.order_by(ApiKey.created_at))
    return [(row, last_used) for row, last_used in rows.all()]


async def revoke(
    session: AsyncSession,
    *,
    key_id: str,
    kind: str,
    tenant_id: str | None,
    user_id: str | None = None,
) -> bool:
    row = await session.get(ApiKey, key_id)
    if row is None or row.kind != kind or row.revoked_at is not None:
        return False
    if tenant_id is not None and row.tenant_id != tenant_id:
        return False
    if user_id is not None and row.user_id != user_id:
        return False
    row.revoked_at = datetime.now(UTC)
    return True
