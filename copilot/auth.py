"""Who is calling, and stream tokens.

Keys: the admin key (``COPILOT_API_KEY``, compared in constant time) acts for the ``userId``
it names; with no admin key set the server is in development mode (no auth, loopback only).
Stream tokens are an HMAC over (tenantId, userId, runId, expiry): never stored, they
authorise only one run's events route, for at most 15 minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from copilot.config import Settings
from copilot.errors import InvalidRequest, Unauthorized

DEFAULT_TENANT = "default"
DEV_USER = "local"


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin" | "dev" | "service" | "user" | "stream"
    tenant_id: str
    user_id: str | None  # fixed for user keys and stream tokens; named per request otherwise
    run_id: str | None = None  # stream tokens only

    def acting_user(self, requested: str | None) -> str:
        """The user this request acts for."""
        if self.user_id is not None and self.kind in ("user", "stream"):
            return self.user_id
        if requested:
            return requested
        if self.kind == "dev":
            return DEV_USER
        raise InvalidRequest(
            "userId is required with this key", details=[{"field": "userId", "msg": "required"}]
        )


def authenticate(settings: Settings, api_key: str | None) -> Principal:
    if settings.dev_mode:
        return Principal(kind="dev", tenant_id=DEFAULT_TENANT, user_id=None)
    if not api_key:
        raise Unauthorized("missing x-api-key header")
    assert settings.copilot_api_key is not None
    if hmac.compare_digest(api_key.encode(), settings.copilot_api_key.get_secret_value().encode()):
        return Principal(kind="admin", tenant_id=DEFAULT_TENANT, user_id=None)
    raise Unauthorized("invalid API key")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_stream_token(
    key: bytes, *, tenant_id: str, user_id: str, run_id: str, ttl_s: int, now: float | None = None
) -> str:
    expiry = int((now if now is not None else time.time()) + ttl_s)
    body = "\x1f".join([tenant_id, user_id, run_id, str(expiry)]).encode()
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
        tenant_id, user_id, token_run, expiry_s = body.decode().split("\x1f")
        expiry = int(expiry_s)
    except ValueError:
        raise Unauthorized("malformed stream token") from None
    now = time.time()
    if expiry < now or expiry > now + max_ttl_s + 5:
        raise Unauthorized(
            "stream token expired: fetch a fresh one from GET /api/copilot/runs/{runId}"
        )
    if token_run != run_id:
        raise Unauthorized("this stream token is for another run")
    return Principal(kind="stream", tenant_id=tenant_id, user_id=user_id, run_id=run_id)
