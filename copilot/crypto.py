"""Users' provider keys at rest: AES-256-GCM under a keyring.

- Every write draws a fresh random 96-bit nonce and uses the primary key (``ENCRYPTION_KEY``).
- The associated data binds a ciphertext to its row: (tenant, user, provider, row id). A
  ciphertext copied to another user's row, or a row whose owner was changed in the database,
  fails authentication instead of handing one user's key to another.
- Rotation: earlier keys stay in the keyring (``ENCRYPTION_KEYS_OLD``) so their rows remain
  readable; ``copilot rotate-keys`` re-encrypts those rows under the primary, after which the
  old keys can be dropped. A key is known by its id (stored with each row), never by trial.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from copilot.config import Settings, key_id

NONCE_BYTES = 12  # 96 bits: GCM's native nonce size


class DecryptError(Exception):
    """A stored key could not be decrypted; the message says why (never the key)."""


@dataclass(frozen=True)
class Owner:
    """What a ciphertext is bound to (the associated data)."""

    tenant_id: str
    user_id: str
    provider: str
    row_id: str

    def associated_data(self) -> bytes:
        # JSON of a list: unambiguous, unlike joining with a separator a value may contain.
        return json.dumps(
            ["provider-key/v1", self.tenant_id, self.user_id, self.provider, self.row_id]
        ).encode()


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes


class Keyring:
    """The primary key (all writes) and older keys (reads only), by id."""

    def __init__(self, primary: bytes, old: dict[str, bytes] | None = None) -> None:
        if len(primary) != 32:
            raise ValueError("the primary encryption key must be 32 bytes")
        self.primary_id = key_id(primary)
        self._keys: dict[str, AESGCM] = {kid: AESGCM(k) for kid, k in (old or {}).items()}
        self._keys[self.primary_id] = AESGCM(primary)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        return cls(settings.encryption_key_bytes, settings.old_encryption_keys)

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def encrypt(self, plaintext: str, owner: Owner) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.primary_id].encrypt(
            nonce, plaintext.encode(), owner.associated_data()
        )
        return Sealed(key_id=self.primary_id, nonce=nonce, ciphertext=sealed)

    def decrypt(self, sealed: Sealed, owner: Owner) -> str:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise DecryptError(
                f"the stored {owner.provider} key was encrypted with key id {sealed.key_id!r}, "
                "which this server does not hold: add that key to ENCRYPTION_KEYS_OLD "
                f'("{sealed.key_id}:<hex>"), or store the provider key again.'
            )
        try:
            plaintext = aead.decrypt(sealed.nonce, sealed.ciphertext, owner.associated_data())
        except (InvalidTag, ValueError):  # ValueError: a nonce of the wrong size
            raise DecryptError(
                f"the stored {owner.provider} key failed authentication: it was altered or "
                "does not belong to this user; store the provider key again."
            ) from None
        return plaintext.decode()
