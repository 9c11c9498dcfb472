"""Who is calling, and stream tokens.

- The admin key (``COPILOT_API_KEY``, compared in constant time) operates the server and acts
  for the ``userId`` (and ``tenantId``, default ``default``) a request names.
- Issued ``service`` keys act for any user they name, inside their tenant; issued ``user`` keys
  act as their owner only (naming another user: 403 ``user_mismatch``).
- With no admin key set the server is in development mode: no auth, loopback only.
- Stream tokens are an HMAC over (tenantId, userId, runId, expiry, key): never stored, they
  authorise only one run's events route, for at most 15 minutes, and only while the key they
  were issued to is valid (``key_ref``: the issued key's id, or a fingerprint of the admin key,
  so revoking or rotating the key ends its tokens at once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, replace

from copilot.config import Settings
from copilot.errors import Forbidden, InvalidRequest, NotFound, Unauthorized

DEFAULT_TENANT = "default"
DEV_USER = "local"


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin" | "dev" | "service" | "user" | "stream"
    tenant_id: str
    user_id: str | None  # fixed for user keys and stream tokens; named per request otherwise
    run_id: str | None = None  # stream tokens only
    key_id: str | None = None

    @property
    def can_operate(self) -> bool:
        """Admin-only operations (stats, metrics)."""
        return self.kind in ("admin", "dev")

    def in_tenant(self, tenant_id: str | None) -> Principal:
        """The admin key may name the tenant it acts in; other keys are bound to theirs."""
        if tenant_id and self.kind in ("admin", "dev"):
            return replace(self, tenant_id=tenant_id)
        return self

    def acting_user(self, requested: str | None) -> str:
        """The user this request acts for."""
        if self.kind in ("user", "stream"):
            assert self.user_id is not None
            if requested and requested != self.user_id:
                raise Forbidden("this key acts for its own user only", code="user_mismatch")
            return self.user_id
        if requested:
            return requested
        if self.kind == "dev":
            return DEV_USER
        raise InvalidRequest(
            "userId is required with this key", details=[{"field": "userId", "msg": "required"}]
        )


def key_ref(settings: Settings, principal: Principal) -> str:
    """What a stream token is bound to: the key that asked for it."""
    if principal.key_id is not None:
        return principal.key_id
    if principal.kind == "admin" and settings.copilot_api_key is not None:
        secret = settings.copilot_api_key.get_secret_value().encode()
        return "admin:" + hashlib.sha256(b"stream-token\x00" + secret).hexdigest()[:16]
    return principal.kind  # "dev": valid while the server stays in development mode


def is_admin_key(settings: Settings, api_key: str) -> bool:
    if settings.copilot_api_key is None:
        return False
    return hmac.compare_digest(
        api_key.encode(), settings.copilot_api_key.get_secret_value().encode()
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_stream_token(
    key: bytes,
    *,
    tenant_id: str,
    user_id: str,
    run_id: str,
    ttl_s: int,
    key_ref: str,
    now: float | None = None,
) -> str:
    expiry = int((now if now is not None else time.time()) + ttl_s)
    body = "\x1f".join([tenant_id, user_id, run_id, str(expiry), key_ref]).encode()
    sig = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(sig)}"


def verify_stream_token(key: bytes, token: str, *, run_id: str, max_ttl_s: int) -> Principal:
    try:
        body_b64, sig_b64 = token.split(".", 1)
        body, sig = _unb64(body_b64), _unb64(sig_b64)
    except ValueError:
        raise Unauthorized("malformed stream token") from None
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), sig):
        raise Unauthorized("invalid stream token")
    try:
        tenant_id, user_id, token_run, expiry_s, ref = body.decode().split("\x1f")
        expiry = int(expiry_s)
    except ValueError:
        # Also a token of the earlier four-field format: signed, but bound to no key.
        raise Unauthorized(STALE_TOKEN) from None
    now = time.time()
    if expiry < now or expiry > now + max_ttl_s + 5:
        raise Unauthorized(STALE_TOKEN)
    if token_run != run_id:
        raise NotFound("run not found", code="run_not_found")  # never reveal another run
    return Principal(kind="stream", tenant_id=tenant_id, user_id=user_id, run_id=run_id, key_id=ref)


STALE_TOKEN = "stream token expired: fetch a fresh one from GET /api/copilot/runs/{runId}"
REVOKED_TOKEN = "the key this stream token was issued to is no longer valid"


def stream_key_valid(settings: Settings, ref: str | None, *, issued_key_live: bool) -> bool:
    """Is the key a stream token was issued to still valid? ``issued_key_live``: whether an
    issued key with id ``ref`` exists unrevoked (the caller looks it up)."""
    if ref is None:
        return False
    if ref == "dev":
        return settings.dev_mode
    if ref.startswith("admin:"):
        current = key_ref(settings, Principal(kind="admin", tenant_id="", user_id=None))
        return hmac.compare_digest(ref, current)
    return issued_key_live
