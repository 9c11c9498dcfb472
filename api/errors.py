"""One handler renders every error as the contract's body."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from copilot.errors import AppError

log = logging.getLogger("copilot.api")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
# PostgreSQL cannot hold U+0000: in text (character_not_in_repertoire) nor in JSONB
# (untranslatable_character, "unsupported Unicode escape sequence").
NUL_IN_TEXT = frozenset({"22021", "22P05"})


def _sqlstate(exc: DBAPIError) -> str | None:
    for err in (exc.orig, getattr(exc.orig, "__cause__", None)):
        code = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _render(exc: AppError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")]
        details.append({"field": ".".join(loc) or "body", "msg": err.get("msg", "invalid")})
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return _render(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"field": "body", "msg": "invalid"}
        return JSONResponse(
            {
                "success": False,
                "error": f"invalid request: {first['field']}: {first['msg']}",
                "code": "invalid_request",
                "details": details,
            },
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            {"success": False, "error": str(exc.detail), "code": code},
            status_code=exc.status_code,
        )

    @app.exception_handler(DBAPIError)
    async def _database(_request: Request, exc: DBAPIError) -> JSONResponse:
        if _sqlstate(exc) in NUL_IN_TEXT:
            # PostgreSQL text cannot hold U+0000: the request is at fault, and nothing was
            # written (the statement failed, the transaction rolls back).
            return JSONResponse(
                {
                    "success": False,
                    "code": "invalid_request",
                    "error": "invalid request: text must not contain NUL (U+0000) characters",
                    "details": [{"field": "body", "msg": "contains U+0000"}],
                },
                status_code=400,
            )
        log.exception("database error", exc_info=exc)
        return JSONResponse(
            {
                "success": False,
                "error": "the database is unavailable; try again shortly",
                "code": "unavailable",
            },
            status_code=503,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            {"success": False, "error": "internal server error", "code": "internal"},
            status_code=500,
        )
