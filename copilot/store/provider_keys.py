"""Users' own provider keys (BYOK), encrypted at rest with ``copilot.crypto``.

Repositories flush; the caller's boundary (request, activity, CLI) commits. Plaintext keys pass
through these functions only on their way in (``put_key``) and out (``open_key``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.crypto import DecryptError, Keyring, Owner, Sealed
from copilot.store.engine import make_engine, make_sessionmaker
from copilot.store.models import ProviderKey


def _owner(row: ProviderKey) -> Owner:
    return Owner(tenant_id=row.tenant_id, user_id=row.user_id, provider=row.provider, row_id=row.id)


def last4(api_key: str) -> str:
    # A short key would be mostly revealed by its last four characters.
    return api_key[-4:] if len(api_key) >= 12 else ""


async def put_key(
    session: AsyncSession,
    *,
    keyring: Keyring,
    tenant_id: str,
    user_id: str,
    provider: str,
    api_key: str,
    base_url: str | None,
) -> ProviderKey:
    """Create or replace the user's key for ``provider`` (one row per owner and provider).

    A replaced row gets a new id: the ciphertext is bound to the id it was encrypted for, and
    one upsert keeps concurrent PUTs from racing on the unique constraint.
    """
    row_id = f"pk_{uuid.uuid4().hex}"
    sealed = keyring.encrypt(api_key, Owner(tenant_id, user_id, provider, row_id))
    values = {
        "id": row_id,
        "key_id": sealed.key_id,
        "nonce": sealed.nonce,
        "ciphertext": sealed.ciphertext,
        "base_url": base_url,
        "last4": last4(api_key),
    }
    stmt = (
        insert(ProviderKey)
        .values(tenant_id=tenant_id, user_id=user_id, provider=provider, **values)
        .on_conflict_do_update(
            constraint="uq_provider_keys_owner", set_={**values, "updated_at": func.now()}
        )
        .returning(ProviderKey)
    )
    row = await session.scalar(stmt, execution_options={"populate_existing": True})
    assert row is not None  # RETURNING always yields the row
    return row


async def list_keys(session: AsyncSession, *, tenant_id: str, user_id: str) -> list[ProviderKey]:
    query = (
        select(ProviderKey)
        .where(ProviderKey.tenant_id == tenant_id, ProviderKey.user_id == user_id)
        .order_by(ProviderKey.provider)
    )
    return list((await session.scalars(query)).all())


async def get_key(
    session: AsyncSession, *, tenant_id: str, user_id: str, provider: str
) -> ProviderKey | None:
    query = select(ProviderKey).where(
        ProviderKey.tenant_id == tenant_id,
        ProviderKey.user_id == user_id,
        ProviderKey.provider == provider,
    )
    row: ProviderKey | None = await session.scalar(query)
    return row


async def delete_key(session: AsyncSession, *, tenant_id: str, user_id: str, provider: str) -> bool:
    result = await session.execute(
        delete(ProviderKey)
        .where(
            ProviderKey.tenant_id == tenant_id,
            ProviderKey.user_id == user_id,
            ProviderKey.provider == provider,
        )
        .returning(ProviderKey.id)
    )
    return result.first() is not None


def open_key(row: ProviderKey, *, keyring: Keyring) -> str:
    """The plaintext key of a row; ``DecryptError`` if it was altered or moved."""
    return keyring.decrypt(Sealed(row.key_id, row.nonce, row.ciphertext), _owner(row))


@dataclass
class Rotation:
    rotated: int = 0
    current: int = 0  # already under the primary key
    failed: list[str] = field(default_factory=list)  # "row id: reason"


async def reencrypt_all(session: AsyncSession, *, keyring: Keyring) -> Rotation:
    """Re-encrypt every row not under the primary key (fresh nonce, same binding).

    Rows that cannot be decrypted are reported, not skipped silently and not overwritten:
    the caller decides whether to commit the rest.
    """
    report = Rotation()
    report.current = (
        await session.scalar(
            select(func.count())
            .select_from(ProviderKey)
            .where(ProviderKey.key_id == keyring.primary_id)
        )
        or 0
    )
    rows = await session.scalars(
        select(ProviderKey)
        .where(ProviderKey.key_id != keyring.primary_id)
        .order_by(ProviderKey.id)
        .with_for_update()
    )
    for row in rows.all():
        try:
            plaintext = open_key(row, keyring=keyring)
        except DecryptError as exc:
            report.failed.append(f"{row.id}: {exc}")
            continue
        sealed = keyring.encrypt(plaintext, _owner(row))
        row.key_id, row.nonce, row.ciphertext = sealed.key_id, sealed.nonce, sealed.ciphertext
        report.rotated += 1
    await session.flush()
    return report


async def rotate_database(database_url: str, *, keyring: Keyring, dry_run: bool) -> Rotation:
    """``copilot rotate-keys``: one transaction, so a crash leaves every row readable."""
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            report = await reencrypt_all(session, keyring=keyring)
            await (session.rollback() if dry_run else session.commit())
    finally:
        await engine.dispose()
    return report
