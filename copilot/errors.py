"""The one error hierarchy. The API renders any ``AppError`` as the contract's error body.

AppError (500 internal)
├── InvalidRequest (400 invalid_request, + details)
├── Unauthorized (401 unauthorized)
├── Forbidden (403 user_mismatch)
├── NotFound (404 <thing>_not_found)
├── Conflict (409 run_active | already_decided | not_waiting | ...)
├── TooLarge (413 too_large)
├── HostNotAllowed (421 host_not_allowed)
├── RateLimited (429 rate_limited)
├── Unavailable (503 unavailable)
└── Timeout (504 timeout)
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 500
    code = "internal"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"success": False, "error": self.message, "code": self.code}
        if self.details is not None:
            out["details"] = self.details
        out.update(self.extra)
        return out


class InvalidRequest(AppError):
    status = 400
    code = "invalid_request"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    status = 403
    code = "user_mismatch"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class TooLarge(AppError):
    status = 413
    code = "too_large"


class HostNotAllowed(AppError):
    """421 Misdirected Request: development mode answers loopback host names only."""

    status = 421
    code = "host_not_allowed"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"


class Unavailable(AppError):
    status = 503
    code = "unavailable"


class Timeout(AppError):
    status = 504
    code = "timeout"
