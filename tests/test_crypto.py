"""AES-256-GCM for users' provider keys: binding to the row, tampering, rotation."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from pydantic import SecretStr
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from typer.testing import CliRunner

from copilot.cli import app
from copilot.config import Settings, SettingsError, parse_old_keys
from copilot.crypto import DecryptError, Keyring, Owner, Sealed
from copilot.store import provider_keys as keys
from copilot.store.engine import async_url
from copilot.store.models import ProviderKey
from tests.conftest import Services
from tests.pg import schema_sessions

OWNER = Owner(tenant_id="t1", user_id="alice", provider="anthropic", row_id="pk_1")
SECRET = "sk-ant-api03-very-secret-value"


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_round_trip_with_a_fresh_nonce_per_write() -> None:
    ring = Keyring(secrets.token_bytes(32))
    first, second = ring.encrypt(SECRET, OWNER), ring.encrypt(SECRET, OWNER)
    assert first.nonce != second.nonce
    assert len(first.nonce) == 12
    assert first.ciphertext != second.ciphertext
    assert SECRET.encode() not in first.ciphertext
    assert ring.decrypt(first, OWNER) == ring.decrypt(second, OWNER) == SECRET


def test_primary_key_id_is_a_prefix_of_its_sha256() -> None:
    key = secrets.token_bytes(32)
    sealed = Keyring(key).encrypt(SECRET, OWNER)
    assert sealed.key_id == hashlib.sha256(key).hexdigest()[:8]


@pytest.mark.parametrize("field", ["ciphertext", "nonce"])
def test_a_tampered_byte_is_refused(field: str) -> None:
    ring = Keyring(secrets.token_bytes(32))
    sealed = ring.encrypt(SECRET, OWNER)
    for at in (0, len(getattr(sealed, field)) - 1):
        bad = replace(sealed, **{field: _flip(getattr(sealed, field), at)})
        with pytest.raises(DecryptError, match="failed authentication") as caught:
            ring.decrypt(bad, OWNER)
        assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "moved",
    [
        replace(OWNER, user_id="mallory"),
        replace(OWNER, tenant_id="t2"),
        replace(OWNER, provider="openai"),
        replace(OWNER, row_id="pk_2"),
    ],
)
def test_a_row_moved_to_another_owner_is_refused(moved: Owner) -> None:
    ring = Keyring(secrets.token_bytes(32))
    sealed = ring.encrypt(SECRET, OWNER)
    with pytest.raises(DecryptError, match="does not belong to this user"):
        ring.decrypt(sealed, moved)


def test_associated_data_is_unambiguous() -> None:
    # Joining with a separator would make these two owners the same associated data.
    a = Owner("t", "u|openai", "x", "r")
    b = Owner("t", "u", "openai|x", "r")
    assert a.associated_data() != b.associated_data()


def test_rotation_keeps_old_rows_readable_and_writes_under_the_new_key() -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    before = Keyring(old)
    sealed_old = before.encrypt(SECRET, OWNER)
    after = Keyring(new, {before.primary_id: old})
    assert after.primary_id != before.primary_id
    assert after.decrypt(sealed_old, OWNER) == SECRET
    sealed_new = after.encrypt(SECRET, OWNER)
    assert sealed_new.key_id == after.primary_id
    with pytest.raises(DecryptError, match=f"key id '{before.primary_id}'") as caught:
        Keyring(new).decrypt(sealed_old, OWNER)  # the old key dropped too early
    assert "ENCRYPTION_KEYS_OLD" in str(caught.value)


def test_old_keys_setting_parses_id_hex_pairs_and_bare_keys() -> None:
    k1, k2 = secrets.token_hex(32), secrets.token_hex(32)
    parsed = parse_old_keys(SecretStr(f"legacy:{k1}, {k2}"))
    derived = hashlib.sha256(bytes.fromhex(k2)).hexdigest()[:8]
    assert parsed == {"legacy": bytes.fromhex(k1), derived: bytes.fromhex(k2)}
    for bad in ("nothex", f"bad id!:{k1}", f"x:{k1[:-2]}"):
        with pytest.raises(SettingsError, match="ENCRYPTION_KEYS_OLD"):
            parse_old_keys(SecretStr(bad))
    settings = Settings(ENCRYPTION_KEY=k1, ENCRYPTION_KEYS_OLD=f"legacy:{k2}")
    ring = Keyring.from_settings(settings)
    assert ring.key_ids == {"legacy", hashlib.sha256(bytes.fromhex(k1)).hexdigest()[:8]}


def test_rotate_keys_command_has_help() -> None:
    result = CliRunner().invoke(app, ["rotate-keys", "--help"], prog_name="copilot")
    assert result.exit_code == 0
    assert "--dry-run" in result.output
    assert "ENCRYPTION_KEYS_OLD" in result.output


# --- re-encryption against PostgreSQL, in a schema of its own ---------------------------------


@pytest.fixture
async def sessions(services: Services) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with schema_sessions(services.database_url, "rot", [ProviderKey.__table__]) as made:
        yield made


async def test_reencrypt_moves_old_rows_to_the_primary_and_reports_broken_ones(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    before = Keyring(old)
    async with sessions() as session, session.begin():
        for user in ("u1", "u2", "u3"):
            await keys.put_key(session, keyring=before, tenant_id="t", user_id=user,
                               provider="openai", api_key=f"sk-{user}-0123456789",
                               base_url=None)  # fmt: skip
        # u3's row is altered in the database: it must be reported, not rewritten.
        broken = await keys.get_key(session, tenant_id="t", user_id="u3", provider="openai")
        assert broken is not None
        broken.ciphertext = _flip(broken.ciphertext, 3)
        broken_id, broken_bytes = broken.id, broken.ciphertext

    after = Keyring(new, {before.primary_id: old})
    async with sessions() as session, session.begin():
        await keys.put_key(session, keyring=after, tenant_id="t", user_id="u4",
                           provider="openai", api_key="sk-u4-0123456789",
                           base_url=None)  # fmt: skip
        # Before rotating, old rows are still readable through the keyring.
        row = await keys.get_key(session, tenant_id="t", user_id="u1", provider="openai")
        assert row is not None
        assert row.key_id == before.primary_id
        assert keys.open_key(row, keyring=after) == "sk-u1-0123456789"

    async with sessions() as session, session.begin():
        report = await keys.reencrypt_all(session, keyring=after)
    assert (report.rotated, report.current) == (2, 1)
    assert len(report.failed) == 1
    assert report.failed[0].startswith(f"{broken_id}: ")

    only_new = Keyring(new)  # the old key can go now
    async with sessions() as session:
        for user in ("u1", "u2", "u4"):
            row = await keys.get_key(session, tenant_id="t", user_id=user, provider="openai")
            assert row is not None
            assert row.key_id == after.primary_id
            assert keys.open_key(row, keyring=only_new) == f"sk-{user}-0123456789"
        row = await keys.get_key(session, tenant_id="t", user_id="u3", provider="openai")
        assert row is not None
        assert (row.key_id, row.ciphertext) == (before.primary_id, broken_bytes)
        moved = Sealed(row.key_id, row.nonce, row.ciphertext)
        with pytest.raises(DecryptError):
            after.decrypt(moved, Owner("t", "u3", "openai", row.id))


# --- `copilot migrate` and `copilot rotate-keys` as an operator runs them ------------------------


async def _copilot(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "copilot.cli", *argv, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def fresh_database(services: Services) -> AsyncIterator[str]:
    """An empty database of its own (``copilot migrate`` creates the schema, not a test)."""
    name = f"cli_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(async_url(services.database_url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(services.database_url).set(database=name).render_as_string(False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        await admin.dispose()


async def test_migrate_then_rotate_keys_from_the_command_line(fresh_database: str) -> None:
    old, new, stray = (secrets.token_bytes(32) for _ in range(3))
    before, after = Keyring(old), Keyring(new, {Keyring(old).primary_id: old})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "ENCRYPTION_"))}
    env.update({"DATABASE_URL": fresh_database, "ENCRYPTION_KEY": new.hex(),
                "ENCRYPTION_KEYS_OLD": f"{before.primary_id}:{old.hex()}"})  # fmt: skip

    code, _out, err = await _copilot("migrate", env=env)
    assert code == 0, err
    assert "database schema is up to date" in err

    engine = create_async_engine(async_url(fresh_database))
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            for user in ("u1", "u2"):
                await keys.put_key(session, keyring=before, tenant_id="t", user_id=user,
                                   provider="openai", api_key=f"sk-{user}-0123456789",
                                   base_url=None)  # fmt: skip
            # Sealed under a key the operator no longer has: reported, exit code 1.
            await keys.put_key(session, keyring=Keyring(stray), tenant_id="t", user_id="u3",
                               provider="openai", api_key="sk-u3-0123456789",
                               base_url=None)  # fmt: skip
    finally:
        await engine.dispose()

    code, out, err = await _copilot("rotate-keys", "--dry-run", env=env)
    assert code == 1
    assert out == f"would re-encrypt 2 provider key(s) under key id {after.primary_id}; " \
                  "0 already under it\n"  # fmt: skip
    assert "could not decrypt" in err
    code, out, _err = await _copilot("rotate-keys", env=env)  # the dry run changed nothing
    assert (code, out) == (1, f"re-encrypted 2 provider key(s) under key id {after.primary_id}; "
                              "0 already under it\n")  # fmt: skip
    code, out, _err = await _copilot("rotate-keys", env=env)
    assert (code, out) == (1, f"re-encrypted 0 provider key(s) under key id {after.primary_id}; "
                              "2 already under it\n")  # fmt: skip
